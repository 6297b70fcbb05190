"""Writes the NUL-separated test cases of run.sh to argv[1]: JSON records,
every truncation of three of them, hand-written errors, random mutations
and whitespace strings (fixed seed, so runs are reproducible)."""
import random, sys
random.seed(7)
cases = []
base = [
 '{"name":"Alice","age":30,"city":"Paris"}',
 ' { "name" : "Bob \\"B\\" \\\\ \\/ \\b\\f\\n\\r\\t \\u00e9 \\ud83d\\ude00 \\u0001" , "age" : 0 , "city" : "Zürich 🎉" } ',
 '{"city":"X","age":4294967295,"name":"N","extra":[1,{"a":null},true,false,-1.5e3,"s\\u1234"]}',
 '{"name":"a","age":4294967296,"city":"b"}',
 '{"name":"a","age":-1,"city":"b"}',
 '{"name":"a","age":-0,"city":"b"}',
 '{"name":"a","age":3.5,"city":"b"}',
 '{"name":"a","age":3e1,"city":"b"}',
 '{"name":"a","age":1e400,"city":"b"}',
 '{"name":"a","age":123456789012345678901234,"city":"b"}',
 '{"name":"a","age":0.1,"city":"b"}',
 '{"name":"a","age":1.7976931348623157e308,"city":"b"}',
 '{"name":"a","age":5e-324,"city":"b"}',
 '{"name":"a","age":-9223372036854775808,"city":"b"}',
 '{"name":"a","age":-9223372036854775809,"city":"b"}',
 '{"name":"a","age":"30","city":"b"}',
 '{"name":"a","age":null,"city":"b"}',
 '{"name":1,"age":2,"city":"b"}',
 '{"name":true,"age":2,"city":"b"}',
 '{"name":["x"],"age":2,"city":"b"}',
 '{"name":{"x":1},"age":2,"city":"b"}',
 '{"name":"a","name":"b","age":1,"city":"c"}',
 '{"name":"a","city":"c"}',
 '{"age":1}',
 '{}',
 '[]',
 '["a",1,"b"]',
 'null', 'true', '"str\\n"', '12', '-3', '1.25', 'x', '', '   ',
 '{"name":"a","age":1,"city":"b"} x',
 '{"name":"a","age":1,"city":"b"},',
 '{"name":"a","age":1,"city":"b",}',
 '{"name":"a","age":1,"city":"b"}\n\n',
 '{"name":"a"\n,"age":01,"city":"b"}',
 '{"name":"a\\x","age":1,"city":"b"}',
 '{"name":"a\\ud800","age":1,"city":"b"}',
 '{"name":"a\\ud800\\n","age":1,"city":"b"}',
 '{"name":"a\\ud800\\u0041","age":1,"city":"b"}',
 '{"name":"a\\udc00","age":1,"city":"b"}',
 '{"name":"a\\u12G4","age":1,"city":"b"}',
 '{"name":"a\u0001","age":1,"city":"b"}',
 '{"name":"a\u007f","age":1,"city":"b"}',
 '{name:"a"}',
 '{"name" "a"}',
 '{"name":"a" "age":1}',
 '{"zz":[1,2,[3,[4,{"q":"\\ud800"}]]],"name":"a","age":1,"city":"b"}',
 '{"zz":[1,2,,3],"name":"a","age":1,"city":"b"}',
 '{"zz":[1 2],"name":"a","age":1,"city":"b"}',
 '{"zz":{"a" 1},"name":"a","age":1,"city":"b"}',
 '{"zz":{"a":1 "b":2},"name":"a","age":1,"city":"b"}',
 '{"zz":{1:2},"name":"a","age":1,"city":"b"}',
 '{"zz":nul,"name":"a","age":1,"city":"b"}',
 '{"zz":-,"name":"a","age":1,"city":"b"}',
 '{"zz":1.,"name":"a","age":1,"city":"b"}',
 '{"zz":1e,"name":"a","age":1,"city":"b"}',
 '{"zz":01,"name":"a","age":1,"city":"b"}',
 '{"name":"a","age":1.,"city":"b"}',
 '{"name":"a","age":1e+,"city":"b"}',
 '{"name":"a","age":1E-2,"city":"b"}',
 '{"name":"a","age":100e-2,"city":"b"}',
 '{"name":"a","age":-,"city":"b"}',
 '{"name":"a","age":tru,"city":"b"}',
 '{"name":"a","age":[1],"city":"b"}',
 '{"name":"a","age":1,"city":"b\\u0000c"}',
 '[' * 130 + ']' * 130,
 '{"a":' * 130 + '1' + '}' * 130,
 '{"zz":' + '[' * 300 + ']' * 300 + ',"name":"a","age":1,"city":"b"}',
]
cases += base
# every prefix of some valid records (the truncation a max_tokens cut makes)
for b in base[:3]:
    for i in range(len(b)):
        cases.append(b[:i])
# random mutations
alpha = list('{}[],:"\\ \n\tabnu0123456789.-+eE') + ['é', '🎉', '\u2028', '\u0001', 'true', 'null', '\\u', '\\ud83d']
for _ in range(3000):
    b = list(random.choice(base[:3] + base[14:20]))
    for _ in range(random.randint(1, 4)):
        op = random.random(); i = random.randrange(len(b) + 1)
        if op < 0.4 and b: del b[min(i, len(b)-1)]
        elif op < 0.8: b.insert(i, random.choice(alpha))
        elif b: b[min(i, len(b)-1)] = random.choice(alpha)
    cases.append(''.join(b))
# whitespace / debug cases
ws = ['\t','\n','\x0b','\x0c','\r',' ','\x85','\xa0','\u1680','\u2000','\u200a','\u2028','\u2029','\u202f','\u205f','\u3000','\x1c','\x1f','\ufeff','\u200b','\u180e']
for _ in range(500):
    cases.append(''.join(random.choice(ws + ['a','é','"','\\','\x00','\x7f','\u00ad','\u0301','x y']) for _ in range(random.randint(0, 8))))
data = '\0'.join(c for c in cases if '\0' not in c)
open(sys.argv[1], 'wb').write(data.encode('utf-8'))
print(len(cases), "cases", file=sys.stderr)

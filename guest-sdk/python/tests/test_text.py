"""Host-side tests of arbor._text (no component needed):

    python3 -m unittest discover -s guest-sdk/python/tests
"""

import ast
import os
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "arbor"))

import _text  # noqa: E402  (arbor/__init__ needs the component's bindings)


class Trim(unittest.TestCase):
    def test_rust_white_space_only(self):
        # Python's strip() also strips U+001C..U+001F; Rust's trim does not.
        self.assertEqual(_text.trim("\x1c a \x1f"), "\x1c a \x1f")
        self.assertEqual("\x1c a \x1f".strip(), "a")
        # JS trim strips U+FEFF and keeps U+0085; Rust the other way round.
        self.assertEqual(_text.trim("\ufeff\u0085a\u0085"), "\ufeff\u0085a")
        self.assertEqual(_text.trim(" \t\n\u00a0\u3000a b\u2028\u202f\u205f\r\x0b\x0c"), "a b")
        self.assertEqual(_text.trim_start("  a  "), "a  ")
        self.assertEqual(_text.trim_end("  a  "), "  a")

    def test_every_white_space_char(self):
        ws = [chr(c) for c in range(0x110000) if chr(c) in _text.WHITESPACE]
        expected = [0x9, 0xA, 0xB, 0xC, 0xD, 0x20, 0x85, 0xA0, 0x1680] + list(range(0x2000, 0x200B)) + [
            0x2028, 0x2029, 0x202F, 0x205F, 0x3000]
        self.assertEqual([ord(c) for c in ws], expected)

    def test_split_whitespace(self):
        self.assertEqual(_text.split_whitespace("  calls\u3000empty \t 1\n2 "), ["calls", "empty", "1", "2"])
        self.assertEqual(_text.split_whitespace("a\x1cb"), ["a\x1cb"])
        self.assertEqual(_text.split_whitespace(" \n"), [])


class Json(unittest.TestCase):
    def test_serde_escapes(self):
        s = '"\\\b\f\n\r\t\x00\x01\x1f\x7f é日\u2028\U0001f600'
        self.assertEqual(
            _text.to_json({"steps": [s], "answer": ""}),
            '{"steps":["\\"\\\\\\b\\f\\n\\r\\t\\u0000\\u0001\\u001f\x7f é日\u2028\U0001f600"],"answer":""}',
        )

    def test_schema_bytes_match_rust(self):
        # The schema of examples/python/json_extract.py, read from its source
        # (the module itself imports only inside a component), must be sent
        # as the bytes the Rust example sends.
        path = os.path.join(HERE, "..", "..", "..", "examples", "python", "json_extract.py")
        with open(path) as f:
            tree = ast.parse(f.read())
        [schema] = [ast.literal_eval(n.value) for n in tree.body
                    if isinstance(n, ast.Assign) and [t.id for t in n.targets] == ["SCHEMA"]]
        self.assertEqual(
            _text.to_json(schema, sort_keys=True),
            '{"additionalProperties":false,"properties":{"age":{"maximum":150,"minimum":0,"type":"integer"},'
            '"city":{"maxLength":40,"type":"string"},"name":{"maxLength":40,"type":"string"}},'
            '"required":["name","age","city"],"type":"object"}',
        )

    def test_nan_refused(self):
        with self.assertRaises(ValueError):
            _text.to_json(float("nan"))

    def test_parse_refuses_what_serde_refuses(self):
        for bad in ["NaN", "[Infinity]", '"\\ud800"', '{"a":"\\udc00x"}', "[" * 100000, "", "{} x"]:
            with self.assertRaises(ValueError, msg=bad):
                _text.parse_json(bad)
        self.assertEqual(_text.parse_json(' {"a":[1,2.5,"\\ud83d\\ude00"]} '), {"a": [1, 2.5, "\U0001f600"]})


if __name__ == "__main__":
    unittest.main()

// Unit tests of the JavaScript SDK and of the examples' call sequences,
// against the recording fake host of fake-lm.mjs. Run:
//
//     node --import ./guest-sdk/js/test/register.mjs --test guest-sdk/js/test/
//
// The byte-for-byte comparison with the Rust examples needs the real host
// and model; see docs/guests-js.md.
import { test, beforeEach } from 'node:test';
import assert from 'node:assert/strict';

import * as lm from './fake-lm.mjs';
import {
  State, Gen, Role, LmError, JsonError, join, trim, splitWhitespace, schemaText, program, parseJson,
} from '../arbor.js';

beforeEach(() => lm.reset());

// Rust's char::is_whitespace (Unicode White_Space), from the Unicode data.
const RUST_WHITE_SPACE = new Set([
  0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x20, 0x85, 0xa0, 0x1680,
  0x2000, 0x2001, 0x2002, 0x2003, 0x2004, 0x2005, 0x2006, 0x2007, 0x2008, 0x2009, 0x200a,
  0x2028, 0x2029, 0x202f, 0x205f, 0x3000,
]);

test('trim strips exactly Rust White_Space, over the whole BMP', () => {
  for (let c = 0; c <= 0xffff; c++) {
    if (c >= 0xd800 && c <= 0xdfff) continue;
    const ch = String.fromCharCode(c);
    const expected = RUST_WHITE_SPACE.has(c) ? 'x' : `${ch}x${ch}`;
    assert.equal(trim(`${ch}x${ch}`), expected, `U+${c.toString(16)}`);
  }
  assert.equal(trim('\ufeff a \ufeff'), '\ufeff a \ufeff'); // JS trim() would strip these
  assert.equal(trim('\u0085a\u0085'), 'a'); // and keep these
  assert.equal(trim('\u001ca\u001f'), '\u001ca\u001f'); // Python strip() would strip these
  assert.equal(trim(' 🎉 '), '🎉');
  assert.equal(trim(''), '');
  assert.equal(trim(' \t\n'), '');
});

test('decoders made before the SDK (the bindings\' one) keep a leading U+FEFF', () => {
  const bytes = new Uint8Array([0xef, 0xbb, 0xbf, 0x41]);
  const Real = Object.getPrototypeOf(TextDecoder);
  assert.equal(new Real().decode(bytes), '\ufeffA');
  assert.equal(new Real().decode(bytes.subarray(3)), 'A');
  assert.equal(new Real('utf-8', { ignoreBOM: true }).decode(bytes), '\ufeffA');
  // The program's own decoders are standard WHATWG ones.
  assert.equal(new TextDecoder().decode(bytes), 'A');
  assert.ok(new TextDecoder() instanceof Real);
});

test('splitWhitespace is split_whitespace', () => {
  assert.deepEqual(splitWhitespace('  calls\u3000empty 3\u00a010 '), ['calls', 'empty', '3', '10']);
  assert.deepEqual(splitWhitespace(''), []);
  assert.deepEqual(splitWhitespace('\ufeffstart'), ['\ufeffstart']);
});

const examples = new URL('../../../examples/js/', import.meta.url);

test('schemaText sends the bytes serde_json sends for the json-extract schema', async () => {
  const { SCHEMA } = await import(new URL('json_extract.js', examples));
  assert.equal(
    schemaText(SCHEMA),
    '{"additionalProperties":false,"properties":{"age":{"maximum":150,"minimum":0,"type":"integer"},' +
      '"city":{"maxLength":40,"type":"string"},"name":{"maxLength":40,"type":"string"}},' +
      '"required":["name","age","city"],"type":"object"}',
  );
  // Keys sort by code point (Rust's byte order), not by UTF-16 unit.
  assert.equal(schemaText({ '\u{1f600}': 1, '\uff61': 2 }), '{"\uff61":2,"\u{1f600}":1}');
});

test('JSON.stringify escapes strings as serde_json does', () => {
  let all = '';
  for (let c = 0; c < 0x80; c++) all += String.fromCharCode(c);
  all += 'é日本🎉\u2028\u2029\u0085\ufeff';
  // serde_json: \" \\ \b \f \n \r \t short forms, other C0 as \u00xx
  // (lowercase), everything else raw.
  const expected = '"' + [...all].map((ch) => {
    const c = ch.codePointAt(0);
    const short = { 0x22: '\\"', 0x5c: '\\\\', 0x08: '\\b', 0x0c: '\\f', 0x0a: '\\n', 0x0d: '\\r', 0x09: '\\t' };
    if (short[c]) return short[c];
    if (c < 0x20) return `\\u${c.toString(16).padStart(4, '0')}`;
    return ch;
  }).join('') + '"';
  assert.equal(JSON.stringify(all), expected);
});

test('Gen: Rust defaults, immutable builder, checked arguments', () => {
  assert.deepEqual(new Gen().toOptions(), {
    maxTokens: 128, temperature: 0, topP: 1, topK: 0, stop: [], seed: undefined, constraint: undefined,
  });
  const base = new Gen().maxTokens(32);
  const a = base.stop('\n').seed(21);
  assert.deepEqual(base.toOptions().stop, []);
  assert.equal(a.toOptions().seed, 21n);
  assert.equal(new Gen().seed(2n ** 64n - 1n).toOptions().seed, 2n ** 64n - 1n);
  assert.deepEqual(new Gen().regex('a+').toOptions().constraint, { tag: 'regex', val: 'a+' });
  assert.deepEqual(new Gen().jsonSchema('{"type":"string"}').toOptions().constraint, {
    tag: 'json-schema', val: '{"type":"string"}',
  });
  assert.deepEqual(
    new Gen({ maxTokens: 5, stop: ['a', 'b'], temperature: 0.8, seed: 3 }).toOptions(),
    { maxTokens: 5, temperature: 0.8, topP: 1, topK: 0, stop: ['a', 'b'], seed: 3n, constraint: undefined },
  );
  assert.throws(() => new Gen().maxTokens(-1), RangeError);
  assert.throws(() => new Gen().maxTokens(2 ** 32), RangeError);
  assert.throws(() => new Gen().maxTokens(1.5), RangeError);
  assert.throws(() => new Gen().topK('3'), RangeError);
  assert.throws(() => new Gen().seed(-1), RangeError);
  assert.throws(() => new Gen().seed(2n ** 64n), RangeError);
  assert.throws(() => new Gen().seed(2 ** 60), RangeError); // not a safe integer
  assert.throws(() => new Gen().temperature('hot'), TypeError);
  assert.throws(() => new Gen().stop(1), TypeError);
  assert.throws(() => new Gen({ maxToken: 3 }), TypeError);
});

test('State forwards calls in order and chains', () => {
  const s = new State();
  s.system('sys').user('u').assistant('a').append('x').begin(Role.Assistant)
    .gen('v', { maxTokens: 3 }).end().select('c', ['1', '2']);
  s.assistantGenerate('w');
  assert.deepEqual(lm.calls.map((c) => c.slice(0, 3)), [
    ['create', 0], ['appendMessage', 0, 'system'], ['appendMessage', 0, 'user'],
    ['appendMessage', 0, 'assistant'], ['append', 0, 'x'], ['beginMessage', 0, 'assistant'],
    ['generate', 0, 'v'], ['endMessage', 0], ['select', 0, 'c'],
    ['beginMessage', 0, 'assistant'], ['generate', 0, 'w'], ['endMessage', 0],
  ]);
  assert.throws(() => s.message('robot', 'x'), TypeError);
  assert.throws(() => s.append(3), TypeError);
  assert.throws(() => s.select('c', 'ab'), TypeError);
  assert.throws(() => s.fork(-1), RangeError);
});

test('fork, join, drop', () => {
  const s = new State();
  const kids = s.fork(2);
  assert.equal(kids.length, 2);
  assert.ok(kids.every((k) => k instanceof State));
  join(kids);
  kids[0].drop();
  kids[0].drop(); // twice is harmless
  assert.throws(() => kids[0].append('x'), /dropped/);
  assert.throws(() => join([s, {}]), TypeError);
  assert.deepEqual(lm.calls.slice(1), [['fork', 0, 2, [1, 2]], ['join', [1, 2]], ['drop', 1]]);
});

test('host errors become LmError worded like the Rust SDK', () => {
  const cases = [
    [{ tag: 'bad-constraint', val: 'm' }, 'bad constraint: m'],
    [{ tag: 'limit-exceeded', val: 'm' }, 'limit exceeded: m'],
    [{ tag: 'invalid-argument', val: 'm' }, 'invalid argument: m'],
    [{ tag: 'unknown-variable', val: 'm' }, 'unknown variable: m'],
    [{ tag: 'cancelled' }, 'cancelled'],
    [{ tag: 'engine', val: 'm' }, 'engine error: m'],
  ];
  const s = new State();
  for (const [variant, message] of cases) {
    lm.failNext.variant = variant;
    assert.throws(() => s.append('x'), (e) => {
      assert.ok(e instanceof LmError);
      assert.equal(e.message, message);
      assert.deepEqual(e.variant, variant);
      assert.equal(e.tag, variant.tag);
      return true;
    });
  }
  lm.failNext.variant = { tag: 'limit-exceeded', val: 'live states' };
  assert.throws(() => new State(), LmError);
});

test('json parses or throws JsonError', () => {
  const s = new State();
  lm.answers.variable.p = '{"a":[1,"x"]}';
  assert.deepEqual(s.json('p'), { a: [1, 'x'] });
  lm.answers.variable.p = '{"a":';
  assert.throws(() => s.json('p'), (e) => e instanceof JsonError && e.message.startsWith('invalid JSON: '));
  // serde_json refuses lone surrogates, in values and in keys; pairs are fine.
  for (const bad of ['"\\ud800"', '["x\\udc00y"]', '{"\\udbff":1}', 'NaN', '[1,]']) {
    assert.throws(() => parseJson(bad), JsonError, bad);
  }
  assert.equal(parseJson('"\\ud83c\\udf89"'), '\u{1f389}');
  assert.deepEqual(parseJson(' {"a":1,"a":2} '), { a: 2 });
});

test('program maps return and throw to the WIT result', async () => {
  assert.deepEqual(program((x) => `<${x}>`)('in'), { tag: 'ok', val: '<in>' });
  assert.deepEqual(program(() => { throw new Error('boom'); })(''), { tag: 'err', val: 'boom' });
  assert.deepEqual(program(() => { throw 'plain'; })(''), { tag: 'err', val: 'plain' });
  assert.deepEqual(program(() => 3)(''), { tag: 'err', val: 'run must return a string, it returned number' });
  assert.deepEqual(await program(async () => 'later')(''), { tag: 'ok', val: 'later' });
  assert.deepEqual(await program(async () => { throw new Error('no'); })(''), { tag: 'err', val: 'no' });
  lm.failNext.variant = { tag: 'cancelled' };
  assert.deepEqual(program(() => new State().text())(''), { tag: 'err', val: 'cancelled' });
  const p = program(() => '');
  assert.equal(program(p), p);
});

// ------------------------------------------------------------ the examples' call sequences

test('few_shot makes the Rust example\'s calls', async () => {
  const { run } = await import(new URL('few_shot.js', examples));
  lm.answers.variable.answer = '\u00a0 Paris \u0085';
  assert.equal(run(' \ufeffWhat? \n'), 'Paris');
  assert.deepEqual(lm.calls, [
    ['create', 0],
    ['append', 0, 'Answer each question in a few words.\n\n'],
    ['append', 0, 'Question: What is the capital of France?\nAnswer: Paris\n\n'],
    ['append', 0, 'Question: How many legs does a spider have?\nAnswer: Eight\n\n'],
    ['append', 0, 'Question: Which planet is closest to the Sun?\nAnswer: Mercury\n\n'],
    ['append', 0, 'Question: \ufeffWhat?\nAnswer:'],
    ['generate', 0, 'answer', {
      maxTokens: 32, temperature: 0, topP: 1, topK: 0, stop: ['\n'], seed: undefined, constraint: undefined,
    }],
    ['variable', 0, 'answer'],
  ]);
});

test('tree_of_thought makes the Rust example\'s calls', async () => {
  const { run } = await import(new URL('tree_of_thought.js', examples));
  lm.answers.variable.step = (id) => ` step of ${id}\t`;
  lm.answers.variable.answer = ' "42" ';
  lm.answers.choice.best = 1;
  const out = run(' P ');
  assert.equal(
    out,
    '{"steps":["step of 2","step of 6","step of 10"],"answer":"\\"42\\""}',
  );
  const gens = lm.calls.filter((c) => c[0] === 'generate');
  assert.deepEqual(gens.map((c) => [c[1], c[3].seed, c[3].temperature, c[3].maxTokens, c[3].stop]), [
    [1, 10n, 0.8, 48, ['\n']], [2, 11n, 0.8, 48, ['\n']], [3, 12n, 0.8, 48, ['\n']],
    [5, 20n, 0.8, 48, ['\n']], [6, 21n, 0.8, 48, ['\n']], [7, 22n, 0.8, 48, ['\n']],
    [9, 30n, 0.8, 48, ['\n']], [10, 31n, 0.8, 48, ['\n']], [11, 32n, 0.8, 48, ['\n']],
    [10, undefined, 0, 32, ['\n']],
  ]);
  const judge = lm.calls.filter((c) => c[1] === 8 && c[0] === 'append').map((c) => c[2]);
  assert.deepEqual(judge, [
    'Problem: P\nSteps so far:\n', '- step of 2\n', 'Candidate next steps:\n',
    '1. step of 5\n', '2. step of 6\n', '3. step of 7\n', 'The most promising candidate is number ',
  ]);
  assert.deepEqual(lm.calls.filter((c) => c[1] === 8 && c[0] === 'select'), [['select', 8, 'best', ['1', '2', '3']]]);
  // Judges and unpicked branches are dropped as the Rust version drops them.
  assert.deepEqual(lm.calls.filter((c) => c[0] === 'drop').map((c) => c[1]), [4, 1, 0, 3, 8, 5, 2, 7, 12, 9, 6, 11]);
});

test('json_extract sends the schema and re-serialises like serde', async () => {
  const { run, SCHEMA } = await import(new URL('json_extract.js', examples));
  lm.answers.variable.person = ' {"city":"Zürich\\u0001","age":30,"extra":1,"name":"A \\"B\\""} ';
  assert.equal(run(' Alice '), '{"name":"A \\"B\\"","age":30,"city":"Zürich\\u0001"}');
  const gen = lm.calls.find((c) => c[0] === 'generate');
  assert.equal(gen[3].maxTokens, 96);
  assert.deepEqual(gen[3].constraint, { tag: 'json-schema', val: schemaText(SCHEMA) });
  assert.deepEqual(lm.calls.slice(1, 3), [
    ['appendMessage', 0, 'system', 'Extract the person described in the text as JSON.'],
    ['appendMessage', 0, 'user', 'Alice'],
  ]);
  for (const bad of ['{"name":"a","age":-1,"city":"c"}', '{"name":"a","age":1.5,"city":"c"}',
    '{"name":"a","city":"c"}', '{"name":1,"age":1,"city":"c"}', '[]', '"x"', '{']) {
    lm.answers.variable.person = bad;
    assert.throws(() => run('x'), JsonError, bad);
  }
  lm.answers.variable.person = '["a",1,"c"]';
  assert.equal(run('x'), '{"name":"a","age":1,"city":"c"}');
});

test('bench follows the Rust protocol', async () => {
  const { run } = await import(new URL('bench.js', examples));
  assert.equal(run(' start\n'), 'ok');
  const times = JSON.parse(run('calls read 3 4'));
  assert.equal(times.length, 3);
  assert.ok(times.every((t) => Number.isInteger(t) && t >= 0));
  assert.equal(lm.calls.filter((c) => c[0] === 'tokenCount').length, 12);
  // Like Rust, an unknown KIND only fails once a call of it is made.
  assert.equal(JSON.parse(run('calls bogus 2 0')).length, 2);
  assert.throws(() => run('calls bogus 1 1'), (e) => e === 'unknown kind bogus');
  assert.throws(() => run('calls empty x 1'), (e) => e === 'bad BATCHES');
  assert.throws(() => run('calls empty 1 -1'), (e) => e === 'bad PER_BATCH');
  assert.equal(JSON.parse(run('calls empty +2 1')).length, 2);
  assert.throws(() => run('calls empty 4294967296 1'), (e) => e === 'bad BATCHES');
  assert.throws(() => run('go "now"\t\u00a0'), (e) => e === 'unknown input "go \\"now\\"\\t\\u{a0}"');
});

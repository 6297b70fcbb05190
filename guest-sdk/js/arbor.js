// JavaScript SDK for Arbor programs: the same shape as the Rust SDK
// (guest-sdk/src), over the WIT interface `arbor:lm/lm@0.1.0`.
//
// A program is an ES module that exports `run(input)` returning a string:
//
//     import { State, Gen } from 'arbor';
//
//     export function run(input) {
//       const s = new State();
//       s.user(input);
//       s.assistantGenerate('answer', new Gen().maxTokens(64));
//       return s.variable('answer');
//     }
//
// `guest-sdk/js/build.sh program.js out.wasm` bundles it with this SDK and
// turns it into a component; an error thrown by `run` becomes the `err`
// string of the WIT result. Calls that extend a state return at once; the
// host runs each state's commands in order and different states in parallel.
// Reads (`text`, `variable`, `json`, `choice`, `tokenCount`) and `join` wait.

import { State as RawState, join as rawJoin } from 'arbor:lm/lm@0.1.0';

// componentize-js's bindings decode every string that crosses the WIT
// boundary (the input, variables, text) with a default TextDecoder, and the
// WHATWG decoder drops a leading U+FEFF (a "BOM"): an input or a variable
// starting with U+FEFF would lose it, where Rust keeps it. The bindings'
// decoder was made from this global's TextDecoder before any program code
// ran, so the SDK puts the U+FEFF back for decoders made before it loaded;
// decoders the program makes itself (through the class installed here)
// keep the standard behaviour.
(function keepLeadingBom() {
  const Real = globalThis.TextDecoder;
  if (typeof Real !== 'function' || Real.prototype.decode.arborKeepsBom) return;
  const own = new WeakSet();
  const decode = Real.prototype.decode;
  const patched = function decode_(input, options) {
    const out = decode.call(this, input, options);
    if (own.has(this) || this.ignoreBOM || this.encoding !== 'utf-8' || (options && options.stream)) return out;
    let bytes;
    if (input instanceof Uint8Array) bytes = input;
    else if (ArrayBuffer.isView(input)) bytes = new Uint8Array(input.buffer, input.byteOffset, input.byteLength);
    else if (input instanceof ArrayBuffer) bytes = new Uint8Array(input);
    else return out;
    if (bytes.length >= 3 && bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf) return `\ufeff${out}`;
    return out;
  };
  patched.arborKeepsBom = true;
  Object.defineProperty(Real.prototype, 'decode', { value: patched, writable: true, configurable: true });
  class TextDecoder extends Real {
    constructor(...args) {
      super(...args);
      own.add(this);
    }
  }
  globalThis.TextDecoder = TextDecoder;
})();

/** Chat roles, rendered with the model's chat template (the WIT `role` enum). */
export const Role = Object.freeze({
  System: 'system',
  User: 'user',
  Assistant: 'assistant',
});

const ROLES = new Set(Object.values(Role));

// ---------------------------------------------------------------- errors

/**
 * A failure reported by the host: carries the WIT `error` variant.
 *
 * `variant` is `{ tag, val }` exactly as the bindings give it (`tag` one of
 * 'bad-constraint', 'limit-exceeded', 'invalid-argument', 'unknown-variable',
 * 'cancelled', 'engine'; `val` the host's message, absent for 'cancelled').
 * `message` is worded like the Rust SDK's `Display`, so that a program's
 * `err` output is the same in both languages.
 */
export class LmError extends Error {
  constructor(variant) {
    super(describeVariant(variant));
    this.name = 'LmError';
    /** The WIT variant, `{ tag, val }`. */
    this.variant = variant;
    /** The variant's case name. */
    this.tag = variant.tag;
    /** The variant's message (undefined for 'cancelled'). */
    this.detail = variant.val;
  }
}

/** A captured variable was not the JSON the caller asked for. */
export class JsonError extends Error {
  constructor(detail) {
    super(`invalid JSON: ${detail}`);
    this.name = 'JsonError';
    /** What was wrong, without the 'invalid JSON: ' prefix. */
    this.detail = detail;
  }
}

// Prefixes of the Rust SDK's Display for each case of the WIT error.
const VARIANT_PREFIX = {
  'bad-constraint': 'bad constraint',
  'limit-exceeded': 'limit exceeded',
  'invalid-argument': 'invalid argument',
  'unknown-variable': 'unknown variable',
  engine: 'engine error',
};

function describeVariant(variant) {
  if (variant.tag === 'cancelled') return 'cancelled';
  const prefix = VARIANT_PREFIX[variant.tag] ?? variant.tag;
  return `${prefix}: ${variant.val}`;
}

// The bindings throw their own `ComponentError` (created in another realm,
// so `instanceof` cannot recognise it) whose own property `payload` is the
// WIT error variant. Everything else (a TypeError of the bindings, say)
// passes through unchanged.
function lift(e) {
  if (e !== null && typeof e === 'object' && Object.prototype.hasOwnProperty.call(e, 'payload')) {
    const p = e.payload;
    if (p !== null && typeof p === 'object' && typeof p.tag === 'string') return new LmError(p);
  }
  return e;
}

// ---------------------------------------------------------------- argument checks
// The bindings coerce silently (a u32 argument goes through `>>> 0`, so -1
// becomes 4294967295); these checks turn such mistakes into errors instead.

const U32_MAX = 0xffff_ffff;
const U64_MAX = (1n << 64n) - 1n;

function checkString(what, v) {
  if (typeof v !== 'string') throw new TypeError(`${what} must be a string, got ${typeof v}`);
  return v;
}

function checkU32(what, v) {
  if (!Number.isInteger(v) || v < 0 || v > U32_MAX) {
    throw new RangeError(`${what} must be an integer from 0 to ${U32_MAX}, got ${String(v)}`);
  }
  return v;
}

function checkNumber(what, v) {
  if (typeof v !== 'number') throw new TypeError(`${what} must be a number, got ${typeof v}`);
  return v;
}

function checkSeed(v) {
  let b;
  if (typeof v === 'bigint') b = v;
  else if (Number.isSafeInteger(v)) b = BigInt(v);
  else throw new RangeError(`seed must be a safe integer or a bigint, got ${String(v)}`);
  if (b < 0n || b > U64_MAX) throw new RangeError(`seed must be from 0 to ${U64_MAX}, got ${b}`);
  return b;
}

function checkRole(v) {
  if (!ROLES.has(v)) throw new TypeError(`role must be one of ${[...ROLES].join(', ')}, got ${String(v)}`);
  return v;
}

function checkStrings(what, list) {
  if (list === null || typeof list !== 'object' || typeof list[Symbol.iterator] !== 'function') {
    throw new TypeError(`${what} must be an iterable of strings`);
  }
  const out = [];
  for (const s of list) out.push(checkString(`each of ${what}`, s));
  return out;
}

// ---------------------------------------------------------------- generation options

const DEFAULTS = Object.freeze({
  maxTokens: 128,
  temperature: 0,
  topP: 1,
  topK: 0,
  stop: Object.freeze([]),
  seed: undefined,
  constraint: undefined,
});

/**
 * Options of `State.generate`, as an immutable builder: each method returns
 * a new `Gen`, so a shared `Gen` can be extended safely.
 *
 * Defaults (those of the Rust SDK): 128 tokens, greedy decoding
 * (temperature 0), no top-p/top-k truncation, no stop strings, no seed, no
 * constraint. `new Gen({ maxTokens: 32, stop: ['\n'] })` also works, with
 * the keys maxTokens, temperature, topP, topK, stop, seed, regex, jsonSchema.
 */
export class Gen {
  #o;

  constructor(options = undefined) {
    this.#o = DEFAULTS;
    if (options === undefined || options === null) return;
    if (typeof options !== 'object') throw new TypeError('Gen options must be an object');
    let g = this;
    for (const [key, value] of Object.entries(options)) {
      switch (key) {
        case 'maxTokens': g = g.maxTokens(value); break;
        case 'temperature': g = g.temperature(value); break;
        case 'topP': g = g.topP(value); break;
        case 'topK': g = g.topK(value); break;
        case 'stop':
          for (const s of checkStrings('stop', value)) g = g.stop(s);
          break;
        case 'seed': g = g.seed(value); break;
        case 'regex': g = g.regex(value); break;
        case 'jsonSchema': g = g.jsonSchema(value); break;
        default: throw new TypeError(`unknown Gen option ${JSON.stringify(key)}`);
      }
    }
    this.#o = g.#o;
  }

  #with(change) {
    const g = new Gen();
    g.#o = Object.freeze({ ...this.#o, ...change });
    return g;
  }

  /** Upper bound on generated tokens (the host clamps it to the run's limits). */
  maxTokens(n) { return this.#with({ maxTokens: checkU32('maxTokens', n) }); }

  /** Sampling temperature; 0 is greedy. Sent as an f32, like Rust's `f32`. */
  temperature(t) { return this.#with({ temperature: checkNumber('temperature', t) }); }

  /** Nucleus sampling mass; 1 disables it. */
  topP(p) { return this.#with({ topP: checkNumber('topP', p) }); }

  /** Keeps only the `k` most likely tokens (0 keeps all). */
  topK(k) { return this.#with({ topK: checkU32('topK', k) }); }

  /** Adds a stop string; generation ends before the first one produced. */
  stop(s) { return this.#with({ stop: Object.freeze([...this.#o.stop, checkString('stop', s)]) }); }

  /** Seeds the sampler (a u64: a non-negative safe integer or a bigint). */
  seed(seed) { return this.#with({ seed: checkSeed(seed) }); }

  /** Constrains the output to match a regular expression. */
  regex(pattern) {
    return this.#with({ constraint: { tag: 'regex', val: checkString('regex', pattern) } });
  }

  /**
   * Constrains the output to JSON valid against `schema`: either the schema
   * as JSON text (sent as is) or a value, serialised like the Rust SDK's
   * `serde_json::Value` (compact, object keys sorted) by `schemaText`.
   */
  jsonSchema(schema) {
    const text = typeof schema === 'string' ? schema : schemaText(schema);
    return this.#with({ constraint: { tag: 'json-schema', val: text } });
  }

  /** The options as the WIT `generate-options` record. */
  toOptions() {
    const o = this.#o;
    return {
      maxTokens: o.maxTokens,
      temperature: o.temperature,
      topP: o.topP,
      topK: o.topK,
      stop: [...o.stop],
      seed: o.seed,
      constraint: o.constraint,
    };
  }
}

function toGen(options) {
  if (options instanceof Gen) return options;
  return new Gen(options);
}

// ---------------------------------------------------------------- states

// Lets `fork` wrap a resource the host already made; not exported, so user
// code cannot build a State around an arbitrary object.
const WRAP = Symbol('wrap');
// The dispose method of the bindings' resource class.
const DISPOSE = Symbol.dispose ?? Symbol.for('dispose');

/**
 * A prompt being built: a token sequence plus the text it was built from and
 * the variables captured along the way.
 *
 * Methods that extend the state return `this`, so calls chain. A state lives
 * until the run ends or until `drop()`; dropping cancels its queued work,
 * except what states forked from it still need.
 */
export class State {
  #raw;

  /** A new, empty state (fails when the run's live-state limit is reached). */
  constructor(...args) {
    if (args[0] === WRAP) {
      this.#raw = args[1];
      return;
    }
    try {
      this.#raw = RawState.create();
    } catch (e) {
      throw lift(e);
    }
  }

  /** Same as `new State()`, named like the WIT function. */
  static create() {
    return new State();
  }

  /** The raw WIT resource, for what the SDK does not wrap. */
  get raw() {
    return this.#live();
  }

  #live() {
    if (this.#raw === undefined) throw new Error('this state was dropped');
    return this.#raw;
  }

  // Each method below calls the resource inline, in its own try/catch that
  // turns the bindings' error into an LmError. A shared helper taking the
  // method name and spread arguments cost about 1.5 us more per call in the
  // embedded interpreter (the raw WIT call itself is 8-13 us), and that cost
  // is what the per-call benchmark measures.

  /** Appends text, tokenized on its own. */
  append(text) {
    checkString('text', text);
    try {
      this.#live().append(text);
    } catch (e) {
      throw lift(e);
    }
    return this;
  }

  /** Appends a whole chat message rendered by the chat template. */
  message(role, content) {
    checkRole(role);
    checkString('content', content);
    try {
      this.#live().appendMessage(role, content);
    } catch (e) {
      throw lift(e);
    }
    return this;
  }

  /** Appends a system message. */
  system(content) { return this.message(Role.System, content); }

  /** Appends a user message. */
  user(content) { return this.message(Role.User, content); }

  /** Appends an assistant message with known content. */
  assistant(content) { return this.message(Role.Assistant, content); }

  /** Opens a chat message whose content is appended or generated next. */
  begin(role) {
    checkRole(role);
    try {
      this.#live().beginMessage(role);
    } catch (e) {
      throw lift(e);
    }
    return this;
  }

  /** Closes the message opened by `begin`. */
  end() {
    try {
      this.#live().endMessage();
    } catch (e) {
      throw lift(e);
    }
    return this;
  }

  /**
   * Generates text, appends it and captures it as variable `name`.
   * `options`: a `Gen`, a plain object of Gen options, or nothing (defaults).
   */
  generate(name, options = undefined) {
    checkString('name', name);
    const opts = toGen(options).toOptions();
    try {
      this.#live().generate(name, opts);
    } catch (e) {
      throw lift(e);
    }
    return this;
  }

  /** Short name of `generate`. */
  gen(name, options = undefined) {
    return this.generate(name, options);
  }

  /** Generates a whole assistant message into variable `name`. */
  assistantGenerate(name, options = undefined) {
    return this.begin(Role.Assistant).generate(name, options).end();
  }

  /**
   * Picks the most likely of `choices` (mean log-probability per token),
   * appends it and captures it as variable `name`; read its index with
   * `choice(name)`.
   */
  select(name, choices) {
    checkString('name', name);
    const list = checkStrings('choices', choices);
    try {
      this.#live().select(name, list);
    } catch (e) {
      throw lift(e);
    }
    return this;
  }

  /** `n` new states, each a copy of this one, sharing its prefix in the cache. */
  fork(n) {
    checkU32('n', n);
    let raws;
    try {
      raws = this.#live().fork(n);
    } catch (e) {
      throw lift(e);
    }
    return raws.map((raw) => new State(WRAP, raw));
  }

  /** Waits, then returns the full text of the state. */
  text() {
    try {
      return this.#live().text();
    } catch (e) {
      throw lift(e);
    }
  }

  /** Waits, then returns captured variable `name`. */
  variable(name) {
    checkString('name', name);
    try {
      return this.#live().variable(name);
    } catch (e) {
      throw lift(e);
    }
  }

  /** Waits, then returns captured variable `name` parsed by `parseJson`. */
  json(name) {
    return parseJson(this.variable(name));
  }

  /** Waits, then returns the index chosen by `select` for `name`. */
  choice(name) {
    checkString('name', name);
    try {
      return this.#live().choice(name);
    } catch (e) {
      throw lift(e);
    }
  }

  /** Waits, then returns the number of tokens of the state. */
  tokenCount() {
    try {
      return this.#live().tokenCount();
    } catch (e) {
      throw lift(e);
    }
  }

  /**
   * Drops the state now: frees its live-state slot and cancels its queued
   * work (except what forks still need). Later calls on it throw. Without
   * it, a state lives until the run ends (the JS engine's garbage collector
   * does not reliably drop WIT resources).
   */
  drop() {
    const raw = this.#raw;
    if (raw === undefined) return;
    this.#raw = undefined;
    raw[DISPOSE]();
  }
}

/** Waits until the work queued on every state is done; throws the first error, in order. */
export function join(states) {
  if (states === null || typeof states !== 'object' || typeof states[Symbol.iterator] !== 'function') {
    throw new TypeError('join takes an iterable of States');
  }
  const raws = [];
  for (const s of states) {
    if (!(s instanceof State)) throw new TypeError('join takes an iterable of States');
    raws.push(s.raw);
  }
  try {
    rawJoin(raws);
  } catch (e) {
    throw lift(e);
  }
}

// ---------------------------------------------------------------- text helpers

// Unicode White_Space, the set Rust's `str::trim` and `split_whitespace`
// use. JS `trim()` differs (it strips U+FEFF and keeps U+0085), so examples
// that must match the Rust ones byte for byte use `trim` below.
function isWhiteSpace(c) {
  return (
    (c >= 0x09 && c <= 0x0d) || c === 0x20 || c === 0x85 || c === 0xa0 || c === 0x1680 ||
    (c >= 0x2000 && c <= 0x200a) || c === 0x2028 || c === 0x2029 || c === 0x202f ||
    c === 0x205f || c === 0x3000
  );
}

/** `s` without leading and trailing Unicode White_Space: Rust's `str::trim`. */
export function trim(s) {
  checkString('s', s);
  // Every White_Space character is a single UTF-16 unit, so scanning units is exact.
  let a = 0;
  let b = s.length;
  while (a < b && isWhiteSpace(s.charCodeAt(a))) a++;
  while (b > a && isWhiteSpace(s.charCodeAt(b - 1))) b--;
  return s.slice(a, b);
}

/** The words of `s` split on runs of Unicode White_Space: Rust's `split_whitespace`. */
export function splitWhitespace(s) {
  checkString('s', s);
  const words = [];
  let start = -1;
  for (let i = 0; i < s.length; i++) {
    if (isWhiteSpace(s.charCodeAt(i))) {
      if (start >= 0) words.push(s.slice(start, i));
      start = -1;
    } else if (start < 0) {
      start = i;
    }
  }
  if (start >= 0) words.push(s.slice(start));
  return words;
}

/**
 * `value` as compact JSON, object keys sorted: the text the Rust SDK sends
 * for a `serde_json::Value` schema (serde_json's map is sorted). Strings are
 * escaped as serde_json does (JSON.stringify agrees with it for every
 * well-formed string); numbers are written as JSON.stringify writes them,
 * which is serde_json's form for integers and ordinary decimals.
 */
export function schemaText(value) {
  return JSON.stringify(sortKeys(value, 0));
}

function sortKeys(v, depth) {
  if (depth > 256) throw new RangeError('schema nested too deeply');
  if (Array.isArray(v)) return v.map((x) => sortKeys(x, depth + 1));
  if (v !== null && typeof v === 'object') {
    const out = {};
    for (const k of Object.keys(v).sort(compareUtf8)) out[k] = sortKeys(v[k], depth + 1);
    return out;
  }
  return v;
}

// Rust sorts String keys by their UTF-8 bytes, which is code-point order;
// JS `<` compares UTF-16 units, which differs for characters above U+FFFF.
function compareUtf8(a, b) {
  const x = [...a];
  const y = [...b];
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    const d = x[i].codePointAt(0) - y[i].codePointAt(0);
    if (d !== 0) return d;
  }
  return x.length - y.length;
}

/**
 * Parses JSON text like the Rust SDK's `json::<serde_json::Value>`: throws
 * `JsonError` for what serde_json refuses, which is what JSON.parse refuses
 * plus strings with a lone surrogate escape ("\ud800"). Two differences
 * remain: integers beyond 2^53 lose precision (serde_json keeps u64/i64
 * exact), and a repeated key keeps the last value (as serde_json's `Value`
 * does, though a Rust struct would refuse it).
 */
export function parseJson(text) {
  checkString('text', text);
  try {
    return JSON.parse(text, checkWellFormed);
  } catch (e) {
    throw new JsonError(e !== null && typeof e === 'object' && typeof e.message === 'string' ? e.message : String(e));
  }
}

function checkWellFormed(key, value) {
  if (!isWellFormed(key) || (typeof value === 'string' && !isWellFormed(value))) {
    throw new SyntaxError('lone surrogate in a string');
  }
  return value;
}

// Whether `s` has no unpaired UTF-16 surrogate, i.e. is valid Unicode text.
function isWellFormed(s) {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0xd800 || c > 0xdfff) continue;
    if (c > 0xdbff) return false;
    const d = s.charCodeAt(i + 1);
    if (!(d >= 0xdc00 && d <= 0xdfff)) return false;
    i++;
  }
  return true;
}

// ---------------------------------------------------------------- the export

const WRAPPED = Symbol('arbor.program');

function errorText(e) {
  if (typeof e === 'string') return e;
  if (e !== null && typeof e === 'object' && typeof e.message === 'string') return e.message;
  return String(e);
}

function settle(out) {
  if (typeof out !== 'string') {
    return { tag: 'err', val: `run must return a string, it returned ${out === null ? 'null' : typeof out}` };
  }
  return { tag: 'ok', val: out };
}

/**
 * Turns `fn(input) -> string` into the program's `run` export: its return
 * value becomes `ok`, anything it throws becomes `err` (an Error's message;
 * an `LmError`'s message is worded like the Rust SDK's). `fn` may also be
 * async. `build.sh` applies it to the program's exported `run` by itself;
 * call it directly only when driving componentize-js without build.sh.
 */
export function program(fn) {
  if (typeof fn !== 'function') throw new TypeError('program takes the run function');
  if (fn[WRAPPED]) return fn;
  const run = (input) => {
    // The bindings accept a `{ tag, val }` result object; returning one
    // (rather than throwing) keeps an error from being turned into a trap.
    let out;
    try {
      out = fn(input);
    } catch (e) {
      return { tag: 'err', val: errorText(lift(e)) };
    }
    if (out !== null && typeof out === 'object' && typeof out.then === 'function') {
      return Promise.resolve(out).then(settle, (e) => ({ tag: 'err', val: errorText(lift(e)) }));
    }
    return settle(out);
  };
  run[WRAPPED] = true;
  return run;
}

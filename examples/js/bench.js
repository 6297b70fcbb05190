// The JavaScript guest of `arbor_runtime::bench_runtime`, with the protocol
// of examples/bench (Rust). Inputs:
//
// - `start`: creates a state and appends a word (start latency).
// - `calls KIND BATCHES PER_BATCH`: times BATCHES batches of PER_BATCH calls
//   of KIND (`empty`: `append("")`; `append`: `append("x")`; `read`:
//   `tokenCount()`) and returns the batch times in ns as a JSON array.
//
// Times come from performance.now(), which componentize-js backs with
// wasi:clocks/monotonic-clock (sub-microsecond resolution).
import { State, splitWhitespace } from 'arbor';

export function run(input) {
  const words = splitWhitespace(input);
  if (words.length === 1 && words[0] === 'start') {
    // Rust drops the state at the end of this statement; so does this.
    new State().append('hello').drop();
    return 'ok';
  }
  if (words.length === 4 && words[0] === 'calls') {
    const kind = words[1];
    const batches = parseUsize(words[2]);
    if (batches === undefined) throw 'bad BATCHES';
    const perBatch = parseUsize(words[3]);
    if (perBatch === undefined) throw 'bad PER_BATCH';
    const times = [];
    for (let i = 0; i < batches; i++) {
      // A fresh state per batch keeps every state short.
      const s = new State();
      s.append('warm');
      const t = performance.now();
      for (let j = 0; j < perBatch; j++) {
        switch (kind) {
          case 'empty': s.append(''); break;
          case 'append': s.append('x'); break;
          case 'read': s.tokenCount(); break;
          default: throw `unknown kind ${kind}`;
        }
      }
      times.push(Math.round((performance.now() - t) * 1e6));
      s.drop();
    }
    return JSON.stringify(times);
  }
  throw `unknown input ${rustDebug(input)}`;
}

// Rust's `str::parse::<usize>()` on wasm32: ASCII digits with an optional
// '+', at most u32::MAX.
function parseUsize(s) {
  if (!/^\+?[0-9]+$/.test(s)) return undefined;
  const n = BigInt(s);
  return n <= 0xffff_ffffn ? Number(n) : undefined;
}

// Close to Rust's `{:?}` of a str, for the error message: quotes, the short
// escapes, and \u{..} for control characters and the usual invisible ones.
// (Rust escapes every non-printable character; its full Unicode tables are
// not worth carrying for an error message. The engine has no \p{..} regex
// classes, so the set is spelled out.)
function rustDebug(s) {
  let out = '"';
  for (const ch of s) {
    const c = ch.codePointAt(0);
    if (ch === '"') out += '\\"';
    else if (ch === '\\') out += '\\\\';
    else if (ch === '\n') out += '\\n';
    else if (ch === '\r') out += '\\r';
    else if (ch === '\t') out += '\\t';
    else if (c === 0) out += '\\0';
    else if (invisible(c)) out += `\\u{${c.toString(16)}}`;
    else out += ch;
  }
  return `${out}"`;
}

function invisible(c) {
  return (
    c < 0x20 || (c >= 0x7f && c <= 0xa0) || c === 0xad || c === 0x1680 ||
    (c >= 0x2000 && c <= 0x200f) || (c >= 0x2028 && c <= 0x202f) ||
    (c >= 0x205f && c <= 0x2064) || c === 0x3000 || (c >= 0xd800 && c <= 0xdfff) ||
    c === 0xfeff || (c >= 0xfff9 && c <= 0xfffb)
  );
}

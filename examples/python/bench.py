"""The guest of `arbor_runtime::bench_runtime`, with exactly the protocol of
examples/bench (Rust). Inputs:

- `start`: creates a state and appends a word (start latency).
- `calls KIND BATCHES PER_BATCH`: times BATCHES batches of PER_BATCH calls
  of KIND (`empty`: `append("")`; `append`: `append("x")`; `read`:
  `token_count()`) and returns the batch times in ns as a JSON array,
  measured inside the guest with a monotonic clock.
"""

import re
import time

from arbor import ArborError, State, split_whitespace, to_json

# Rust's `usize::from_str` on wasm32: ASCII digits with an optional `+`,
# at most 2^32 - 1. Python's int() would also take `_`, spaces and non-ASCII
# digits.
_USIZE = re.compile(r"\+?[0-9]+")
_USIZE_MAX = (1 << 32) - 1


def _usize(word: str, what: str) -> int:
    if not _USIZE.fullmatch(word) or int(word) > _USIZE_MAX:
        raise ArborError(f"bad {what}")
    return int(word)


def run(input: str) -> str:
    words = split_whitespace(input)
    if words == ["start"]:
        State().append("hello")
        return "ok"
    if len(words) == 4 and words[0] == "calls":
        kind = words[1]
        batches = _usize(words[2], "BATCHES")
        per_batch = _usize(words[3], "PER_BATCH")
        times = []
        for _ in range(batches):
            # A fresh state per batch keeps every state short; `with`
            # releases it at the end of the batch, as Rust's scope does.
            with State() as s:
                s.append("warm")
                # Bind the call once so that the loop times the SDK call,
                # not the kind dispatch (the Rust loop's match is ~free).
                if kind == "empty":
                    call, arg = s.append, ("",)
                elif kind == "append":
                    call, arg = s.append, ("x",)
                elif kind == "read":
                    call, arg = s.token_count, ()
                else:
                    call = None
                t = time.monotonic_ns()
                for _ in range(per_batch):
                    if call is None:
                        raise ArborError(f"unknown kind {kind}")
                    call(*arg)
                times.append(time.monotonic_ns() - t)
        return to_json(times)
    raise ArborError(f"unknown input {_debug(input)}")


def _debug(s: str) -> str:
    """`s` quoted and escaped roughly as Rust's `{:?}` does."""
    out = ['"']
    for c in s:
        if c in '"\\':
            out.append("\\" + c)
        elif c == "\n":
            out.append("\\n")
        elif c == "\r":
            out.append("\\r")
        elif c == "\t":
            out.append("\\t")
        elif c == "\0":
            out.append("\\0")
        elif not c.isprintable():
            out.append(f"\\u{{{ord(c):x}}}")
        else:
            out.append(c)
    out.append('"')
    return "".join(out)

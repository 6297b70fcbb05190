"""Text and JSON helpers with exactly the Rust SDK's semantics.

Programs in every guest language must produce the same bytes for the same
model output, and the model (above all a small random test model) writes
arbitrary characters. Python's own ``str.strip``/``str.split`` and
``json.loads`` differ from Rust's ``str::trim``/``split_whitespace`` and
serde_json in corner cases, so programs that mirror a Rust program use these
instead. This module does not touch the WIT bindings, so it also imports
(and is unit-tested) outside a component.
"""

import json
import re

__all__ = ["WHITESPACE", "trim", "trim_start", "trim_end", "split_whitespace", "to_json", "parse_json"]

#: The characters with the Unicode ``White_Space`` property, which is what
#: Rust's ``str::trim`` and ``split_whitespace`` strip. Python's ``str.strip()``
#: also strips U+001C..U+001F (and would differ on model output containing
#: them), so it is not used.
WHITESPACE = (
    "\u0009\u000a\u000b\u000c\u000d\u0020\u0085\u00a0\u1680"
    "\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u2028\u2029\u202f\u205f\u3000"
)

_SPLIT = re.compile("[" + re.escape(WHITESPACE) + "]+")


def trim(s: str) -> str:
    """``s`` without leading and trailing whitespace, as Rust's ``str::trim``."""
    return s.strip(WHITESPACE)


def trim_start(s: str) -> str:
    """``s`` without leading whitespace, as Rust's ``str::trim_start``."""
    return s.lstrip(WHITESPACE)


def trim_end(s: str) -> str:
    """``s`` without trailing whitespace, as Rust's ``str::trim_end``."""
    return s.rstrip(WHITESPACE)


def split_whitespace(s: str) -> list:
    """The non-empty words of ``s``, as Rust's ``str::split_whitespace``."""
    return [w for w in _SPLIT.split(s) if w]


def to_json(value, *, sort_keys: bool = False) -> str:
    """``value`` as compact JSON, byte for byte what serde_json writes.

    No spaces; non-ASCII characters written as they are; ``"`` and ``\\``
    escaped; ``\\b \\f \\n \\r \\t`` in short form; other control characters
    as ``\\u00xx`` (lowercase hex). Dict keys keep their insertion order
    (serde_json keeps a struct's field order), unless ``sort_keys`` (what
    serde_json does for a ``serde_json::Value`` map). NaN and infinities are
    refused, as serde_json does. Floats are written with Python's ``repr``,
    which can differ from serde_json's for very large or small exponents.
    """
    # json.dumps with ensure_ascii=False escapes exactly the set above, with
    # lowercase hex; allow_nan=False matches serde_json refusing NaN.
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=sort_keys, allow_nan=False)


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")


def _check_strings(value) -> None:
    """Refuses lone surrogates (from ``\\ud800``-style escapes): serde_json
    rejects them, and a Python string holding one cannot be written out as
    UTF-8 later. Iterative, so that deeply nested input cannot exhaust the
    stack."""
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            strings = (v,)
        elif isinstance(v, dict):
            strings = v.keys()
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
            continue
        else:
            continue
        for s in strings:
            try:
                s.encode("utf-8")
            except UnicodeEncodeError:
                raise ValueError("lone surrogate in string escape") from None


def parse_json(text: str):
    """Parses ``text`` as JSON, refusing what serde_json refuses and Python's
    ``json.loads`` accepts: ``NaN``/``Infinity`` and lone surrogate escapes.
    Raises ``ValueError`` (``json.JSONDecodeError`` is one).

    Duplicate object keys keep the last value, as with ``serde_json::Value``.
    """
    try:
        value = json.loads(text, parse_constant=_refuse_constant)
    except RecursionError:
        # Deep nesting; serde_json refuses it too (recursion limit 128).
        raise ValueError("recursion limit exceeded") from None
    _check_strings(value)
    return value

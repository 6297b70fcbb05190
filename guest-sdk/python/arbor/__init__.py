"""Python SDK for Arbor programs.

A program is a plain Python file that defines ``run``::

    from arbor import Gen, State, trim

    def run(question: str) -> str:
        s = State()
        s.user(trim(question))
        s.assistant_generate("answer", Gen(max_tokens=64))
        return s.variable("answer")

and ``guest-sdk/python/build.sh program.py program.wasm`` turns it into a
component of the ``arbor:lm/program`` world. What ``run`` returns is the
program's output; an exception it raises becomes the error message (the
``err`` of the WIT ``result``).

Calls that extend a state (``append``, ``system``/``user``/``assistant``,
``begin``/``end``, ``generate``, ``select``, ``fork``) return at once: the
host runs each state's commands in order and different states in parallel.
Reads (``text``, ``variable``, ``json``, ``choice``, ``token_count``) and
:func:`join` wait for the work queued before them.

This module only imports inside a component (it needs the bindings that
componentize-py generates from ``wit/arbor.wit`` while building);
:mod:`arbor._text` (re-exported here: ``trim``, ``to_json``, ...) imports
anywhere.
"""

import sys
import traceback

from componentize_py_types import Err

import wit_world
from wit_world.imports import lm

from ._text import WHITESPACE, parse_json, split_whitespace, to_json, trim, trim_end, trim_start

__all__ = [
    "ArborError",
    "LmError",
    "JsonError",
    "Role",
    "Gen",
    "State",
    "join",
    "export",
    "trim",
    "trim_start",
    "trim_end",
    "split_whitespace",
    "to_json",
    "parse_json",
    "WHITESPACE",
    "lm",
]

#: Chat roles: ``Role.SYSTEM``, ``Role.USER``, ``Role.ASSISTANT`` (the
#: generated enum of the WIT ``role``).
Role = lm.Role

_U32_MAX = (1 << 32) - 1
_U64_MAX = (1 << 64) - 1


# ---------------------------------------------------------------- errors


class ArborError(Exception):
    """An error a program reports: raised out of ``run``, its ``str()`` is
    the program's error message, without a traceback. Programs raise it (or
    a subclass) for expected failures, e.g. ``raise ArborError("bad input")``.
    """


# Rust SDK's Display of each WIT error case, so that messages match.
_PREFIX = {
    lm.Error_BadConstraint: ("bad-constraint", "bad constraint: "),
    lm.Error_LimitExceeded: ("limit-exceeded", "limit exceeded: "),
    lm.Error_InvalidArgument: ("invalid-argument", "invalid argument: "),
    lm.Error_UnknownVariable: ("unknown-variable", "unknown variable: "),
    lm.Error_Cancelled: ("cancelled", "cancelled"),
    lm.Error_Engine: ("engine", "engine error: "),
}


class LmError(ArborError):
    """The host refused or failed a call.

    Attributes:
        error: the WIT ``error`` variant as generated, e.g.
            ``lm.Error_Engine(value="...")``; match on it with ``isinstance``
            or ``match``.
        kind: the case's WIT name (``"bad-constraint"``, ``"limit-exceeded"``,
            ``"invalid-argument"``, ``"unknown-variable"``, ``"cancelled"``,
            ``"engine"``).
        message: the case's message (``""`` for ``cancelled``).
    """

    def __init__(self, error):
        kind, prefix = _PREFIX.get(type(error), ("unknown", "error: "))
        self.error = error
        self.kind = kind
        self.message = getattr(error, "value", "") or ""
        # Same text as the Rust SDK's `Display`.
        super().__init__(prefix if kind == "cancelled" else prefix + self.message)


class JsonError(ArborError, ValueError):
    """A captured variable was not valid JSON (or not the shape asked for)."""

    def __init__(self, detail):
        super().__init__(f"invalid JSON: {detail}")


def _lm_error(e: Err) -> LmError:
    return LmError(e.value)


# ---------------------------------------------------------------- options


def _uint(name, v, limit):
    # bool is an int in Python; refuse it so that `max_tokens=True` is not 1.
    if type(v) is not int or not 0 <= v <= limit:
        raise ValueError(f"{name} must be an int in 0..={limit}, got {v!r}")
    return v


def _u32(name, v):
    return _uint(name, v, _U32_MAX)


def _u64(name, v):
    return _uint(name, v, _U64_MAX)


def _f32(name, v):
    if type(v) not in (int, float):
        raise ValueError(f"{name} must be a number, got {v!r}")
    # The WIT type is f32; the conversion rounds to nearest, as Rust's
    # `0.8` literal does, so the host sees the same bits as from Rust.
    return float(v)


def _string(name, v):
    if not isinstance(v, str):
        raise TypeError(f"{name} must be a str, got {type(v).__name__}")
    return v


class Gen:
    """Options of :meth:`State.generate`.

    Defaults: 128 tokens, greedy decoding (temperature 0), no top-p/top-k
    truncation, no stop strings, no seed, no constraint, as in the Rust SDK.
    Give options as keyword arguments, or chain the builder methods (each
    returns a new ``Gen``; a ``Gen`` is never changed in place, so one can be
    shared)::

        Gen(max_tokens=32, stop="\\n")
        Gen().max_tokens(32).stop("\\n")

    ``stop`` takes one string or a list; the builder method ``stop`` adds one
    string, as the Rust builder does. ``regex`` and ``json_schema`` set the
    constraint (the last one set wins); ``json_schema`` takes the schema as a
    ``dict`` (sent as compact JSON with sorted keys, the bytes the Rust SDK's
    ``serde_json::Value`` sends) or as JSON text (sent unchanged).
    """

    __slots__ = ("_max_tokens", "_temperature", "_top_p", "_top_k", "_stop", "_seed", "_constraint")

    def __init__(
        self,
        *,
        max_tokens=128,
        temperature=0.0,
        top_p=1.0,
        top_k=0,
        stop=(),
        seed=None,
        regex=None,
        json_schema=None,
    ):
        self._max_tokens = _u32("max_tokens", max_tokens)
        self._temperature = _f32("temperature", temperature)
        self._top_p = _f32("top_p", top_p)
        self._top_k = _u32("top_k", top_k)
        if isinstance(stop, str):
            stop = (stop,)
        self._stop = tuple(_string("stop", s) for s in stop)
        self._seed = None if seed is None else _u64("seed", seed)
        self._constraint = None
        if regex is not None and json_schema is not None:
            raise ValueError("give regex or json_schema, not both")
        if regex is not None:
            self._constraint = lm.Constraint_Regex(_string("regex", regex))
        if json_schema is not None:
            self._constraint = lm.Constraint_JsonSchema(_schema_text(json_schema))

    def _with(self, slot, value):
        # A changed copy: builder methods never change a Gen in place.
        g = Gen.__new__(Gen)
        for k in Gen.__slots__:
            setattr(g, k, getattr(self, k))
        setattr(g, slot, value)
        return g

    def max_tokens(self, n):
        """Upper bound on generated tokens."""
        return self._with("_max_tokens", _u32("max_tokens", n))

    def temperature(self, t):
        """Sampling temperature; 0 is greedy."""
        return self._with("_temperature", _f32("temperature", t))

    def top_p(self, p):
        """Nucleus sampling mass (1.0 disables it)."""
        return self._with("_top_p", _f32("top_p", p))

    def top_k(self, k):
        """Keeps only the ``k`` most likely tokens (0 keeps all)."""
        return self._with("_top_k", _u32("top_k", k))

    def stop(self, s):
        """Adds a stop string (the stop string is not captured)."""
        return self._with("_stop", self._stop + (_string("stop", s),))

    def seed(self, seed):
        """Seeds the sampler (a u64), for reproducible sampling."""
        return self._with("_seed", _u64("seed", seed))

    def regex(self, pattern):
        """Constrains the output to match the regular expression."""
        return self._with("_constraint", lm.Constraint_Regex(_string("regex", pattern)))

    def json_schema(self, schema):
        """Constrains the output to JSON valid against ``schema`` (a dict or
        JSON text)."""
        return self._with("_constraint", lm.Constraint_JsonSchema(_schema_text(schema)))

    def options(self):
        """The options as the generated WIT record ``lm.GenerateOptions``."""
        return lm.GenerateOptions(
            max_tokens=self._max_tokens,
            temperature=self._temperature,
            top_p=self._top_p,
            top_k=self._top_k,
            stop=list(self._stop),
            seed=self._seed,
            constraint=self._constraint,
        )

    def __repr__(self):
        return (
            f"Gen(max_tokens={self._max_tokens}, temperature={self._temperature}, top_p={self._top_p}, "
            f"top_k={self._top_k}, stop={list(self._stop)!r}, seed={self._seed!r}, constraint={self._constraint!r})"
        )


def _schema_text(schema):
    if isinstance(schema, str):
        return schema
    if isinstance(schema, dict):
        return to_json(schema, sort_keys=True)
    raise TypeError(f"json_schema must be a dict or a str, got {type(schema).__name__}")


def _options(options, kwargs):
    if options is None:
        return Gen(**kwargs).options()
    if kwargs:
        raise TypeError("give a Gen or keyword options, not both")
    if not isinstance(options, Gen):
        raise TypeError(f"options must be a Gen, got {type(options).__name__}")
    return options.options()


# ---------------------------------------------------------------- states


class _Closed:
    """Stands in for the resource of a closed state: any use raises, and
    open states pay nothing for the check."""

    __slots__ = ()

    def __getattr__(self, name):
        raise ValueError("this State was closed")


_CLOSED = _Closed()


class State:
    """A prompt being built: tokens, their text and the variables captured.

    ``State()`` creates a new, empty state (raises :class:`LmError` with
    ``limit-exceeded`` past the run's live-state limit). Methods that extend
    the state return it, so calls chain. Closing a state (``close()``, a
    ``with`` block, or dropping the last reference to it) cancels its queued
    work, except what states forked from it still need.
    """

    __slots__ = ("_raw", "__weakref__")

    def __init__(self):
        try:
            self._raw = lm.State.create()
        except Err as e:
            raise _lm_error(e) from None

    @classmethod
    def _wrap(cls, raw):
        s = cls.__new__(cls)
        s._raw = raw
        return s

    @property
    def raw(self):
        """The generated WIT resource ``lm.State``, for what the SDK does not wrap."""
        return self._raw

    def close(self):
        """Releases the state now; later calls on it raise ``ValueError``."""
        raw, self._raw = self._raw, _CLOSED
        if raw is not _CLOSED:
            raw.__exit__(None, None, None)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return None

    # Every method repeats `try: ... except Err` around its one host call
    # instead of going through a shared helper: a helper is one more Python
    # call per host call, a sizeable part of the ~1 us a call costs (see the
    # bench example), and the try block itself is free when nothing fails.

    # -- extending calls: queue work and return at once

    def append(self, text):
        """Appends ``text``, tokenized on its own."""
        try:
            self._raw.append(text)
        except Err as e:
            raise _lm_error(e) from None
        return self

    def message(self, role, content):
        """Appends a whole chat message of ``role``."""
        try:
            self._raw.append_message(role, content)
        except Err as e:
            raise _lm_error(e) from None
        return self

    def system(self, content):
        """Appends a system message."""
        return self.message(Role.SYSTEM, content)

    def user(self, content):
        """Appends a user message."""
        return self.message(Role.USER, content)

    def assistant(self, content):
        """Appends an assistant message with known content."""
        return self.message(Role.ASSISTANT, content)

    def begin(self, role):
        """Opens a chat message whose content is appended or generated next."""
        try:
            self._raw.begin_message(role)
        except Err as e:
            raise _lm_error(e) from None
        return self

    def end(self):
        """Closes the message opened by :meth:`begin`."""
        try:
            self._raw.end_message()
        except Err as e:
            raise _lm_error(e) from None
        return self

    def generate(self, name, options=None, **kwargs):
        """Generates text into variable ``name``.

        Options are a :class:`Gen` or :class:`Gen`'s keyword arguments:
        ``s.generate("a", Gen(max_tokens=8))`` or ``s.generate("a", max_tokens=8)``.
        """
        opts = _options(options, kwargs)
        try:
            self._raw.generate(name, opts)
        except Err as e:
            raise _lm_error(e) from None
        return self

    #: Short name of :meth:`generate`.
    gen = generate

    def assistant_generate(self, name, options=None, **kwargs):
        """Generates a whole assistant message into variable ``name``."""
        opts = _options(options, kwargs)
        self.begin(Role.ASSISTANT)
        try:
            self._raw.generate(name, opts)
        except Err as e:
            raise _lm_error(e) from None
        return self.end()

    def select(self, name, choices):
        """Picks the most likely of ``choices`` (strings) into variable
        ``name``; read the index with :meth:`choice`."""
        if isinstance(choices, str):
            # A str is iterable: "abc" would silently become ["a", "b", "c"].
            raise TypeError("choices must be a list of str, not a str")
        try:
            self._raw.select(name, list(choices))
        except Err as e:
            raise _lm_error(e) from None
        return self

    def fork(self, n):
        """``n`` copies of this state that share its prefix (a list)."""
        try:
            raws = self._raw.fork(_u32("n", n))
        except Err as e:
            raise _lm_error(e) from None
        return [State._wrap(r) for r in raws]

    # -- reads: wait for the work queued before them

    def text(self):
        """The full text, once queued work is done."""
        try:
            return self._raw.text()
        except Err as e:
            raise _lm_error(e) from None

    def variable(self, name):
        """Captured variable ``name``, once queued work is done."""
        try:
            return self._raw.variable(name)
        except Err as e:
            raise _lm_error(e) from None

    def json(self, name):
        """Captured variable ``name`` parsed as JSON (dicts, lists, str, int,
        float, bool, None); raises :class:`JsonError` if it is not JSON.
        Parsing refuses what serde_json refuses (see :func:`parse_json`)."""
        text = self.variable(name)
        try:
            return parse_json(text)
        except ValueError as e:
            raise JsonError(e) from None

    def choice(self, name):
        """The index picked by :meth:`select` for ``name``."""
        try:
            return self._raw.choice(name)
        except Err as e:
            raise _lm_error(e) from None

    def token_count(self):
        """Number of tokens of the state, once queued work is done."""
        try:
            return self._raw.token_count()
        except Err as e:
            raise _lm_error(e) from None


def join(states):
    """Waits for the queued work of every state in ``states``; raises the
    first error among them, in the order given."""
    raws = [s._raw for s in states]
    try:
        lm.join(raws)
    except Err as e:
        raise _lm_error(e) from None


# ---------------------------------------------------------------- export


def _safe(s: str) -> str:
    # A str holding a lone surrogate cannot cross the WIT boundary (strings
    # there are UTF-8); replace such characters rather than fail the run.
    return s.encode("utf-8", "replace").decode("utf-8")


def export(run):
    """The class componentize-py calls for the world's ``run`` export,
    wrapping ``run(input: str) -> str``. ``build.sh`` generates the call;
    programs do not need it.

    The returned str is the program's output. An :class:`ArborError` raised
    out of ``run`` becomes the error message ``str(e)``; any other exception
    (a bug) becomes ``"TypeName: message"``, and its traceback goes to the
    run's log (stderr).
    """

    class WitWorld(wit_world.WitWorld):
        def run(self, input: str) -> str:
            try:
                out = run(input)
            except ArborError as e:
                raise Err(_safe(str(e))) from None
            except Exception as e:
                traceback.print_exc(file=sys.stderr)
                raise Err(_safe(f"{type(e).__name__}: {e}")) from None
            if not isinstance(out, str):
                raise Err(f"run returned {type(out).__name__}, not str")
            return _safe(out)

    return WitWorld

"""An Arbor program that exercises the Python SDK against a real host and
returns "ok" (any failed check fails the run). Build and run it with
tests/smoke.sh."""

from arbor import ArborError, Gen, JsonError, LmError, Role, State, join, lm


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def raises(exc, fn, *args, **kwargs):
    try:
        fn(*args, **kwargs)
    except exc as e:
        return e
    raise AssertionError(f"{fn.__name__}{args} did not raise {exc.__name__}")


def run(input: str) -> str:
    # Options: kwargs and builder agree; the builder never mutates.
    a = Gen(max_tokens=5, temperature=0.5, stop=["\n", "."], seed=3, regex="[a-z]+").options()
    base = Gen()
    b = base.max_tokens(5).temperature(0.5).stop("\n").stop(".").seed(3).regex("[a-z]+").options()
    check(a == b, f"{a} != {b}")
    check(base.options().max_tokens == 128 and base.options().stop == [], "Gen() was mutated")
    for bad in (dict(max_tokens=-1), dict(max_tokens=1 << 32), dict(max_tokens=True), dict(seed=1 << 64),
                dict(regex="a", json_schema="{}")):
        raises(ValueError, Gen, **bad)
    raises(TypeError, Gen, stop=[1])
    schema = Gen(json_schema={"b": 1, "a": [True, None]}).options().constraint
    check(schema == lm.Constraint_JsonSchema('{"a":[true,null],"b":1}'), repr(schema))

    # Chat messages, chaining, generate kwargs, select/choice.
    s = State()
    s.system("sys").begin(Role.USER).append("hi").end()
    s.gen("a", max_tokens=3).assistant_generate("b", Gen(max_tokens=2))
    s.select("c", ["yes", "no"])
    check(s.choice("c") in (0, 1), "choice")
    check(s.variable("c") in ("yes", "no"), "select variable")
    check(s.text().endswith(s.variable("c")), "text ends with the choice")
    check(s.token_count() > 0, "token_count")
    raises(TypeError, s.select, "d", "yes")

    # Fork and join: copies see the prefix; generation is per branch.
    kids = s.fork(3)
    check(len(kids) == 3, "fork")
    for i, k in enumerate(kids):
        k.append(f" {i}").generate("g", max_tokens=2, temperature=0.8, seed=i)
    join(kids)
    for i, k in enumerate(kids):
        check(k.text().startswith(s.text()), "fork copies the prefix")

    # Errors carry the WIT variant and the Rust SDK's message.
    e = raises(LmError, s.variable, "nope")
    check(isinstance(e.error, lm.Error_UnknownVariable) and e.kind == "unknown-variable", repr(e.error))
    check(str(e) == "unknown variable: nope" and e.message == "nope", str(e))
    check(isinstance(e, ArborError), "LmError is an ArborError")
    e = raises(LmError, State().end)
    check(e.kind == "invalid-argument", e.kind)
    bad = State().append("x")
    try:
        # The host may refuse the regex at once or fail the queued work.
        bad.generate("x", Gen(regex="("))
        bad.text()
    except LmError as e:
        # The WIT says bad-constraint; the host currently reports regex
        # syntax errors as invalid-argument. Either way the message has the
        # Rust SDK's prefix.
        prefix = {"bad-constraint": "bad constraint: ", "invalid-argument": "invalid argument: "}
        check(e.kind in prefix and str(e) == prefix[e.kind] + e.message, str(e))
    else:
        raise AssertionError("an invalid regex was accepted")
    join([s])

    # json: parsed, or JsonError.
    j = State()
    j.append("x").generate("n", Gen(max_tokens=4, regex="[0-9]{1,3}"))
    check(isinstance(j.json("n"), int), "json int")
    j.append("y").generate("t", Gen(max_tokens=2, regex="NaN"))
    e = raises(JsonError, j.json, "t")
    check(str(e).startswith("invalid JSON: ") and isinstance(e, ValueError), str(e))

    # Closed states refuse use; dropped states are released (the run's
    # live-state limit is 256 by default).
    c = State()
    c.close()
    c.close()
    raises(ValueError, c.append, "x")
    with State() as w:
        w.append("x")
    raises(ValueError, w.append, "x")
    for _ in range(300):
        State().append("x")
    return "ok"

"""Shapes and drivers shared by hf_bench.py and genai_bench.py (no torch, no GenAI here).

A workload is a list of programs; a program is a list of steps (calls); a step has parents (earlier
steps of the same program), a function that builds its prompt from the parents' prompts and outputs,
and a number of new tokens (greedy, EOS ignored). The peers have no prefix cache: every step is an
independent call with its whole prompt.

The driver runs the workload in waves, as a user of a static-batch API would: every step whose
parents are done is ready; ready steps of all programs with the same prompt length and the same
number of new tokens are batched together (no padding needed), at most `max_batch` per call. With a
continuous batcher (`run_wave`, GenAI's og.Engine) every ready step of the wave goes to it at once.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np


def id_range(vocab: int) -> tuple[int, int]:
    """Token ids the synthetic prompts draw from: above the first few ids, below the special tokens
    make_model.py puts at the top of the vocabulary (so no BOS/EOS/pad id ever appears: GenAI masks
    pad ids out of the attention)."""
    top = vocab - (256 if vocab >= 4096 else 4)
    return 5, top


class Ids:
    """Seeded synthetic token ids."""

    def __init__(self, vocab: int, seed: int):
        self.lo, self.hi = id_range(vocab)
        self.rng = np.random.default_rng(seed)

    def __call__(self, n: int) -> list[int]:
        return self.rng.integers(self.lo, self.hi, size=n).tolist()


@dataclass
class Step:
    parents: tuple[int, ...]
    # (parents' (prompt, output) in order) -> this step's prompt
    build: Callable[[list[tuple[list[int], list[int]]]], list[int]]
    max_new: int


@dataclass
class Program:
    steps: list[Step] = field(default_factory=list)


def _const(p: list[int]):
    return lambda _parents: list(p)


def _extend(tail: list[int]):
    """The parent's prompt + output + tail (a turn, a fork's branch)."""
    return lambda parents: parents[0][0] + parents[0][1] + list(tail)


# ---------------------------------------------------------------------------------------------------
# The shapes. "brief" is the peers' definition (see README.md); "arbor" mirrors
# host/cli/src/cmd/workloads.rs as of this writing (multi-turn and branching differ there).

FEW_SHOT = dict(programs=64, prefix=1024, question=32, new=4)
BRANCHING = dict(programs=16, prompt=256, branches=4, suffix=16, new=16, join_append=0, join_new=8)
MULTI_TURN = dict(chats=16, turns=4, system=0, user=64, new=32)


def few_shot(vocab: int, seed: int, programs=64, prefix=1024, question=32, new=4) -> list[Program]:
    ids = Ids(vocab, seed)
    shared = ids(prefix)
    return [Program([Step((), _const(shared + ids(question)), new)]) for _ in range(programs)]


def branching(vocab: int, seed: int, programs=16, prompt=256, branches=4, suffix=16, new=16,
              join_append=0, join_new=8) -> list[Program]:
    """Each program: a prompt forked into `branches` branches (prompt + a suffix each, `new` tokens
    each), then a join: the prompt followed by every branch's suffix and output (+ `join_append`
    tokens), generating `join_new` tokens. join_new=0 leaves the join out."""
    ids = Ids(vocab, seed)
    out = []
    for _ in range(programs):
        root = ids(prompt)
        steps = [Step((), _const(root + ids(suffix)), new) for _ in range(branches)]
        if join_new > 0:
            tail = ids(join_append)

            def join(parents, root=root, tail=tail):
                p = list(root)
                for prompt_, output in parents:
                    p += prompt_[len(root):] + output
                return p + tail

            steps.append(Step(tuple(range(branches)), join, join_new))
        out.append(Program(steps))
    return out


def multi_turn(vocab: int, seed: int, chats=16, turns=4, system=0, user=64, new=32,
               later_user=None) -> list[Program]:
    """Each chat: turn 1 is the system prompt (shared by all chats) + `user` tokens; every later turn
    resends the whole history (prompt + output) + `later_user` (default `user`) new tokens."""
    ids = Ids(vocab, seed)
    sys_ = ids(system)
    later_user = user if later_user is None else later_user
    out = []
    for _ in range(chats):
        steps = [Step((), _const(sys_ + ids(user)), new)]
        for t in range(1, turns):
            steps.append(Step((t - 1,), _extend(ids(later_user)), new))
        out.append(Program(steps))
    return out


def arbor_branching(vocab: int, seed: int) -> list[Program]:
    """`arbor bench branching`: 8 programs; a 256-token prompt forked into 3 branches (+4 tokens,
    16 new each), each branch forked again into 3 (+4 tokens, 16 new each)."""
    ids = Ids(vocab, seed)
    out = []
    for _ in range(8):
        root = ids(256)
        steps = [Step((), _const(root + ids(4)), 16) for _ in range(3)]
        for b in range(3):
            for _ in range(3):
                steps.append(Step((b,), _extend(ids(4)), 16))
        out.append(Program(steps))
    return out


def arbor_multi_turn(vocab: int, seed: int) -> list[Program]:
    """`arbor bench multi-turn`: 16 chats; a 64-token system prompt shared by all + 64 user tokens,
    then 3 more turns of +48 tokens; 24 new tokens a turn."""
    return multi_turn(vocab, seed, chats=16, turns=4, system=64, user=64, new=24, later_user=48)


def build(name: str, shapes: str, vocab: int, seed: int) -> list[Program]:
    if name == "few-shot":
        return few_shot(vocab, seed, **FEW_SHOT)
    if name == "branching":
        return arbor_branching(vocab, seed) if shapes == "arbor" else branching(vocab, seed, **BRANCHING)
    if name == "multi-turn":
        return arbor_multi_turn(vocab, seed) if shapes == "arbor" else multi_turn(vocab, seed, **MULTI_TURN)
    raise ValueError(name)


def describe(name: str, shapes: str) -> str:
    if name == "few-shot":
        s = FEW_SHOT
        return (f"{s['programs']} programs of a {s['prefix']}-token shared prefix + a {s['question']}-token "
                f"question, {s['new']} new tokens")
    if name == "branching":
        if shapes == "arbor":
            return "8 programs: 256-token prompt, 3 branches (+4 tokens, 16 new), each forked in 3 (+4, 16 new)"
        s = BRANCHING
        return (f"{s['programs']} programs: {s['prompt']}-token prompt, {s['branches']} branches "
                f"(+{s['suffix']}-token suffix, {s['new']} new each), join (prompt + all branches"
                f"{' + %d tokens' % s['join_append'] if s['join_append'] else ''}, {s['join_new']} new)")
    if name == "multi-turn":
        if shapes == "arbor":
            return "16 chats x 4 turns: 64-token shared system + 64 user tokens, then +48 a turn; 24 new a turn"
        s = MULTI_TURN
        return (f"{s['chats']} chats x {s['turns']} turns: +{s['user']} user tokens a turn to the whole history"
                f"{' (after a %d-token shared system prompt)' % s['system'] if s['system'] else ''}, "
                f"{s['new']} new a turn")
    raise ValueError(name)


# ---------------------------------------------------------------------------------------------------

RunBatch = Callable[[list[list[int]], int], list[list[int]]]
# All ready calls of a wave at once, any lengths: [(prompt, n)] -> outputs (a continuous batcher).
RunWave = Callable[[list[tuple[list[int], int]]], list[list[int]]]


@dataclass
class DriveStats:
    seconds: float
    calls: int
    batches: int
    prompt_tokens: int
    generated_tokens: int
    largest_batch: int
    extra: dict = field(default_factory=dict)


def drive(programs: Sequence[Program], run_batch: RunBatch | None, max_batch: int,
          run_wave: RunWave | None = None) -> DriveStats:
    """Runs every program to completion in waves; returns wall time and counts. `run_batch(prompts,
    n)` gets equal-length prompts and returns n new tokens for each; `run_wave`, if given instead,
    gets every ready call of the wave (then max_batch is the runner's business)."""
    done: dict[tuple[int, int], tuple[list[int], list[int]]] = {}
    total = sum(len(p.steps) for p in programs)
    calls = batches = ptoks = gtoks = largest = 0
    t0 = time.perf_counter()
    while len(done) < total:
        ready = []
        for pi, p in enumerate(programs):
            for si, s in enumerate(p.steps):
                if (pi, si) not in done and all((pi, q) in done for q in s.parents):
                    prompt = s.build([done[(pi, q)] for q in s.parents])
                    ready.append(((pi, si), prompt, s.max_new))
        if not ready:
            raise RuntimeError("workload has a cycle")
        if run_wave is not None:
            chunks = [(ready, run_wave([(r[1], r[2]) for r in ready]))]
        else:
            groups: dict[tuple[int, int], list] = {}
            for r in ready:
                groups.setdefault((len(r[1]), r[2]), []).append(r)
            chunks = []
            for (_, n), rs in groups.items():
                for i in range(0, len(rs), max_batch):
                    chunk = rs[i:i + max_batch]
                    chunks.append((chunk, run_batch([r[1] for r in chunk], n)))
        for chunk, outs in chunks:
            assert len(outs) == len(chunk), "the runner returned the wrong number of outputs"
            for (key, prompt, n), o in zip(chunk, outs):
                assert len(o) == n, f"asked for {n} new tokens, got {len(o)}"
                done[key] = (prompt, list(o))
                ptoks += len(prompt)
                gtoks += n
            calls += len(chunk)
            batches += 1
            largest = max(largest, len(chunk))
    return DriveStats(time.perf_counter() - t0, calls, batches, ptoks, gtoks, largest)


def run_workload(name: str, shapes: str, vocab: int, run_batch: RunBatch | None, max_batch: int, reps: int,
                 seed: int = 1, log=print, run_wave: RunWave | None = None,
                 reset: Callable[[], None] | None = None, stats: Callable[[], dict] | None = None) -> dict:
    """An untimed warm-up on a copy of the workload with other ids, then `reps` timed runs; the
    median run (by programs/s) is reported, in the fields `arbor bench <workload> --json` uses.
    `reset()` runs (untimed) before every run, `stats()` after it (merged into the result)."""
    label = "whole waves" if run_wave is not None else f"max batch {max_batch}"
    warm = build(name, shapes, vocab, seed ^ 0xABC)
    log(f"{name}: warm-up, {label} ...")
    if reset:
        reset()
    drive(warm, run_batch, max_batch, run_wave)
    programs = build(name, shapes, vocab, seed)
    runs = []
    for r in range(max(1, reps)):
        if reset:
            reset()
        st = drive(programs, run_batch, max_batch, run_wave)
        if stats:
            st.extra = stats()
        log(f"{name}: {label}, run {r + 1}: {len(programs) / st.seconds:.2f} programs/s "
            f"({st.calls} calls in {st.batches} {'waves' if run_wave else 'batches'}, {st.seconds:.3f} s)"
            + (f" {st.extra}" if st.extra else ""))
        runs.append(st)
    runs.sort(key=lambda s: s.seconds)
    st = runs[len(runs) // 2]
    unit = "chats/s" if name == "multi-turn" else "programs/s"
    out = {
        "bench": "workload",
        "workload": name,
        "shapes": shapes,
        "shape": describe(name, shapes),
        "max_batch": max_batch if run_wave is None else None,
        "programs": len(programs),
        "calls": st.calls,
        "batches": st.batches,
        "largest_batch": st.largest_batch,
        "prompt_tokens": st.prompt_tokens,
        "generated_tokens": st.generated_tokens,
        "seconds": st.seconds,
        "throughput": len(programs) / st.seconds,
        "throughput_unit": unit,
        "tokens_per_s": (st.prompt_tokens + st.generated_tokens) / st.seconds,
        "reps": max(1, reps),
        "driven": ("waves: every ready call of every program handed to the runner at once"
                   if run_wave is not None else
                   f"waves: every ready call of every program, grouped by prompt length, batched "
                   f"{max_batch} at most per call; each call has its whole prompt"),
    }
    out.update(st.extra)
    return out


def median_time(reps: int, f: Callable[[], None], sync: Callable[[], None] = lambda: None) -> float:
    """Median seconds of `reps` runs of f after one untimed warm-up (as `arbor bench engine`)."""
    f()
    sync()
    ts = []
    for _ in range(max(1, reps)):
        sync()
        t0 = time.perf_counter()
        f()
        sync()
        ts.append(time.perf_counter() - t0)
    ts.sort()
    return ts[len(ts) // 2]


def probe_prompt(vocab: int) -> list[int]:
    """A fixed 32-token prompt; each peer reports its 8 greedy tokens after it (the `probe` field), so
    that table.py can show whether the peers run the same function (random weights make near-ties
    common, so fp16 rounding may flip a token: a mismatch is a hint, not a verdict)."""
    return Ids(vocab, 12345)(32)


def int_list(s: str) -> list[int]:
    return [int(x) for x in s.split(",") if x.strip()]

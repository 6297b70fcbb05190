"""Tree of thought: at each of three levels, three branches propose the next
step in parallel; the model picks the most promising one, which the next
level extends. Returns the chosen path and the final answer as JSON.
Mirrors examples/tree-of-thought (Rust) call for call."""

from arbor import Gen, State, join, to_json, trim

DEPTH = 3
WIDTH = 3


def run(problem: str) -> str:
    current = State()
    current.append(f"Solve the problem step by step.\nProblem: {trim(problem)}\n")
    steps = []
    for depth in range(1, DEPTH + 1):
        branches = current.fork(WIDTH)
        for i, b in enumerate(branches):
            b.append(f"Step {depth}:")
            b.generate("step", Gen(max_tokens=48, temperature=0.8, seed=depth * 10 + i, stop="\n"))
            b.append("\n")
        join(branches)
        candidates = [trim(b.variable("step")) for b in branches]
        best = pick_best(problem, steps, candidates)
        steps.append(candidates[best])
        # Keep the chosen branch and release the others and the previous
        # level, as the Rust version drops them here.
        for j, b in enumerate(branches):
            if j != best:
                b.close()
        current = branches[best]
    current.append("Final answer:")
    current.generate("answer", Gen(max_tokens=32, stop="\n"))
    answer = trim(current.variable("answer"))
    # Field order as the Rust struct declares it.
    return to_json({"steps": steps, "answer": answer})


def pick_best(problem: str, so_far: list, candidates: list) -> int:
    """Asks the model which candidate step is most promising."""
    with State() as judge:
        judge.append(f"Problem: {trim(problem)}\nSteps so far:\n")
        for s in so_far:
            judge.append(f"- {s}\n")
        judge.append("Candidate next steps:\n")
        labels = [str(i) for i in range(1, len(candidates) + 1)]
        for label, c in zip(labels, candidates):
            judge.append(f"{label}. {c}\n")
        judge.append("The most promising candidate is number ")
        judge.select("best", labels)
        return judge.choice("best")

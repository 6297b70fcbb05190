"""Few-shot question answering: worked examples, then the question; the
answer is one line. Mirrors examples/few-shot (Rust) call for call."""

from arbor import Gen, State, trim

EXAMPLES = [
    ("What is the capital of France?", "Paris"),
    ("How many legs does a spider have?", "Eight"),
    ("Which planet is closest to the Sun?", "Mercury"),
]


def run(question: str) -> str:
    s = State()
    s.append("Answer each question in a few words.\n\n")
    for q, a in EXAMPLES:
        s.append(f"Question: {q}\nAnswer: {a}\n\n")
    # trim, not str.strip: the same characters as Rust's str::trim.
    s.append(f"Question: {trim(question)}\nAnswer:")
    s.generate("answer", Gen(max_tokens=32, stop="\n"))
    return trim(s.variable("answer"))

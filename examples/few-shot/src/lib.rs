//! Few-shot question answering: worked examples, then the question; the
//! answer is one line.

use arbor_guest::{Gen, State};

const EXAMPLES: &[(&str, &str)] = &[
    ("What is the capital of France?", "Paris"),
    ("How many legs does a spider have?", "Eight"),
    ("Which planet is closest to the Sun?", "Mercury"),
];

fn run(question: String) -> Result<String, arbor_guest::Error> {
    let s = State::new()?;
    s.append("Answer each question in a few words.\n\n")?;
    for (q, a) in EXAMPLES {
        s.append(format!("Question: {q}\nAnswer: {a}\n\n"))?;
    }
    s.append(format!("Question: {}\nAnswer:", question.trim()))?;
    s.generate("answer", Gen::new().max_tokens(32).stop("\n"))?;
    Ok(s.variable("answer")?.trim().to_string())
}

arbor_guest::export!(run);

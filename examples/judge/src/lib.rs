//! LLM-as-judge with branch-solve-merge: the model proposes evaluation
//! criteria (branch), judges both answers on each criterion in parallel
//! forks (solve), and gives a verdict from those judgements (merge).
//! Input: `{"question": "...", "answer_a": "...", "answer_b": "..."}`.

use arbor_guest::{Gen, State, join};
use serde::{Deserialize, Serialize};

const CRITERIA: u32 = 3;

#[derive(Deserialize)]
struct Input {
    question: String,
    answer_a: String,
    answer_b: String,
}

#[derive(Serialize)]
struct Judgement {
    criterion: String,
    reasoning: String,
    winner: String,
}

#[derive(Serialize)]
struct Output {
    judgements: Vec<Judgement>,
    verdict: String,
}

const VERDICTS: [&str; 3] = ["A", "B", "tie"];

fn run(input: String) -> Result<String, arbor_guest::Error> {
    let input: Input = serde_json::from_str(&input)?;
    let base = State::new()?;
    base.append(format!(
        "Question: {}\n\nAnswer A: {}\n\nAnswer B: {}\n\n",
        input.question.trim(),
        input.answer_a.trim(),
        input.answer_b.trim()
    ))?;

    // Branch: criteria, one per line, constrained to short phrases.
    let planner = &base.fork(1)?[0];
    planner.append(format!(
        "List {CRITERIA} criteria to compare the answers, one per line:\n"
    ))?;
    planner.generate(
        "criteria",
        Gen::new()
            .max_tokens(60)
            .regex(r"([A-Za-z][A-Za-z ,]{2,40}\n){3}"),
    )?;
    let mut criteria: Vec<String> = planner
        .variable("criteria")?
        .lines()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect();
    if criteria.is_empty() {
        criteria = ["correctness", "completeness", "clarity"]
            .map(String::from)
            .to_vec();
    }

    // Solve: one fork per criterion, in parallel.
    let solvers = base.fork(criteria.len() as u32)?;
    for (c, s) in criteria.iter().zip(&solvers) {
        s.append(format!("Compare the answers on {c}.\nReasoning:"))?;
        s.generate("reasoning", Gen::new().max_tokens(80).stop("\n"))?;
        s.append("\nBetter answer on this criterion (A, B or tie): ")?;
        s.select("winner", &VERDICTS)?;
    }
    join(&solvers)?;
    let mut judgements = Vec::with_capacity(criteria.len());
    for (c, s) in criteria.iter().zip(&solvers) {
        judgements.push(Judgement {
            criterion: c.clone(),
            reasoning: s.variable("reasoning")?.trim().to_string(),
            winner: s.variable("winner")?,
        });
    }

    // Merge: a verdict from the judgements.
    let merge = &base.fork(1)?[0];
    merge.append("Judgements:\n")?;
    for j in &judgements {
        merge.append(format!(
            "- {}: {} ({})\n",
            j.criterion, j.winner, j.reasoning
        ))?;
    }
    merge.append("Overall, the better answer (A, B or tie) is: ")?;
    merge.select("verdict", &VERDICTS)?;
    let verdict = merge.variable("verdict")?;
    Ok(serde_json::to_string(&Output {
        judgements,
        verdict,
    })?)
}

arbor_guest::export!(run);

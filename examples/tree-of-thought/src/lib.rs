//! Tree of thought: at each of three levels, three branches propose the
//! next step in parallel; the model picks the most promising one, which the
//! next level extends. Returns the chosen path and the final answer as JSON.

use arbor_guest::{Gen, State, join};
use serde::Serialize;

const DEPTH: usize = 3;
const WIDTH: u32 = 3;

#[derive(Serialize)]
struct Output {
    steps: Vec<String>,
    answer: String,
}

fn run(problem: String) -> Result<String, arbor_guest::Error> {
    let root = State::new()?;
    root.append(format!(
        "Solve the problem step by step.\nProblem: {}\n",
        problem.trim()
    ))?;
    let mut current = root;
    let mut steps = Vec::new();
    for depth in 1..=DEPTH {
        let branches = current.fork(WIDTH)?;
        for (i, b) in branches.iter().enumerate() {
            b.append(format!("Step {depth}:"))?;
            b.generate(
                "step",
                Gen::new()
                    .max_tokens(48)
                    .temperature(0.8)
                    .seed((depth * 10 + i) as u64)
                    .stop("\n"),
            )?;
            b.append("\n")?;
        }
        join(&branches)?;
        let candidates: Vec<String> = branches
            .iter()
            .map(|b| b.variable("step").map(|t| t.trim().to_string()))
            .collect::<Result<_, _>>()?;
        let best = pick_best(&problem, &steps, &candidates)?;
        steps.push(candidates[best].clone());
        current = branches.into_iter().nth(best).expect("best < WIDTH");
    }
    current.append("Final answer:")?;
    current.generate("answer", Gen::new().max_tokens(32).stop("\n"))?;
    let answer = current.variable("answer")?.trim().to_string();
    Ok(serde_json::to_string(&Output { steps, answer })?)
}

/// Asks the model which candidate step is most promising.
fn pick_best(
    problem: &str,
    so_far: &[String],
    candidates: &[String],
) -> Result<usize, arbor_guest::Error> {
    let judge = State::new()?;
    judge.append(format!("Problem: {}\nSteps so far:\n", problem.trim()))?;
    for s in so_far {
        judge.append(format!("- {s}\n"))?;
    }
    judge.append("Candidate next steps:\n")?;
    let labels: Vec<String> = (1..=candidates.len()).map(|i| i.to_string()).collect();
    for (label, c) in labels.iter().zip(candidates) {
        judge.append(format!("{label}. {c}\n"))?;
    }
    judge.append("The most promising candidate is number ")?;
    judge.select("best", &labels)?;
    Ok(judge.choice("best")? as usize)
}

arbor_guest::export!(run);

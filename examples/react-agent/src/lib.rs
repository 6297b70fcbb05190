//! A ReAct agent with a calculator tool implemented in the guest: the model
//! thinks, chooses an action (`calculate` or `finish`), writes the action's
//! input (constrained to arithmetic for the calculator), and reads the
//! observation, until it finishes or runs out of steps.

mod calc;

use arbor_guest::{Gen, State};
use serde::Serialize;

const MAX_STEPS: usize = 5;

#[derive(Serialize)]
struct Step {
    thought: String,
    action: String,
    input: String,
    observation: Option<String>,
}

#[derive(Serialize)]
struct Output {
    steps: Vec<Step>,
    answer: Option<String>,
}

fn run(question: String) -> Result<String, arbor_guest::Error> {
    let s = State::new()?;
    s.append(
        "Answer the question. You can use a calculator.\n\
         Each step has a Thought, an Action (calculate or finish) and an Action Input.\n\
         calculate takes an arithmetic expression; finish takes the final answer.\n\n",
    )?;
    s.append(format!("Question: {}\n", question.trim()))?;
    let mut steps = Vec::new();
    for i in 0..MAX_STEPS {
        s.append("Thought:")?;
        s.generate(&format!("thought{i}"), Gen::new().max_tokens(64).stop("\n"))?;
        s.append("\nAction: ")?;
        s.select(&format!("action{i}"), &["calculate", "finish"])?;
        s.append("\nAction Input: ")?;
        let finish = s.choice(&format!("action{i}"))? == 1;
        let input_opts = if finish {
            Gen::new().max_tokens(48).stop("\n")
        } else {
            Gen::new().max_tokens(32).regex(r"[0-9+\-*/(). ]{1,60}")
        };
        s.generate(&format!("input{i}"), input_opts)?;
        let input = s.variable(&format!("input{i}"))?.trim().to_string();
        let thought = s.variable(&format!("thought{i}"))?.trim().to_string();
        if finish {
            steps.push(Step {
                thought,
                action: "finish".into(),
                input: input.clone(),
                observation: None,
            });
            return Ok(serde_json::to_string(&Output {
                steps,
                answer: Some(input),
            })?);
        }
        let observation = match calc::eval(&input) {
            Ok(v) => format!("{v}"),
            Err(e) => format!("error: {e}"),
        };
        s.append(format!("\nObservation: {observation}\n"))?;
        steps.push(Step {
            thought,
            action: "calculate".into(),
            input,
            observation: Some(observation),
        });
    }
    Ok(serde_json::to_string(&Output {
        steps,
        answer: None,
    })?)
}

arbor_guest::export!(run);

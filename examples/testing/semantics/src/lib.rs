//! Exercises the parts of `arbor:lm` that need only a tokenizer and a chat
//! template. The input names a scenario; the output is JSON the test checks.

use arbor_guest::{Gen, Role, State, join};
use serde_json::json;

fn run(input: String) -> Result<String, String> {
    let out = match input.as_str() {
        // Order of appends and chat messages, and the token count.
        "build" => {
            let s = State::new()?;
            s.append("Question: ")?.append("what is 2+2?")?;
            s.system("Be brief.")?.user("Hi")?;
            s.begin(Role::Assistant)?.append("Hello")?.end()?;
            json!({ "text": s.text()?, "tokens": s.token_count()? })
        }
        // Eight branches share a long prefix and generate in parallel: the
        // host test counts engine steps and prefilled tokens.
        "fork8" => {
            let s = State::new()?;
            s.append("The following is a long shared context for every branch. ".repeat(8))?;
            let kids = s.fork(8)?;
            for (i, k) in kids.iter().enumerate() {
                k.append(format!(" Branch {i}:"))?;
                k.generate("out", Gen::new().max_tokens(16))?;
            }
            join(kids.iter())?;
            let outs: Result<Vec<String>, _> = kids.iter().map(|k| k.variable("out")).collect();
            json!({ "outs": outs?, "prefix_tokens": s.token_count()? })
        }
        // Forks copy the parent at the fork point and then diverge; the
        // parent's later appends do not reach them.
        "fork" => {
            let s = State::new()?;
            s.append("root")?;
            let kids = s.fork(3)?;
            s.append(" parent-only")?;
            for (i, k) in kids.iter().enumerate() {
                k.append(format!(" child{i}"))?;
            }
            join(kids.iter().chain([&s]))?;
            let texts: Result<Vec<String>, _> = kids.iter().map(State::text).collect();
            json!({ "parent": s.text()?, "children": texts? })
        }
        // A fork's children keep their contents after the parent is dropped.
        "fork-then-drop" => {
            let kids = {
                let s = State::new()?;
                s.append("ancestor")?;
                s.fork(2)?
            };
            kids[1].append(" second")?;
            json!({ "children": [kids[0].text()?, kids[1].text()?] })
        }
        // Expected failures arrive as errors, and the program goes on.
        "errors" => {
            let s = State::new()?;
            let unknown = s.variable("nothing").unwrap_err().to_string();
            let choice = s.choice("nothing").unwrap_err().to_string();
            let end = s.end().unwrap_err().to_string();
            s.begin(Role::User)?;
            let twice = s.begin(Role::User).unwrap_err().to_string();
            let message = s.user("x").unwrap_err().to_string();
            s.end()?;
            let fork0 = s.fork(0).unwrap_err().to_string();
            let no_choices = s.select::<&str>("x", &[]).unwrap_err().to_string();
            let zero = s
                .generate("x", Gen::new().max_tokens(0))
                .unwrap_err()
                .to_string();
            let top_p = s
                .generate("x", Gen::new().top_p(0.0))
                .unwrap_err()
                .to_string();
            let schema = s
                .generate("x", Gen::new().json_schema(&json!({})).regex(""))
                .unwrap_err()
                .to_string();
            json!({
                "unknown": unknown, "choice": choice, "end": end, "twice": twice,
                "message": message, "fork0": fork0, "no_choices": no_choices,
                "zero": zero, "top_p": top_p, "empty_regex": schema,
                "still_usable": s.text()?,
            })
        }
        // A generation failure (this backend has no model) fails the state:
        // later reads report it, other states are unaffected.
        "generate-fails" => {
            let s = State::new()?;
            let other = State::new()?;
            s.append("Once upon a time")?;
            s.generate("story", Gen::new().max_tokens(8))?;
            other.append("unaffected")?;
            let read = s.variable("story").unwrap_err().to_string();
            let text = s.text().unwrap_err().to_string();
            let joined = join([&s, &other]).unwrap_err().to_string();
            json!({ "read": read, "text": text, "join": joined, "other": other.text()? })
        }
        // The engine's typed rejection of a constraint reaches the guest
        // as `bad-constraint`, with the compiler's own message, and fails
        // only the state that asked.
        "engine-rejects-constraint" => {
            let s = State::new()?;
            let other = State::new()?;
            s.append("Name: ")?;
            s.generate("name", Gen::new().max_tokens(8).regex("(unclosed"))?;
            let bad = match s.variable("name") {
                Err(arbor_guest::Error::Lm(arbor_guest::LmError::BadConstraint(m))) => m,
                r => return Err(format!("expected bad-constraint, got {r:?}")),
            };
            other.append("fine")?;
            json!({ "bad": bad, "other": other.text()? })
        }
        other => return Err(format!("unknown scenario {other:?}")),
    };
    Ok(out.to_string())
}

arbor_guest::export!(run);

//! The guest of `arbor_runtime::bench_runtime`. Inputs:
//!
//! - `start`: creates a state and appends a word (start latency).
//! - `calls KIND BATCHES PER_BATCH`: times BATCHES batches of PER_BATCH
//!   calls of KIND (`empty`: `append("")`; `append`: `append("x")`;
//!   `read`: `token-count()`) and returns the batch times in ns as JSON.

use std::time::Instant;

use arbor_guest::State;

fn run(input: String) -> Result<String, String> {
    let words: Vec<&str> = input.split_whitespace().collect();
    match words.as_slice() {
        ["start"] => {
            State::new()?.append("hello")?;
            Ok("ok".into())
        }
        ["calls", kind, batches, per_batch] => {
            let batches: usize = batches.parse().map_err(|_| "bad BATCHES")?;
            let per_batch: usize = per_batch.parse().map_err(|_| "bad PER_BATCH")?;
            let mut times = Vec::with_capacity(batches);
            for _ in 0..batches {
                // A fresh state per batch keeps every state short.
                let s = State::new()?;
                s.append("warm")?;
                let t = Instant::now();
                for _ in 0..per_batch {
                    match *kind {
                        "empty" => drop(s.append("")?),
                        "append" => drop(s.append("x")?),
                        "read" => drop(s.token_count()?),
                        other => return Err(format!("unknown kind {other}")),
                    }
                }
                times.push(t.elapsed().as_nanos() as u64);
            }
            Ok(serde_json::to_string(&times).map_err(|e| e.to_string())?)
        }
        _ => Err(format!("unknown input {input:?}")),
    }
}

arbor_guest::export!(run);

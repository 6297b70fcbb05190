//! Token log-probabilities in OpenAI's two shapes: the chat endpoint's
//! `{"content": [{token, logprob, bytes, top_logprobs}]}` and the legacy
//! completions endpoint's parallel arrays.

use arbor_scheduler::{Scheduler, TokenLogprob};
use serde_json::{Map, Value, json};

/// One generated token, ready to be written in either shape.
pub struct Entry {
    token: String,
    bytes: Vec<u8>,
    logprob: f32,
    top: Vec<(String, Vec<u8>, f32)>,
    /// Byte offset of the token in the generated text.
    pub offset: usize,
}

impl Entry {
    /// The token's length in bytes.
    pub fn byte_len(&self) -> usize {
        self.bytes.len()
    }
}

/// Turns tokens and their log-probabilities into entries, the first at
/// byte offset `start` of the text.
pub fn entries(
    scheduler: &Scheduler,
    tokens: &[u32],
    logprobs: &[TokenLogprob],
    start: usize,
) -> Vec<Entry> {
    let mut offset = start;
    tokens
        .iter()
        .zip(logprobs)
        .map(|(&id, lp)| {
            let bytes = scheduler.token_bytes(id);
            let entry = Entry {
                token: String::from_utf8_lossy(&bytes).into_owned(),
                logprob: finite(lp.logprob),
                top: lp
                    .top
                    .iter()
                    .map(|&(t, l)| {
                        let b = scheduler.token_bytes(t);
                        (String::from_utf8_lossy(&b).into_owned(), b, finite(l))
                    })
                    .collect(),
                offset,
                bytes,
            };
            offset += entry.bytes.len();
            entry
        })
        .collect()
}

/// JSON has no -inf; OpenAI clients expect a number. -9999 is what OpenAI
/// itself reports for tokens it considers impossible.
fn finite(l: f32) -> f32 {
    if l.is_finite() { l } else { -9999.0 }
}

/// `{"content": [...], "refusal": null}` of a chat choice or chunk.
pub fn chat(entries: &[Entry]) -> Value {
    let content: Vec<Value> = entries
        .iter()
        .map(|e| {
            json!({
                "token": e.token,
                "logprob": e.logprob,
                "bytes": e.bytes,
                "top_logprobs": e.top.iter().map(|(t, b, l)| json!({"token": t, "logprob": l, "bytes": b})).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({"content": content, "refusal": null})
}

/// `{"tokens", "token_logprobs", "top_logprobs", "text_offset"}` of a
/// completions choice or chunk.
pub fn legacy(entries: &[Entry]) -> Value {
    let top: Vec<Value> = entries
        .iter()
        .map(|e| {
            // Distinct tokens can share a lossy string; keep the likeliest.
            let mut m = Map::new();
            for (t, _, l) in &e.top {
                m.entry(t.clone()).or_insert(json!(l));
            }
            Value::Object(m)
        })
        .collect();
    json!({
        "tokens": entries.iter().map(|e| e.token.as_str()).collect::<Vec<_>>(),
        "token_logprobs": entries.iter().map(|e| e.logprob).collect::<Vec<_>>(),
        "top_logprobs": top,
        "text_offset": entries.iter().map(|e| e.offset).collect::<Vec<_>>(),
    })
}

/// The entries that belong to a text cut to `len` bytes (a stop string
/// removed): tokens that start inside it.
pub fn within(entries: Vec<Entry>, len: usize) -> Vec<Entry> {
    entries.into_iter().filter(|e| e.offset < len).collect()
}

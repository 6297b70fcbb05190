//! Multi-turn chat. Input: `{"system": "...", "turns": ["...", ...]}`; each
//! user turn gets an assistant reply that sees the whole conversation.
//! Returns the replies as a JSON array.

use arbor_guest::{Gen, State};
use serde::Deserialize;

#[derive(Deserialize)]
struct Input {
    #[serde(default)]
    system: Option<String>,
    turns: Vec<String>,
}

fn run(input: String) -> Result<String, arbor_guest::Error> {
    let input: Input = serde_json::from_str(&input)?;
    let chat = State::new()?;
    if let Some(system) = &input.system {
        chat.system(system)?;
    }
    let mut replies = Vec::with_capacity(input.turns.len());
    for (i, turn) in input.turns.iter().enumerate() {
        chat.user(turn)?;
        let name = format!("reply{i}");
        chat.assistant_generate(&name, Gen::new().max_tokens(96))?;
        replies.push(chat.variable(&name)?.trim().to_string());
    }
    Ok(serde_json::to_string(&replies)?)
}

arbor_guest::export!(run);

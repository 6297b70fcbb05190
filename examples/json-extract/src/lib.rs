//! JSON extraction: the model fills a record from free text, constrained by
//! a JSON Schema so the output always parses.

use arbor_guest::{Gen, State};
use serde::{Deserialize, Serialize};
use serde_json::json;

#[derive(Serialize, Deserialize)]
struct Person {
    name: String,
    age: u32,
    city: String,
}

fn run(text: String) -> Result<String, arbor_guest::Error> {
    let schema = json!({
        "type": "object",
        "properties": {
            "name": { "type": "string", "maxLength": 40 },
            "age": { "type": "integer", "minimum": 0, "maximum": 150 },
            "city": { "type": "string", "maxLength": 40 }
        },
        "required": ["name", "age", "city"],
        "additionalProperties": false
    });
    let s = State::new()?;
    s.system("Extract the person described in the text as JSON.")?;
    s.user(text.trim())?;
    s.assistant_generate("person", Gen::new().max_tokens(96).json_schema(&schema))?;
    let person: Person = s.json("person")?;
    Ok(serde_json::to_string(&person)?)
}

arbor_guest::export!(run);

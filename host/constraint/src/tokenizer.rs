//! Building a [`Vocab`] from a Hugging Face `tokenizer.json`.
//!
//! Engines normally build the vocabulary from their own tokenizer; this
//! loader exists so the crate can be exercised and benchmarked on real
//! vocabularies without an engine.

use serde_json::Value;

use crate::error::ConstraintError;
use crate::vocab::Vocab;

/// Token ids above this are refused: a corrupt or hostile file could
/// otherwise make the loader allocate for billions of empty tokens.
const MAX_VOCAB: u64 = 1 << 24;

/// GPT-2's byte-level alphabet: each byte is shown as a printable char;
/// returns the byte a char stands for.
fn byte_level_table() -> std::collections::HashMap<char, u8> {
    let mut printable: Vec<u32> = (33..=126).chain(161..=172).chain(174..=255).collect();
    let mut chars: Vec<u32> = printable.clone();
    let mut extra = 0;
    for b in 0..=255u32 {
        if !printable.contains(&b) {
            printable.push(b);
            chars.push(256 + extra);
            extra += 1;
        }
    }
    printable
        .into_iter()
        .zip(chars)
        .filter_map(|(b, c)| Some((char::from_u32(c)?, b as u8)))
        .collect()
}

fn has_type(v: &Value, ty: &str) -> bool {
    match v {
        Value::Object(o) => {
            o.get("type").and_then(Value::as_str) == Some(ty) || o.values().any(|x| has_type(x, ty))
        }
        Value::Array(a) => a.iter().any(|x| has_type(x, ty)),
        _ => false,
    }
}

/// `<0x41>` → 0x41, the spelling of SentencePiece byte-fallback pieces.
fn byte_fallback(piece: &str) -> Option<u8> {
    let hex = piece.strip_prefix("<0x")?.strip_suffix('>')?;
    if hex.len() != 2 {
        return None;
    }
    u8::from_str_radix(hex, 16).ok()
}

impl Vocab {
    /// Loads the vocabulary of a `tokenizer.json` (BPE, WordPiece, WordLevel
    /// or Unigram model). Byte-level tokenizers (GPT-2 family, detected by a
    /// `ByteLevel` decoder or pre-tokenizer) have their alphabet mapped back
    /// to bytes; otherwise pieces are SentencePiece-style: `▁` is a space and
    /// `<0xNN>` a single byte. Added tokens marked special become special ids;
    /// `eos_tokens` names the EOS tokens by content (e.g. `"</s>"`).
    ///
    /// # Errors
    /// [`ConstraintError::InvalidTokenizer`] for malformed files or EOS names
    /// not in the vocabulary.
    pub fn from_tokenizer_json(text: &str, eos_tokens: &[&str]) -> Result<Self, ConstraintError> {
        let bad = |m: &str| ConstraintError::InvalidTokenizer(m.to_owned());
        let root: Value = serde_json::from_str(text).map_err(|e| bad(&format!("not JSON: {e}")))?;
        let model = root.get("model").ok_or_else(|| bad("no model"))?;
        let byte_level = root
            .get("decoder")
            .is_some_and(|d| has_type(d, "ByteLevel"))
            || root
                .get("pre_tokenizer")
                .is_some_and(|d| has_type(d, "ByteLevel"));
        let table = byte_level.then(byte_level_table);
        let decode = |piece: &str| -> Vec<u8> {
            match &table {
                Some(t) => piece
                    .chars()
                    .flat_map(|c| match t.get(&c) {
                        Some(&b) => vec![b],
                        None => c.to_string().into_bytes(),
                    })
                    .collect(),
                None => match byte_fallback(piece) {
                    Some(b) => vec![b],
                    None => piece.replace('\u{2581}', " ").into_bytes(),
                },
            }
        };

        let mut pieces: Vec<(u64, Vec<u8>, String)> = Vec::new();
        match model.get("vocab") {
            Some(Value::Object(map)) => {
                for (piece, id) in map {
                    let id = id
                        .as_u64()
                        .ok_or_else(|| bad("vocab ids must be integers"))?;
                    pieces.push((id, decode(piece), piece.clone()));
                }
            }
            Some(Value::Array(list)) => {
                // Unigram: [[piece, score], ...], id = position.
                for (id, entry) in list.iter().enumerate() {
                    let piece = entry
                        .get(0)
                        .and_then(Value::as_str)
                        .ok_or_else(|| bad("unigram vocab entries must be [piece, score]"))?;
                    pieces.push((id as u64, decode(piece), piece.to_owned()));
                }
            }
            _ => return Err(bad("model.vocab must be an object or an array")),
        }
        let mut special = Vec::new();
        if let Some(added) = root.get("added_tokens").and_then(Value::as_array) {
            for t in added {
                let id = t
                    .get("id")
                    .and_then(Value::as_u64)
                    .ok_or_else(|| bad("added token without id"))?;
                let content = t.get("content").and_then(Value::as_str).unwrap_or_default();
                if t.get("special").and_then(Value::as_bool).unwrap_or(false) {
                    special.push(id);
                }
                // Added tokens are matched on raw text, not the model alphabet.
                pieces.push((id, content.as_bytes().to_vec(), content.to_owned()));
            }
        }
        let n = pieces.iter().map(|(id, _, _)| id + 1).max().unwrap_or(0);
        if n > MAX_VOCAB {
            return Err(bad(&format!("token id {} exceeds {MAX_VOCAB}", n - 1)));
        }
        let mut tokens = vec![Vec::new(); n as usize];
        let mut eos = Vec::new();
        let mut found = vec![false; eos_tokens.len()];
        for (id, bytes, piece) in pieces {
            if let Some(i) = eos_tokens.iter().position(|e| *e == piece) {
                found[i] = true;
                eos.push(id as u32);
            }
            tokens[id as usize] = bytes;
        }
        if let Some(i) = found.iter().position(|f| !f) {
            return Err(bad(&format!(
                "EOS token {:?} not in the vocabulary",
                eos_tokens[i]
            )));
        }
        Ok(Vocab::new(
            tokens,
            eos,
            special.into_iter().map(|s| s as u32).collect(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_level_alphabet_maps_back_to_bytes() {
        let json = r#"{
            "model": {"type": "BPE", "vocab": {"Ġthe": 0, "Ċ": 1, "Ã©": 2, "!": 3}},
            "decoder": {"type": "ByteLevel"},
            "added_tokens": [{"id": 4, "content": "<|eot|>", "special": true}]
        }"#;
        let v = Vocab::from_tokenizer_json(json, &["<|eot|>"]).unwrap();
        assert_eq!(v.token_bytes(0), b" the");
        assert_eq!(v.token_bytes(1), b"\n");
        assert_eq!(v.token_bytes(2), "é".as_bytes());
        assert_eq!(v.token_bytes(3), b"!");
        assert_eq!(v.eos_ids(), &[4]);
        assert!(!v.is_text(4));
    }

    #[test]
    fn sentencepiece_pieces_use_byte_fallback_and_metaspace() {
        let json = r#"{
            "model": {"type": "BPE", "byte_fallback": true, "vocab": {"<s>": 0, "</s>": 1, "<0x0A>": 2, "▁Hello": 3, "é": 4}},
            "decoder": {"type": "Sequence", "decoders": [{"type": "Replace"}, {"type": "ByteFallback"}]},
            "added_tokens": [{"id": 0, "content": "<s>", "special": true}, {"id": 1, "content": "</s>", "special": true}]
        }"#;
        let v = Vocab::from_tokenizer_json(json, &["</s>"]).unwrap();
        assert_eq!(v.token_bytes(2), b"\n");
        assert_eq!(v.token_bytes(3), b" Hello");
        assert_eq!(v.token_bytes(4), "é".as_bytes());
        assert!(v.is_eos(1) && !v.is_text(0));
        assert!(Vocab::from_tokenizer_json(json, &["<eos>"]).is_err());
        assert!(Vocab::from_tokenizer_json("{}", &[]).is_err());
    }

    #[test]
    fn gpt2_table_is_a_bijection() {
        let t = byte_level_table();
        assert_eq!(t.len(), 256);
        let mut bytes: Vec<u8> = t.values().copied().collect();
        bytes.sort_unstable();
        bytes.dedup();
        assert_eq!(bytes.len(), 256);
        assert_eq!(t[&'Ġ'], b' ');
    }
}

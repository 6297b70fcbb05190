//! The byte-level BPE tokenizer Arbor trains for its own random-weight models.
//!
//! Trained on a small embedded corpus with Llama-3's special tokens and chat
//! template, so a model made from nothing loads and chats like a real one.
//! Training must be deterministic: the same vocabulary size always gives the
//! same `tokenizer.json`, so that a preset and a seed always name the same
//! model.

use anyhow::{Result, anyhow};
use std::path::Path;
use tokenizers::models::bpe::{BPE, BpeTrainerBuilder};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::{
    AddedToken, DecoderWrapper, NormalizerWrapper, PostProcessorWrapper, PreTokenizerWrapper,
};

/// Special tokens of Arbor-made tokenizers, in id order (Llama-3 names).
pub const SPECIAL_TOKENS: [&str; 5] = [
    "<|begin_of_text|>",
    "<|end_of_text|>",
    "<|start_header_id|>",
    "<|end_header_id|>",
    "<|eot_id|>",
];

/// The chat template written for Arbor-made models (Llama-3 layout).
pub const CHAT_TEMPLATE: &str = "{{ bos_token }}{% for message in messages %}<|start_header_id|>{{ message['role'] }}<|end_header_id|>\n\n{{ message['content'] }}<|eot_id|>{% endfor %}{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}";

const CORPUS: &str = include_str!("../assets/corpus.txt");

/// Trains a byte-level BPE tokenizer of at most `vocab_size` tokens on
/// Arbor's embedded corpus and writes `tokenizer.json` and
/// `tokenizer_config.json` into `dir`. Deterministic: the same size always
/// gives the same file.
pub fn train_byte_level_bpe(dir: &Path, vocab_size: usize) -> Result<()> {
    let mut tok = tokenizers::TokenizerBuilder::<
        BPE,
        NormalizerWrapper,
        PreTokenizerWrapper,
        PostProcessorWrapper,
        DecoderWrapper,
    >::new()
    .with_model(BPE::default())
    .with_normalizer(None)
    .with_pre_tokenizer(Some(ByteLevel::default().add_prefix_space(false).into()))
    .with_post_processor(Some(ByteLevel::default().trim_offsets(false).into()))
    .with_decoder(Some(ByteLevel::default().into()))
    .build()
    .map_err(|e| anyhow!("cannot build tokenizer: {e}"))?;
    let mut trainer = BpeTrainerBuilder::new()
        .vocab_size(vocab_size)
        .min_frequency(2)
        .show_progress(false)
        .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
        .special_tokens(
            SPECIAL_TOKENS
                .iter()
                .map(|s| AddedToken::from(*s, true))
                .collect(),
        )
        .build();
    tok.train(&mut trainer, CORPUS.lines())
        .map_err(|e| anyhow!("tokenizer training failed: {e}"))?;
    let tok: tokenizers::Tokenizer = tok.into();
    let path = dir.join("tokenizer.json");
    tok.save(&path, false)
        .map_err(|e| anyhow!("cannot write {}: {e}", path.display()))?;
    let config = serde_json::json!({
        "bos_token": SPECIAL_TOKENS[0],
        "eos_token": SPECIAL_TOKENS[1],
        "chat_template": CHAT_TEMPLATE,
        "tokenizer_class": "PreTrainedTokenizerFast",
        "model_max_length": 1_000_000,
    });
    std::fs::write(
        dir.join("tokenizer_config.json"),
        serde_json::to_string_pretty(&config)?,
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use arbor_engine::Tokenizer;
    use arbor_engine::tokenizer::ChatMessage;

    #[test]
    fn trained_tokenizer_round_trips_and_is_deterministic() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        train_byte_level_bpe(a.path(), 512).unwrap();
        train_byte_level_bpe(b.path(), 512).unwrap();
        let fa = std::fs::read(a.path().join("tokenizer.json")).unwrap();
        let fb = std::fs::read(b.path().join("tokenizer.json")).unwrap();
        assert_eq!(fa, fb, "training must be deterministic");
        let t = Tokenizer::load(a.path(), &[], None).unwrap();
        assert!(
            t.vocab_size() > 300 && t.vocab_size() <= 512,
            "{}",
            t.vocab_size()
        );
        for text in [
            "Question: What is 2+2? Answer:",
            "naïve café ✓ 日本",
            "{\"a\": [1, 2]}\n\ttabs",
        ] {
            let ids = t.encode(text).unwrap();
            assert_eq!(t.decode(&ids), text);
        }
        assert_eq!(t.bos_id(), Some(0));
        assert!(t.eos_ids().contains(&1) && t.eos_ids().contains(&4));
        let chat = t
            .apply_chat_template(
                &[ChatMessage {
                    role: "user".into(),
                    content: "Hi".into(),
                }],
                true,
            )
            .unwrap();
        assert_eq!(
            chat,
            "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
        );
    }
}

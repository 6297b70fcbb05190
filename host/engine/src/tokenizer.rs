//! Tokenizers: the byte-level BPE Arbor trains for its own models, and a
//! wrapper over any Hugging Face `tokenizer.json` with the model's special
//! tokens and chat template.

use anyhow::{Context, Result, anyhow, bail};
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

/// A chat message for template rendering.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ChatMessage {
    pub role: String,
    pub content: String,
}

/// A model's tokenizer with what generation needs besides ids: BOS, the
/// stop ids and the chat template.
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    bos: Option<(u32, String)>,
    eos_ids: Vec<u32>,
    chat_template: Option<String>,
}

impl Tokenizer {
    /// Loads `tokenizer.json` (and `tokenizer_config.json` when present) from a
    /// model directory. `eos_from_config` are the ids config.json names.
    pub fn load(dir: &Path, eos_from_config: &[u32], bos_from_config: Option<u32>) -> Result<Self> {
        let path = dir.join("tokenizer.json");
        if !path.exists() {
            bail!("{} is missing", path.display());
        }
        let inner = tokenizers::Tokenizer::from_file(&path)
            .map_err(|e| anyhow!("{} is not a valid tokenizer.json: {e}", path.display()))?;
        let cfg_path = dir.join("tokenizer_config.json");
        let cfg: serde_json::Value = if cfg_path.exists() {
            serde_json::from_str(&std::fs::read_to_string(&cfg_path)?)
                .with_context(|| format!("{} is not valid JSON", cfg_path.display()))?
        } else {
            serde_json::Value::Null
        };
        let token_str = |k: &str| -> Option<String> {
            match cfg.get(k)? {
                serde_json::Value::String(s) => Some(s.clone()),
                v => v.get("content").and_then(|c| c.as_str()).map(String::from),
            }
        };
        let mut eos_ids: Vec<u32> = eos_from_config.to_vec();
        if let Some(e) = token_str("eos_token").and_then(|s| inner.token_to_id(&s))
            && !eos_ids.contains(&e)
        {
            eos_ids.push(e);
        }
        // Chat models end a turn with a dedicated token; stop there too.
        for t in ["<|eot_id|>", "<|im_end|>", "<|end|>"] {
            if let Some(id) = inner.token_to_id(t)
                && !eos_ids.contains(&id)
            {
                eos_ids.push(id);
            }
        }
        let bos = token_str("bos_token")
            .and_then(|s| inner.token_to_id(&s).map(|id| (id, s)))
            .or_else(|| bos_from_config.and_then(|id| inner.id_to_token(id).map(|s| (id, s))));
        let chat_template = match cfg.get("chat_template") {
            Some(serde_json::Value::String(s)) => Some(s.clone()),
            // Some checkpoints list several named templates; take the default.
            Some(serde_json::Value::Array(a)) => a
                .iter()
                .find(|t| t.get("name").and_then(|n| n.as_str()) == Some("default"))
                .and_then(|t| t.get("template").and_then(|s| s.as_str()).map(String::from)),
            _ => None,
        };
        Ok(Tokenizer {
            inner,
            bos,
            eos_ids,
            chat_template,
        })
    }

    /// Token ids of `text`, without special tokens added.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let enc = self
            .inner
            .encode(text, false)
            .map_err(|e| anyhow!("tokenization failed: {e}"))?;
        Ok(enc.get_ids().to_vec())
    }

    /// Text of `ids`; ids outside the vocabulary decode to nothing.
    pub fn decode(&self, ids: &[u32]) -> String {
        let known: Vec<u32> = ids
            .iter()
            .copied()
            .filter(|&i| (i as usize) < self.vocab_size())
            .collect();
        self.inner.decode(&known, false).unwrap_or_default()
    }

    /// Number of tokens the tokenizer knows (may be below the model's vocabulary).
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    pub fn bos_id(&self) -> Option<u32> {
        self.bos.as_ref().map(|b| b.0)
    }

    /// Ids that end generation.
    pub fn eos_ids(&self) -> &[u32] {
        &self.eos_ids
    }

    /// The underlying Hugging Face tokenizer.
    pub fn inner(&self) -> &tokenizers::Tokenizer {
        &self.inner
    }

    /// Renders messages with the model's chat template.
    pub fn apply_chat_template(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
    ) -> Result<String> {
        let template = self
            .chat_template
            .as_deref()
            .context("this model has no chat template")?;
        let mut env = minijinja::Environment::new();
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function(
            "raise_exception",
            |msg: String| -> Result<String, minijinja::Error> {
                Err(minijinja::Error::new(
                    minijinja::ErrorKind::InvalidOperation,
                    msg,
                ))
            },
        );
        env.add_template("chat", template)
            .map_err(|e| anyhow!("invalid chat template: {e}"))?;
        let t = env.get_template("chat").map_err(|e| anyhow!("{e}"))?;
        t.render(minijinja::context! {
            messages => messages,
            add_generation_prompt => add_generation_prompt,
            bos_token => self.bos.as_ref().map(|b| b.1.clone()).unwrap_or_default(),
            eos_token => self.eos_ids.first().and_then(|&i| self.inner.id_to_token(i)).unwrap_or_default(),
        })
        .map_err(|e| anyhow!("chat template failed: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

//! Tokenizers: a wrapper over any Hugging Face `tokenizer.json` with the
//! model's special tokens and chat template.

use anyhow::{Context, Result, anyhow, bail};
use std::path::Path;

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
    /// `inner.get_vocab_size(true)`, which rebuilds the whole vocabulary as
    /// a map of strings on every call; it was read for every output token
    /// and was half of the scheduler's host time. `inner` is never mutated.
    vocab_size: usize,
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
            vocab_size: inner.get_vocab_size(true),
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
            .filter(|&i| (i as usize) < self.vocab_size)
            .collect();
        self.inner.decode(&known, false).unwrap_or_default()
    }

    /// Number of tokens the tokenizer knows (may be below the model's vocabulary).
    pub fn vocab_size(&self) -> usize {
        self.vocab_size
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

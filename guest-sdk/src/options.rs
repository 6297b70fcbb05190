use crate::bindings::lm::{Constraint, GenerateOptions};

/// Builder for the options of [`State::generate`](crate::State::generate).
///
/// Defaults: 128 tokens, greedy decoding (temperature 0), no top-p/top-k
/// truncation, no stop strings, no seed, no constraint.
#[derive(Debug, Clone)]
pub struct Gen {
    opts: GenerateOptions,
}

impl Default for Gen {
    fn default() -> Self {
        Self::new()
    }
}

impl Gen {
    /// Options with the defaults above.
    pub fn new() -> Self {
        Gen {
            opts: GenerateOptions {
                max_tokens: 128,
                temperature: 0.0,
                top_p: 1.0,
                top_k: 0,
                stop: Vec::new(),
                seed: None,
                constraint: None,
            },
        }
    }

    /// Upper bound on generated tokens.
    pub fn max_tokens(mut self, n: u32) -> Self {
        self.opts.max_tokens = n;
        self
    }

    /// Sampling temperature; 0 is greedy.
    pub fn temperature(mut self, t: f32) -> Self {
        self.opts.temperature = t;
        self
    }

    /// Nucleus sampling mass.
    pub fn top_p(mut self, p: f32) -> Self {
        self.opts.top_p = p;
        self
    }

    /// Keeps only the `k` most likely tokens (0 keeps all).
    pub fn top_k(mut self, k: u32) -> Self {
        self.opts.top_k = k;
        self
    }

    /// Adds a stop string.
    pub fn stop(mut self, s: impl Into<String>) -> Self {
        self.opts.stop.push(s.into());
        self
    }

    /// Seeds the sampler.
    pub fn seed(mut self, seed: u64) -> Self {
        self.opts.seed = Some(seed);
        self
    }

    /// Constrains the output to match a regular expression.
    pub fn regex(mut self, pattern: impl Into<String>) -> Self {
        self.opts.constraint = Some(Constraint::Regex(pattern.into()));
        self
    }

    /// Constrains the output to JSON valid against `schema`.
    pub fn json_schema(mut self, schema: &serde_json::Value) -> Self {
        self.opts.constraint = Some(Constraint::JsonSchema(schema.to_string()));
        self
    }

    /// The options as the WIT record.
    pub fn into_options(self) -> GenerateOptions {
        self.opts
    }
}

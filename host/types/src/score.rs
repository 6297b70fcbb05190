//! The score of one `select` choice.

use serde::Serialize;

/// The score of one choice as a continuation of a prompt.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct ChoiceScore {
    /// Sum of the log-probabilities of the choice's tokens, each given the
    /// prompt and the choice's preceding tokens.
    pub logprob: f64,
    /// Number of tokens scored (at least 1: empty choices are refused).
    pub tokens: u32,
}

impl ChoiceScore {
    /// `logprob / tokens`: SGLang's token-length-normalised score, by which
    /// `select` picks, so that long choices are not penalised for their
    /// length.
    pub fn normalized(&self) -> f64 {
        self.logprob / f64::from(self.tokens.max(1))
    }
}

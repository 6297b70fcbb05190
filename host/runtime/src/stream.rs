//! Incremental detokenization of generated tokens for streaming events.

use std::sync::{Arc, Mutex};

use tokio::sync::mpsc::UnboundedSender;

use crate::backend::{LmBackend, TokenSink};
use crate::run::RunEvent;

/// Turns a growing token list into text deltas. Tokens can end inside a
/// multi-byte character or change how earlier tokens decode (leading-space
/// rules), so each step decodes a short window before the new tokens and
/// emits only text that is complete, as text-generation servers do.
pub(crate) struct StreamDecoder {
    tokens: Vec<u32>,
    prefix_offset: usize,
    read_offset: usize,
}

impl StreamDecoder {
    pub(crate) fn new() -> Self {
        StreamDecoder {
            tokens: Vec::new(),
            prefix_offset: 0,
            read_offset: 0,
        }
    }

    /// Adds `ids` and returns the newly completed text, if any.
    pub(crate) fn push(&mut self, backend: &dyn LmBackend, ids: &[u32]) -> Option<String> {
        self.tokens.extend_from_slice(ids);
        let before = backend.detokenize(&self.tokens[self.prefix_offset..self.read_offset]);
        let after = backend.detokenize(&self.tokens[self.prefix_offset..]);
        if after.len() > before.len() && !after.ends_with('\u{FFFD}') && after.starts_with(&before)
        {
            let delta = after[before.len()..].to_string();
            self.prefix_offset = self.read_offset;
            self.read_offset = self.tokens.len();
            Some(delta)
        } else {
            None
        }
    }
}

/// A sink that streams the text of variable `variable` of state `state`.
pub(crate) fn text_sink(
    backend: Arc<dyn LmBackend>,
    events: UnboundedSender<RunEvent>,
    state: u64,
    variable: String,
) -> TokenSink {
    let decoder = Mutex::new(StreamDecoder::new());
    Arc::new(move |ids: &[u32]| {
        let delta = decoder
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(backend.as_ref(), ids);
        if let Some(delta) = delta {
            // The receiver going away only means nobody listens any more.
            let _ = events.send(RunEvent::Text {
                state,
                variable: variable.clone(),
                delta,
            });
        }
    })
}

//! The text of one output, decoded incrementally, with stop strings.
//!
//! Invariant: every delta [`TextStream::push`] returns is final. Text is
//! emitted only once it decodes to whole characters (tokenizers'
//! `DecodeStream` state: byte-level BPE tokens can end mid-character and
//! merge across boundaries), and only up to where a stop string could still
//! begin: a suffix that is a prefix of some stop string is held back until
//! the next token decides it. So the concatenated deltas always equal the
//! final text, stop string excluded, and nobody downstream has to rescan or
//! retract anything.
//!
//! Each token costs one decode of a few tokens and one stop search over the
//! new text plus the longest stop string's length, never the whole output.

use arbor_engine::Tokenizer;

/// Incremental detokenizer and stop-string matcher for one output.
pub struct TextStream {
    /// `tokenizers::step_decode_stream` state: recent ids, the text they
    /// decoded to, and where that text's ids start.
    ids: Vec<u32>,
    prefix: String,
    prefix_index: usize,
    /// Everything decoded so far (cut at the stop string once one matched).
    text: String,
    /// Bytes of `text` already emitted.
    emitted: usize,
    stops: Vec<String>,
    /// Index of each of `stops` among the strings the caller gave.
    index: Vec<usize>,
    /// Longest stop string, in bytes.
    longest: usize,
    /// Where the earliest matched stop string starts in `text`, and which.
    stopped_at: Option<(usize, usize)>,
}

impl TextStream {
    /// A stream that stops before any of `stops` (empty strings are ignored).
    pub fn new(stops: &[String]) -> Self {
        let (index, stops): (Vec<usize>, Vec<String>) = stops
            .iter()
            .enumerate()
            .filter(|(_, s)| !s.is_empty())
            .map(|(i, s)| (i, s.clone()))
            .unzip();
        TextStream {
            index,
            ids: Vec::new(),
            prefix: String::new(),
            prefix_index: 0,
            text: String::new(),
            emitted: 0,
            longest: stops.iter().map(|s| s.len()).max().unwrap_or(0),
            stops,
            stopped_at: None,
        }
    }

    /// Whether a stop string has appeared; nothing more is emitted then.
    pub fn stopped(&self) -> bool {
        self.stopped_at.is_some()
    }

    /// The matched stop string: its index among the stop strings given to
    /// [`Self::new`] and where it starts in the text.
    pub fn stop(&self) -> Option<(usize, usize)> {
        self.stopped_at.map(|(at, k)| (k, at))
    }

    /// The text so far, stop string excluded (including text still held back).
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Feeds one output token; returns the text that became final.
    pub fn push(&mut self, tok: &Tokenizer, id: u32) -> String {
        if self.stopped() {
            return String::new();
        }
        // Ids past the tokenizer's vocabulary (padding rows of the embedding)
        // decode to nothing, as in `Tokenizer::decode`.
        if (id as usize) < tok.vocab_size() {
            match tokenizers::step_decode_stream(
                tok.inner(),
                vec![id],
                false,
                &mut self.ids,
                &mut self.prefix,
                &mut self.prefix_index,
            ) {
                Ok(Some(new)) => self.append(&new),
                Ok(None) => {}
                Err(e) => {
                    // A decoder whose output for a longer window does not
                    // extend its output for a shorter one: restart the window
                    // at this token rather than emit text twice.
                    tracing::debug!("incremental decode restarted: {e}");
                    self.ids.clear();
                    self.prefix.clear();
                    self.prefix_index = 0;
                }
            }
        }
        self.take(false)
    }

    /// Flushes what is held back at the end of the output: a trailing
    /// incomplete character and a partial stop-string prefix are final now.
    pub fn finish(&mut self, tok: &Tokenizer) -> String {
        if !self.stopped() && self.ids.len() > self.prefix_index {
            let all = tok.inner().decode(&self.ids, false).unwrap_or_default();
            if all.len() > self.prefix.len() && all.is_char_boundary(self.prefix.len()) {
                let rest = all[self.prefix.len()..].to_string();
                self.append(&rest);
            }
            self.ids.clear();
            self.prefix.clear();
            self.prefix_index = 0;
        }
        self.take(true)
    }

    /// Appends decoded text and looks for a stop string that ends in it.
    fn append(&mut self, new: &str) {
        let old = self.text.len();
        self.text.push_str(new);
        if self.stops.is_empty() {
            return;
        }
        // A match ending in the new text starts at most `longest - 1` bytes
        // before it.
        let mut from = old.saturating_sub(self.longest.saturating_sub(1));
        while !self.text.is_char_boundary(from) {
            from -= 1;
        }
        let hit = self
            .stops
            .iter()
            .enumerate()
            .filter_map(|(k, s)| self.text[from..].find(s.as_str()).map(|i| (from + i, k)))
            .min();
        if let Some((at, k)) = hit {
            self.text.truncate(at);
            self.stopped_at = Some((at, self.index[k]));
        }
    }

    /// Emits what is final: all of it at the end, else up to the longest
    /// suffix that could still grow into a stop string.
    fn take(&mut self, end: bool) -> String {
        let safe = if end || self.stopped() {
            self.text.len()
        } else {
            self.text.len() - self.held_suffix()
        };
        if safe <= self.emitted {
            return String::new();
        }
        let delta = self.text[self.emitted..safe].to_string();
        self.emitted = safe;
        delta
    }

    /// Bytes at the end of the text that are a proper prefix of a stop string.
    fn held_suffix(&self) -> usize {
        let t = self.text.as_bytes();
        let mut held = 0;
        for s in &self.stops {
            let s = s.as_bytes();
            let most = (s.len() - 1).min(t.len());
            for k in (held + 1..=most).rev() {
                if t[t.len() - k..] == s[..k] {
                    held = k;
                    break;
                }
            }
        }
        held
    }
}

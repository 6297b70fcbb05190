//! Incremental detokenization with stop strings.
//!
//! Decoding a growing token list one token at a time must not emit half of a
//! multi-byte character, and byte-level BPE tokens can merge across
//! boundaries; so text is emitted from a small window of recent tokens and
//! held back while it ends in an incomplete character.

use arbor_engine::Tokenizer;

pub struct Detokenizer {
    prefix_offset: usize,
    read_offset: usize,
    text: String,
}

impl Detokenizer {
    pub fn new() -> Self {
        Detokenizer {
            prefix_offset: 0,
            read_offset: 0,
            text: String::new(),
        }
    }

    /// Text so far.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Feeds the whole output so far (its last token is new); returns the new text.
    pub fn push(&mut self, tok: &Tokenizer, tokens: &[u32]) -> String {
        let prefix = tok.decode(&tokens[self.prefix_offset..self.read_offset]);
        let full = tok.decode(&tokens[self.prefix_offset..]);
        if full.len() > prefix.len()
            && !full.ends_with('\u{FFFD}')
            && full.is_char_boundary(prefix.len())
        {
            let delta = full[prefix.len()..].to_string();
            self.prefix_offset = self.read_offset;
            self.read_offset = tokens.len();
            self.text.push_str(&delta);
            delta
        } else {
            String::new()
        }
    }

    /// Flushes text held back at the end of generation.
    pub fn finish(&mut self, tok: &Tokenizer, tokens: &[u32]) -> String {
        let prefix = tok.decode(&tokens[self.prefix_offset..self.read_offset]);
        let full = tok.decode(&tokens[self.prefix_offset..]);
        let delta = if full.len() > prefix.len() && full.is_char_boundary(prefix.len()) {
            full[prefix.len()..].to_string()
        } else {
            String::new()
        };
        self.prefix_offset = tokens.len();
        self.read_offset = tokens.len();
        self.text.push_str(&delta);
        delta
    }

    /// The earliest stop string's position in the text, if any appears.
    pub fn find_stop(&self, stops: &[String]) -> Option<usize> {
        stops
            .iter()
            .filter(|s| !s.is_empty())
            .filter_map(|s| self.text.find(s.as_str()))
            .min()
    }
}

//! Server-Sent Events: OpenAI's framing (`data: <json>` then `data: [DONE]`)
//! and the hold-back that keeps a stop string out of streamed text.

use axum::response::sse::{Event, Sse};
use futures::Stream;
use std::convert::Infallible;
use tokio::sync::mpsc;

/// An SSE response whose events are the strings received on `rx`, each
/// sent as one `data:` line. The stream ends when every sender is gone;
/// the body being dropped (client gone) closes `rx`, which the producers
/// notice on their next send and stop, cancelling their generations.
pub fn response(rx: mpsc::Receiver<String>) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|data| (Ok(Event::default().data(data)), rx))
    });
    Sse::new(stream)
}

/// Streams generated text while holding back anything that could be the
/// start of a stop string: the scheduler reports a stop only once the whole
/// string was generated, and by then its first part has been sent.
pub struct StopHoldback {
    stops: Vec<String>,
    text: String,
    sent: usize,
}

impl StopHoldback {
    pub fn new(stops: Vec<String>) -> Self {
        StopHoldback {
            stops,
            text: String::new(),
            sent: 0,
        }
    }

    /// Adds generated text; returns what can be sent now.
    pub fn push(&mut self, piece: &str) -> String {
        self.text.push_str(piece);
        let mut safe = self.text.len();
        for s in &self.stops {
            if let Some(i) = self.text[self.sent..].find(s.as_str()) {
                safe = safe.min(self.sent + i);
            }
            // The longest tail of the text that begins this stop string.
            for k in (1..s.len().min(self.text.len() + 1)).rev() {
                let start = self.text.len() - k;
                if self.text.is_char_boundary(start) && s.starts_with(&self.text[start..]) {
                    safe = safe.min(start);
                    break;
                }
            }
        }
        self.take(safe.max(self.sent))
    }

    /// The end: `final_text` is the scheduler's authoritative text (stop
    /// string excluded); returns what of it was not sent yet.
    pub fn finish(&mut self, final_text: &str) -> String {
        let end = final_text.len();
        if end > self.sent && final_text.is_char_boundary(self.sent) {
            let rest = final_text[self.sent..].to_string();
            self.sent = end;
            rest
        } else {
            String::new()
        }
    }

    fn take(&mut self, upto: usize) -> String {
        let out = self.text[self.sent..upto].to_string();
        self.sent = upto;
        out
    }
}

#[cfg(test)]
mod tests {
    use super::StopHoldback;

    #[test]
    fn stop_strings_never_leak_into_the_stream() {
        let mut h = StopHoldback::new(vec!["END".into()]);
        let mut out = String::new();
        for piece in ["hello E", "N", "D more"] {
            out += &h.push(piece);
        }
        assert_eq!(out, "hello ");
        out += &h.finish("hello ");
        assert_eq!(out, "hello ");
    }

    #[test]
    fn false_alarms_are_released() {
        let mut h = StopHoldback::new(vec!["\n\n".into()]);
        assert_eq!(h.push("a\n"), "a");
        assert_eq!(h.push("b"), "\nb");
        assert_eq!(h.finish("a\nbc"), "c");
    }

    #[test]
    fn multibyte_text_is_cut_on_char_boundaries() {
        let mut h = StopHoldback::new(vec!["é!".into(), "x".into()]);
        assert_eq!(h.push("café"), "caf");
        assert_eq!(h.push("?"), "é?");
        let mut none = StopHoldback::new(vec![]);
        assert_eq!(none.push("日本"), "日本");
    }
}

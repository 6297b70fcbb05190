//! Why a generation ended: one type from the decoder to the guest and the
//! HTTP body.

use serde::Serialize;

/// Why a generation ended.
///
/// Offsets are byte offsets into the generated text; the tokens a caller
/// gets back always include a matched stop string (so that a state extended
/// by them matches the cache), while the text ends before it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Finish {
    /// `max_tokens` was reached, or the model's context is full.
    Length,
    /// One of the model's end-of-sequence ids (not part of the output).
    EndOfSequence,
    /// One of the request's stop ids (not part of the output).
    StopToken(u32),
    /// `stop_strings[index]` appeared; it starts at byte `offset` of the
    /// decoded output.
    StopString {
        /// Which of the request's stop strings matched.
        index: usize,
        /// Where it starts in the decoded output.
        offset: usize,
    },
    /// The constraint admits no longer text.
    ConstraintComplete,
}

impl Finish {
    /// OpenAI's `finish_reason`: `"length"`, or `"stop"` for every natural
    /// end (a complete constraint is a natural end of the text).
    pub fn openai_reason(self) -> &'static str {
        match self {
            Finish::Length => "length",
            _ => "stop",
        }
    }

    /// Whether the generation ended by itself rather than by running out
    /// of tokens.
    pub fn is_stop(self) -> bool {
        self != Finish::Length
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_length_is_not_a_stop() {
        let all = [
            Finish::Length,
            Finish::EndOfSequence,
            Finish::StopToken(3),
            Finish::StopString {
                index: 0,
                offset: 2,
            },
            Finish::ConstraintComplete,
        ];
        for f in all {
            assert_eq!(f.is_stop(), f != Finish::Length);
            assert_eq!(f.openai_reason() == "length", f == Finish::Length);
        }
        assert_eq!(
            serde_json::to_string(&Finish::StopString {
                index: 1,
                offset: 4
            })
            .unwrap(),
            r#"{"stop_string":{"index":1,"offset":4}}"#
        );
    }
}

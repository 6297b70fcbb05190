//! Regex for choosing one of several literal strings.

/// A regex matching exactly one of `choices`, each taken literally; for
/// `select`-style generation by constrained decoding. No choices gives a
/// regex that matches nothing (compiling it reports
/// [`crate::ConstraintError::MatchesNothing`]).
pub fn choices_to_regex(choices: &[String]) -> String {
    if choices.is_empty() {
        return r"[^\x00-\x{10FFFF}]".to_owned();
    }
    let escaped: Vec<String> = choices.iter().map(|c| regex_syntax::escape(c)).collect();
    format!("(?:{})", escaped.join("|"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ConstraintError, Limits, TokenFsm, Vocab};
    use std::sync::Arc;

    #[test]
    fn choices_are_literal_and_prefixes_stay_open() {
        let v = Arc::new(Vocab::new(
            (0..=255u8).map(|b| vec![b]).collect(),
            vec![256],
            vec![],
        ));
        let choices = vec!["a.b".to_owned(), "a".to_owned(), "(x|y)".to_owned()];
        let fsm = TokenFsm::from_regex(&choices_to_regex(&choices), v.clone(), &Limits::default())
            .unwrap();
        let s = fsm.advance_bytes(fsm.start(), b"a").unwrap();
        assert!(
            fsm.is_accepting(s) && !fsm.is_finished(s),
            "a, or go on to a.b"
        );
        assert!(
            fsm.advance_bytes(fsm.start(), b"axb").is_none(),
            "dot is literal"
        );
        assert!(fsm.is_finished(fsm.advance_bytes(fsm.start(), b"(x|y)").unwrap()));
        assert_eq!(
            TokenFsm::from_regex(&choices_to_regex(&[]), v, &Limits::default()).err(),
            Some(ConstraintError::MatchesNothing)
        );
    }
}

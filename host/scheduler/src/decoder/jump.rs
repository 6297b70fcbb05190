//! Jump-forward: text a constraint forces is appended in one step instead of
//! being decoded token by token (the compressed FSM of SGLang).

use arbor_constraint::{FsmState, TokenFsm, Vocab};
use arbor_engine::Tokenizer;

/// When the automaton forces text after `tok`, the tokens to append
/// instead of `tok` alone (at most `room + 1`), and the state after them.
///
/// The forced text is tokenized together with `tok`'s own text, as the
/// tokenizer would split the whole, so the model never sees a token
/// boundary its tokenizer would not produce (`tok`'s K/V is not computed
/// yet, so replacing it costs nothing).
pub fn jump_forward(
    fsm: &TokenFsm,
    vocab: &Vocab,
    tokenizer: &Tokenizer,
    before: FsmState,
    tok: u32,
    room: usize,
) -> Option<(Vec<u32>, FsmState)> {
    let after = fsm.advance(before, tok)?;
    let forced = fsm.forced_bytes(after);
    if forced.is_empty() {
        return None;
    }
    let mut bytes = vocab.token_bytes(tok).to_vec();
    let own = bytes.len();
    bytes.extend_from_slice(&forced);
    // Only whole characters can be tokenized as text.
    let valid = match std::str::from_utf8(&bytes) {
        Ok(_) => bytes.len(),
        Err(e) => e.valid_up_to(),
    };
    if valid <= own {
        return None;
    }
    let text = std::str::from_utf8(&bytes[..valid]).ok()?;
    let mut ids = tokenizer.encode(text).ok()?;
    // Whole tokens within the output budget; the automaton checks them.
    ids.truncate(room + 1);
    if ids.len() <= 1 {
        return None;
    }
    let state = fsm.advance_tokens(before, &ids)?;
    Some((ids, state))
}

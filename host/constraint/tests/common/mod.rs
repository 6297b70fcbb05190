//! Shared helpers: a synthetic vocabulary and a random walk through a token FSM.

#![allow(dead_code)]

use std::sync::Arc;

use arbor_constraint::{FsmState, TokenFsm, Vocab};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Fragments that make overlapping multi-byte tokens likely to be useful
/// under JSON and the test regexes.
const FRAGMENTS: &[&str] = &[
    "{", "}", "[", "]", "\"", ":", ",", " ", "\n", "\t", "\\", "\\\"", "\\n", "\\u", "00", "e9",
    "d8", "3d", "de", "0", "1", "2", "5", "9", "-", ".", "e", "E", "+", "a", "b", "c", "x", "z",
    "@", "/", "T", "Z", "true", "false", "null", "name", "age", "com", "http", "é", "日", "本",
    "é", "ab", "abc", "-0", "12",
];

/// Every single byte (id = byte value), then `extra` random concatenations
/// of fragments and raw bytes (including partial UTF-8 sequences), a
/// special token, and EOS last.
pub fn synthetic_vocab(seed: u64, extra: usize) -> Arc<Vocab> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut tokens: Vec<Vec<u8>> = (0..=255u8).map(|b| vec![b]).collect();
    for _ in 0..extra {
        let parts = rng.random_range(1..=4);
        let mut t = Vec::new();
        for _ in 0..parts {
            if rng.random_bool(0.1) {
                t.push(rng.random::<u8>());
            } else {
                t.extend_from_slice(FRAGMENTS[rng.random_range(0..FRAGMENTS.len())].as_bytes());
            }
        }
        tokens.push(t);
    }
    tokens.push(b"<|tool|>".to_vec());
    let special = tokens.len() as u32 - 1;
    tokens.push(Vec::new());
    let eos = tokens.len() as u32 - 1;
    Arc::new(Vocab::new(tokens, vec![eos], vec![special]))
}

/// What a walk observed, for the caller's assertions.
pub struct Walk {
    pub output: Vec<u8>,
    pub ended_by_eos: bool,
    /// States visited, for spot checks.
    pub states: Vec<FsmState>,
}

/// Samples uniformly among allowed tokens until EOS or `budget` tokens;
/// then closes the output with the shortest completion, spelled with
/// single-byte tokens. Panics if the FSM ever offers nothing, or if EOS or
/// a token is allowed but `advance` disagrees.
pub fn random_walk(fsm: &TokenFsm, seed: u64, budget: usize) -> Walk {
    let mut rng = StdRng::seed_from_u64(seed);
    let vocab = fsm.vocab().clone();
    let mut s = fsm.start();
    let mut output = Vec::new();
    let mut states = vec![s];
    for _ in 0..budget {
        let allowed: Vec<u32> = fsm.allowed(s).iter().collect();
        assert!(
            !allowed.is_empty(),
            "dead end after {:?}",
            String::from_utf8_lossy(&output)
        );
        let t = allowed[rng.random_range(0..allowed.len())];
        let next = fsm.advance(s, t).expect("allowed token must advance");
        if vocab.is_eos(t) {
            assert!(fsm.is_accepting(s));
            return Walk {
                output,
                ended_by_eos: true,
                states,
            };
        }
        output.extend_from_slice(vocab.token_bytes(t));
        s = next;
        states.push(s);
    }
    for b in fsm.shortest_completion(s) {
        s = fsm
            .advance(s, b as u32)
            .expect("completion bytes are allowed tokens");
        output.push(b);
        states.push(s);
    }
    assert!(fsm.is_accepting(s));
    assert!(fsm.allowed(s).contains(vocab.eos_ids()[0]));
    Walk {
        output,
        ended_by_eos: false,
        states,
    }
}

/// Checks the trie-walk mask against the per-token reference and the forced
/// bytes against the single-byte tokens, at `state`.
pub fn check_state(fsm: &TokenFsm, state: FsmState) {
    assert_eq!(
        *fsm.allowed(state),
        fsm.compute_mask_per_token(state),
        "mask mismatch at {state:?}"
    );
    let forced = fsm.forced_bytes(state);
    let mut s = state;
    for &b in &forced {
        assert!(!fsm.is_accepting(s));
        let single: Vec<u32> = fsm.allowed(s).iter().filter(|&t| t < 256).collect();
        assert_eq!(
            single,
            vec![b as u32],
            "forced byte must be the only allowed byte"
        );
        s = fsm.advance(s, b as u32).unwrap();
    }
    // Where forcing stops, there is a choice or the state accepts.
    let single = fsm.allowed(s).iter().filter(|&t| t < 256).count();
    assert!(fsm.is_accepting(s) || single != 1 || fsm.forced_bytes(s).is_empty());
    assert_eq!(fsm.is_finished(s), fsm.is_accepting(s) && single == 0);
}

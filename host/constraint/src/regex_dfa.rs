//! Regex → byte DFA, restricted to the states that can still reach a match.
//!
//! `regex-automata` does the heavy lifting (parse, Thompson NFA, subset
//! construction, each under a size limit). Its DFA is then copied into a
//! small table over byte classes holding only *live* states: states from
//! which some continuation completes a match. Pruning the others matters for
//! constrained decoding: a state whose NFA set is non-empty but can never
//! match (e.g. after `a` in `a$b`) would let the model walk into a dead end
//! with no allowed token and no EOS.

use std::collections::{HashMap, VecDeque};

use regex_automata::dfa::{Automaton, StartKind, dense};
use regex_automata::nfa::thompson::{self, WhichCaptures};
use regex_automata::util::primitives::StateID;
use regex_automata::util::start;
use regex_automata::{Anchored, MatchKind};
use regex_syntax::hir::Hir;

use crate::error::ConstraintError;
use crate::limits::Limits;

/// Marker for "no live state": the transition leads nowhere useful.
pub(crate) const DEAD: u32 = u32::MAX;

/// A DFA over bytes holding only live states. State 0.. are indices; every
/// transition leads to a live state or to [`DEAD`].
pub(crate) struct ByteDfa {
    classes: [u8; 256],
    stride: usize,
    trans: Vec<u32>,
    accepting: Vec<bool>,
    /// Fewest bytes from each state to an accepting state.
    dist: Vec<u32>,
    /// For each class: its only byte when it has exactly one.
    singleton: Vec<Option<u8>>,
    /// For each class: the smallest byte in it.
    first_byte: Vec<u8>,
    start: u32,
}

/// Parses `pattern` with the crate's regex dialect: Unicode, UTF-8 only (the
/// output is text), and the nest limit of `limits`.
pub(crate) fn parse(pattern: &str, limits: &Limits) -> Result<Hir, ConstraintError> {
    regex_syntax::ParserBuilder::new()
        .nest_limit(limits.nest_limit)
        .utf8(true)
        .unicode(true)
        .build()
        .parse(pattern)
        .map_err(|e| ConstraintError::InvalidRegex(describe_syntax_error(&e)))
}

/// The parser's own `Display` reprints the whole pattern with a caret, which
/// is unreadable for a 60 KiB pattern; name the problem and its offset.
fn describe_syntax_error(e: &regex_syntax::Error) -> String {
    match e {
        regex_syntax::Error::Parse(e) => {
            format!("{} at byte {}", e.kind(), e.span().start.offset)
        }
        regex_syntax::Error::Translate(e) => {
            format!("{} at byte {}", e.kind(), e.span().start.offset)
        }
        other => other.to_string(),
    }
}

impl ByteDfa {
    /// Compiles `hir` under `limits`.
    pub(crate) fn compile(hir: &Hir, limits: &Limits) -> Result<Self, ConstraintError> {
        let nfa = thompson::Compiler::new()
            .configure(
                thompson::Config::new()
                    .utf8(true)
                    .which_captures(WhichCaptures::None)
                    .nfa_size_limit(Some(limits.nfa_size_limit)),
            )
            .build_from_hir(hir)
            .map_err(|e| {
                ConstraintError::TooBig(format!(
                    "{e} (nfa_size_limit is {} bytes)",
                    limits.nfa_size_limit
                ))
            })?;
        // MatchKind::All keeps every alternative alive after a match, so the
        // DFA recognises the regex's whole language rather than what a
        // leftmost-first search would report.
        let dfa = dense::Builder::new()
            .configure(
                dense::Config::new()
                    .match_kind(MatchKind::All)
                    .start_kind(StartKind::Anchored)
                    .accelerate(false)
                    .byte_classes(true)
                    .determinize_size_limit(Some(limits.determinize_size_limit))
                    .dfa_size_limit(Some(limits.dfa_size_limit)),
            )
            .build_from_nfa(&nfa)
            .map_err(|e| {
                if e.is_size_limit_exceeded() {
                    ConstraintError::TooBig(format!(
                        "{e} (determinize_size_limit {} bytes, dfa_size_limit {} bytes)",
                        limits.determinize_size_limit, limits.dfa_size_limit
                    ))
                } else {
                    ConstraintError::UnsupportedRegex(e.to_string())
                }
            })?;
        let start = dfa
            .start_state(&start::Config::new().anchored(Anchored::Yes))
            .map_err(|e| ConstraintError::UnsupportedRegex(e.to_string()))?;
        Self::from_dense(&dfa, start)
    }

    fn from_dense(dfa: &dense::DFA<Vec<u32>>, start: StateID) -> Result<Self, ConstraintError> {
        let mut classes = [0u8; 256];
        for b in 0..=255u8 {
            classes[b as usize] = dfa.byte_classes().get(b);
        }
        let stride = classes.iter().map(|&c| c as usize + 1).max().unwrap_or(1);
        let mut representative = vec![0u8; stride];
        let mut class_size = vec![0usize; stride];
        for b in (0..=255u8).rev() {
            representative[classes[b as usize] as usize] = b;
            class_size[classes[b as usize] as usize] += 1;
        }

        // Explore every state reachable from the start state.
        let is_void = |s: StateID| dfa.is_dead_state(s) || dfa.is_quit_state(s);
        let mut ids: HashMap<StateID, u32> = HashMap::new();
        let mut order: Vec<StateID> = Vec::new();
        let mut raw_trans: Vec<u32> = Vec::new();
        if !is_void(start) {
            ids.insert(start, 0);
            order.push(start);
        }
        let mut next = 0;
        while next < order.len() {
            let s = order[next];
            next += 1;
            for &rep in &representative {
                let t = dfa.next_state(s, rep);
                if is_void(t) {
                    raw_trans.push(DEAD);
                    continue;
                }
                let id = *ids.entry(t).or_insert_with(|| {
                    order.push(t);
                    (order.len() - 1) as u32
                });
                raw_trans.push(id);
            }
        }
        let n = order.len();
        if n == 0 {
            return Err(ConstraintError::MatchesNothing);
        }
        let raw_accepting: Vec<bool> = order
            .iter()
            .map(|&s| dfa.is_match_state(dfa.next_eoi_state(s)))
            .collect();

        // Backward BFS from accepting states gives each state's distance to
        // a match; unreached states are not live.
        let mut rev_count = vec![0u32; n + 1];
        for &t in &raw_trans {
            if t != DEAD {
                rev_count[t as usize + 1] += 1;
            }
        }
        for i in 0..n {
            rev_count[i + 1] += rev_count[i];
        }
        let mut rev = vec![0u32; rev_count[n] as usize];
        let mut fill = rev_count.clone();
        for (i, &t) in raw_trans.iter().enumerate() {
            if t != DEAD {
                rev[fill[t as usize] as usize] = (i / stride) as u32;
                fill[t as usize] += 1;
            }
        }
        let mut dist = vec![u32::MAX; n];
        let mut queue = VecDeque::new();
        for (i, &acc) in raw_accepting.iter().enumerate() {
            if acc {
                dist[i] = 0;
                queue.push_back(i);
            }
        }
        while let Some(t) = queue.pop_front() {
            for &p in &rev[rev_count[t] as usize..rev_count[t + 1] as usize] {
                if dist[p as usize] == u32::MAX {
                    dist[p as usize] = dist[t] + 1;
                    queue.push_back(p as usize);
                }
            }
        }
        if dist[0] == u32::MAX {
            return Err(ConstraintError::MatchesNothing);
        }

        // Renumber live states densely, keeping the start state at 0.
        let mut new_id = vec![DEAD; n];
        let mut live = Vec::new();
        for (i, &d) in dist.iter().enumerate() {
            if d != u32::MAX {
                new_id[i] = live.len() as u32;
                live.push(i);
            }
        }
        let mut trans = Vec::with_capacity(live.len() * stride);
        for &i in &live {
            for &t in &raw_trans[i * stride..(i + 1) * stride] {
                trans.push(if t == DEAD { DEAD } else { new_id[t as usize] });
            }
        }
        let this = Self {
            classes,
            stride,
            trans,
            accepting: live.iter().map(|&i| raw_accepting[i]).collect(),
            dist: live.iter().map(|&i| dist[i]).collect(),
            singleton: (0..stride)
                .map(|c| (class_size[c] == 1).then_some(representative[c]))
                .collect(),
            first_byte: representative,
            start: 0,
        };
        if this.dist.len() == 1 || this.live_classes(0).next().is_none() {
            // Live start state with no live transition: only "" matches.
            return Err(ConstraintError::OnlyEmpty);
        }
        Ok(this)
    }

    pub(crate) fn start(&self) -> u32 {
        self.start
    }

    pub(crate) fn num_states(&self) -> usize {
        self.accepting.len()
    }

    /// Next state on `byte`, or [`DEAD`].
    #[inline(always)]
    pub(crate) fn next(&self, state: u32, byte: u8) -> u32 {
        self.trans[state as usize * self.stride + self.classes[byte as usize] as usize]
    }

    pub(crate) fn is_accepting(&self, state: u32) -> bool {
        self.accepting[state as usize]
    }

    /// Classes with a live transition from `state`, with their target.
    fn live_classes(&self, state: u32) -> impl Iterator<Item = (usize, u32)> + '_ {
        let row = &self.trans[state as usize * self.stride..(state as usize + 1) * self.stride];
        row.iter()
            .enumerate()
            .filter(|(_, t)| **t != DEAD)
            .map(|(c, &t)| (c, t))
    }

    pub(crate) fn has_continuation(&self, state: u32) -> bool {
        self.live_classes(state).next().is_some()
    }

    /// The byte this state forces, if exactly one byte leads to a live state.
    pub(crate) fn forced_byte(&self, state: u32) -> Option<(u8, u32)> {
        let mut live = self.live_classes(state);
        let (class, target) = live.next()?;
        if live.next().is_some() {
            return None;
        }
        self.singleton[class].map(|b| (b, target))
    }

    /// A byte on a shortest path from `state` to acceptance, with its target;
    /// `None` if `state` is accepting.
    pub(crate) fn step_towards_accept(&self, state: u32) -> Option<(u8, u32)> {
        let d = self.dist[state as usize];
        if d == 0 {
            return None;
        }
        self.live_classes(state)
            .filter(|&(_, t)| self.dist[t as usize] == d - 1)
            .map(|(c, t)| (self.first_byte[c], t))
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compile(p: &str) -> Result<ByteDfa, ConstraintError> {
        let limits = Limits::default();
        ByteDfa::compile(&parse(p, &limits)?, &limits)
    }

    fn walk(d: &ByteDfa, s: &str) -> Option<u32> {
        s.bytes().try_fold(d.start(), |q, b| {
            let n = d.next(q, b);
            (n != DEAD).then_some(n)
        })
    }

    #[test]
    fn matches_the_whole_language_not_the_leftmost_first_one() {
        // Leftmost-first would stop after "a"; the constraint must allow "ab".
        let d = compile("a|ab").unwrap();
        assert!(d.is_accepting(walk(&d, "a").unwrap()));
        assert!(d.is_accepting(walk(&d, "ab").unwrap()));
        assert!(walk(&d, "abc").is_none());
        assert!(walk(&d, "b").is_none());
    }

    #[test]
    fn states_that_cannot_complete_are_dead() {
        // After "a" the NFA still holds the `$` assertion, but "b" can never follow.
        let d = compile("a$b|ac").unwrap();
        assert!(walk(&d, "a").is_some());
        assert!(walk(&d, "ab").is_none());
        assert!(d.forced_byte(walk(&d, "a").unwrap()).is_some());
    }

    #[test]
    fn empty_only_and_empty_languages_are_errors() {
        assert_eq!(compile("").err(), Some(ConstraintError::OnlyEmpty));
        assert_eq!(compile("a{0}").err(), Some(ConstraintError::OnlyEmpty));
        assert_eq!(compile("(?:)|(?:)").err(), Some(ConstraintError::OnlyEmpty));
        assert_eq!(
            compile("[a&&b]").err(),
            Some(ConstraintError::MatchesNothing)
        );
        assert_eq!(compile("a$b").err(), Some(ConstraintError::MatchesNothing));
    }

    #[test]
    fn shortest_completion_steps_reach_acceptance() {
        let d = compile("[a-z]{3}x|yy").unwrap();
        let mut q = d.start();
        let mut out = Vec::new();
        while let Some((b, t)) = d.step_towards_accept(q) {
            out.push(b);
            q = t;
        }
        assert_eq!(out, b"yy");
        assert!(d.is_accepting(q));
    }

    #[test]
    fn syntax_errors_name_the_problem_and_offset() {
        match compile("ab(c") {
            Err(ConstraintError::InvalidRegex(msg)) => {
                assert!(msg.contains("unclosed group"), "{msg}");
                assert!(msg.contains("byte 2"), "{msg}");
            }
            other => panic!("{:?}", other.err()),
        }
        assert!(matches!(
            compile(r"\bfoo"),
            Err(ConstraintError::UnsupportedRegex(_))
        ));
        assert!(matches!(
            compile(r"(?-u:\xFF)"),
            Err(ConstraintError::InvalidRegex(_))
        ));
    }
}

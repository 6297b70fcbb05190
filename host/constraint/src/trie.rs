//! Byte trie of the vocabulary, flattened in preorder.
//!
//! Computing a state's mask walks the DFA over this trie once: a token's
//! prefix is shared with every token extending it, so each distinct prefix
//! costs one transition, and a dead transition prunes every token below it
//! at once. Preorder with a "skip to end of subtree" index turns the walk into
//! a forward scan over one array, which keeps it cache-friendly.

use crate::mask::TokenMask;
use crate::vocab::Vocab;

const NO_TOKEN: u32 = u32::MAX;

#[derive(Clone, Copy)]
struct Node {
    /// Index of the first node after this node's subtree.
    skip: u32,
    /// Token whose bytes end at this node, or `NO_TOKEN`.
    token: u32,
    /// `depth << 8 | byte`: depth is 1 for children of the root.
    depth_byte: u32,
}

/// The flattened trie of every text token of a [`Vocab`].
#[derive(Default)]
pub(crate) struct TokenTrie {
    nodes: Vec<Node>,
    /// Tokens with the same bytes as an earlier token: (first, duplicate).
    duplicates: Vec<(u32, u32)>,
    max_depth: usize,
}

impl TokenTrie {
    pub(crate) fn build(vocab: &Vocab) -> Self {
        // Lexicographic order of byte strings is the trie's preorder.
        let mut ids: Vec<u32> = (0..vocab.len() as u32)
            .filter(|&t| vocab.is_text(t))
            .collect();
        ids.sort_by(|&a, &b| {
            vocab
                .token_bytes(a)
                .cmp(vocab.token_bytes(b))
                .then(a.cmp(&b))
        });

        let mut nodes: Vec<Node> = Vec::new();
        let mut duplicates = Vec::new();
        // path[d] = node index at depth d+1 along the current token's prefix.
        let mut path: Vec<usize> = Vec::new();
        let mut prev: &[u8] = &[];
        let mut max_depth = 0;
        for &id in &ids {
            let bytes = vocab.token_bytes(id);
            let lcp = prev.iter().zip(bytes).take_while(|(a, b)| a == b).count();
            while path.len() > lcp {
                let n = path.pop().expect("path longer than lcp");
                nodes[n].skip = nodes.len() as u32;
            }
            for (d, &b) in bytes.iter().enumerate().skip(lcp) {
                path.push(nodes.len());
                nodes.push(Node {
                    skip: 0,
                    token: NO_TOKEN,
                    depth_byte: ((d as u32 + 1) << 8) | b as u32,
                });
            }
            let end = *path.last().expect("text tokens are non-empty");
            if nodes[end].token == NO_TOKEN {
                nodes[end].token = id;
            } else {
                duplicates.push((nodes[end].token, id));
            }
            max_depth = max_depth.max(bytes.len());
            prev = bytes;
        }
        while let Some(n) = path.pop() {
            nodes[n].skip = nodes.len() as u32;
        }
        Self {
            nodes,
            duplicates,
            max_depth,
        }
    }

    /// Sets in `mask` every token whose bytes can be walked from `start`
    /// without `step` returning `dead`.
    #[inline]
    pub(crate) fn fill_mask(
        &self,
        start: u32,
        dead: u32,
        step: impl Fn(u32, u8) -> u32,
        mask: &mut TokenMask,
    ) {
        // states[d] = automaton state after the first d bytes of the current node's path.
        let mut states = vec![dead; self.max_depth + 1];
        states[0] = start;
        let nodes = &self.nodes[..];
        let words = mask.words_mut();
        let mut i = 0;
        while i < nodes.len() {
            let node = nodes[i];
            let depth = (node.depth_byte >> 8) as usize;
            let next = step(states[depth - 1], node.depth_byte as u8);
            if next == dead {
                i = node.skip as usize;
                continue;
            }
            states[depth] = next;
            // Branch-free: about half the nodes end a token, in no pattern
            // a predictor could learn; a no-token node ORs 0 into word 0.
            let has = node.token != NO_TOKEN;
            let t = if has { node.token as usize } else { 0 };
            words[t / 64] |= (has as u64) << (t % 64);
            i += 1;
        }
        for &(first, dup) in &self.duplicates {
            if mask.contains(first) {
                mask.insert(dup);
            }
        }
    }

    /// Number of nodes, i.e. distinct non-empty token prefixes.
    pub(crate) fn len(&self) -> usize {
        self.nodes.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vocab(tokens: &[&[u8]]) -> Vocab {
        Vocab::new(tokens.iter().map(|t| t.to_vec()).collect(), vec![], vec![])
    }

    /// A toy automaton over states 0..=3 that accepts walks spelling prefixes
    /// of "abc"; state 9 is dead.
    fn abc_step(s: u32, b: u8) -> u32 {
        match (s, b) {
            (0, b'a') => 1,
            (1, b'b') => 2,
            (2, b'c') => 3,
            _ => 9,
        }
    }

    #[test]
    fn shared_prefixes_are_one_node_and_dead_subtrees_are_pruned() {
        let v = vocab(&[b"ab", b"a", b"abc", b"b", b"abd", b"ab"]);
        // Nodes: a, ab, abc, abd, b.
        assert_eq!(v.trie().len(), 5);
        let mut m = TokenMask::empty(v.len());
        v.trie().fill_mask(0, 9, abc_step, &mut m);
        // "ab" appears twice (ids 0 and 5): both allowed.
        assert_eq!(m.iter().collect::<Vec<_>>(), vec![0, 1, 2, 5]);
        let mut m = TokenMask::empty(v.len());
        v.trie().fill_mask(2, 9, abc_step, &mut m);
        assert_eq!(m.iter().count(), 0);
    }
}

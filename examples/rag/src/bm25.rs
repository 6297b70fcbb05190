//! Okapi BM25 ranking over a small in-memory corpus.

use std::collections::HashMap;

const K1: f64 = 1.2;
const B: f64 = 0.75;

/// Lower-cased alphanumeric words.
pub fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// An index of documents' term frequencies.
pub struct Index {
    docs: Vec<HashMap<String, u32>>,
    lengths: Vec<usize>,
    doc_freq: HashMap<String, u32>,
    avg_len: f64,
}

impl Index {
    pub fn new<'a>(docs: impl IntoIterator<Item = &'a str>) -> Index {
        let mut index = Index {
            docs: Vec::new(),
            lengths: Vec::new(),
            doc_freq: HashMap::new(),
            avg_len: 0.0,
        };
        for doc in docs {
            let ws = words(doc);
            let mut tf = HashMap::new();
            for w in &ws {
                *tf.entry(w.clone()).or_insert(0) += 1;
            }
            for w in tf.keys() {
                *index.doc_freq.entry(w.clone()).or_insert(0) += 1;
            }
            index.lengths.push(ws.len());
            index.docs.push(tf);
        }
        let total: usize = index.lengths.iter().sum();
        index.avg_len = total as f64 / index.docs.len().max(1) as f64;
        index
    }

    /// Document indices by descending BM25 score for `query`, best first;
    /// ties keep corpus order.
    pub fn rank(&self, query: &str) -> Vec<(usize, f64)> {
        let n = self.docs.len() as f64;
        let terms = words(query);
        let mut scored: Vec<(usize, f64)> = self
            .docs
            .iter()
            .enumerate()
            .map(|(i, tf)| {
                let len_norm = 1.0 - B + B * self.lengths[i] as f64 / self.avg_len.max(1.0);
                let score = terms
                    .iter()
                    .map(|t| {
                        let f = f64::from(*tf.get(t).unwrap_or(&0));
                        let df = f64::from(*self.doc_freq.get(t).unwrap_or(&0));
                        let idf = ((n - df + 0.5) / (df + 0.5) + 1.0).ln();
                        idf * f * (K1 + 1.0) / (f + K1 * len_norm)
                    })
                    .sum();
                (i, score)
            })
            .collect();
        scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        scored
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_the_matching_document_first() {
        let idx = Index::new([
            "the cat sat on the mat",
            "dogs chase cats",
            "rust compiles to wasm",
        ]);
        assert_eq!(idx.rank("wasm rust")[0].0, 2);
        assert_eq!(idx.rank("cat mat")[0].0, 0);
        assert_eq!(idx.rank("zebra")[0].1, 0.0);
    }
}

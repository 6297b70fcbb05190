//! Retrieval-augmented answering: the guest keeps a small document set,
//! ranks it with BM25 for the question, and answers from the best passages.

mod bm25;

use arbor_guest::{Gen, State};
use serde::Serialize;

const DOCUMENTS: &[&str] = &[
    "Arbor runs LLM programs as WebAssembly components; each run gets its own sandbox with memory and time limits.",
    "A radix tree of KV-cache blocks lets requests that share a prompt prefix reuse the attention keys and values.",
    "Constrained decoding masks the logits of tokens that would take the output outside a regular expression or JSON Schema.",
    "Forking a state creates branches that share the whole prefix, so the prefix is computed once for all branches.",
    "The Okapi BM25 ranking function scores documents by term frequency, inverse document frequency and length.",
    "The scheduler batches decode steps of many programs together so the accelerator stays busy.",
    "WASI preview 2 gives components clocks and randomness without filesystem or network access unless granted.",
    "Tokenizers split text into subword units; byte-level BPE can encode any string without unknown tokens.",
];

const TOP_K: usize = 2;

#[derive(Serialize)]
struct Output {
    passages: Vec<usize>,
    answer: String,
}

fn run(question: String) -> Result<String, arbor_guest::Error> {
    let index = bm25::Index::new(DOCUMENTS.iter().copied());
    let best: Vec<usize> = index
        .rank(&question)
        .into_iter()
        .take(TOP_K)
        .map(|(i, _)| i)
        .collect();
    let s = State::new()?;
    s.system("Answer the question using only the given passages. Be brief.")?;
    let mut context = String::new();
    for (n, &i) in best.iter().enumerate() {
        context.push_str(&format!("Passage {}: {}\n", n + 1, DOCUMENTS[i]));
    }
    s.user(format!("{context}\nQuestion: {}", question.trim()))?;
    s.assistant_generate("answer", Gen::new().max_tokens(64))?;
    Ok(serde_json::to_string(&Output {
        passages: best,
        answer: s.variable("answer")?.trim().to_string(),
    })?)
}

arbor_guest::export!(run);

//! Guests in every language (Python, JavaScript, C) give the Rust guest's
//! output, byte for byte, for the same input, seeds and model: the SDKs
//! make the same calls in the same order, trim like Rust and write JSON
//! like serde_json. `examples/build.sh` builds the components.

#[path = "support/scheduler.rs"]
mod scheduler;
mod support;

use arbor_runtime::{RunOptions, Runtime, RuntimeConfig};

const LANGUAGES: [&str; 3] = ["python", "js", "c"];
const EXAMPLES: [&str; 3] = ["few_shot", "tree_of_thought", "json_extract"];
/// Plain, empty, Unicode, whitespace Rust trims (and Python or JavaScript
/// would trim differently), and characters JSON must escape.
const INPUTS: [&str; 5] = [
    "{}",
    "What is 2+3*4?",
    "",
    "\u{1c}\u{a0} Zoë, 42, from Zürich \u{85}\u{feff}",
    "a \"quoted\" back\\slash\nnew line\ttab",
];

async fn run(rt: &Runtime, lang: &str, name: &str, wasm: &[u8], input: &str) -> String {
    let program = rt
        .load(wasm)
        .unwrap_or_else(|e| panic!("{lang} {name}: {e}"));
    let out = rt.run(&program, input, RunOptions::default()).await;
    match out.output {
        Ok(s) => s,
        Err(e) => format!("error: {e}"),
    }
}

#[test]
fn every_language_gives_the_rust_output() {
    let backend = scheduler::start();
    // Compiled components are cached on disk, as `arbor run` and the server
    // do: Python and JavaScript components take seconds to compile.
    let rt = Runtime::new(
        RuntimeConfig {
            cache_dir: Some(std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("compiled")),
            ..RuntimeConfig::default()
        },
        backend,
    )
    .expect("runtime");
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut mismatches = Vec::new();
    for name in EXAMPLES {
        let rust = support::guest(name);
        let others: Vec<(&str, Vec<u8>)> = LANGUAGES
            .iter()
            .map(|&lang| {
                let path = support::guests_dir()
                    .join(lang)
                    .join(format!("{name}.wasm"));
                let bytes = std::fs::read(&path).unwrap_or_else(|e| {
                    panic!("{}: {e} (examples/build.sh builds it)", path.display())
                });
                (lang, bytes)
            })
            .collect();
        for input in INPUTS {
            let want = tokio.block_on(run(&rt, "rust", name, &rust, input));
            assert!(!want.starts_with("error:"), "rust {name} {input:?}: {want}");
            for (lang, wasm) in &others {
                let got = tokio.block_on(run(&rt, lang, name, wasm, input));
                if got != want {
                    mismatches.push(format!(
                        "{lang} {name} {input:?}:\n  rust: {want:?}\n  {lang}: {got:?}"
                    ));
                }
            }
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

//! Program start latency and WIT-boundary overhead, printed as JSON:
//!
//! ```text
//! cargo run --release -p arbor-runtime --example bench_start [-- BENCH_WASM]
//! ```
//!
//! Without an argument it uses the bench guest built by `examples/build.sh`
//! (building it if needed, see `tests/support`). The backend only
//! tokenizes: the benchmark measures the runtime, not the model.

#[path = "../tests/support/mod.rs"]
mod support;

use arbor_runtime::{BenchConfig, bench_runtime};

#[tokio::main]
async fn main() {
    let wasm = match std::env::args().nth(1) {
        Some(path) => std::fs::read(&path).unwrap_or_else(|e| panic!("read {path}: {e}")),
        None => support::guest("bench"),
    };
    let runtime = support::runtime();
    match bench_runtime(&runtime, &wasm, &BenchConfig::default()).await {
        Ok(report) => println!(
            "{}",
            serde_json::to_string_pretty(&report).expect("report serializes")
        ),
        Err(e) => {
            eprintln!("bench failed: {e}");
            std::process::exit(1);
        }
    }
}

//! Program start latency and WIT-boundary overhead, per guest language,
//! side by side in one process:
//!
//! ```text
//! cargo run --release -p arbor-runtime --example bench_start [-- [NAME=BENCH_WASM ...] [--quick]]
//! ```
//!
//! Without arguments it measures the bench guest of every language that
//! `examples/build.sh` built (`rust` = `bench.wasm`, others
//! `<lang>/bench.wasm`). Each guest is compiled once into a fresh disk
//! cache, then loaded again by a second runtime from that cache: the two
//! load times are what a program costs the first time and every later
//! time. The backend only tokenizes: this measures the runtime, not the
//! model. Prints one JSON report per guest, then a Markdown table.

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::Duration;

use arbor_runtime::{BenchConfig, BenchReport, RuntimeConfig, bench_runtime};

struct Measured {
    name: String,
    size: usize,
    compile: Duration,
    report: BenchReport,
}

#[tokio::main]
async fn main() {
    let mut quick = false;
    let mut guests: Vec<(String, Vec<u8>)> = Vec::new();
    for arg in std::env::args().skip(1) {
        if arg == "--quick" {
            quick = true;
            continue;
        }
        let (name, path) = arg.split_once('=').unwrap_or(("guest", arg.as_str()));
        let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("read {path}: {e}"));
        guests.push((name.to_string(), bytes));
    }
    if guests.is_empty() {
        guests.push(("rust".into(), support::guest("bench")));
        for lang in ["c", "js", "python"] {
            let p = support::guests_dir().join(lang).join("bench.wasm");
            if let Ok(bytes) = std::fs::read(&p) {
                guests.push((lang.into(), bytes));
            } else {
                eprintln!("note: no {} (build it with examples/build.sh)", p.display());
            }
        }
    }
    let config = if quick {
        BenchConfig {
            runs: 50,
            batches: 20,
            calls_per_batch: 200,
        }
    } else {
        BenchConfig::default()
    };
    let mut results = Vec::new();
    for (name, wasm) in guests {
        let cache = tempfile::tempdir().expect("tempdir");
        let with_cache = || {
            support::runtime_with(RuntimeConfig {
                cache_dir: Some(cache.path().to_path_buf()),
                ..RuntimeConfig::default()
            })
        };
        // The first runtime compiles into the empty disk cache; the second
        // is a later process that finds the compiled code there.
        let compile = {
            let rt = with_cache();
            let t = std::time::Instant::now();
            rt.load(&wasm).unwrap_or_else(|e| panic!("{name}: {e}"));
            t.elapsed()
        };
        let rt = with_cache();
        match bench_runtime(&rt, &wasm, &config).await {
            Ok(report) => {
                println!(
                    "{}",
                    serde_json::json!({"guest": name, "bytes": wasm.len(), "compile": compile, "report": report})
                );
                results.push(Measured {
                    name,
                    size: wasm.len(),
                    compile,
                    report,
                });
            }
            Err(e) => {
                eprintln!("bench of {name} failed: {e}");
                std::process::exit(1);
            }
        }
    }
    print_table(&results);
}

fn print_table(results: &[Measured]) {
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let head: Vec<&str> = results.iter().map(|m| m.name.as_str()).collect();
    println!("\n| | {} |", head.join(" | "));
    println!("|---|{}", "---|".repeat(results.len()));
    let row = |label: &str, f: &dyn Fn(&Measured) -> String| {
        let cells: Vec<String> = results.iter().map(f).collect();
        println!("| {label} | {} |", cells.join(" | "));
    };
    row("component size", &|m| {
        format!("{:.1} KiB", m.size as f64 / 1024.0)
    });
    row("compile (first load, empty cache)", &|m| {
        format!("{:.1} ms", ms(m.compile))
    });
    row("load from the disk cache", &|m| {
        format!("{:.2} ms", ms(m.report.load_first))
    });
    row("load from memory", &|m| {
        format!("{:.1} µs", us(m.report.load_cached))
    });
    let p = |x: &arbor_runtime::Percentiles| format!("{:.1} / {:.1} µs", us(x.median), us(x.p99));
    row("instantiate (median / p99)", &|m| p(&m.report.instantiate));
    row("start to first host call", &|m| {
        p(&m.report.start_to_first_call)
    });
    row("whole `start` run", &|m| p(&m.report.run));
    let n = |x: &arbor_runtime::Percentiles| {
        format!(
            "{:.0} / {:.0} ns",
            x.median.as_secs_f64() * 1e9,
            x.p99.as_secs_f64() * 1e9
        )
    };
    row("call `append(\"\")`", &|m| n(&m.report.call_empty));
    row("call `append(\"x\")`", &|m| n(&m.report.call_append));
    row("call `token-count()`", &|m| n(&m.report.call_read));
}

//! `arbor run` end to end: a sandboxed guest program (built by
//! `examples/build.sh`, which `scripts/test` runs first) against a tiny model.

use std::path::PathBuf;
use std::process::Command;

fn guest(name: &str) -> PathBuf {
    let dir = std::env::var_os("ARBOR_GUESTS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/guests"));
    let p = dir.join(format!("{name}.wasm"));
    assert!(
        p.exists(),
        "{} is missing: run examples/build.sh first (scripts/test does)",
        p.display()
    );
    p
}

fn model() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    let st = Command::new(env!("CARGO_BIN_EXE_arbor"))
        .args(["export", "--random", "tiny", "--seed", "3", "--out"])
        .arg(d.path())
        .status()
        .unwrap();
    assert!(st.success());
    d
}

/// The `arbor` binary: this build's, or `ARBOR_BIN` (where the test binary
/// runs on another machine than it was built on, as on the GPU machine).
fn arbor() -> Command {
    Command::new(
        std::env::var_os("ARBOR_BIN").unwrap_or_else(|| env!("CARGO_BIN_EXE_arbor").into()),
    )
}

/// On CUDA (`ARBOR_TEST_DEVICE=cuda:N`), every example program runs on an
/// f16 model through the paged graph and the process exits with status 0:
/// no crash at teardown (it once ended every run in a segmentation fault)
/// and no ONNX Runtime error printed. Without a CUDA device it says so.
#[test]
fn example_programs_exit_zero_on_cuda() {
    let Some(id) = std::env::var("ARBOR_TEST_DEVICE")
        .ok()
        .and_then(|d| d.strip_prefix("cuda:").map(str::to_owned))
    else {
        eprintln!("skipped: set ARBOR_TEST_DEVICE=cuda:N to run the examples on CUDA");
        return;
    };
    let d = tempfile::tempdir().unwrap();
    let st = arbor()
        .args([
            "export", "--random", "tiny", "--dtype", "f16", "--seed", "3", "--out",
        ])
        .arg(d.path())
        .status()
        .unwrap();
    assert!(st.success());
    for (name, input) in [
        ("few_shot", "{}"),
        ("tree_of_thought", "{}"),
        ("react_agent", "{}"),
        (
            "judge",
            r#"{"question": "Is the sky blue?", "answer_a": "Yes.", "answer_b": "No."}"#,
        ),
        ("json_extract", "{}"),
    ] {
        let out = arbor()
            .args([
                "run",
                "--no-cache",
                "--cuda",
                &id,
                "--input",
                input,
                "--model",
            ])
            .arg(d.path())
            .arg(guest(name))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{name}: {:?}\n{stderr}",
            out.status
        );
        assert!(!stderr.contains("Non-zero status code"), "{name}: {stderr}");
        assert!(
            stderr.contains("\"engine_steps\""),
            "{name}: statistics are printed: {stderr}"
        );
    }
}

#[test]
fn json_extraction_program_returns_schema_shaped_json() {
    let m = model();
    let out = Command::new(env!("CARGO_BIN_EXE_arbor"))
        .arg("run")
        .arg(guest("json_extract"))
        .arg("--model")
        .arg(m.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("the program prints JSON");
    assert!(v.is_object(), "{v}");
    assert!(
        stderr.contains("\"engine_steps\""),
        "statistics are printed: {stderr}"
    );
}

#[test]
fn tree_of_thought_program_forks_and_hits_the_cache() {
    let m = model();
    let out = Command::new(env!("CARGO_BIN_EXE_arbor"))
        .arg("run")
        .arg(guest("tree_of_thought"))
        .arg("--model")
        .arg(m.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let stats: serde_json::Value = serde_json::from_str(
        stderr
            .lines()
            .find_map(|l| l.strip_prefix("stats: "))
            .expect("stats line"),
    )
    .unwrap();
    assert!(
        stats["cache_hit_tokens"].as_u64().unwrap() > 0,
        "forked branches share their prefix: {stats}"
    );
}

#[test]
fn a_malformed_component_is_a_clear_error() {
    let m = model();
    let bad = m.path().join("bad.wasm");
    std::fs::write(&bad, b"\0asm not really").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_arbor"))
        .arg("run")
        .arg(&bad)
        .arg("--model")
        .arg(m.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.starts_with("error:") && !stderr.contains("panicked"),
        "{stderr}"
    );
}

/// Issue 12: after a run was stopped by its deadline, `arbor run` could exit
/// while the scheduler was inside a forward pass, and ONNX Runtime, torn
/// down under it, printed "Non-zero status code … GetElementType is not
/// implemented" (1 try in 6). The scheduler must be stopped between steps.
#[test]
fn a_deadline_never_leaves_onnx_runtime_mid_step_in_50_tries() {
    const TRIES: usize = 50;
    const WORKERS: usize = 2;
    let m = model();
    let cache = tempfile::tempdir().unwrap();
    let program = guest("misbehave");
    // A guest that keeps the model busy (one 64-token generation after
    // another) when the deadline strikes.
    let try_once = || {
        let out = Command::new(env!("CARGO_BIN_EXE_arbor"))
            .arg("run")
            .arg(&program)
            .arg("--model")
            .arg(m.path())
            .args([
                "--input",
                "tokens 1000",
                "--deadline-ms",
                "300",
                "--cache-dir",
            ])
            .arg(cache.path())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!out.status.success(), "{stderr}");
        assert!(stderr.contains("deadline of 300ms exceeded"), "{stderr}");
        assert!(
            !stderr.contains("onnxruntime") && !stderr.contains("Non-zero status"),
            "ONNX Runtime complained at exit:\n{stderr}"
        );
        let stats: serde_json::Value = serde_json::from_str(
            stderr
                .lines()
                .find_map(|l| l.strip_prefix("stats: "))
                .expect("stats line"),
        )
        .unwrap();
        assert!(
            stats["decode_tokens"].as_u64().unwrap() > 0,
            "the model was busy when the deadline came: {stats}"
        );
    };
    // The first try compiles the program into the cache the others share.
    try_once();
    let next = std::sync::atomic::AtomicUsize::new(1);
    std::thread::scope(|s| {
        for _ in 0..WORKERS {
            s.spawn(|| {
                while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < TRIES {
                    try_once();
                }
            });
        }
    });
}

//! `arbor run` end to end: a sandboxed guest program (built by
//! `examples/build.sh`, which `scripts/test` runs first) against a tiny model.

use std::path::PathBuf;
use std::process::Command;

fn guest(name: &str) -> PathBuf {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../target/guests")
        .join(format!("{name}.wasm"));
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

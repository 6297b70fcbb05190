//! `arbor bench engine` runs end to end and its `--json` lines are complete.

use std::process::Command;

#[test]
fn bench_engine_json() {
    let dir = std::env::temp_dir().join(format!("arbor-bench-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let out = Command::new(env!("CARGO_BIN_EXE_arbor"))
        .args([
            "bench",
            "engine",
            "--preset",
            "tiny",
            "--models-dir",
            dir.to_str().unwrap(),
            "--json",
        ])
        .args([
            "--batch",
            "1,3",
            "--prompt-len",
            "16",
            "--history",
            "8",
            "--decode-steps",
            "4",
            "--reps",
            "1",
        ])
        .output()
        .expect("run arbor");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        dir.join("tiny").join("arbor.json").is_file(),
        "the preset model is kept in --models-dir"
    );
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let got: Vec<(String, u64, u64, u64)> = lines
        .iter()
        .map(|m| {
            assert!(
                m["tokens_per_s"].as_f64().unwrap() > 0.0 && m["seconds"].as_f64().unwrap() > 0.0,
                "{m}"
            );
            assert_eq!(
                (
                    m["bench"].as_str(),
                    m["model"].as_str(),
                    m["device"].as_str()
                ),
                (Some("engine"), Some("tiny"), Some("cpu"))
            );
            let n = |k: &str| {
                m[k].as_u64()
                    .unwrap_or_else(|| panic!("{k} missing in {m}"))
            };
            (
                m["phase"].as_str().unwrap().to_string(),
                n("batch"),
                n("tokens"),
                n("passes"),
            )
        })
        .collect();
    let want = [
        ("prefill", 1, 16, 1),
        ("decode", 1, 4, 4),
        ("prefill", 3, 48, 1),
        ("decode", 3, 12, 4),
    ];
    let want: Vec<(String, u64, u64, u64)> = want
        .iter()
        .map(|&(p, b, t, n)| (p.to_string(), b, t, n))
        .collect();
    assert_eq!(got, want);
    assert!(
        stderr.contains("decode batch 3"),
        "progress goes to stderr: {stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bench_engine_scores_and_samples_both_ways_with_their_ratios() {
    let dir = std::env::temp_dir().join(format!("arbor-bench-score-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let out = Command::new(env!("CARGO_BIN_EXE_arbor"))
        .args(["bench", "engine", "--preset", "tiny", "--models-dir"])
        .arg(&dir)
        .args([
            "--json",
            "--batch",
            "2",
            "--prompt-len",
            "8",
            "--history",
            "8",
        ])
        .args([
            "--decode-steps",
            "2",
            "--reps",
            "1",
            "--score",
            "--temperature",
            "0.8",
        ])
        .output()
        .expect("run arbor");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let phases: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let m: serde_json::Value = serde_json::from_str(l).expect("JSON");
            m["phase"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(
        phases,
        [
            "prefill",
            "score",
            "score-host",
            "decode",
            "decode-sampled",
            "decode-sampled-host"
        ]
    );
    for ratio in [
        "scored with rows on the device",
        "sampled from device candidates",
    ] {
        assert!(stderr.contains(ratio), "no '{ratio}' ratio in:\n{stderr}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

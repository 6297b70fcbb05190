//! Bad input to the `arbor` binary: every case must exit non-zero with one
//! line on stderr that starts with `error:` and says what is wrong, and must
//! never panic.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

fn arbor(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_arbor"))
        .args(args)
        .output()
        .expect("run arbor")
}

/// Runs `arbor args` and checks it fails cleanly with `phrase` in its message.
#[track_caller]
fn fails(args: &[&str], phrase: &str) -> String {
    let out = arbor(args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success(),
        "arbor {args:?} succeeded; stderr: {stderr}"
    );
    assert!(
        !stderr.contains("panicked"),
        "arbor {args:?} panicked: {stderr}"
    );
    assert!(
        out.status.code().is_some(),
        "arbor {args:?} died of a signal: {stderr}"
    );
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "arbor {args:?}: stderr is not one line:\n{stderr}"
    );
    assert!(lines[0].starts_with("error: "), "arbor {args:?}: {stderr}");
    assert!(
        lines[0].to_lowercase().contains(&phrase.to_lowercase()),
        "arbor {args:?}: expected {phrase:?} in: {stderr}"
    );
    // To review the wording of every message: ARBOR_SHOW_ERRORS=1 cargo test -- --nocapture
    if std::env::var_os("ARBOR_SHOW_ERRORS").is_some() {
        print!("{stderr}");
    }
    stderr
}

/// A fresh directory under the system temp dir. Fixtures live in statics,
/// which are never dropped, so each process deletes the directories of
/// processes that no longer run instead.
fn scratch() -> PathBuf {
    static BASE: OnceLock<PathBuf> = OnceLock::new();
    static N: AtomicUsize = AtomicUsize::new(0);
    let base = BASE.get_or_init(|| {
        let root = std::env::temp_dir().join("arbor-cli-tests");
        if Path::new("/proc/self").exists()
            && let Ok(rd) = std::fs::read_dir(&root)
        {
            for e in rd.flatten() {
                let pid = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok());
                if let Some(pid) = pid
                    && !Path::new("/proc").join(pid.to_string()).exists()
                {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
        let base = root.join(std::process::id().to_string());
        let _ = std::fs::remove_dir_all(&base);
        base
    });
    let dir = base.join(N.fetch_add(1, Ordering::Relaxed).to_string());
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A valid tiny model, exported by the binary itself once per test binary;
/// its Hugging Face checkpoint is in `hf/`.
fn model() -> &'static Path {
    static M: OnceLock<PathBuf> = OnceLock::new();
    M.get_or_init(|| {
        let dir = scratch().join("tiny");
        let out = arbor(&[
            "export",
            "--random",
            "tiny",
            "--seed",
            "3",
            "--out",
            dir.to_str().unwrap(),
        ]);
        assert!(
            out.status.success(),
            "export failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        dir
    })
}

fn copy_dir(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for e in std::fs::read_dir(src).unwrap().flatten() {
        if e.file_type().unwrap().is_file() {
            std::fs::copy(e.path(), dst.join(e.file_name())).unwrap();
        }
    }
}

/// A copy of the valid checkpoint, for one test to damage.
fn hf_copy() -> PathBuf {
    let dir = scratch().join("hf");
    copy_dir(&model().join("hf"), &dir);
    dir
}

/// A copy of the valid model directory, for one test to damage.
fn model_copy() -> PathBuf {
    let dir = scratch().join("model");
    copy_dir(model(), &dir);
    dir
}

fn edit_config(hf: &Path, f: impl FnOnce(&mut serde_json::Value)) {
    let path = hf.join("config.json");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    f(&mut v);
    std::fs::write(&path, v.to_string()).unwrap();
}

/// `arbor export --from hf` into a fresh directory.
#[track_caller]
fn export_fails(hf: &Path, phrase: &str) -> String {
    let out = scratch().join("out");
    fails(
        &[
            "export",
            "--from",
            hf.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
        phrase,
    )
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn the_valid_model_works() {
    // The damaged copies below differ from this model in one way each.
    let out = arbor(&[
        "generate",
        "--model",
        s(model()),
        "--prompt-ids",
        "0,5,9",
        "--max-tokens",
        "4",
        "--ids",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .split(',')
            .count(),
        4
    );
    let out = scratch().join("again");
    let r = arbor(&["export", "--from", s(&model().join("hf")), "--out", s(&out)]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
}

#[test]
fn missing_files() {
    let missing = scratch().join("nothing-here");
    fails(
        &["generate", "--model", s(&missing), "--prompt", "hi"],
        "no arbor.json",
    );
    export_fails(&missing, "is not a directory");

    let hf = hf_copy();
    std::fs::remove_file(hf.join("config.json")).unwrap();
    export_fails(&hf, "config.json");

    let hf = hf_copy();
    std::fs::remove_file(hf.join("tokenizer.json")).unwrap();
    export_fails(&hf, "tokenizer.json");

    let hf = hf_copy();
    std::fs::remove_file(hf.join("model.safetensors")).unwrap();
    export_fails(
        &hf,
        "neither model.safetensors nor model.safetensors.index.json",
    );

    let hf = hf_copy();
    std::fs::rename(
        hf.join("model.safetensors"),
        hf.join("model-00001-of-00002.safetensors"),
    )
    .unwrap();
    let index = serde_json::json!({ "metadata": {}, "weight_map": {
        "model.embed_tokens.weight": "model-00001-of-00002.safetensors",
        "lm_head.weight": "model-00002-of-00002.safetensors",
    }});
    std::fs::write(hf.join("model.safetensors.index.json"), index.to_string()).unwrap();
    export_fails(&hf, "model-00002-of-00002.safetensors");

    for f in ["model.onnx", "weights.bin", "tokenizer.json", "arbor.json"] {
        let m = model_copy();
        std::fs::remove_file(m.join(f)).unwrap();
        fails(&["generate", "--model", s(&m), "--prompt", "hi"], f);
    }
}

#[test]
fn corrupt_files() {
    let hf = hf_copy();
    let st = hf.join("model.safetensors");
    let len = std::fs::metadata(&st).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&st)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    export_fails(&hf, "not a valid safetensors file");

    let hf = hf_copy();
    std::fs::write(hf.join("model.safetensors"), b"\x10\0\0").unwrap();
    export_fails(&hf, "not a valid safetensors file");

    let hf = hf_copy();
    std::fs::write(hf.join("config.json"), "{\"model_type\": \"llama\",").unwrap();
    export_fails(&hf, "not valid JSON");

    let hf = hf_copy();
    std::fs::write(hf.join("tokenizer.json"), "{}").unwrap();
    export_fails(&hf, "tokenizer.json");

    let m = model_copy();
    std::fs::write(m.join("arbor.json"), "{\"format_version\": 1}").unwrap();
    fails(
        &["generate", "--model", s(&m), "--prompt", "hi"],
        "arbor.json",
    );

    let m = model_copy();
    std::fs::write(m.join("tokenizer.json"), "not json").unwrap();
    fails(
        &["generate", "--model", s(&m), "--prompt", "hi"],
        "tokenizer.json",
    );

    let m = model_copy();
    let w = m.join("weights.bin");
    let len = std::fs::metadata(&w).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&w)
        .unwrap()
        .set_len(len / 3)
        .unwrap();
    fails(
        &["generate", "--model", s(&m), "--prompt", "hi"],
        "weights.bin",
    );

    let m = model_copy();
    std::fs::write(m.join("model.onnx"), b"\x08\x07garbage").unwrap();
    fails(
        &["generate", "--model", s(&m), "--prompt", "hi"],
        "model.onnx",
    );
}

#[test]
fn unsupported_or_inconsistent_config() {
    let hf = hf_copy();
    edit_config(&hf, |v| v["model_type"] = "gpt2".into());
    export_fails(&hf, "unsupported model_type \"gpt2\"");

    let hf = hf_copy();
    edit_config(&hf, |v| {
        v["rope_scaling"] = serde_json::json!({"rope_type": "yarn", "factor": 4.0})
    });
    export_fails(&hf, "unsupported rope_scaling type \"yarn\"");

    // The tensors are 128 wide; the config says 64.
    let hf = hf_copy();
    edit_config(&hf, |v| v["hidden_size"] = 64.into());
    export_fails(
        &hf,
        "has shape [512, 128], but config.json implies [512, 64]",
    );

    let hf = hf_copy();
    edit_config(&hf, |v| v["num_hidden_layers"] = 5.into());
    export_fails(&hf, "lacks tensor model.layers.4");

    let hf = hf_copy();
    edit_config(&hf, |v| v["num_key_value_heads"] = 3.into());
    export_fails(&hf, "not a multiple of num_key_value_heads");

    let hf = hf_copy();
    edit_config(&hf, |v| {
        v.as_object_mut().unwrap().remove("vocab_size");
    });
    export_fails(&hf, "vocab_size");

    // Zeros that would divide by zero or make empty tensors.
    for field in [
        "num_key_value_heads",
        "head_dim",
        "sliding_window",
        "max_position_embeddings",
    ] {
        let hf = hf_copy();
        edit_config(&hf, |v| {
            v[field] = 0.into();
            v["model_type"] = "mistral".into();
        });
        export_fails(&hf, field);
    }
}

#[test]
fn bad_prompts() {
    let m = s(model());
    fails(
        &["generate", "--model", m, "--prompt-ids", "99999"],
        "token id 99999 is outside the vocabulary",
    );
    let long: Vec<String> = (0..2100).map(|i| (i % 500).to_string()).collect();
    fails(
        &["generate", "--model", m, "--prompt-ids", &long.join(",")],
        "exceeds the model's context",
    );
    fails(
        &[
            "generate",
            "--model",
            m,
            "--prompt",
            "hi",
            "--max-tokens",
            "5000",
        ],
        "exceeds the model's context",
    );
    fails(
        &[
            "generate",
            "--model",
            m,
            "--prompt",
            "hi",
            "--temperature=-1",
        ],
        "temperature",
    );
    fails(
        &["generate", "--model", m, "--prompt", "hi", "--top-p", "0"],
        "top_p",
    );
}

#[test]
fn invalid_flags() {
    fails(&["frobnicate"], "unrecognized subcommand 'frobnicate'");
    fails(
        &[
            "generate",
            "--model",
            s(model()),
            "--prompt",
            "hi",
            "--bogus",
        ],
        "unexpected argument '--bogus'",
    );
    fails(&["generate", "--model", s(model())], "--prompt");
    fails(&["generate", "--prompt", "hi"], "--model");
    fails(
        &[
            "generate",
            "--model",
            s(model()),
            "--prompt",
            "hi",
            "--max-tokens",
            "many",
        ],
        "invalid value 'many'",
    );
    fails(
        &["generate", "--model", s(model()), "--prompt-ids", "1,x,2"],
        "invalid value 'x'",
    );
    fails(
        &[
            "generate",
            "--model",
            s(model()),
            "--prompt",
            "a",
            "--prompt-ids",
            "1",
        ],
        "cannot be used with",
    );
    fails(
        &["export", "--random", "huge", "--out", s(&scratch())],
        "invalid value 'huge'",
    );
    fails(
        &["bench", "engine", "--batch", "0", "--model", s(model())],
        "--batch",
    );
    fails(
        &[
            "bench",
            "engine",
            "--kv-slots",
            "100",
            "--model",
            s(model()),
        ],
        "--kv-slots 100 is too few",
    );
}

/// CI's ONNX Runtime is the CPU build: asking for CUDA must say so, not
/// fall back to the CPU silently.
#[test]
fn cuda_without_a_cuda_build() {
    for (args, phrase) in [
        ("generate --prompt hi --cuda 0", "cannot use CUDA device 0"),
        (
            "bench engine --cuda 0 --kv-in-host-memory",
            "cannot use CUDA device 0",
        ),
        ("bench engine --kv-in-host-memory", "--cuda"),
    ] {
        let mut args: Vec<&str> = args.split(' ').collect();
        args.extend(["--model", s(model())]);
        fails(&args, phrase);
    }
}

#[test]
fn help_and_version_still_succeed() {
    for args in [
        &["--help"][..],
        &["--version"],
        &["generate", "--help"],
        &["bench", "engine", "--help"],
    ] {
        let out = arbor(args);
        assert!(
            out.status.success(),
            "arbor {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!out.stdout.is_empty());
    }
}

//! Loading: rejection of malformed and over-importing components, and the
//! compiled-component cache.

mod support;

use arbor_runtime::{LoadError, RuntimeConfig};
use support::{guest, runtime, runtime_with};

#[test]
fn garbage_is_rejected_as_malformed() {
    let rt = runtime();
    for bytes in [&b""[..], b"hello world", b"\0asm\x0d\0\x01\0\xff\xff\xff"] {
        match rt.load(bytes) {
            Err(LoadError::Malformed(_)) => {}
            other => panic!("expected Malformed, got {:?}", other.map(|p| p.hash())),
        }
    }
}

#[test]
fn a_truncated_component_is_rejected_as_malformed() {
    let bytes = guest("semantics");
    let err = runtime()
        .load(&bytes[..bytes.len() / 2])
        .err()
        .expect("must fail");
    assert!(matches!(err, LoadError::Malformed(_)), "{err}");
}

#[test]
fn a_core_module_is_rejected_with_a_hint() {
    // The smallest core module: magic and version 1.
    let err = runtime().load(b"\0asm\x01\0\0\0").err().expect("must fail");
    assert!(err.to_string().contains("not a component"), "{err}");
}

#[test]
fn an_unknown_import_is_rejected_by_name() {
    let err = runtime()
        .load(&guest("extra_import"))
        .err()
        .expect("must fail");
    match &err {
        LoadError::UnsupportedImports { names, .. } => {
            assert_eq!(names, &["evil:guest/exfiltrate@0.1.0".to_string()]);
        }
        other => panic!("expected UnsupportedImports, got {other}"),
    }
    assert!(err.to_string().contains("evil:guest/exfiltrate"), "{err}");
}

#[test]
fn oversized_components_are_refused_before_compiling() {
    let rt = runtime_with(RuntimeConfig {
        max_component_bytes: 1000,
        ..Default::default()
    });
    let err = rt.load(&guest("semantics")).err().expect("must fail");
    assert!(
        matches!(err, LoadError::TooLarge { limit: 1000, .. }),
        "{err}"
    );
}

#[test]
fn loads_are_cached_in_memory_and_on_disk() {
    let dir = std::env::temp_dir().join(format!("arbor-cache-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let config = RuntimeConfig {
        cache_dir: Some(dir.clone()),
        ..Default::default()
    };
    let bytes = guest("semantics");
    let first = runtime_with(config.clone());
    let program = first.load(&bytes).expect("load");
    assert_eq!(program.hash(), first.load(&bytes).expect("reload").hash());
    // By hash, without the bytes: only what this runtime loaded itself.
    assert_eq!(
        first.cached(&program.hash()).map(|p| p.hash()),
        Some(program.hash())
    );
    assert!(first.cached(&"0".repeat(64)).is_none());
    assert!(first.cached("not a hash").is_none());
    assert!(first.cached(&program.hash().to_uppercase()[..63]).is_none());
    assert!(
        runtime_with(RuntimeConfig::default())
            .cached(&program.hash())
            .is_none()
    );
    let files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let name = files[0].file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        name.starts_with(&program.hash()) && name.ends_with(".cwasm"),
        "{name}"
    );

    // A fresh runtime finds the compiled file; a corrupt one is recompiled.
    let second = runtime_with(config.clone());
    assert_eq!(
        second.load(&bytes).expect("load from disk").hash(),
        program.hash()
    );
    std::fs::write(&files[0], b"not a cwasm").unwrap();
    let third = runtime_with(config);
    assert_eq!(
        third.load(&bytes).expect("recompile").hash(),
        program.hash()
    );
    assert!(
        std::fs::read(&files[0]).unwrap().len() > 100,
        "the cache file is rewritten"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

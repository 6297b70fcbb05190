//! Finding and loading ONNX Runtime's shared library.
//!
//! Arbor loads ONNX Runtime at run time (`ort`'s `load-dynamic`) from the
//! PyPI wheel (`onnxruntime` for CPU, `onnxruntime-gpu` for CUDA), so the
//! binary carries no native dependency and one build serves both.

use anyhow::{Result, bail};
use std::path::PathBuf;
use std::sync::OnceLock;

/// The wheel version Arbor is built and tested against.
pub const ORT_WHEEL: &str = "onnxruntime==1.31.1";

/// The library's path and the process-wide environment, which must outlive
/// every session (ONNX Runtime allows one environment per process).
static INIT: OnceLock<Result<(PathBuf, ort::environment::Environment), String>> = OnceLock::new();

/// Locates `libonnxruntime`: `ORT_DYLIB_PATH` first, else the `onnxruntime`
/// Python package of `python3` (or `$ARBOR_PYTHON`).
pub fn find_library() -> Result<PathBuf> {
    if let Ok(p) = std::env::var("ORT_DYLIB_PATH") {
        let p = PathBuf::from(p);
        if p.is_file() {
            return Ok(p);
        }
        bail!(
            "ORT_DYLIB_PATH={} does not name a file; point it at libonnxruntime.so",
            p.display()
        );
    }
    let python = std::env::var("ARBOR_PYTHON").unwrap_or_else(|_| "python3".into());
    let out = std::process::Command::new(&python)
        .args(["-c", "import onnxruntime, os; print(os.path.join(os.path.dirname(onnxruntime.__file__), 'capi'))"])
        .output();
    if let Ok(out) = out
        && out.status.success()
    {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if let Ok(rd) = std::fs::read_dir(&dir) {
            let mut libs: Vec<PathBuf> = rd
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with("libonnxruntime.so"))
                })
                .collect();
            libs.sort();
            if let Some(lib) = libs.pop() {
                return Ok(lib);
            }
        }
    }
    bail!(
        "ONNX Runtime not found. Install it with `{python} -m pip install {ORT_WHEEL}` \
         (or onnxruntime-gpu for CUDA), or set ORT_DYLIB_PATH to the path of libonnxruntime.so"
    )
}

/// Loads ONNX Runtime once per process and returns its environment; later
/// calls return the same outcome.
pub fn environment() -> Result<ort::environment::Environment> {
    init_inner()
        .as_ref()
        .map(|(_, env)| env.clone())
        .map_err(|e| anyhow::anyhow!(e.clone()))
}

/// Loads ONNX Runtime once per process and returns the library's path.
pub fn init() -> Result<PathBuf> {
    init_inner()
        .as_ref()
        .map(|(lib, _)| lib.clone())
        .map_err(|e| anyhow::anyhow!(e.clone()))
}

fn init_inner() -> &'static Result<(PathBuf, ort::environment::Environment), String> {
    INIT.get_or_init(|| {
        let lib = find_library().map_err(|e| e.to_string())?;
        let builder =
            ort::init_from(&lib).map_err(|e| format!("cannot load {}: {e}", lib.display()))?;
        let env = builder
            .with_name("arbor")
            .build()
            .map_err(|e| format!("cannot start ONNX Runtime: {e}"))?;
        Ok((lib, env))
    })
}

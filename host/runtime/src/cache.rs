//! Compiled components, cached by content hash in memory and as serialized
//! `.cwasm` files on disk.
//!
//! A `.cwasm` only loads into an engine with the same configuration, so the
//! file name carries a hash of the engine's compatibility data as well.

use std::collections::{HashMap, VecDeque};
use std::fs;
use std::hash::Hasher;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

use crate::error::LoadError;

/// SHA-256 of a component's bytes.
pub type ContentHash = [u8; 32];

/// Hex form of a hash, as used in file names and reports.
pub fn hex(hash: &ContentHash) -> String {
    hash.iter().map(|b| format!("{b:02x}")).collect()
}

/// Feeds `Hash` output into SHA-256 so the engine key is stable across
/// processes (std's hashers are randomly keyed).
struct ShaHasher(Sha256);

impl Hasher for ShaHasher {
    fn finish(&self) -> u64 {
        0
    }

    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

fn engine_key(engine: &Engine) -> String {
    let mut h = ShaHasher(Sha256::new());
    std::hash::Hash::hash(&engine.precompile_compatibility_hash(), &mut h);
    hex(&h.0.finalize().into())[..16].to_string()
}

/// Two-level cache of compiled components.
pub(crate) struct ComponentCache<T> {
    dir: Option<PathBuf>,
    engine_key: String,
    capacity: usize,
    memory: Mutex<(HashMap<ContentHash, T>, VecDeque<ContentHash>)>,
}

impl<T: Clone> ComponentCache<T> {
    pub(crate) fn new(
        engine: &Engine,
        dir: Option<PathBuf>,
        capacity: usize,
    ) -> Result<Self, LoadError> {
        if let Some(dir) = &dir {
            fs::create_dir_all(dir)
                .map_err(|e| LoadError::Cache(format!("cannot create {}: {e}", dir.display())))?;
        }
        Ok(ComponentCache {
            dir,
            engine_key: engine_key(engine),
            capacity: capacity.max(1),
            memory: Mutex::default(),
        })
    }

    pub(crate) fn get(&self, hash: &ContentHash) -> Option<T> {
        self.memory
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .0
            .get(hash)
            .cloned()
    }

    /// Keeps `value` in memory, evicting the oldest entry when full.
    pub(crate) fn insert(&self, hash: ContentHash, value: T) {
        let mut guard = self.memory.lock().unwrap_or_else(|e| e.into_inner());
        let (map, order) = &mut *guard;
        if map.insert(hash, value).is_none() {
            order.push_back(hash);
            while order.len() > self.capacity {
                if let Some(old) = order.pop_front() {
                    map.remove(&old);
                }
            }
        }
    }

    fn path(&self, hash: &ContentHash) -> Option<PathBuf> {
        let dir = self.dir.as_ref()?;
        Some(dir.join(format!("{}-{}.cwasm", hex(hash), self.engine_key)))
    }

    /// Compiles `bytes`, or loads their compiled form from disk.
    pub(crate) fn compile(
        &self,
        engine: &Engine,
        hash: &ContentHash,
        bytes: &[u8],
    ) -> Result<Component, LoadError> {
        let Some(path) = self.path(hash) else {
            return compile(engine, bytes);
        };
        // Read into memory rather than mapping the file: a mapped file that
        // someone truncates later would crash the process (SIGBUS).
        if let Ok(compiled) = fs::read(&path) {
            // SAFETY: the cache directory belongs to the host, and files in
            // it are written only by `store` below from `Component::serialize`
            // of an engine with this configuration (the name carries its
            // key); wasmtime still checks the header and refuses mismatches.
            match unsafe { Component::deserialize(engine, &compiled) } {
                Ok(c) => return Ok(c),
                Err(e) => {
                    tracing::warn!("ignoring unusable cache file {}: {e}", path.display());
                }
            }
        }
        let component = compile(engine, bytes)?;
        store(&component, &path)?;
        Ok(component)
    }
}

fn compile(engine: &Engine, bytes: &[u8]) -> Result<Component, LoadError> {
    Component::new(engine, bytes).map_err(|e| LoadError::Malformed(format!("{e:#}")))
}

/// Writes atomically, so that a concurrent reader never sees half a file.
fn store(component: &Component, path: &Path) -> Result<(), LoadError> {
    let err = |e: String| LoadError::Cache(format!("cannot write {}: {e}", path.display()));
    let bytes = component.serialize().map_err(|e| err(e.to_string()))?;
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let tmp = path.with_extension(format!(
        "tmp{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Relaxed)
    ));
    fs::write(&tmp, bytes).map_err(|e| err(e.to_string()))?;
    fs::rename(&tmp, path).map_err(|e| err(e.to_string()))
}

/// The content hash of `bytes`.
pub fn content_hash(bytes: &[u8]) -> ContentHash {
    Sha256::digest(bytes).into()
}

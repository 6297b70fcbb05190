//! The runtime: one wasmtime engine, its linker, the component cache and
//! the epoch ticker shared by all runs.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::thread::JoinHandle;
use std::time::Duration;

use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::backend::LmBackend;
use crate::bindings::ProgramPre;
use crate::cache::{ComponentCache, ContentHash, content_hash, hex};
use crate::context::Lm;
use crate::error::LoadError;
use crate::run::RunCtx;

/// Configuration of a [`Runtime`].
#[derive(Clone, Debug)]
pub struct RuntimeConfig {
    /// Where compiled components are kept between processes; `None` keeps
    /// them in memory only.
    pub cache_dir: Option<PathBuf>,
    /// Compiled components kept in memory.
    pub memory_cache_entries: usize,
    /// Runs that can be instantiated at once (slots of the pooling
    /// allocator); a run beyond that fails to start.
    pub max_concurrent_runs: u32,
    /// Largest linear memory any run may be given.
    pub max_memory_bytes: usize,
    /// Largest component accepted by [`Runtime::load`].
    pub max_component_bytes: usize,
    /// Period of the epoch ticker: the granularity of deadlines and of the
    /// yields that keep a busy guest from starving others.
    pub epoch_tick: Duration,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            cache_dir: None,
            memory_cache_entries: 256,
            max_concurrent_runs: 128,
            max_memory_bytes: 256 << 20,
            max_component_bytes: 64 << 20,
            epoch_tick: Duration::from_millis(1),
        }
    }
}

/// A compiled, linked program, ready to instantiate. Cheap to clone.
#[derive(Clone)]
pub struct Program {
    pub(crate) pre: ProgramPre<RunCtx>,
    hash: ContentHash,
}

impl Program {
    /// SHA-256 of the component, hex-encoded.
    pub fn hash(&self) -> String {
        hex(&self.hash)
    }
}

/// Runs programs against one [`LmBackend`]. Create one per process and
/// share it; every method takes `&self`.
pub struct Runtime {
    pub(crate) engine: Engine,
    pub(crate) linker: Linker<RunCtx>,
    pub(crate) lm: Arc<Lm>,
    pub(crate) config: RuntimeConfig,
    cache: ComponentCache<Program>,
    ticker: Ticker,
}

impl Runtime {
    /// A runtime with its own engine and epoch ticker thread.
    pub fn new(config: RuntimeConfig, backend: Arc<dyn LmBackend>) -> Result<Self, LoadError> {
        let engine = Engine::new(&engine_config(&config))
            .map_err(|e| LoadError::Engine(format!("{e:#}")))?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .map_err(|e| LoadError::Engine(format!("{e:#}")))?;
        crate::bindings::Program::add_to_linker::<_, wasmtime::component::HasSelf<RunCtx>>(
            &mut linker,
            |c| c,
        )
        .map_err(|e| LoadError::Engine(format!("{e:#}")))?;
        let cache = ComponentCache::new(
            &engine,
            config.cache_dir.clone(),
            config.memory_cache_entries,
        )?;
        let ticker = Ticker::start(engine.clone(), config.epoch_tick)
            .map_err(|e| LoadError::Engine(format!("cannot start the epoch ticker: {e}")))?;
        Ok(Runtime {
            engine,
            linker,
            lm: Arc::new(Lm::new(backend)),
            config,
            cache,
            ticker,
        })
    }

    /// The program whose bytes hash to `hex_hash` (the form
    /// [`Program::hash`] returns), if it is in the memory cache. Entries
    /// are only made by [`Self::load`] from bytes it hashed itself, so a
    /// caller that stores programs by content hash can skip reading and
    /// hashing them again (milliseconds for interpreter-carrying guests).
    pub fn cached(&self, hex_hash: &str) -> Option<Program> {
        if hex_hash.len() != 64 || !hex_hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let mut hash: ContentHash = [0; 32];
        for (i, byte) in hash.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex_hash[2 * i..2 * i + 2], 16).ok()?;
        }
        self.cache.get(&hash)
    }

    /// Compiles (or fetches from the cache) and links a component.
    ///
    /// Compiling a new component takes milliseconds to seconds of CPU:
    /// call this from a blocking context (`spawn_blocking`) in servers.
    pub fn load(&self, bytes: &[u8]) -> Result<Program, LoadError> {
        if bytes.len() > self.config.max_component_bytes {
            return Err(LoadError::TooLarge {
                size: bytes.len(),
                limit: self.config.max_component_bytes,
            });
        }
        check_header(bytes)?;
        let hash = content_hash(bytes);
        if let Some(p) = self.cache.get(&hash) {
            return Ok(p);
        }
        let component = self.cache.compile(&self.engine, &hash, bytes)?;
        let program = self.link(component, hash)?;
        self.cache.insert(hash, program.clone());
        Ok(program)
    }

    fn link(&self, component: Component, hash: ContentHash) -> Result<Program, LoadError> {
        let pre = self.linker.instantiate_pre(&component).map_err(|e| {
            let names = unsupported_imports(&self.engine, &component);
            LoadError::UnsupportedImports {
                names: if names.is_empty() {
                    vec!["an interface".into()]
                } else {
                    names
                },
                detail: format!("{e:#}"),
            }
        })?;
        let pre = ProgramPre::new(pre).map_err(|e| LoadError::BadExports(format!("{e:#}")))?;
        Ok(Program { pre, hash })
    }

    /// The backend's engine-side statistics.
    pub fn backend_stats(&self) -> serde_json::Value {
        self.lm.backend.stats()
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.ticker.stop();
    }
}

fn engine_config(config: &RuntimeConfig) -> Config {
    let runs = config.max_concurrent_runs.max(1);
    let mut pool = PoolingAllocationConfig::default();
    // Interpreted guests (componentize-py) bring dozens of core instances
    // and several tables per component; Rust guests a handful.
    pool.total_component_instances(runs)
        .total_core_instances(runs.saturating_mul(32))
        .total_memories(runs.saturating_mul(4))
        .total_tables(runs.saturating_mul(8))
        .total_stacks(runs)
        .max_memory_size(config.max_memory_bytes)
        .table_elements(1 << 16);
    let mut c = Config::new();
    c.wasm_component_model(true)
        .epoch_interruption(true)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool))
        .max_wasm_stack(1 << 20)
        .async_stack_size(2 << 20);
    c
}

/// Refuses what is not a component before the compiler sees it, with a
/// message that says what was given instead.
fn check_header(bytes: &[u8]) -> Result<(), LoadError> {
    const MAGIC: &[u8] = b"\0asm";
    if bytes.len() < 8 || &bytes[..4] != MAGIC {
        return Err(LoadError::Malformed("not a WebAssembly binary".into()));
    }
    // Bytes 4..8 are the version and layer: 0x0001_0000 is a core module.
    if bytes[4..8] == [1, 0, 0, 0] {
        return Err(LoadError::Malformed(
            "this is a core WebAssembly module, not a component (build for wasm32-wasip2)".into(),
        ));
    }
    Ok(())
}

/// Imports outside `arbor:lm` and the WASI packages the host links.
fn unsupported_imports(engine: &Engine, component: &Component) -> Vec<String> {
    const PROVIDED: &[&str] = &[
        "arbor:lm/lm@0.1.",
        "wasi:cli/",
        "wasi:io/",
        "wasi:clocks/",
        "wasi:random/",
        "wasi:filesystem/",
        "wasi:sockets/",
    ];
    component
        .component_type()
        .imports(engine)
        .filter(|(name, _)| !PROVIDED.iter().any(|p| name.starts_with(p)))
        .map(|(name, _)| name.to_string())
        .collect()
}

/// Advances the engine's epoch every tick, so that each store's deadline
/// callback runs about once per tick.
struct Ticker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Ticker {
    fn start(engine: Engine, tick: Duration) -> std::io::Result<Ticker> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("arbor-epoch".into())
            .spawn(move || {
                while !flag.load(Relaxed) {
                    std::thread::sleep(tick);
                    engine.increment_epoch();
                }
            })?;
        Ok(Ticker {
            stop,
            thread: Some(thread),
        })
    }

    fn stop(&mut self) {
        self.stop.store(true, Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

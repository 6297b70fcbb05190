//! Process-wide cache of compiled automata.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use crate::error::ConstraintError;
use crate::fsm::TokenFsm;
use crate::limits::Limits;
use crate::schema::{SchemaOptions, schema_str_to_regex, schema_to_regex};
use crate::vocab::Vocab;

type Compiled = Result<Arc<TokenFsm>, ConstraintError>;

#[derive(Clone, PartialEq, Eq, Hash)]
struct Key {
    vocab: u64,
    regex: String,
}

struct Entry {
    cell: Arc<OnceLock<Compiled>>,
    last_used: u64,
}

struct Inner {
    map: HashMap<Key, Entry>,
    tick: u64,
}

/// Compiled automata keyed by (vocabulary, regex), so each constraint is
/// compiled once however many requests use it. Thread-safe: concurrent
/// requests for the same key wait for one compilation instead of repeating
/// it, and requests for other keys are not blocked meanwhile (the map lock
/// is not held while compiling). Failures are cached too, so a hostile
/// pattern costs its compile-time limit once. Least recently used entries
/// are evicted beyond `capacity`; an `Arc<TokenFsm>` handed out stays valid.
///
/// Compilation is CPU-bound (milliseconds to seconds); call these methods
/// from a blocking context such as `tokio::task::spawn_blocking`.
pub struct ConstraintCache {
    limits: Limits,
    capacity: usize,
    inner: Mutex<Inner>,
}

impl ConstraintCache {
    /// A cache compiling under `limits`, holding at most `capacity` automata
    /// (at least one).
    pub fn new(limits: Limits, capacity: usize) -> Self {
        Self {
            limits,
            capacity: capacity.max(1),
            inner: Mutex::new(Inner {
                map: HashMap::new(),
                tick: 0,
            }),
        }
    }

    /// The automaton for a user regex (see [`TokenFsm::from_regex`]).
    pub fn regex(&self, pattern: &str, vocab: &Arc<Vocab>) -> Compiled {
        if pattern.len() > self.limits.max_pattern_len {
            return Err(ConstraintError::PatternTooLong {
                len: pattern.len(),
                max: self.limits.max_pattern_len,
            });
        }
        self.get(pattern.to_owned(), vocab)
    }

    /// The automaton for a JSON Schema (see [`crate::schema_to_regex`]).
    /// Translation runs on every call (it is cheap next to compilation);
    /// schemas that translate to the same regex share one automaton.
    pub fn schema(
        &self,
        schema: &serde_json::Value,
        options: &SchemaOptions,
        vocab: &Arc<Vocab>,
    ) -> Compiled {
        self.get(schema_to_regex(schema, options)?, vocab)
    }

    /// [`ConstraintCache::schema`] for schema text, keeping property order.
    pub fn schema_str(
        &self,
        schema: &str,
        options: &SchemaOptions,
        vocab: &Arc<Vocab>,
    ) -> Compiled {
        self.get(schema_str_to_regex(schema, options)?, vocab)
    }

    /// The automaton for a user regex if it is compiled already (or failed
    /// already), without compiling: callers answer cache hits on their own
    /// thread and move only real compilations to a blocking one.
    pub fn regex_if_cached(&self, pattern: &str, vocab: &Arc<Vocab>) -> Option<Compiled> {
        if pattern.len() > self.limits.max_pattern_len {
            return Some(self.regex(pattern, vocab));
        }
        let key = Key {
            vocab: vocab.fingerprint(),
            regex: pattern.to_owned(),
        };
        let mut inner = self.lock();
        inner.tick += 1;
        let tick = inner.tick;
        let e = inner.map.get_mut(&key)?;
        let done = e.cell.get()?.clone();
        e.last_used = tick;
        Some(done)
    }

    /// Number of cached entries (compiled, failed or in progress).
    pub fn len(&self) -> usize {
        self.lock().map.len()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // Compilation never runs under the lock, so a poisoned lock only
        // means a panic elsewhere mid-update of plain data; keep serving.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn get(&self, regex: String, vocab: &Arc<Vocab>) -> Compiled {
        let key = Key {
            vocab: vocab.fingerprint(),
            regex,
        };
        let cell = {
            let mut inner = self.lock();
            inner.tick += 1;
            let tick = inner.tick;
            if let Some(e) = inner.map.get_mut(&key) {
                e.last_used = tick;
                e.cell.clone()
            } else {
                if inner.map.len() >= self.capacity {
                    let oldest = inner
                        .map
                        .iter()
                        .min_by_key(|(_, e)| e.last_used)
                        .map(|(k, _)| k.clone());
                    if let Some(k) = oldest {
                        inner.map.remove(&k);
                    }
                }
                let cell = Arc::new(OnceLock::new());
                inner.map.insert(
                    key.clone(),
                    Entry {
                        cell: cell.clone(),
                        last_used: tick,
                    },
                );
                cell
            }
        };
        cell.get_or_init(|| {
            TokenFsm::from_trusted_length_regex(key.regex, vocab.clone(), &self.limits)
                .map(Arc::new)
        })
        .clone()
    }
}

impl std::fmt::Debug for ConstraintCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConstraintCache")
            .field("len", &self.len())
            .field("capacity", &self.capacity)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vocab() -> Arc<Vocab> {
        Arc::new(Vocab::new(
            (0..=255u8).map(|b| vec![b]).collect(),
            vec![],
            vec![],
        ))
    }

    #[test]
    fn same_pattern_compiles_once_and_vocabularies_are_kept_apart() {
        let cache = ConstraintCache::new(Limits::default(), 8);
        let v = vocab();
        let a = cache.regex("[a-z]+", &v).unwrap();
        let b = cache.regex("[a-z]+", &v).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        let other = Arc::new(Vocab::new(vec![b"ab".to_vec()], vec![], vec![]));
        let c = cache.regex("[a-z]+", &other).unwrap();
        assert!(!Arc::ptr_eq(&a, &c));
        assert_eq!(cache.len(), 2);
    }

    #[test]
    fn errors_are_cached_and_lru_entries_evicted() {
        let cache = ConstraintCache::new(Limits::default(), 2);
        let v = vocab();
        assert_eq!(
            cache
                .regex("(", &v)
                .err()
                .map(|e| e.to_string().contains("unclosed")),
            Some(true)
        );
        cache.regex("a", &v).unwrap();
        cache.regex("(", &v).unwrap_err(); // refresh "("
        cache.regex("b", &v).unwrap(); // evicts "a"
        assert_eq!(cache.len(), 2);
        let keys: Vec<String> = cache.lock().map.keys().map(|k| k.regex.clone()).collect();
        assert!(
            keys.contains(&"(".to_owned()) && keys.contains(&"b".to_owned()),
            "{keys:?}"
        );
    }

    #[test]
    fn concurrent_requests_share_one_compilation() {
        let cache = Arc::new(ConstraintCache::new(Limits::default(), 8));
        let v = vocab();
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let (cache, v) = (cache.clone(), v.clone());
                std::thread::spawn(move || cache.regex("[0-9]{1,5}(x|y)", &v).unwrap())
            })
            .collect();
        let fsms: Vec<Arc<TokenFsm>> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        assert!(fsms.windows(2).all(|w| Arc::ptr_eq(&w[0], &w[1])));
    }
}

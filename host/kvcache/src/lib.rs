//! The shared radix-tree KV cache: token-granular prefix sharing, reference
//! counts, LRU eviction, and the page-aware manager that owns the pool.
//!
//! The engine's KV pool has `pool_slots` token slots (one slot holds one
//! token's K/V for every layer), grouped in pages of `P` slots for paged
//! attention (`P == 1` on the CPU). [`KvManager`] owns all of them: it
//! keeps finished prefixes in a [`RadixCache`] (keyed by token ids,
//! partitioned by [`Namespace`]) so later requests reuse their K/V, and
//! hands each live sequence a [`SeqKv`] whose slots are page-consistent.
//!
//! Typical request lifecycle:
//! 1. `admit(ns, prompt, reserve)`: matches and locks the cached prefix,
//!    with copy on write for pages that cannot be shared;
//! 2. before each forward pass, `allocate(&mut seq, n)` slots for the new
//!    positions and hand `seq.take_copies()` to the engine with the pass;
//! 3. `commit_prefix(&mut seq, tokens)` once the prompt is computed, so
//!    others share it while this sequence keeps decoding;
//! 4. `release(seq, tokens, true)` caches the whole sequence and gives
//!    everything back.
//!
//! ```
//! use arbor_kvcache::{KvManager, Namespace};
//!
//! let mut kv = KvManager::new(64, 4, true)?; // 16 pages of 4 slots
//! let tenant = Namespace::tenant(7);
//! let prompt = [1, 2, 3, 4, 5, 6];
//!
//! let mut seq = kv.admit(tenant, &prompt, 8).expect("room");
//! assert_eq!(seq.cached_len(), 0);
//! let slots = kv.allocate(&mut seq, prompt.len())?;
//! // ... prefill writes K/V into `slots`; `seq.take_copies()` is empty ...
//! assert_eq!(seq.slots(), &slots[..]);
//! kv.commit_prefix(&mut seq, &prompt);
//! kv.release(seq, &prompt, true);
//!
//! // The same prompt again: the first full page is shared, the partial
//! // second page (token 5; token 6 is always computed) is copied.
//! let mut again = kv.admit(tenant, &prompt, 8).expect("room");
//! assert_eq!(again.cached_len(), 5);
//! assert_eq!(&again.slots()[..4], &slots[..4]);
//! let copies = again.take_copies();
//! assert_eq!((copies.len(), copies[0].src), (1, slots[4]));
//! // Another tenant sees nothing of it.
//! assert_eq!(kv.peek(Namespace::tenant(8), &prompt), 0);
//!
//! let audit = kv.audit([&again]);
//! assert_eq!(audit.invariants, Ok(()));
//! kv.release(again, &prompt, false);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! [`RadixCache`] and [`SlotAllocator`] remain usable on their own. This
//! crate is a pure data structure: it never touches the engine.

mod allocator;
mod arena;
mod error;
mod lru;
mod manager;
mod mount;
mod namespace;
mod node;
mod radix;
mod stats;

pub use allocator::SlotAllocator;
pub use arena::NodeId;
pub use error::{AllocError, CacheError};
pub use manager::{KvAudit, KvConfigError, KvError, KvManager, SeqKv, SlotCopy};
pub use namespace::Namespace;
pub use radix::{InsertOutcome, InvariantViolation, PrefixMatch, RadixCache};
pub use stats::CacheStats;

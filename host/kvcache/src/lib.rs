//! The shared radix-tree KV cache: token-granular prefix sharing, reference counts, LRU eviction.

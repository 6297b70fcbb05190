//! Namespaces: who may share which cached prefixes.
//!
//! Invariant: [`Namespace::PUBLIC`] and every tenant id are distinct
//! values, so no tenant can name its way into public or another tenant's
//! entries. How the cache keeps namespaces apart is documented with the
//! radix tree (`arbor_kvcache`).

use std::fmt;

use serde::Serialize;

/// A sharing domain for cached prefixes: a tenant, or the public domain.
///
/// Prefixes are shared only within one namespace, plus the public namespace
/// whose prefixes every namespace can match. The server gives each tenant
/// its own id; requests and programs of one tenant share its cache.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Serialize)]
pub struct Namespace(Option<u64>);

impl Namespace {
    /// Prefixes inserted here are visible to every namespace. Matching in
    /// `PUBLIC` itself sees only public prefixes.
    pub const PUBLIC: Namespace = Namespace(None);

    /// A private namespace. Every `u64` is a valid tenant id; none collides
    /// with [`Namespace::PUBLIC`].
    pub const fn tenant(id: u64) -> Self {
        Namespace(Some(id))
    }

    /// Whether this is [`Namespace::PUBLIC`].
    pub const fn is_public(self) -> bool {
        self.0.is_none()
    }

    /// The tenant id, or `None` for [`Namespace::PUBLIC`].
    pub const fn tenant_id(self) -> Option<u64> {
        self.0
    }
}

impl fmt::Display for Namespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            None => f.write_str("public"),
            Some(id) => write!(f, "tenant:{id}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_zero_is_not_public() {
        assert!(!Namespace::tenant(0).is_public());
        assert_ne!(Namespace::tenant(0), Namespace::PUBLIC);
        assert_eq!(Namespace::tenant(7).tenant_id(), Some(7));
        assert_eq!(Namespace::PUBLIC.tenant_id(), None);
        assert_eq!(Namespace::PUBLIC.to_string(), "public");
        assert_eq!(Namespace::tenant(3).to_string(), "tenant:3");
    }
}

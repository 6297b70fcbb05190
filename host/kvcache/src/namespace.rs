//! Namespaces: who may share which prefixes. The type is the shared
//! [`arbor_types::Namespace`]; what follows is how the tree keeps them apart.
//!
//! Prefixes are shared only within one namespace, plus the public namespace
//! whose prefixes every namespace can match.
//!
//! # Isolation design
//!
//! There is one tree. Public nodes (namespace [`Namespace::PUBLIC`]) hang
//! from the root and form the public subtree. A tenant's nodes are private:
//! a private node's children are private nodes of the same tenant, and the
//! top of every private chain is *mounted* on a public position (a public
//! node plus an offset into its edge, the root included). Mounts are not
//! stored on the public node a lookup walks through; they live in a mount
//! table owned by the tenant, keyed by that public position.
//!
//! A match (or insert) in tenant A therefore reads only: public nodes'
//! edges and public-children maps, A's own mount table, and A's own private
//! nodes. It never dereferences another tenant's node or table, so its
//! running time is a function of the query, the public tree and A's own
//! data only: B's prompts cannot show up in A's timings.
//!
//! For that argument to hold, tenant operations must never change the shape
//! of what other namespaces walk. Hence:
//! - a tenant never splits a public edge: a tenant continuation that leaves
//!   a public edge in its middle is mounted at (node, offset) instead, and a
//!   tenant match ending mid-public-edge returns that public node unsplit
//!   (only operations in [`Namespace::PUBLIC`] split public edges, and what
//!   they reveal is public anyway);
//! - tenants do change public nodes' lock counts and access times, but those
//!   are never read by lookups (only by eviction).
//!
//! What remains observable across namespaces is capacity: all namespaces
//! share one slot pool, so eviction pressure (which of *your own* entries
//! survive) depends on everyone's volume, and whether a public prefix is
//! still cached depends on who used it recently. Neither reveals another
//! tenant's private tokens. Lookups of A's mount table go through a
//! `HashMap<Namespace, _>` whose cost depends on the number of tenants, not on
//! their prompts.

pub use arbor_types::Namespace;

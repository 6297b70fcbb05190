//! API keys: random 32-byte bearer tokens, stored only as SHA-256 hashes,
//! and the extractor that turns a request's key into its tenant.

use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// Prefix that makes keys recognisable in logs and secret scanners.
const KEY_PREFIX: &str = "arb_";

/// A fresh API key (shown once) and the hash to store.
pub fn new_key() -> (String, String) {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let key = format!("{KEY_PREFIX}{}", hex(&bytes));
    let hash = hash_key(&key);
    (key, hash)
}

/// The stored form of a key. Keys carry 256 random bits, so a plain hash
/// (no salt, no slow KDF) cannot be brute-forced and lookups stay O(1).
pub fn hash_key(key: &str) -> String {
    hex(&Sha256::digest(key.as_bytes()))
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The authenticated tenant of a request.
#[derive(Clone, Debug)]
pub struct Tenant {
    pub id: i64,
    pub name: String,
}

impl FromRequestParts<Arc<AppState>> for Tenant {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let key = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .ok_or_else(ApiError::unauthorized)?;
        let row = state
            .db
            .tenant_by_key_hash(&hash_key(key))
            .map_err(ApiError::internal)?;
        match row {
            Some(t) => Ok(Tenant {
                id: t.id,
                name: t.name,
            }),
            None => {
                state
                    .metrics
                    .auth_failures
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                Err(ApiError::unauthorized())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_unique_and_hash_stably() {
        let (k1, h1) = new_key();
        let (k2, h2) = new_key();
        assert_ne!(k1, k2);
        assert_ne!(h1, h2);
        assert_eq!(hash_key(&k1), h1);
        assert!(k1.starts_with(KEY_PREFIX) && k1.len() == KEY_PREFIX.len() + 64);
        assert!(!h1.contains(&k1[KEY_PREFIX.len()..]));
    }
}

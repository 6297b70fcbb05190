//! Tenant administration for `arbor tenant`: works on the database
//! directly, so it needs no running server (and a running one sees the
//! change on its next request).

use crate::auth::new_key;
use crate::db::{Db, TenantRow};
use anyhow::{Result, bail};
use std::path::Path;

/// Creates a tenant; returns its API key, which is not stored anywhere.
pub fn create(data: &Path, name: &str) -> Result<String> {
    let name = name.trim();
    if name.is_empty()
        || name.len() > 64
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        bail!("tenant names are 1 to 64 characters of letters, digits, '-', '_' and '.'");
    }
    let (key, hash) = new_key();
    Db::open(data)?.create_tenant(name, &hash)?;
    Ok(key)
}

pub fn list(data: &Path) -> Result<Vec<TenantRow>> {
    Db::open(data)?.list_tenants()
}

/// Revokes the tenant's key; its programs and runs stay on record.
pub fn revoke(data: &Path, name: &str) -> Result<()> {
    if !Db::open(data)?.revoke_tenant(name)? {
        bail!("no active tenant named {name:?}");
    }
    Ok(())
}

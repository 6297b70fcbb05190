//! The SQLite store: tenants and their hashed keys, programs, run records.
//!
//! One connection behind a mutex: every statement here is an indexed
//! lookup or a single-row write, far cheaper than the requests they serve.
//! WAL mode lets `arbor tenant` write while a server reads.

use anyhow::{Context, Result};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use serde::Serialize;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// A tenant as the server sees it after authentication.
#[derive(Clone, Debug, Serialize)]
pub struct TenantRow {
    pub id: i64,
    pub name: String,
    pub created_at: i64,
    pub revoked: bool,
}

/// A program a tenant uploaded.
#[derive(Clone, Debug, Serialize)]
pub struct ProgramRow {
    pub id: String,
    pub size: i64,
    pub created_at: i64,
}

/// A run's persistent record.
#[derive(Clone, Debug, Serialize)]
pub struct RunRow {
    pub id: String,
    pub program_id: String,
    pub status: String,
    pub output: Option<String>,
    pub error: Option<String>,
    pub log: Option<String>,
    pub stats: Option<serde_json::Value>,
    pub idempotency_key: Option<String>,
    /// Times the run was started; more than one when a restart re-queued it.
    pub attempts: i64,
    pub created_at: i64,
    pub finished_at: Option<i64>,
}

/// A run left `running` by a previous process, as the restart finds it.
#[derive(Clone, Debug)]
pub struct Interrupted {
    pub id: String,
    pub tenant_id: i64,
    pub tenant_name: String,
    pub tenant_revoked: bool,
    pub program_id: String,
    pub input: String,
    pub attempts: i64,
}

/// Shared handle on the database.
#[derive(Clone)]
pub struct Db(Arc<Mutex<Connection>>);

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS tenants (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    key_hash TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
);
CREATE TABLE IF NOT EXISTS programs (
    tenant_id INTEGER NOT NULL REFERENCES tenants(id),
    id TEXT NOT NULL,
    size INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    tenant_id INTEGER NOT NULL REFERENCES tenants(id),
    program_id TEXT NOT NULL,
    status TEXT NOT NULL,
    input TEXT NOT NULL,
    output TEXT,
    error TEXT,
    log TEXT,
    stats TEXT,
    idempotency_key TEXT,
    created_at INTEGER NOT NULL,
    finished_at INTEGER
);
CREATE UNIQUE INDEX IF NOT EXISTS runs_idem ON runs(tenant_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX IF NOT EXISTS runs_tenant ON runs(tenant_id, created_at);
";

/// Changes to [`SCHEMA`] since it was first released, in order. SQLite's
/// `user_version` counts those a database has, so opening an older one
/// brings it up to date, each change in its own transaction.
const MIGRATIONS: &[&str] = &[
    // 1: how many times each run was started, so that a run in flight
    // during two crashes is failed rather than retried forever. Runs that
    // existed before had been started once.
    "ALTER TABLE runs ADD COLUMN attempts INTEGER NOT NULL DEFAULT 1;",
];

impl Db {
    /// Opens (creating if needed) `arbor.db` under `data`.
    pub fn open(data: &Path) -> Result<Db> {
        std::fs::create_dir_all(data).with_context(|| format!("creating {}", data.display()))?;
        let path = data.join("arbor.db");
        let mut conn =
            Connection::open(&path).with_context(|| format!("opening {}", path.display()))?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.execute_batch(SCHEMA).context("creating the schema")?;
        migrate(&mut conn).with_context(|| format!("migrating {}", path.display()))?;
        Ok(Db(Arc::new(Mutex::new(conn))))
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite inconsistent
        // (statements are atomic), so a poisoned lock is still usable.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn create_tenant(&self, name: &str, key_hash: &str) -> Result<i64> {
        let c = self.conn();
        c.execute(
            "INSERT INTO tenants (name, key_hash, created_at) VALUES (?1, ?2, ?3)",
            params![name, key_hash, now()],
        )
        .map_err(|e| match e {
            rusqlite::Error::SqliteFailure(f, _)
                if f.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                anyhow::anyhow!("a tenant named {name:?} already exists")
            }
            e => e.into(),
        })?;
        Ok(c.last_insert_rowid())
    }

    pub fn list_tenants(&self) -> Result<Vec<TenantRow>> {
        let c = self.conn();
        let mut st =
            c.prepare("SELECT id, name, created_at, revoked_at FROM tenants ORDER BY id")?;
        let rows = st.query_map([], |r| {
            Ok(TenantRow {
                id: r.get(0)?,
                name: r.get(1)?,
                created_at: r.get(2)?,
                revoked: r.get::<_, Option<i64>>(3)?.is_some(),
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Revokes a tenant's key; true when the tenant existed and was active.
    pub fn revoke_tenant(&self, name: &str) -> Result<bool> {
        let n = self.conn().execute(
            "UPDATE tenants SET revoked_at = ?2 WHERE name = ?1 AND revoked_at IS NULL",
            params![name, now()],
        )?;
        Ok(n == 1)
    }

    /// The active tenant holding the key with this hash.
    pub fn tenant_by_key_hash(&self, key_hash: &str) -> Result<Option<TenantRow>> {
        let c = self.conn();
        Ok(c.query_row(
            "SELECT id, name, created_at FROM tenants WHERE key_hash = ?1 AND revoked_at IS NULL",
            params![key_hash],
            |r| {
                Ok(TenantRow {
                    id: r.get(0)?,
                    name: r.get(1)?,
                    created_at: r.get(2)?,
                    revoked: false,
                })
            },
        )
        .optional()?)
    }

    pub fn tenant_names(&self) -> Result<Vec<(i64, String)>> {
        Ok(self
            .list_tenants()?
            .into_iter()
            .map(|t| (t.id, t.name))
            .collect())
    }

    /// Records a program; false when the tenant already had it.
    pub fn insert_program(&self, tenant: i64, id: &str, size: usize) -> Result<bool> {
        let n = self.conn().execute(
            "INSERT OR IGNORE INTO programs (tenant_id, id, size, created_at) VALUES (?1, ?2, ?3, ?4)",
            params![tenant, id, size as i64, now()],
        )?;
        Ok(n == 1)
    }

    pub fn get_program(&self, tenant: i64, id: &str) -> Result<Option<ProgramRow>> {
        Ok(self
            .conn()
            .query_row(
                "SELECT id, size, created_at FROM programs WHERE tenant_id = ?1 AND id = ?2",
                params![tenant, id],
                |r| {
                    Ok(ProgramRow {
                        id: r.get(0)?,
                        size: r.get(1)?,
                        created_at: r.get(2)?,
                    })
                },
            )
            .optional()?)
    }

    pub fn list_programs(&self, tenant: i64) -> Result<Vec<ProgramRow>> {
        let c = self.conn();
        let mut st =
            c.prepare("SELECT id, size, created_at FROM programs WHERE tenant_id = ?1 ORDER BY created_at, id")?;
        let rows = st.query_map(params![tenant], |r| {
            Ok(ProgramRow {
                id: r.get(0)?,
                size: r.get(1)?,
                created_at: r.get(2)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    pub fn count_programs(&self, tenant: i64) -> Result<usize> {
        let n: i64 = self.conn().query_row(
            "SELECT COUNT(*) FROM programs WHERE tenant_id = ?1",
            params![tenant],
            |r| r.get(0),
        )?;
        Ok(n as usize)
    }

    /// Deletes a tenant's program; returns whether it existed and whether
    /// any tenant still references the same content.
    pub fn delete_program(&self, tenant: i64, id: &str) -> Result<(bool, bool)> {
        let c = self.conn();
        let n = c.execute(
            "DELETE FROM programs WHERE tenant_id = ?1 AND id = ?2",
            params![tenant, id],
        )?;
        let still: i64 = c.query_row(
            "SELECT COUNT(*) FROM programs WHERE id = ?1",
            params![id],
            |r| r.get(0),
        )?;
        Ok((n == 1, still > 0))
    }

    /// Inserts a run unless the tenant already used this idempotency key,
    /// in which case the earlier run's id comes back.
    pub fn insert_run(
        &self,
        tenant: i64,
        id: &str,
        program: &str,
        input: &str,
        idem: Option<&str>,
    ) -> Result<Result<(), String>> {
        let c = self.conn();
        if let Some(k) = idem {
            let prior: Option<String> = c
                .query_row(
                    "SELECT id FROM runs WHERE tenant_id = ?1 AND idempotency_key = ?2",
                    params![tenant, k],
                    |r| r.get(0),
                )
                .optional()?;
            if let Some(p) = prior {
                return Ok(Err(p));
            }
        }
        c.execute(
            "INSERT INTO runs (id, tenant_id, program_id, status, input, idempotency_key, attempts, created_at) VALUES (?1, ?2, ?3, 'running', ?4, ?5, 1, ?6)",
            params![id, tenant, program, input, idem, now()],
        )?;
        Ok(Ok(()))
    }

    pub fn run_by_idempotency_key(&self, tenant: i64, key: &str) -> Result<Option<String>> {
        Ok(self
            .conn()
            .query_row(
                "SELECT id FROM runs WHERE tenant_id = ?1 AND idempotency_key = ?2",
                params![tenant, key],
                |r| r.get(0),
            )
            .optional()?)
    }

    pub fn finish_run(
        &self,
        id: &str,
        status: &str,
        output: Option<&str>,
        error: Option<&str>,
        log: Option<&str>,
        stats: Option<&serde_json::Value>,
    ) -> Result<()> {
        self.conn().execute(
            "UPDATE runs SET status = ?2, output = ?3, error = ?4, log = ?5, stats = ?6, finished_at = ?7 WHERE id = ?1 AND status = 'running'",
            params![id, status, output, error, log, stats.map(|s| s.to_string()), now()],
        )?;
        Ok(())
    }

    pub fn get_run(&self, tenant: i64, id: &str) -> Result<Option<RunRow>> {
        let c = self.conn();
        Ok(c.query_row(
            "SELECT id, program_id, status, output, error, log, stats, idempotency_key, created_at, finished_at, attempts FROM runs WHERE tenant_id = ?1 AND id = ?2",
            params![tenant, id],
            |r| {
                let stats: Option<String> = r.get(6)?;
                Ok(RunRow {
                    id: r.get(0)?,
                    program_id: r.get(1)?,
                    status: r.get(2)?,
                    output: r.get(3)?,
                    error: r.get(4)?,
                    log: r.get(5)?,
                    stats: stats.and_then(|s| serde_json::from_str(&s).ok()),
                    idempotency_key: r.get(7)?,
                    created_at: r.get(8)?,
                    finished_at: r.get(9)?,
                    attempts: r.get(10)?,
                })
            },
        )
        .optional()?)
    }

    /// Runs still `running`, oldest first: called at start-up, when none
    /// can be in flight, so the previous process stopped during these.
    pub fn interrupted_runs(&self) -> Result<Vec<Interrupted>> {
        let c = self.conn();
        let mut st = c.prepare(
            "SELECT r.id, r.tenant_id, t.name, t.revoked_at IS NOT NULL, r.program_id, r.input, r.attempts \
             FROM runs r JOIN tenants t ON t.id = r.tenant_id \
             WHERE r.status = 'running' ORDER BY r.created_at, r.rowid",
        )?;
        let rows = st.query_map([], |r| {
            Ok(Interrupted {
                id: r.get(0)?,
                tenant_id: r.get(1)?,
                tenant_name: r.get(2)?,
                tenant_revoked: r.get(3)?,
                program_id: r.get(4)?,
                input: r.get(5)?,
                attempts: r.get(6)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Counts one more start of a re-queued run; its attempts now.
    pub fn start_attempt(&self, id: &str) -> Result<i64> {
        Ok(self.conn().query_row(
            "UPDATE runs SET attempts = attempts + 1 WHERE id = ?1 AND status = 'running' RETURNING attempts",
            params![id],
            |r| r.get(0),
        )?)
    }

    /// Leaves a run stopped by a graceful shutdown for the next start,
    /// without counting the attempt it lost.
    pub fn requeue_run(&self, id: &str) -> Result<()> {
        self.conn().execute(
            "UPDATE runs SET attempts = MAX(attempts - 1, 0) WHERE id = ?1 AND status = 'running'",
            params![id],
        )?;
        Ok(())
    }
}

/// Applies the [`MIGRATIONS`] `conn` does not have yet. Each is checked
/// again inside its write transaction, so two processes opening an old
/// database at once apply it once.
fn migrate(conn: &mut Connection) -> Result<()> {
    for (i, sql) in MIGRATIONS.iter().enumerate() {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let have: usize = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if have <= i {
            tx.execute_batch(sql)
                .with_context(|| format!("schema change {}", i + 1))?;
            tx.pragma_update(None, "user_version", i + 1)?;
        }
        tx.commit()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_existing_database_is_migrated_and_its_interrupted_runs_found() {
        let dir = tempfile::tempdir().unwrap();
        {
            // A database as the first release left it, a run in flight.
            let c = Connection::open(dir.path().join("arbor.db")).unwrap();
            c.execute_batch(SCHEMA).unwrap();
            c.execute_batch(
                "INSERT INTO tenants (id, name, key_hash, created_at) VALUES (1, 'old', 'h', 0);
                 INSERT INTO runs (id, tenant_id, program_id, status, input, created_at)
                     VALUES ('run_a', 1, 'p', 'running', 'in', 0),
                            ('run_b', 1, 'p', 'succeeded', 'in', 0);",
            )
            .unwrap();
        }
        let db = Db::open(dir.path()).unwrap();
        let version: usize = db
            .conn()
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(version, MIGRATIONS.len());
        let runs = db.interrupted_runs().unwrap();
        assert_eq!(runs.len(), 1);
        assert_eq!(
            (
                runs[0].id.as_str(),
                runs[0].attempts,
                runs[0].tenant_name.as_str()
            ),
            ("run_a", 1, "old"),
            "a run from before had been started once"
        );
        assert_eq!(db.start_attempt("run_a").unwrap(), 2);
        db.requeue_run("run_a").unwrap();
        assert_eq!(db.get_run(1, "run_a").unwrap().unwrap().attempts, 1);
        drop(db);
        // Opening again changes nothing.
        let db = Db::open(dir.path()).unwrap();
        assert_eq!(db.get_run(1, "run_b").unwrap().unwrap().attempts, 1);
        assert_eq!(db.interrupted_runs().unwrap().len(), 1);
    }
}

//! `arbor tenant`: manage tenants and their API keys.

use anyhow::Result;
use std::path::PathBuf;

/// Create, list or revoke tenants of a server's data directory.
#[derive(clap::Subcommand)]
pub enum TenantCmd {
    /// Create a tenant; prints its API key (shown only once) on the last line.
    Create {
        name: String,
        #[arg(long, default_value = "arbor-data")]
        data: PathBuf,
    },
    /// List tenants.
    List {
        #[arg(long, default_value = "arbor-data")]
        data: PathBuf,
    },
    /// Revoke a tenant's key; requests with it get 401 from then on.
    Revoke {
        name: String,
        #[arg(long, default_value = "arbor-data")]
        data: PathBuf,
    },
}

pub fn run(cmd: TenantCmd) -> Result<()> {
    match cmd {
        TenantCmd::Create { name, data } => {
            let key = arbor_server::tenants::create(&data, &name)?;
            println!("created tenant {name}; its API key (store it now, it is not kept):");
            println!("{key}");
        }
        TenantCmd::List { data } => {
            for t in arbor_server::tenants::list(&data)? {
                println!(
                    "{}\t{}\t{}",
                    t.name,
                    if t.revoked { "revoked" } else { "active" },
                    t.created_at
                );
            }
        }
        TenantCmd::Revoke { name, data } => {
            arbor_server::tenants::revoke(&data, &name)?;
            println!("revoked tenant {name}");
        }
    }
    Ok(())
}

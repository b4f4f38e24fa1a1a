//! `portcullis store export` and `portcullis store import`: backup, restore, and migration
//! between the embedded store and etcd.
//!
//! An export is every object under `/registry/`, read at one store revision, written in key
//! order as JSON lines ([`format`](mod@format)), optionally gzip-compressed. An import reads a file twice:
//! once to validate every line, then to write the objects in bounded transactions, so a bad
//! file writes nothing. Neither touches the data directory's PKI or keys: those are files to
//! back up as files.

pub mod format;

mod export;
mod import;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};

use crate::storage::Store;
use crate::storage::flags::{Backend, StorageArgs};

/// `portcullis store`.
#[derive(Debug, clap::Subcommand)]
pub enum StoreCommand {
    /// Write every stored object to a file, for backup or to move to another backend.
    ///
    /// The objects are read at one store revision (with etcd; the embedded store needs the
    /// gateway stopped, so nothing changes under the export) and written in key order as JSON
    /// lines: a `PortcullisStoreExport` header, one `{"key": ..., "object": ...}` line per
    /// object, and a `PortcullisStoreExportEnd` line with the count, so a truncated file is
    /// refused on import. Output is gzip-compressed with --gzip or when FILE ends in `.gz`.
    ///
    /// Examples: `portcullis store export -o backup.jsonl.gz`,
    /// `portcullis store export --storage-backend etcd3 --etcd-servers https://etcd:2379 ... > backup.jsonl`.
    Export(ExportArgs),
    /// Load objects from an export into a store: restore a backup, or migrate.
    ///
    /// The whole file is checked first (header, every line, keys under /registry/ matching
    /// the objects' namespaces and names, no duplicate keys, the end line's count); a bad file
    /// is refused naming its line, and nothing is written. A store that already holds objects
    /// is refused unless --overwrite. Objects keep their uids, labels, data and every other
    /// field; their resourceVersions become the new store's revisions (clients re-list, as
    /// after any restore). The embedded store needs the gateway stopped; with etcd, import
    /// before gateways start, or use --overwrite. Gzip input is recognised by itself.
    ///
    /// Examples: `portcullis store import --data-dir new-data backup.jsonl.gz`,
    /// `portcullis store export | portcullis store import --storage-backend etcd3 --etcd-servers ... -`.
    Import(ImportArgs),
}

/// `portcullis store export`.
#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// The data directory holding the embedded store (`store.redb`).
    #[arg(long, default_value = "portcullis-data", value_name = "DIR")]
    pub data_dir: PathBuf,

    /// Where to write the export (`-`: standard output). A file is written beside its final
    /// name and renamed into place when complete, readable by its owner only (the export holds
    /// Secrets); a failed or interrupted (SIGINT, SIGTERM) export removes it.
    #[arg(short = 'o', long, default_value = "-", value_name = "FILE")]
    pub output: PathBuf,

    /// Gzip the output (implied by an output name ending in `.gz`).
    #[arg(long)]
    pub gzip: bool,

    /// The store to read (last, so that its help heading comes last).
    #[command(flatten)]
    pub storage: StorageArgs,
}

/// `portcullis store import`.
#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// The export to load (`-`: standard input; plain or gzip).
    #[arg(value_name = "FILE")]
    pub file: PathBuf,

    /// The data directory of the embedded store (`store.redb`, created when missing).
    #[arg(long, default_value = "portcullis-data", value_name = "DIR")]
    pub data_dir: PathBuf,

    /// Import into a store that already holds objects: keys in the file replace the stored
    /// ones, other stored keys stay.
    #[arg(long)]
    pub overwrite: bool,

    /// Check the file and the target store, and write nothing.
    #[arg(long)]
    pub dry_run: bool,

    /// Refuse files with more objects than this.
    #[arg(long, default_value_t = 1_000_000, value_name = "N")]
    pub max_objects: usize,

    /// The store to write (last, so that its help heading comes last).
    #[command(flatten)]
    pub storage: StorageArgs,
}

/// Runs `portcullis store ...`; returns the exit code.
pub fn run(command: &StoreCommand) -> Result<i32> {
    crate::tls::install_provider();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    match command {
        StoreCommand::Export(args) => runtime.block_on(export::run(args)),
        StoreCommand::Import(args) => runtime.block_on(import::run(args)),
    }
}

/// Opens the store the flags select. The embedded store is a single file a running gateway
/// holds locked, so that case gets a message saying to stop the gateway.
async fn open(storage: &StorageArgs, data_dir: &Path) -> Result<Arc<dyn Store>> {
    match storage.open(data_dir, false).await {
        Ok(store) => Ok(store),
        Err(e) if storage.storage_backend == Backend::Embedded && is_locked(&e) => bail!(
            "the embedded store `{}` is in use, most likely by a running gateway: stop it first \
             (export and import need the embedded store to themselves)",
            data_dir.join(EMBEDDED_FILE).display()
        ),
        Err(e) => Err(e),
    }
}

/// Says where the objects are, for messages.
fn describe(storage: &StorageArgs, data_dir: &Path) -> String {
    match storage.storage_backend {
        Backend::Embedded => format!(
            "the embedded store `{}`",
            data_dir.join(EMBEDDED_FILE).display()
        ),
        Backend::Etcd3 => format!(
            "etcd `{}` under `{}`",
            storage.etcd_servers.join(","),
            storage.etcd_prefix
        ),
    }
}

fn is_locked(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        matches!(
            cause.downcast_ref::<redb::DatabaseError>(),
            Some(redb::DatabaseError::DatabaseAlreadyOpen)
        )
    })
}

/// Counts by resource, as `configmaps 3, namespaces 4`.
fn counts(by_resource: &std::collections::BTreeMap<String, usize>) -> String {
    by_resource
        .iter()
        .map(|(resource, n)| format!("{resource} {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Objects read per list call: a page is held in memory, and etcd objects may be up to 1.5 MiB.
const PAGE: usize = 100;

/// The embedded store's file in the data directory.
const EMBEDDED_FILE: &str = "store.redb";

#[cfg(test)]
mod tests;

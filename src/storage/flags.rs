//! The storage flags `serve` and `store` share, with kube-apiserver's names, and opening the
//! backend they select.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};

use super::Store;
use super::embedded::EmbeddedStore;

/// Which backend holds the objects.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Backend {
    /// A single-file database in the data directory (`store.redb`).
    Embedded,
    /// An etcd v3 cluster (`--etcd-servers`); needs a build with the `etcd` feature.
    Etcd3,
}

/// Storage flags.
#[derive(Clone, Debug, Args)]
#[command(next_help_heading = "Storage")]
pub struct StorageArgs {
    /// The storage backend: `embedded` (default) or `etcd3`, which several gateway replicas
    /// can share.
    #[arg(long, value_enum, default_value = "embedded", value_name = "BACKEND")]
    pub storage_backend: Backend,

    /// etcd members to connect to, comma separated (`https://10.0.0.1:2379,...`).
    #[arg(long, value_delimiter = ',', value_name = "URLS")]
    pub etcd_servers: Vec<String>,

    /// CA bundle (PEM) that signed the etcd members' serving certificates.
    #[arg(long, value_name = "FILE")]
    pub etcd_cafile: Option<PathBuf>,

    /// Client certificate (PEM) for etcd.
    #[arg(long, value_name = "FILE", requires = "etcd_keyfile")]
    pub etcd_certfile: Option<PathBuf>,

    /// Private key (PEM) of --etcd-certfile.
    #[arg(long, value_name = "FILE", requires = "etcd_certfile")]
    pub etcd_keyfile: Option<PathBuf>,

    /// Root of portcullis' keys in etcd.
    #[arg(long, default_value = "/registry", value_name = "PREFIX")]
    pub etcd_prefix: String,

    /// How often etcd's history is compacted (to the revision seen one interval earlier, once
    /// per interval across replicas); 0 turns compaction off.
    #[arg(long, default_value = "5m", value_parser = crate::duration::flag, value_name = "DURATION")]
    pub etcd_compaction_interval: Duration,

    /// Bound on each etcd request; beyond it the request fails with 503 and `/readyz` fails.
    #[arg(long, default_value = "5s", value_parser = crate::duration::flag, value_name = "DURATION")]
    pub etcd_request_timeout: Duration,
}

impl StorageArgs {
    /// Opens the selected backend; the embedded one lives at `store.redb` in `data_dir`.
    /// `compact` starts etcd's compactor (the gateway does; a one-off command does not).
    pub async fn open(&self, data_dir: &Path, compact: bool) -> Result<Arc<dyn Store>> {
        match self.storage_backend {
            Backend::Embedded => {
                if !self.etcd_servers.is_empty() {
                    anyhow::bail!("--etcd-servers is set; add --storage-backend etcd3 to use it");
                }
                std::fs::create_dir_all(data_dir)
                    .with_context(|| format!("creating `{}`", data_dir.display()))?;
                let store = EmbeddedStore::open(&data_dir.join("store.redb"))
                    .with_context(|| format!("opening the store in `{}`", data_dir.display()))?;
                Ok(Arc::new(store))
            }
            Backend::Etcd3 => self.open_etcd(compact).await,
        }
    }

    #[cfg(feature = "etcd")]
    async fn open_etcd(&self, compact: bool) -> Result<Arc<dyn Store>> {
        use super::etcd::{EtcdConfig, EtcdStore};
        if self.etcd_servers.is_empty() {
            anyhow::bail!("--storage-backend etcd3 needs --etcd-servers");
        }
        let mut config = EtcdConfig::new(self.etcd_servers.clone());
        config.ca_file = self.etcd_cafile.clone();
        config.cert_file = self.etcd_certfile.clone();
        config.key_file = self.etcd_keyfile.clone();
        config.prefix = self.etcd_prefix.clone();
        config.request_timeout = self.etcd_request_timeout.max(Duration::from_millis(100));
        let store = EtcdStore::connect(&config)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))
            .context("connecting to etcd")?;
        if compact && !self.etcd_compaction_interval.is_zero() {
            store.spawn_compactor(self.etcd_compaction_interval);
        }
        Ok(Arc::new(store))
    }

    #[cfg(not(feature = "etcd"))]
    async fn open_etcd(&self, _compact: bool) -> Result<Arc<dyn Store>> {
        anyhow::bail!(
            "this portcullis was built without etcd support; rebuild it with \
             `cargo build --release --features etcd` (needs protoc: apt-get install protobuf-compiler)"
        )
    }
}

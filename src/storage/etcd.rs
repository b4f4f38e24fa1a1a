//! The etcd v3 backend (`--storage-backend etcd3`): several gateway replicas share one etcd
//! cluster, as kube-apiservers do.
//!
//! The [`Store`] trait is etcd's data model, so the mapping is direct: a key's `mod_revision` is
//! the object's `resourceVersion`; a transaction is one etcd `Txn` whose guards are compares on
//! each key's create or mod revision (a stale update fails the guard and is a 409); the failure
//! branch reads the guarded keys so the caller learns which guard failed and why; a list is a
//! series of range reads pinned to one revision; a watch is an etcd watch from `after + 1` with
//! previous values (so a delete carries the last object), resumed on another member when its
//! stream breaks, and ended with [`StoreError::Gone`] when etcd compacted the revisions it needs.
//!
//! Every call is bounded by a timeout; a cluster that does not answer in time, or cannot be
//! reached, is [`StoreError::Unavailable`] (503 at the API). The client balances over every
//! `--etcd-servers` URL and reconnects by itself, so the gateway recovers when etcd returns.
//!
//! Keys: the store's keys start with `/registry/`; that root is replaced by `--etcd-prefix`
//! (default `/registry`, as kube-apiserver's), so a gateway can share a cluster under another root.
//!
//! Limits the embedded store does not have: etcd refuses a transaction of more than
//! `--max-txn-ops` operations (128 by default) and one that writes the same key twice; both fail
//! as [`StoreError::Backend`] and change nothing. Callers that build a transaction per listed
//! object (a delete of a collection) must stay under the first.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use etcd_client::{
    Certificate, Client, Compare, CompareOp, ConnectOptions, DeleteOptions, EventType, GetOptions,
    Identity, PutOptions, TlsOptions, Txn, TxnOpResponse, WatchOptions,
};

use super::{
    EventKind, Filter, KeyValue, ListPage, Store, StoreError, TxnOp, TxnResult, WatchEvent,
    WatchStream,
};

/// The root of the store's own keys.
const ROOT: &str = "/registry";
/// The compactor's bookkeeping key, as kube-apiserver names it (outside every prefix).
const COMPACT_KEY: &str = "compact_rev_key";
/// Keys read per range request while listing.
const LIST_BATCH: i64 = 256;
/// The largest response accepted from etcd (a list batch of large objects).
const MAX_RESPONSE: usize = 256 * 1024 * 1024;
/// The first pause before a call that could not reach a member is sent again.
const RETRY_BACKOFF: Duration = Duration::from_millis(10);
/// The longest pause between such retries.
const MAX_RETRY_BACKOFF: Duration = Duration::from_millis(200);
/// Events a watcher may have buffered before the forwarding task waits for it.
const WATCH_BUFFER: usize = 1024;

/// How to reach the etcd cluster.
#[derive(Clone, Debug)]
pub struct EtcdConfig {
    /// Member URLs (`https://10.0.0.1:2379`, ...).
    pub servers: Vec<String>,
    /// CA bundle that signed the members' serving certificates (`--etcd-cafile`).
    pub ca_file: Option<PathBuf>,
    /// Client certificate (`--etcd-certfile`).
    pub cert_file: Option<PathBuf>,
    /// Client key (`--etcd-keyfile`).
    pub key_file: Option<PathBuf>,
    /// Root of portcullis' keys in etcd (`--etcd-prefix`).
    pub prefix: String,
    /// Bound on every unary call; beyond it the cluster counts as unavailable.
    pub request_timeout: Duration,
    /// Bound on opening a connection to one member.
    pub dial_timeout: Duration,
}

impl EtcdConfig {
    /// A configuration for `servers` with the defaults of kube-apiserver's flags.
    pub fn new(servers: Vec<String>) -> Self {
        EtcdConfig {
            servers,
            ca_file: None,
            cert_file: None,
            key_file: None,
            prefix: ROOT.to_owned(),
            request_timeout: Duration::from_secs(5),
            dial_timeout: Duration::from_secs(2),
        }
    }
}

/// A store in an etcd v3 cluster.
#[derive(Clone)]
pub struct EtcdStore {
    client: Client,
    prefix: String,
    timeout: Duration,
}

impl std::fmt::Debug for EtcdStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdStore")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl EtcdStore {
    /// A client for the cluster. Connections open lazily, so this succeeds while etcd is down;
    /// the configuration (URLs, certificate files) is checked here.
    pub async fn connect(config: &EtcdConfig) -> Result<Self, StoreError> {
        if config.servers.is_empty() {
            return Err(invalid("--etcd-servers is empty"));
        }
        let mut tls = None::<TlsOptions>;
        for url in &config.servers {
            let Some(rest) = url
                .strip_prefix("http://")
                .or_else(|| url.strip_prefix("https://"))
            else {
                return Err(invalid(format!(
                    "etcd server `{url}` must be an http:// or https:// URL"
                )));
            };
            if rest.is_empty() || rest.contains('/') && !rest.ends_with('/') {
                return Err(invalid(format!(
                    "etcd server `{url}` must be scheme://host:port"
                )));
            }
            if url.starts_with("https://") {
                tls.get_or_insert_with(TlsOptions::new);
            }
        }
        if let Some(ca) = &config.ca_file {
            let pem = read(ca, "--etcd-cafile")?;
            tls = Some(
                tls.unwrap_or_default()
                    .ca_certificate(Certificate::from_pem(pem)),
            );
        }
        match (&config.cert_file, &config.key_file) {
            (Some(cert), Some(key)) => {
                let identity = Identity::from_pem(
                    read(cert, "--etcd-certfile")?,
                    read(key, "--etcd-keyfile")?,
                );
                tls = Some(tls.unwrap_or_default().identity(identity));
            }
            (None, None) => {}
            _ => {
                return Err(invalid(
                    "--etcd-certfile and --etcd-keyfile must be given together",
                ));
            }
        }
        if tls.is_some() && config.servers.iter().any(|u| u.starts_with("http://")) {
            return Err(invalid(
                "TLS flags are set but an --etcd-servers URL is http://; use https:// for every member",
            ));
        }
        let mut options = ConnectOptions::new()
            .with_connect_timeout(config.dial_timeout)
            .with_keep_alive(Duration::from_secs(10), Duration::from_secs(5))
            .with_keep_alive_while_idle(true);
        if let Some(tls) = tls {
            options = options.with_tls(tls);
        }
        let client = Client::connect(&config.servers, Some(options))
            .await
            .map_err(backend)?;
        let prefix = config.prefix.trim_end_matches('/').to_owned();
        if !prefix.starts_with('/') {
            return Err(invalid(format!(
                "--etcd-prefix `{}` must start with `/`",
                config.prefix
            )));
        }
        Ok(EtcdStore {
            client,
            prefix,
            timeout: config.request_timeout,
        })
    }

    /// The etcd key of a store key.
    fn etcd_key(&self, key: &str) -> String {
        let rest = key.strip_prefix(ROOT).unwrap_or(key);
        format!("{}{rest}", self.prefix)
    }

    /// The store key of an etcd key (`None` for keys outside the prefix).
    fn store_key(&self, key: &[u8]) -> Option<String> {
        let key = std::str::from_utf8(key).ok()?;
        let rest = key.strip_prefix(self.prefix.as_str())?;
        Some(format!("{ROOT}{rest}"))
    }

    fn kv(&self, kv: &etcd_client::KeyValue) -> Result<KeyValue, StoreError> {
        let key = self
            .store_key(kv.key())
            .ok_or_else(|| backend(format!("etcd returned a key outside `{}`", self.prefix)))?;
        Ok(KeyValue {
            key,
            value: kv.value().into(),
            mod_revision: revision(kv.mod_revision()),
        })
    }

    /// A KV client that accepts answers up to [`MAX_RESPONSE`]: a list batch of large objects,
    /// or the previous values a prefix delete returns, easily pass gRPC's default of 4 MiB.
    fn kv_client(&self) -> etcd_client::KvClient {
        self.client
            .kv_client()
            .max_decoding_message_size(MAX_RESPONSE)
    }

    /// Runs one KV call (`f` makes it on a fresh client) within the request timeout.
    ///
    /// The client balances calls over the members at random and does not skip one that is
    /// down: a call sent its way fails to connect. Such a call never left this process, so it
    /// is made again, on whichever member the balancer picks next, until the timeout; without
    /// that, one member of three down failed a third of all calls although the cluster served.
    async fn call<T, F, Fut>(&self, what: &str, mut f: F) -> Result<T, StoreError>
    where
        F: FnMut(etcd_client::KvClient) -> Fut,
        Fut: std::future::Future<Output = Result<T, etcd_client::Error>>,
    {
        let mut unreached = None;
        let attempts = async {
            let mut backoff = RETRY_BACKOFF;
            loop {
                match f(self.kv_client()).await {
                    Err(e) if never_sent(&e) => {
                        unreached = Some(e);
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(MAX_RETRY_BACKOFF);
                    }
                    r => return r,
                }
            }
        };
        match tokio::time::timeout(self.timeout, attempts).await {
            Ok(r) => r.map_err(classify),
            Err(_) => {
                let mut message = format!("etcd did not answer {what} within {:?}", self.timeout);
                if let Some(e) = unreached {
                    message.push_str(&format!("; a member was unreachable: {}", classify(e)));
                }
                Err(StoreError::Unavailable(message))
            }
        }
    }

    /// Compacts etcd's history up to `revision` (what kube-apiserver's compactor does every
    /// `--etcd-compaction-interval`). Watches and continue tokens older than it get 410 Gone.
    pub async fn compact(&self, revision: u64) -> Result<(), StoreError> {
        let revision = signed(revision)?;
        self.call("a compaction", |mut kv| async move {
            kv.compact(revision, None).await
        })
        .await
        .map(drop)
    }

    /// Runs kube-apiserver's compactor until the process ends: every `interval`, compacts to the
    /// revision seen one interval earlier. Replicas coordinate through the `compact_rev_key` key,
    /// which one of them wins per interval by a compare-and-swap on its version, so the cluster
    /// is compacted once per interval however many gateways share it.
    ///
    /// The key sits at the root of etcd's key space, where kube-apiserver keeps it, not under
    /// `--etcd-prefix`: compaction is cluster-wide, so gateways under different prefixes (and a
    /// kube-apiserver) share one schedule, and the key never shows up among the store's keys.
    pub fn spawn_compactor(&self, interval: Duration) {
        let store = self.clone();
        tokio::spawn(async move {
            let key = COMPACT_KEY;
            let mut last_version = 0i64;
            let mut pending: Option<u64> = None;
            loop {
                tokio::time::sleep(interval).await;
                let Ok(current) = store.revision().await else {
                    continue;
                };
                let txn = Txn::new()
                    .when([Compare::version(key, CompareOp::Equal, last_version)])
                    .and_then([etcd_client::TxnOp::put(key, current.to_string(), None)])
                    .or_else([etcd_client::TxnOp::get(key, None)]);
                let swap = store.call("the compactor's swap", |mut kv| {
                    let txn = txn.clone();
                    async move { kv.txn(txn).await }
                });
                let Ok(resp) = swap.await else {
                    continue;
                };
                if !resp.succeeded() {
                    // Another replica compacts this interval; follow its version.
                    if let Some(TxnOpResponse::Get(get)) = resp.op_responses().into_iter().next() {
                        last_version = get.kvs().first().map(|kv| kv.version()).unwrap_or(0);
                    }
                    pending = None;
                    continue;
                }
                last_version += 1;
                if let Some(target) = pending.replace(current)
                    && target > 0
                {
                    match store.compact(target).await {
                        Ok(()) => tracing::info!(revision = target, "etcd history compacted"),
                        Err(e) => tracing::warn!(error = %e, "etcd compaction failed"),
                    }
                }
            }
        });
    }

    async fn range(
        &self,
        start: &str,
        end: &[u8],
        limit: i64,
        at: i64,
    ) -> Result<etcd_client::GetResponse, StoreError> {
        let options = GetOptions::new()
            .with_range(end.to_vec())
            .with_limit(limit)
            .with_revision(at);
        self.call("a range read", |mut kv| {
            let options = options.clone();
            async move { kv.get(start, Some(options)).await }
        })
        .await
    }
}

/// The end of the key range holding every key that starts with `prefix`.
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    // All 0xff: every key from the prefix on.
    vec![0]
}

fn revision(r: i64) -> u64 {
    u64::try_from(r).unwrap_or(0)
}

fn signed(r: u64) -> Result<i64, StoreError> {
    i64::try_from(r).map_err(|_| backend(format!("revision {r} is out of etcd's range")))
}

fn read(path: &std::path::Path, flag: &str) -> Result<Vec<u8>, StoreError> {
    std::fs::read(path).map_err(|e| invalid(format!("{flag} `{}`: {e}", path.display())))
}

fn invalid(message: impl Into<String>) -> StoreError {
    StoreError::Backend(message.into().into())
}

fn backend(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> StoreError {
    StoreError::Backend(e.into())
}

/// Sorts an etcd failure: the cluster out of reach (or without a leader, or too slow) is
/// [`StoreError::Unavailable`]; history that was compacted away is [`StoreError::Gone`], a
/// revision not reached yet [`StoreError::Future`] (the caller fills in the revisions); anything
/// else is a backend failure.
fn classify(e: etcd_client::Error) -> StoreError {
    use tonic::Code;
    match &e {
        etcd_client::Error::TransportError(_) | etcd_client::Error::IoError(_) => {
            StoreError::Unavailable(e.to_string())
        }
        // A connection that broke under a call (a member died) reaches us as a status with
        // code Unknown and the transport failure as its source.
        etcd_client::Error::GRpcStatus(s) if broken_connection(s) => {
            StoreError::Unavailable(s.message().to_owned())
        }
        etcd_client::Error::GRpcStatus(s) => match s.code() {
            Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled | Code::Aborted => {
                StoreError::Unavailable(s.message().to_owned())
            }
            Code::OutOfRange if s.message().contains("compacted") => StoreError::Gone {
                requested: 0,
                oldest: 0,
            },
            Code::OutOfRange if s.message().contains("future revision") => StoreError::Future {
                requested: 0,
                current: 0,
            },
            Code::InvalidArgument if s.message().contains("too large") => {
                StoreError::TooLarge(s.message().to_owned())
            }
            Code::Unknown
                if s.message().contains("leader") || s.message().contains("timed out") =>
            {
                StoreError::Unavailable(s.message().to_owned())
            }
            _ => backend(e),
        },
        _ => backend(e),
    }
}

/// Whether a status came from a failed connection rather than from etcd.
fn broken_connection(status: &tonic::Status) -> bool {
    let mut source = std::error::Error::source(status);
    while let Some(e) = source {
        if e.is::<hyper::Error>() || e.is::<std::io::Error>() {
            return true;
        }
        source = e.source();
    }
    false
}

/// Whether a call failed to connect to its member, so that it never left this process and can
/// be sent again whatever it was.
fn never_sent(e: &etcd_client::Error) -> bool {
    let etcd_client::Error::GRpcStatus(status) = e else {
        return false;
    };
    let mut source = std::error::Error::source(status);
    while let Some(e) = source {
        if e.is::<tonic::ConnectError>() {
            return true;
        }
        source = e.source();
    }
    false
}

/// What one guarded op requires of its key.
enum Guard {
    Absent,
    Present(Option<u64>),
}

#[async_trait]
impl Store for EtcdStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        let key = self.etcd_key(key);
        let resp = self
            .call("a read", |mut kv| {
                let key = key.clone();
                async move { kv.get(key, None).await }
            })
            .await?;
        resp.kvs().first().map(|kv| self.kv(kv)).transpose()
    }

    async fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
        at: u64,
        filter: Filter<'_>,
    ) -> Result<ListPage, StoreError> {
        let etcd_prefix = self.etcd_key(prefix);
        let end = prefix_end(etcd_prefix.as_bytes());
        let mut start = match start_after {
            Some(s) if s >= prefix => {
                let mut k = self.etcd_key(s);
                // The smallest key after `s`.
                k.push('\0');
                k
            }
            _ => etcd_prefix,
        };
        let mut at = signed(at)?;
        let mut items = Vec::new();
        let mut batch = 0;
        loop {
            // Read one more than the page needs (to learn whether more follow); when the filter
            // rejected keys, double the read each time (as kube-apiserver does) so that a sparse
            // selector scans in full batches rather than a few keys per round trip.
            batch = if limit > 0 {
                i64::try_from(limit - items.len() + 1)
                    .unwrap_or(LIST_BATCH)
                    .max(batch * 2)
                    .min(LIST_BATCH)
            } else {
                LIST_BATCH
            };
            let resp = self
                .range(&start, &end, batch, at)
                .await
                .map_err(|e| match e {
                    StoreError::Gone { .. } => StoreError::Gone {
                        requested: revision(at),
                        oldest: 0,
                    },
                    e => e,
                })?;
            let read_at = resp.header().map(|h| h.revision()).unwrap_or(0);
            if at == 0 {
                // Every later batch reads the same revision as the first.
                at = read_at;
            }
            for raw in resp.kvs() {
                let kv = self.kv(raw)?;
                if !filter(&kv) {
                    continue;
                }
                if limit > 0 && items.len() == limit {
                    return Ok(ListPage {
                        items,
                        revision: revision(at),
                        more: true,
                    });
                }
                items.push(kv);
            }
            match resp.kvs().last() {
                Some(last) if resp.more() => {
                    let mut next = String::from_utf8_lossy(last.key()).into_owned();
                    next.push('\0');
                    start = next;
                }
                _ => {
                    return Ok(ListPage {
                        items,
                        revision: revision(at),
                        more: false,
                    });
                }
            }
        }
    }

    async fn txn(&self, ops: Vec<TxnOp>) -> Result<TxnResult, StoreError> {
        let mut compares = Vec::new();
        let mut guarded: Vec<(String, Guard)> = Vec::new();
        let mut then = Vec::with_capacity(ops.len());
        for op in &ops {
            match op {
                TxnOp::Create { key, value } => {
                    let k = self.etcd_key(key);
                    compares.push(Compare::create_revision(k.as_str(), CompareOp::Equal, 0));
                    then.push(etcd_client::TxnOp::put(k, value.clone(), None));
                    guarded.push((key.clone(), Guard::Absent));
                }
                TxnOp::Update { key, value, expect } => {
                    let k = self.etcd_key(key);
                    compares.push(match expect {
                        Some(r) => Compare::mod_revision(k.as_str(), CompareOp::Equal, signed(*r)?),
                        None => Compare::create_revision(k.as_str(), CompareOp::Greater, 0),
                    });
                    then.push(etcd_client::TxnOp::put(
                        k,
                        value.clone(),
                        Some(PutOptions::new().with_prev_key()),
                    ));
                    guarded.push((key.clone(), Guard::Present(*expect)));
                }
                TxnOp::Delete { key, expect } => {
                    let k = self.etcd_key(key);
                    compares.push(match expect {
                        Some(r) => Compare::mod_revision(k.as_str(), CompareOp::Equal, signed(*r)?),
                        None => Compare::create_revision(k.as_str(), CompareOp::Greater, 0),
                    });
                    then.push(etcd_client::TxnOp::delete(
                        k,
                        Some(DeleteOptions::new().with_prev_key()),
                    ));
                    guarded.push((key.clone(), Guard::Present(*expect)));
                }
                TxnOp::DeletePrefix { prefix } => {
                    if !prefix.ends_with('/') {
                        return Err(backend(format!("prefix `{prefix}` must end in `/`")));
                    }
                    then.push(etcd_client::TxnOp::delete(
                        self.etcd_key(prefix),
                        Some(DeleteOptions::new().with_prefix().with_prev_key()),
                    ));
                }
            }
        }
        let otherwise: Vec<_> = guarded
            .iter()
            .map(|(k, _)| etcd_client::TxnOp::get(self.etcd_key(k), None))
            .collect();
        let txn = Txn::new().when(compares).and_then(then).or_else(otherwise);
        let resp = self
            .call("a transaction", |mut kv| {
                let txn = txn.clone();
                async move { kv.txn(txn).await }
            })
            .await?;
        let rev = revision(resp.header().map(|h| h.revision()).unwrap_or(0));
        let responses = resp.op_responses();
        if !resp.succeeded() {
            // Name the first guard that failed, as the embedded store does.
            for ((key, guard), r) in guarded.into_iter().zip(responses) {
                let current = match r {
                    TxnOpResponse::Get(g) => g.kvs().first().map(|kv| revision(kv.mod_revision())),
                    _ => None,
                };
                match (guard, current) {
                    (Guard::Absent, Some(_)) => return Err(StoreError::AlreadyExists(key)),
                    (Guard::Present(_), None) => return Err(StoreError::NotFound(key)),
                    (Guard::Present(Some(expected)), Some(actual)) if expected != actual => {
                        return Err(StoreError::Conflict {
                            key,
                            expected,
                            actual,
                        });
                    }
                    _ => {}
                }
            }
            return Err(backend("etcd refused the transaction's guards"));
        }
        let mut previous = Vec::with_capacity(ops.len());
        for (op, r) in ops.iter().zip(responses) {
            previous.push(match (op, r) {
                (TxnOp::Create { .. }, _) => Vec::new(),
                (TxnOp::Update { .. }, TxnOpResponse::Put(p)) => p
                    .prev_key()
                    .map(|kv| self.kv(kv))
                    .transpose()?
                    .into_iter()
                    .collect(),
                (_, TxnOpResponse::Delete(d)) => d
                    .prev_kvs()
                    .iter()
                    .map(|kv| self.kv(kv))
                    .collect::<Result<_, _>>()?,
                _ => return Err(backend("etcd answered a transaction op with another kind")),
            });
        }
        Ok(TxnResult {
            revision: rev,
            previous,
        })
    }

    async fn watch(&self, prefix: &str, after: u64) -> Result<WatchStream, StoreError> {
        let etcd_prefix = self.etcd_key(prefix);
        // A range read at `after` tells, before the stream starts, whether that revision was
        // compacted (410) or lies in the future, as the embedded store does.
        if after > 0 {
            let probe = self
                .range(
                    &etcd_prefix,
                    &prefix_end(etcd_prefix.as_bytes()),
                    1,
                    signed(after)?,
                )
                .await;
            match probe {
                Ok(_) => {}
                Err(StoreError::Gone { .. }) => {
                    return Err(StoreError::Gone {
                        requested: after,
                        oldest: 0,
                    });
                }
                Err(StoreError::Future { .. }) => {
                    let current = self.revision().await.unwrap_or(0);
                    return Err(StoreError::Future {
                        requested: after,
                        current,
                    });
                }
                Err(e) => return Err(e),
            }
        }
        let after = if after == 0 {
            self.revision().await?
        } else {
            after
        };
        let (tx, rx) = tokio::sync::mpsc::channel(WATCH_BUFFER);
        let store = self.clone();
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        tokio::spawn(forward(store, etcd_prefix, after, tx, ready_tx));
        match ready_rx.await {
            Ok(Ok(())) => Ok(WatchStream::from_channel(rx)),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(backend("the watch task ended before it started")),
        }
    }

    async fn revision(&self) -> Result<u64, StoreError> {
        // A read of one key that never exists: the header carries the store revision.
        let key = format!("{}/", self.prefix);
        let resp = self
            .call("a revision read", |mut kv| {
                let key = key.clone();
                async move { kv.get(key, Some(GetOptions::new().with_count_only())).await }
            })
            .await?;
        Ok(revision(resp.header().map(|h| h.revision()).unwrap_or(0)))
    }

    fn shared(&self) -> bool {
        true
    }

    async fn close(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

type Sender = tokio::sync::mpsc::Sender<Result<Arc<WatchEvent>, StoreError>>;

/// Reads an etcd watch on `prefix` from `after + 1` and forwards its events to `tx` until the
/// receiver goes away. A broken stream (a member died, the network blinked) is re-opened from the
/// last revision delivered, on whichever member answers, so no event is missed or repeated; a
/// compaction past that revision ends the stream with [`StoreError::Gone`].
async fn forward(
    store: EtcdStore,
    prefix: String,
    after: u64,
    tx: Sender,
    ready: tokio::sync::oneshot::Sender<Result<(), StoreError>>,
) {
    let mut ready = Some(ready);
    // Until the watch is created, `Store::watch` waits; it gets an answer by this deadline.
    let open_deadline = tokio::time::Instant::now() + store.timeout;
    let mut backoff = Duration::from_millis(50);
    // The last revision delivered and the keys delivered at it: a revision's events may span
    // several responses, so a reopened watch starts at that revision and skips what was sent.
    let mut last: Option<(u64, std::collections::HashSet<String>)> = None;
    loop {
        let start = match &last {
            Some((rev, _)) => *rev,
            None => after + 1,
        };
        let Ok(start) = i64::try_from(start) else {
            let _ = tx.send(Err(backend("watch revision out of range"))).await;
            return;
        };
        let options = WatchOptions::new()
            .with_prefix()
            .with_prev_key()
            .with_start_revision(start);
        // One response carries every event of a revision with its previous value, so a large
        // prefix delete makes a response as large as the objects it deleted.
        let mut client = store
            .client
            .watch_client()
            .max_decoding_message_size(MAX_RESPONSE);
        let opened = tokio::select! {
            r = tokio::time::timeout(store.timeout, client.watch(prefix.as_str(), Some(options))) => r,
            () = tx.closed() => return,
        };
        let mut stream = match opened {
            Ok(Ok(s)) => s,
            failed => {
                // A member that could not be reached never saw the request: try another, as
                // unary calls do, while the caller still waits.
                let retry = matches!(&failed, Ok(Err(e)) if never_sent(e))
                    && tokio::time::Instant::now() < open_deadline;
                let e = match failed {
                    Ok(Err(e)) => classify(e),
                    _ => StoreError::Unavailable("etcd did not open the watch in time".into()),
                };
                if let Some(waiting) = ready.take() {
                    if !retry {
                        let _ = waiting.send(Err(e));
                        return;
                    }
                    ready = Some(waiting);
                    tokio::time::sleep(RETRY_BACKOFF).await;
                    continue;
                }
                tracing::warn!(error = %e, %prefix, "etcd watch lost; reopening");
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {},
                    () = tx.closed() => return,
                }
                backoff = (backoff * 2).min(Duration::from_secs(2));
                continue;
            }
        };
        loop {
            let message = tokio::select! {
                m = stream.message() => m,
                () = tx.closed() => return,
                () = tokio::time::sleep_until(open_deadline), if ready.is_some() => {
                    if let Some(waiting) = ready.take() {
                        let _ = waiting.send(Err(StoreError::Unavailable(
                            "etcd did not confirm the watch in time".into(),
                        )));
                    }
                    return;
                }
            };
            let response = match message {
                Ok(Some(r)) => r,
                Ok(None) => break,
                Err(e) => match classify(e) {
                    // The member went away or the connection broke: reopen elsewhere.
                    StoreError::Unavailable(_) => break,
                    // Anything else would fail the same way on every reopen (a response too
                    // large to decode, a permission etcd refuses): end the stream with it rather
                    // than retry forever while the watcher hears nothing.
                    e => {
                        match ready.take() {
                            Some(waiting) => {
                                let _ = waiting.send(Err(e));
                            }
                            None => {
                                let _ = tx.send(Err(e)).await;
                            }
                        }
                        return;
                    }
                },
            };
            if response.created()
                && let Some(ready) = ready.take()
            {
                let _ = ready.send(Ok(()));
            }
            if response.compact_revision() > 0 {
                let gone = StoreError::Gone {
                    requested: last.as_ref().map(|(r, _)| *r).unwrap_or(after + 1) - 1,
                    oldest: revision(response.compact_revision()),
                };
                match ready.take() {
                    Some(ready) => {
                        let _ = ready.send(Err(gone));
                    }
                    None => {
                        let _ = tx.send(Err(gone)).await;
                    }
                }
                return;
            }
            if response.canceled() {
                let e = backend(format!(
                    "etcd cancelled the watch: {}",
                    response.cancel_reason()
                ));
                let _ = tx.send(Err(e)).await;
                return;
            }
            for event in response.events() {
                let Some(kv) = event.kv() else { continue };
                let Some(key) = store.store_key(kv.key()) else {
                    continue;
                };
                let rev = revision(kv.mod_revision());
                match &mut last {
                    Some((at, _)) if rev < *at => continue,
                    Some((at, seen)) if rev == *at => {
                        if !seen.insert(key.clone()) {
                            continue;
                        }
                    }
                    _ => last = Some((rev, std::collections::HashSet::from([key.clone()]))),
                }
                let (kind, value) = match event.event_type() {
                    EventType::Put if kv.create_revision() == kv.mod_revision() => {
                        (EventKind::Added, kv.value())
                    }
                    EventType::Put => (EventKind::Modified, kv.value()),
                    EventType::Delete => (
                        EventKind::Deleted,
                        event.prev_kv().map(|p| p.value()).unwrap_or_default(),
                    ),
                };
                let event = WatchEvent {
                    kind,
                    key,
                    value: value.into(),
                    revision: rev,
                };
                if tx.send(Ok(Arc::new(event))).await.is_err() {
                    return;
                }
            }
            backoff = Duration::from_millis(50);
        }
        tracing::debug!(%prefix, "etcd watch stream ended; reopening");
        tokio::select! {
            () = tokio::time::sleep(backoff) => {},
            () = tx.closed() => return,
        }
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}

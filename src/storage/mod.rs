//! Storage backends behind one [`Store`] trait with Kubernetes semantics.
//!
//! The trait is shaped after etcd v3, which kube-apiserver stores in: a flat ordered key space
//! (`/registry/<resource>/<namespace>/<name>`), one global revision that every write increments,
//! each key carrying the revision of its last change (the object's `resourceVersion`),
//! transactions whose operations can demand the current revision of a key (so a stale update is
//! a conflict), and watches that resume from a revision. Objects are JSON bytes; the
//! `resourceVersion` is not stored inside them but set from the key's revision when read.
//!
//! Backends: [`embedded`] (redb, a single-file ACID store; the default) and, built with the `etcd`
//! feature, `etcd` (an etcd v3 cluster shared by several gateway replicas).

pub mod embedded;
#[cfg(feature = "etcd")]
pub mod etcd;
pub mod flags;
mod watch;

use std::sync::Arc;

use async_trait::async_trait;

pub use watch::WatchStream;

/// One stored key with its value and the revision of its last change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyValue {
    /// The storage key.
    pub key: String,
    /// The object, as JSON without `metadata.resourceVersion`.
    pub value: Arc<[u8]>,
    /// The revision of the last write to this key.
    pub mod_revision: u64,
}

/// One page of a list.
#[derive(Clone, Debug)]
pub struct ListPage {
    /// Matching keys in key order.
    pub items: Vec<KeyValue>,
    /// The store revision the page was read at.
    pub revision: u64,
    /// Whether more matching keys follow the last item.
    pub more: bool,
}

/// One write inside a transaction.
#[derive(Clone, Debug)]
pub enum TxnOp {
    /// Create a key that must not exist.
    Create {
        /// Key.
        key: String,
        /// Value.
        value: Vec<u8>,
    },
    /// Replace a key that must exist, optionally at an exact revision.
    Update {
        /// Key.
        key: String,
        /// Value.
        value: Vec<u8>,
        /// The revision the key must have, if any.
        expect: Option<u64>,
    },
    /// Delete a key that must exist, optionally at an exact revision.
    Delete {
        /// Key.
        key: String,
        /// The revision the key must have, if any.
        expect: Option<u64>,
    },
    /// Delete every key under a prefix (nothing to delete is fine).
    DeletePrefix {
        /// Prefix; must end in `/`.
        prefix: String,
    },
}

/// What a committed transaction did.
#[derive(Clone, Debug)]
pub struct TxnResult {
    /// The revision of the transaction's writes (unchanged when it wrote nothing).
    pub revision: u64,
    /// For each op, the previous values it replaced or deleted.
    pub previous: Vec<Vec<KeyValue>>,
}

/// The kind of change a watch event reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// A key was created.
    Added,
    /// A key was updated.
    Modified,
    /// A key was deleted; the event carries the last value.
    Deleted,
}

/// One change, as watches see it.
#[derive(Clone, Debug)]
pub struct WatchEvent {
    /// What happened.
    pub kind: EventKind,
    /// The key.
    pub key: String,
    /// The new value, or the last value for a delete.
    pub value: Arc<[u8]>,
    /// The revision of the change.
    pub revision: u64,
}

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A create met an existing key.
    #[error("key `{0}` already exists")]
    AlreadyExists(String),
    /// An update or delete met no key.
    #[error("key `{0}` not found")]
    NotFound(String),
    /// An update or delete expected another revision.
    #[error("key `{key}` is at revision {actual}, not {expected}")]
    Conflict {
        /// Key.
        key: String,
        /// The revision the caller expected.
        expected: u64,
        /// The revision the key has.
        actual: u64,
    },
    /// A watch (or a paged list) asked for history the store no longer holds.
    #[error("{}", gone_message(*requested, *oldest))]
    Gone {
        /// Revision asked for.
        requested: u64,
        /// Oldest revision still available, 0 when the backend does not say (etcd's error
        /// names no revision).
        oldest: u64,
    },
    /// A watch asked for a revision in the future.
    #[error("resource version {requested} is newer than the store's revision {current}")]
    Future {
        /// Revision asked for.
        requested: u64,
        /// Current revision.
        current: u64,
    },
    /// The watcher fell too far behind and was dropped; clients re-list.
    #[error("watcher fell behind and was closed")]
    Lagged,
    /// The backend cannot be reached or did not answer in time (503 at the API); the request
    /// may be retried.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// The backend refused a value as too large (413 at the API).
    #[error("object too large for the storage backend: {0}")]
    TooLarge(String),
    /// The backend failed.
    #[error("storage backend error")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// kube-apiserver's messages for a too old resourceVersion: its watch cache names the oldest
/// revision it holds; without one, etcd's watcher's words.
fn gone_message(requested: u64, oldest: u64) -> String {
    if oldest > 0 {
        format!("too old resource version: {requested} ({oldest})")
    } else {
        "The resourceVersion for the provided watch is too old.".to_owned()
    }
}

/// A key filter applied while listing (label and field selectors are evaluated here).
pub type Filter<'a> = &'a (dyn Fn(&KeyValue) -> bool + Send + Sync);

/// A Kubernetes-style key-value store.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Reads one key.
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError>;

    /// Lists keys under `prefix` (ending in `/`) in key order, starting after `start_after`,
    /// keeping those `filter` accepts, at most `limit` of them (0 means no limit), as of
    /// revision `at` (0: the latest; a later page of a paged list passes the first page's).
    ///
    /// A backend that keeps history (etcd) reads every page at that revision, or fails with
    /// [`StoreError::Gone`] once it was compacted; one that does not (embedded) reads the
    /// latest state and still reports `at`.
    async fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
        at: u64,
        filter: Filter<'_>,
    ) -> Result<ListPage, StoreError>;

    /// Applies every op atomically, or none: the first failing condition aborts the whole
    /// transaction with its error. A transaction that changes something takes one new revision.
    async fn txn(&self, ops: Vec<TxnOp>) -> Result<TxnResult, StoreError>;

    /// Watches keys under `prefix`, delivering every change with a revision above `after`.
    async fn watch(&self, prefix: &str, after: u64) -> Result<WatchStream, StoreError>;

    /// The current revision.
    async fn revision(&self) -> Result<u64, StoreError>;

    /// Whether other processes (gateway replicas) may write to this store, so a gateway must
    /// follow its changes to keep its snapshots current. A store only this process writes to
    /// (embedded) answers false: its writers refresh the snapshots themselves.
    fn shared(&self) -> bool {
        false
    }

    /// Flushes and closes; later calls may fail.
    async fn close(&self) -> Result<(), StoreError>;
}

#[cfg(test)]
mod tests;

//! The embedded backend: one redb file, the default store of `portcullis serve`.
//!
//! Every transaction is one redb write transaction committed with immediate durability, so an
//! acknowledged write survives `kill -9` and power loss. Each value is stored as the 8-byte
//! big-endian revision of its last change followed by the object's JSON; the store's revision
//! counter lives in a meta table and is written in the same transaction as the data it numbers.

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use super::watch::Feed;
use super::{
    EventKind, Filter, KeyValue, ListPage, Store, StoreError, TxnOp, TxnResult, WatchEvent,
    WatchStream,
};

const OBJECTS: TableDefinition<&str, &[u8]> = TableDefinition::new("objects");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const REVISION: &str = "revision";

/// A store in a single redb file.
#[derive(Debug)]
pub struct EmbeddedStore {
    db: Arc<Database>,
    feed: Arc<Feed>,
}

impl EmbeddedStore {
    /// Opens (or creates) the store file at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let db = Database::create(path).map_err(backend)?;
        let txn = db.begin_write().map_err(backend)?;
        let revision = {
            // Creating the tables up front lets readers open them without a write.
            txn.open_table(OBJECTS).map_err(backend)?;
            let meta = txn.open_table(META).map_err(backend)?;
            meta.get(REVISION)
                .map_err(backend)?
                .map(|v| v.value())
                .unwrap_or(0)
        };
        txn.commit().map_err(backend)?;
        Ok(EmbeddedStore {
            db: Arc::new(db),
            feed: Arc::new(Feed::new(revision)),
        })
    }

    fn read_list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
        filter: Filter<'_>,
    ) -> Result<ListPage, StoreError> {
        let txn = self.db.begin_read().map_err(backend)?;
        let revision = txn
            .open_table(META)
            .map_err(backend)?
            .get(REVISION)
            .map_err(backend)?
            .map(|v| v.value())
            .unwrap_or(0);
        let table = txn.open_table(OBJECTS).map_err(backend)?;
        let start = match start_after {
            Some(s) if s >= prefix => s,
            _ => prefix,
        };
        let mut items = Vec::new();
        let mut more = false;
        for entry in table.range(start..).map_err(backend)? {
            let (k, v) = entry.map_err(backend)?;
            let key = k.value();
            if !key.starts_with(prefix) {
                break;
            }
            if Some(key) == start_after {
                continue;
            }
            let kv = decode(key, v.value())?;
            if !filter(&kv) {
                continue;
            }
            if limit > 0 && items.len() == limit {
                more = true;
                break;
            }
            items.push(kv);
        }
        Ok(ListPage {
            items,
            revision,
            more,
        })
    }
}

/// Commits one transaction and publishes its events.
fn commit(db: &Database, feed: &Feed, ops: Vec<TxnOp>) -> Result<TxnResult, StoreError> {
    feed.publish_with(move || {
        let txn = db.begin_write().map_err(backend)?;
        let mut events = Vec::new();
        let mut previous = Vec::with_capacity(ops.len());
        let revision;
        {
            let mut table = txn.open_table(OBJECTS).map_err(backend)?;
            let mut meta = txn.open_table(META).map_err(backend)?;
            let current = meta
                .get(REVISION)
                .map_err(backend)?
                .map(|v| v.value())
                .unwrap_or(0);
            revision = current + 1;
            for op in ops {
                previous.push(apply(&mut table, op, revision, &mut events)?);
            }
            if events.is_empty() {
                // Nothing changed: abort instead of spending a revision.
                drop(table);
                drop(meta);
                txn.abort().map_err(backend)?;
                return Ok((
                    TxnResult {
                        revision: current,
                        previous,
                    },
                    Vec::new(),
                    current,
                ));
            }
            meta.insert(REVISION, revision).map_err(backend)?;
        }
        txn.commit().map_err(backend)?;
        Ok((TxnResult { revision, previous }, events, revision))
    })
}

/// Applies one op inside a write transaction; returns the values it replaced or removed.
fn apply(
    table: &mut redb::Table<'_, &str, &[u8]>,
    op: TxnOp,
    revision: u64,
    events: &mut Vec<WatchEvent>,
) -> Result<Vec<KeyValue>, StoreError> {
    match op {
        TxnOp::Create { key, value } => {
            if table.get(key.as_str()).map_err(backend)?.is_some() {
                return Err(StoreError::AlreadyExists(key));
            }
            table
                .insert(key.as_str(), encode(revision, &value).as_slice())
                .map_err(backend)?;
            events.push(WatchEvent {
                kind: EventKind::Added,
                key,
                value: value.into(),
                revision,
            });
            Ok(Vec::new())
        }
        TxnOp::Update { key, value, expect } => {
            let prev = existing(table, &key, expect)?;
            table
                .insert(key.as_str(), encode(revision, &value).as_slice())
                .map_err(backend)?;
            events.push(WatchEvent {
                kind: EventKind::Modified,
                key,
                value: value.into(),
                revision,
            });
            Ok(vec![prev])
        }
        TxnOp::Delete { key, expect } => {
            let prev = existing(table, &key, expect)?;
            table.remove(key.as_str()).map_err(backend)?;
            events.push(WatchEvent {
                kind: EventKind::Deleted,
                key,
                value: prev.value.clone(),
                revision,
            });
            Ok(vec![prev])
        }
        TxnOp::DeletePrefix { prefix } => {
            let mut removed = Vec::new();
            for entry in table.range(prefix.as_str()..).map_err(backend)? {
                let (k, v) = entry.map_err(backend)?;
                if !k.value().starts_with(prefix.as_str()) {
                    break;
                }
                removed.push(decode(k.value(), v.value())?);
            }
            for kv in &removed {
                table.remove(kv.key.as_str()).map_err(backend)?;
                events.push(WatchEvent {
                    kind: EventKind::Deleted,
                    key: kv.key.clone(),
                    value: kv.value.clone(),
                    revision,
                });
            }
            Ok(removed)
        }
    }
}

fn existing(
    table: &redb::Table<'_, &str, &[u8]>,
    key: &str,
    expect: Option<u64>,
) -> Result<KeyValue, StoreError> {
    let Some(v) = table.get(key).map_err(backend)? else {
        return Err(StoreError::NotFound(key.to_owned()));
    };
    let kv = decode(key, v.value())?;
    if let Some(expected) = expect
        && expected != kv.mod_revision
    {
        return Err(StoreError::Conflict {
            key: key.to_owned(),
            expected,
            actual: kv.mod_revision,
        });
    }
    Ok(kv)
}

fn encode(revision: u64, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + value.len());
    out.extend_from_slice(&revision.to_be_bytes());
    out.extend_from_slice(value);
    out
}

fn decode(key: &str, raw: &[u8]) -> Result<KeyValue, StoreError> {
    let (rev, value) = raw
        .split_first_chunk::<8>()
        .ok_or_else(|| backend(format!("corrupt value at key `{key}`")))?;
    Ok(KeyValue {
        key: key.to_owned(),
        value: value.into(),
        mod_revision: u64::from_be_bytes(*rev),
    })
}

fn backend(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> StoreError {
    StoreError::Backend(e.into())
}

#[async_trait]
impl Store for EmbeddedStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        let txn = self.db.begin_read().map_err(backend)?;
        let table = txn.open_table(OBJECTS).map_err(backend)?;
        let found = table.get(key).map_err(backend)?;
        found.map(|v| decode(key, v.value())).transpose()
    }

    async fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
        at: u64,
        filter: Filter<'_>,
    ) -> Result<ListPage, StoreError> {
        let mut page = self.read_list(prefix, start_after, limit, filter)?;
        if at > 0 {
            page.revision = at;
        }
        Ok(page)
    }

    async fn txn(&self, ops: Vec<TxnOp>) -> Result<TxnResult, StoreError> {
        // The commit fsyncs; keep it off the async workers.
        let (db, feed) = (self.db.clone(), self.feed.clone());
        tokio::task::spawn_blocking(move || commit(&db, &feed, ops))
            .await
            .map_err(backend)?
    }

    async fn watch(&self, prefix: &str, after: u64) -> Result<WatchStream, StoreError> {
        self.feed.subscribe(prefix, after)
    }

    async fn revision(&self) -> Result<u64, StoreError> {
        let txn = self.db.begin_read().map_err(backend)?;
        Ok(txn
            .open_table(META)
            .map_err(backend)?
            .get(REVISION)
            .map_err(backend)?
            .map(|v| v.value())
            .unwrap_or(0))
    }

    async fn close(&self) -> Result<(), StoreError> {
        // Every commit is already durable; dropping the database releases the file lock.
        Ok(())
    }
}

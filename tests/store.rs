//! Store conformance: the same cases run against every backend (the embedded redb store, a
//! one-member etcd over http, and an etcd demanding client certificates over https), then the
//! etcd backend's own behaviour against real etcd clusters: compaction, `--etcd-prefix`
//! isolation, an outage and its recovery, and watches that outlive the member they read from.

mod common;

use std::sync::Arc;
use std::time::Duration;

use portcullis::storage::embedded::EmbeddedStore;
use portcullis::storage::{EventKind, KeyValue, Store, StoreError, TxnOp, WatchEvent, WatchStream};

/// A bound on waiting for one watch event; only reached when an event never comes.
const EVENT_DEADLINE: Duration = Duration::from_secs(30);

#[tokio::test]
async fn embedded_store_passes_the_store_conformance_cases() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(EmbeddedStore::open(&dir.path().join("db")).unwrap());
    conformance(store).await;
}

/// Every case, each under its own resource prefix so they share one store.
async fn conformance(store: Arc<dyn Store>) {
    let s = &*store;
    creates_reads_and_guards_writes(s).await;
    applies_a_transaction_whole_or_not_at_all(s).await;
    lists_in_pages_with_a_filter(s).await;
    pages_a_filtered_list_across_many_reads(s).await;
    deletes_a_prefix_returning_every_previous_value(s).await;
    watch_replays_history_in_order_then_follows(s).await;
    keys_with_unusual_bytes_round_trip(s).await;
}

// === cases ===

async fn creates_reads_and_guards_writes(store: &dyn Store) {
    let key = "/registry/pods/a/x";
    let r1 = store.txn(vec![put(key, "1")]).await.unwrap().revision;
    let got = store.get(key).await.unwrap().unwrap();
    assert_eq!((&*got.value, got.mod_revision), (&b"1"[..], r1));
    assert!(store.get("/registry/pods/a/none").await.unwrap().is_none());
    let dup = store.txn(vec![put(key, "2")]).await;
    assert!(
        matches!(&dup, Err(StoreError::AlreadyExists(k)) if k == key),
        "{dup:?}"
    );
    assert_eq!(
        store.revision().await.unwrap(),
        r1,
        "a failed txn spends no revision"
    );

    // A stale update conflicts, names the revision the key has, and changes nothing.
    let stale = store.txn(vec![update(key, "3", Some(r1 - 1))]).await;
    match stale {
        Err(StoreError::Conflict {
            key: k,
            expected,
            actual,
        }) => assert_eq!((k.as_str(), expected, actual), (key, r1 - 1, r1)),
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(&*store.get(key).await.unwrap().unwrap().value, b"1");
    let r2 = store.txn(vec![update(key, "3", Some(r1))]).await.unwrap();
    assert!(r2.revision > r1);
    assert_eq!(
        r2.previous,
        vec![vec![kv(key, "1", r1)]],
        "an update returns the value it replaced"
    );
    let r2 = r2.revision;

    // An unguarded update needs the key; so does a delete.
    let missing = store
        .txn(vec![update("/registry/pods/a/none", "v", None)])
        .await;
    assert!(
        matches!(&missing, Err(StoreError::NotFound(k)) if k == "/registry/pods/a/none"),
        "{missing:?}"
    );
    let missing = store.txn(vec![delete("/registry/pods/a/none", None)]).await;
    assert!(
        matches!(&missing, Err(StoreError::NotFound(_))),
        "{missing:?}"
    );

    // A stale delete conflicts the same way; a current one returns the last value.
    let stale = store.txn(vec![delete(key, Some(r1))]).await;
    match stale {
        Err(StoreError::Conflict {
            expected, actual, ..
        }) => assert_eq!((expected, actual), (r1, r2)),
        other => panic!("expected a conflict, got {other:?}"),
    }
    let gone = store.txn(vec![delete(key, Some(r2))]).await.unwrap();
    assert_eq!(gone.previous, vec![vec![kv(key, "3", r2)]]);
    assert!(store.get(key).await.unwrap().is_none());

    // A future revision cannot be watched.
    let now = store.revision().await.unwrap();
    let future = store.watch("/registry/pods/", now + 10).await;
    assert!(
        matches!(future, Err(StoreError::Future { requested, .. }) if requested == now + 10),
        "{:?}",
        future.err()
    );
}

async fn applies_a_transaction_whole_or_not_at_all(store: &dyn Store) {
    let base = store
        .txn(vec![put("/registry/services/t/x", "x")])
        .await
        .unwrap()
        .revision;
    // The second op fails, so the first must not happen either.
    let mixed = store
        .txn(vec![
            put("/registry/services/t/y", "y"),
            put("/registry/services/t/x", "dup"),
        ])
        .await;
    assert!(
        matches!(mixed, Err(StoreError::AlreadyExists(_))),
        "{mixed:?}"
    );
    assert!(store.get("/registry/services/t/y").await.unwrap().is_none());
    assert_eq!(store.revision().await.unwrap(), base);

    // Several ops that pass take one revision together.
    let both = store
        .txn(vec![
            put("/registry/services/t/y", "y"),
            update("/registry/services/t/x", "x2", Some(base)),
        ])
        .await
        .unwrap();
    assert!(both.revision > base);
    for key in ["/registry/services/t/x", "/registry/services/t/y"] {
        let got = store.get(key).await.unwrap().unwrap();
        assert_eq!(got.mod_revision, both.revision, "{key}");
    }
    assert_eq!(
        both.previous,
        vec![vec![], vec![kv("/registry/services/t/x", "x", base)]]
    );

    // A prefix with nothing under it deletes nothing and spends no revision.
    let nothing = store
        .txn(vec![TxnOp::DeletePrefix {
            prefix: "/registry/services/empty/".into(),
        }])
        .await
        .unwrap();
    assert_eq!(nothing.revision, both.revision);
    assert_eq!(nothing.previous, vec![Vec::<KeyValue>::new()]);
}

async fn lists_in_pages_with_a_filter(store: &dyn Store) {
    for name in ["b", "c", "d", "e", "x"] {
        store
            .txn(vec![put(&format!("/registry/secrets/a/{name}"), name)])
            .await
            .unwrap();
    }
    store
        .txn(vec![put("/registry/secrets/b/z", "other ns")])
        .await
        .unwrap();
    store
        .txn(vec![put("/registry/secretsx/a/q", "other resource")])
        .await
        .unwrap();
    let now = store.revision().await.unwrap();
    let page = store
        .list("/registry/secrets/a/", None, 2, 0, &all)
        .await
        .unwrap();
    assert_eq!(
        keys(&page.items),
        ["/registry/secrets/a/b", "/registry/secrets/a/c"]
    );
    assert!(page.more);
    assert_eq!(page.revision, now);
    let rest = store
        .list(
            "/registry/secrets/a/",
            Some("/registry/secrets/a/c"),
            0,
            page.revision,
            &all,
        )
        .await
        .unwrap();
    assert_eq!(
        keys(&rest.items),
        [
            "/registry/secrets/a/d",
            "/registry/secrets/a/e",
            "/registry/secrets/a/x"
        ]
    );
    assert!(!rest.more);
    assert_eq!(
        rest.revision, page.revision,
        "a later page keeps the first's revision"
    );

    // A page that ends exactly at the last match says no more follow.
    let exact = store
        .list(
            "/registry/secrets/a/",
            Some("/registry/secrets/a/c"),
            3,
            0,
            &all,
        )
        .await
        .unwrap();
    assert_eq!(exact.items.len(), 3);
    assert!(!exact.more);

    let odd = store
        .list("/registry/secrets/", None, 0, 0, &|kv: &KeyValue| {
            &*kv.value == b"d" || &*kv.value == b"other ns"
        })
        .await
        .unwrap();
    assert_eq!(
        keys(&odd.items),
        ["/registry/secrets/a/d", "/registry/secrets/b/z"]
    );
    assert!(!odd.more);
}

/// More keys than one etcd range read returns (256), so a page and its filter span reads.
async fn pages_a_filtered_list_across_many_reads(store: &dyn Store) {
    const KEYS: usize = 600;
    let name = |i: usize| format!("/registry/configmaps/big/k{i:04}");
    for chunk in (0..KEYS).collect::<Vec<_>>().chunks(100) {
        let ops = chunk
            .iter()
            .map(|&i| put(&name(i), &i.to_string()))
            .collect();
        store.txn(ops).await.unwrap();
    }
    let index =
        |kv: &KeyValue| -> usize { std::str::from_utf8(&kv.value).unwrap().parse().unwrap() };

    let everything = store
        .list("/registry/configmaps/big/", None, 0, 0, &all)
        .await
        .unwrap();
    assert_eq!(everything.items.len(), KEYS);
    assert!(!everything.more);
    let expected: Vec<String> = (0..KEYS).map(name).collect();
    assert_eq!(keys(&everything.items), expected);

    // Every third key, 40 per page: each page may read past a range batch to fill itself.
    let third = |kv: &KeyValue| index(kv) % 3 == 0;
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    let mut at = 0;
    loop {
        let page = store
            .list(
                "/registry/configmaps/big/",
                after.as_deref(),
                40,
                at,
                &third,
            )
            .await
            .unwrap();
        if at == 0 {
            at = page.revision;
        }
        assert_eq!(page.revision, at);
        assert!(page.items.len() <= 40);
        seen.extend(page.items.iter().map(index));
        after = page.items.last().map(|kv| kv.key.clone());
        if !page.more {
            break;
        }
        assert_eq!(page.items.len(), 40, "a page with more after it is full");
    }
    assert_eq!(seen, (0..KEYS).step_by(3).collect::<Vec<_>>());

    // Sparse matches far apart: `more` is true only when a match follows, which a backend
    // learns only by reading past whole batches of keys that do not match.
    let sparse = |kv: &KeyValue| index(kv) % 250 == 0;
    let two = store
        .list("/registry/configmaps/big/", None, 2, 0, &sparse)
        .await
        .unwrap();
    assert_eq!(two.items.iter().map(index).collect::<Vec<_>>(), [0, 250]);
    assert!(two.more);
    let three = store
        .list("/registry/configmaps/big/", None, 3, 0, &sparse)
        .await
        .unwrap();
    assert_eq!(
        three.items.iter().map(index).collect::<Vec<_>>(),
        [0, 250, 500]
    );
    assert!(!three.more);
    let none = store
        .list("/registry/configmaps/big/", None, 5, 0, &|_: &KeyValue| {
            false
        })
        .await
        .unwrap();
    assert!(none.items.is_empty() && !none.more);
}

/// Large values: the previous values of one delete together exceed 4 MiB (gRPC's default
/// message limit), as deleting a namespace full of big objects does.
async fn deletes_a_prefix_returning_every_previous_value(store: &dyn Store) {
    const KEYS: usize = 40;
    const SIZE: usize = 128 * 1024;
    let before = store.revision().await.unwrap();
    let mut w = store.watch("/registry/events/", before).await.unwrap();
    let mut written = Vec::new();
    for i in 0..KEYS {
        let key = format!("/registry/events/ns/e{i:02}");
        let value = vec![b'a' + (i % 26) as u8; SIZE];
        let rev = store
            .txn(vec![TxnOp::Create {
                key: key.clone(),
                value: value.clone(),
            }])
            .await
            .unwrap()
            .revision;
        written.push(KeyValue {
            key,
            value: value.into(),
            mod_revision: rev,
        });
    }
    // Neighbours that share the prefix's text but not its path stay.
    store
        .txn(vec![
            put("/registry/events/ns2/e", "neighbour"),
            put("/registry/events/n/e", "neighbour"),
        ])
        .await
        .unwrap();
    let wiped = store
        .txn(vec![TxnOp::DeletePrefix {
            prefix: "/registry/events/ns/".into(),
        }])
        .await
        .unwrap();
    assert_eq!(wiped.previous.len(), 1);
    let previous = &wiped.previous[0];
    assert_eq!(previous.len(), KEYS);
    for (got, want) in previous.iter().zip(&written) {
        assert_eq!(
            (&got.key, got.mod_revision, got.value.len()),
            (&want.key, want.mod_revision, want.value.len())
        );
        assert!(got.value == want.value, "value of {} differs", got.key);
    }
    assert!(
        store
            .list("/registry/events/ns/", None, 0, 0, &all)
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert!(store.get("/registry/events/ns2/e").await.unwrap().is_some());
    assert!(store.get("/registry/events/n/e").await.unwrap().is_some());

    // A watch sees every create, the neighbours, then one delete per key with its last value,
    // all at the delete's revision.
    for want in &written {
        let e = next(&mut w).await;
        assert_eq!(
            (e.kind, &e.key, e.revision),
            (EventKind::Added, &want.key, want.mod_revision)
        );
    }
    for _ in 0..2 {
        assert_eq!(next(&mut w).await.kind, EventKind::Added);
    }
    for want in &written {
        let e = next(&mut w).await;
        assert_eq!(
            (e.kind, &e.key, e.revision),
            (EventKind::Deleted, &want.key, wiped.revision)
        );
        assert!(
            e.value == want.value,
            "deleted event of {} lacks its last value",
            e.key
        );
    }
}

async fn watch_replays_history_in_order_then_follows(store: &dyn Store) {
    let p = "/registry/leases/w/";
    let start = store.revision().await.unwrap();
    let live_from_now = store.watch(p, 0).await.unwrap();
    // (kind, key, value, revision) of everything written under `p`, in order.
    let mut expected: Vec<(EventKind, String, String, u64)> = Vec::new();
    let mut record = |kind, key: &str, value: &str, rev| {
        expected.push((kind, key.to_owned(), value.to_owned(), rev));
    };
    let r = store
        .txn(vec![put(&format!("{p}a"), "a1")])
        .await
        .unwrap()
        .revision;
    record(EventKind::Added, &format!("{p}a"), "a1", r);
    // Writes elsewhere are not seen.
    store
        .txn(vec![put("/registry/leases/other/a", "o")])
        .await
        .unwrap();
    let r = store
        .txn(vec![
            put(&format!("{p}b"), "b1"),
            put(&format!("{p}c"), "c1"),
        ])
        .await
        .unwrap()
        .revision;
    record(EventKind::Added, &format!("{p}b"), "b1", r);
    record(EventKind::Added, &format!("{p}c"), "c1", r);
    let r = store
        .txn(vec![update(&format!("{p}a"), "a2", None)])
        .await
        .unwrap()
        .revision;
    record(EventKind::Modified, &format!("{p}a"), "a2", r);
    let r = store
        .txn(vec![delete(&format!("{p}b"), None)])
        .await
        .unwrap()
        .revision;
    record(EventKind::Deleted, &format!("{p}b"), "b1", r);
    // A key deleted and created again is added again.
    let r = store
        .txn(vec![put(&format!("{p}b"), "b2")])
        .await
        .unwrap()
        .revision;
    record(EventKind::Added, &format!("{p}b"), "b2", r);
    let r = store
        .txn(vec![
            update(&format!("{p}c"), "c2", None),
            delete(&format!("{p}a"), None),
        ])
        .await
        .unwrap()
        .revision;
    record(EventKind::Modified, &format!("{p}c"), "c2", r);
    record(EventKind::Deleted, &format!("{p}a"), "a2", r);

    // From the start, from the middle, and live from before the writes.
    for (from, mut w) in [
        (start, store.watch(p, start).await.unwrap()),
        (expected[2].3, store.watch(p, expected[2].3).await.unwrap()),
        (start, live_from_now),
    ] {
        for want in expected.iter().filter(|e| e.3 > from) {
            let e = next(&mut w).await;
            let got = (
                e.kind,
                e.key.clone(),
                String::from_utf8_lossy(&e.value).into_owned(),
                e.revision,
            );
            assert_eq!(&got, want, "watch from {from}");
        }
        // Then it follows new writes.
        let r = store
            .txn(vec![put(&format!("{p}z{from}-{}", expected.len()), "new")])
            .await
            .unwrap()
            .revision;
        let e = next(&mut w).await;
        assert_eq!((e.kind, e.revision), (EventKind::Added, r));
        expected.push((EventKind::Added, e.key.clone(), "new".into(), r));
    }
}

async fn keys_with_unusual_bytes_round_trip(store: &dyn Store) {
    let p = "/registry/roles/odd/";
    let names = [
        "with space",
        "per%cent",
        "colon:semi;comma,",
        "quote\"back\\slash",
        "line\nbreak\ttab",
        "del\u{7f}",
        "nul",
        "nul\0byte",
        "ünïcødé",
        "日本語",
        "crab-🦀",
        "max-\u{10FFFF}",
        "dot..",
        "a/b/c",
        "a/bb",
        &"x".repeat(1000),
    ];
    let from = store.revision().await.unwrap();
    let mut w = store.watch(p, from).await.unwrap();
    let mut written: Vec<String> = Vec::new();
    for name in names {
        let key = format!("{p}{name}");
        store.txn(vec![put(&key, name)]).await.unwrap();
        let got = store.get(&key).await.unwrap().unwrap();
        assert_eq!((&got.key, &*got.value), (&key, name.as_bytes()));
        written.push(key);
    }
    // Neighbours that sort right after the prefix but are not under it.
    store
        .txn(vec![
            put("/registry/roles/odd0/x", "n"),
            put("/registry/roles/odd\u{7f}", "n"),
        ])
        .await
        .unwrap();
    for key in &written {
        let e = next(&mut w).await;
        assert_eq!((e.kind, &e.key), (EventKind::Added, key));
    }

    // Byte order, and paging one key at a time resumes right after each odd key.
    let mut sorted = written.clone();
    sorted.sort();
    let listed = store.list(p, None, 0, 0, &all).await.unwrap();
    assert_eq!(keys(&listed.items), sorted);
    let mut paged = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = store.list(p, after.as_deref(), 1, 0, &all).await.unwrap();
        paged.extend(page.items.iter().map(|kv| kv.key.clone()));
        after = page.items.last().map(|kv| kv.key.clone());
        if !page.more {
            break;
        }
    }
    assert_eq!(paged, sorted);
    let nested = store
        .list(&format!("{p}a/"), None, 0, 0, &all)
        .await
        .unwrap();
    assert_eq!(
        keys(&nested.items),
        [format!("{p}a/b/c"), format!("{p}a/bb")]
    );

    for key in &written {
        let del = store.txn(vec![delete(key, None)]).await.unwrap();
        assert_eq!(&del.previous[0][0].key, key);
        let e = next(&mut w).await;
        assert_eq!((e.kind, &e.key), (EventKind::Deleted, key));
    }
    assert!(
        store
            .list(p, None, 0, 0, &all)
            .await
            .unwrap()
            .items
            .is_empty()
    );
}

// === helpers ===

fn put(key: &str, v: &str) -> TxnOp {
    TxnOp::Create {
        key: key.into(),
        value: v.as_bytes().to_vec(),
    }
}

fn update(key: &str, v: &str, expect: Option<u64>) -> TxnOp {
    TxnOp::Update {
        key: key.into(),
        value: v.as_bytes().to_vec(),
        expect,
    }
}

fn delete(key: &str, expect: Option<u64>) -> TxnOp {
    TxnOp::Delete {
        key: key.into(),
        expect,
    }
}

fn kv(key: &str, v: &str, mod_revision: u64) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: v.as_bytes().into(),
        mod_revision,
    }
}

fn all(_: &KeyValue) -> bool {
    true
}

fn keys(items: &[KeyValue]) -> Vec<String> {
    items.iter().map(|kv| kv.key.clone()).collect()
}

/// The next event of a watch, failing the test if the stream ends, errs, or stays silent.
async fn next(w: &mut WatchStream) -> Arc<WatchEvent> {
    match tokio::time::timeout(EVENT_DEADLINE, w.next()).await {
        Ok(Some(Ok(e))) => e,
        Ok(Some(Err(e))) => panic!("watch failed: {e:#}"),
        Ok(None) => panic!("watch ended"),
        Err(_) => panic!("no watch event within {EVENT_DEADLINE:?}"),
    }
}

#[cfg(feature = "etcd")]
#[path = "store/etcd.rs"]
mod etcd;

/// Without the `etcd` feature the etcd half of this suite (and `tests/replicas.rs`) is not
/// built; say so by failing rather than passing with half the suite missing.
#[cfg(not(feature = "etcd"))]
#[test]
fn etcd_cases_need_the_etcd_feature() {
    panic!(
        "the etcd store and replica tests are not built: run ./scripts/test, or \
         cargo test --features etcd (needs protoc: apt-get install protobuf-compiler)"
    );
}

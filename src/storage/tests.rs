//! Store conformance: the same cases run against every backend.

use std::sync::Arc;

use super::embedded::EmbeddedStore;
use super::*;

fn put(key: &str, v: &str) -> TxnOp {
    TxnOp::Create {
        key: key.into(),
        value: v.as_bytes().to_vec(),
    }
}

fn all(_: &KeyValue) -> bool {
    true
}

async fn conformance(store: Arc<dyn Store>) {
    // create, get, AlreadyExists
    let r1 = store
        .txn(vec![put("/registry/pods/a/x", "1")])
        .await
        .unwrap()
        .revision;
    let got = store.get("/registry/pods/a/x").await.unwrap().unwrap();
    assert_eq!((&*got.value, got.mod_revision), (&b"1"[..], r1));
    assert!(matches!(
        store.txn(vec![put("/registry/pods/a/x", "2")]).await,
        Err(StoreError::AlreadyExists(k)) if k == "/registry/pods/a/x"
    ));
    assert_eq!(
        store.revision().await.unwrap(),
        r1,
        "a failed txn spends no revision"
    );

    // update with a stale revision conflicts and changes nothing
    let stale = store
        .txn(vec![TxnOp::Update {
            key: "/registry/pods/a/x".into(),
            value: b"3".to_vec(),
            expect: Some(r1 - 1),
        }])
        .await;
    assert!(
        matches!(stale, Err(StoreError::Conflict { .. })),
        "{stale:?}"
    );
    let r2 = store
        .txn(vec![TxnOp::Update {
            key: "/registry/pods/a/x".into(),
            value: b"3".to_vec(),
            expect: Some(r1),
        }])
        .await
        .unwrap()
        .revision;
    assert!(r2 > r1);

    // a transaction is all or nothing
    let mixed = store
        .txn(vec![
            put("/registry/pods/a/y", "y"),
            put("/registry/pods/a/x", "dup"),
        ])
        .await;
    assert!(mixed.is_err());
    assert!(store.get("/registry/pods/a/y").await.unwrap().is_none());

    // list with paging and a filter
    for name in ["b", "c", "d", "e"] {
        store
            .txn(vec![put(&format!("/registry/pods/a/{name}"), name)])
            .await
            .unwrap();
    }
    store
        .txn(vec![put("/registry/pods/b/z", "other ns")])
        .await
        .unwrap();
    store
        .txn(vec![put("/registry/podsx/a/q", "other resource")])
        .await
        .unwrap();
    let page = store
        .list("/registry/pods/a/", None, 2, 0, &all)
        .await
        .unwrap();
    let keys: Vec<_> = page.items.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(keys, ["/registry/pods/a/b", "/registry/pods/a/c"]);
    assert!(page.more);
    let rest = store
        .list("/registry/pods/a/", Some("/registry/pods/a/c"), 0, 0, &all)
        .await
        .unwrap();
    let keys: Vec<_> = rest.items.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "/registry/pods/a/d",
            "/registry/pods/a/e",
            "/registry/pods/a/x"
        ]
    );
    assert!(!rest.more);
    let odd = store
        .list("/registry/pods/", None, 0, 0, &|kv: &KeyValue| {
            &*kv.value == b"d" || &*kv.value == b"other ns"
        })
        .await
        .unwrap();
    assert_eq!(odd.items.len(), 2);

    // watch: history after a revision, then live events, under a prefix only
    let before_delete = store.revision().await.unwrap();
    let mut w = store.watch("/registry/pods/a/", r1).await.unwrap();
    let first = w.next().await.unwrap().unwrap();
    assert_eq!((first.kind, first.revision), (EventKind::Modified, r2));
    for _ in 0..4 {
        assert_eq!(w.next().await.unwrap().unwrap().kind, EventKind::Added);
    }
    let del = store
        .txn(vec![TxnOp::Delete {
            key: "/registry/pods/a/b".into(),
            expect: None,
        }])
        .await
        .unwrap();
    assert!(del.revision > before_delete);
    assert_eq!(&*del.previous[0][0].value, b"b");
    let gone = w.next().await.unwrap().unwrap();
    assert_eq!(
        (gone.kind, gone.key.as_str(), &*gone.value),
        (EventKind::Deleted, "/registry/pods/a/b", &b"b"[..])
    );

    // delete a prefix: one revision, one event per key, other prefixes untouched
    let wiped = store
        .txn(vec![TxnOp::DeletePrefix {
            prefix: "/registry/pods/a/".into(),
        }])
        .await
        .unwrap();
    assert_eq!(wiped.previous[0].len(), 4);
    for _ in 0..4 {
        let e = w.next().await.unwrap().unwrap();
        assert_eq!((e.kind, e.revision), (EventKind::Deleted, wiped.revision));
    }
    assert!(store.get("/registry/pods/b/z").await.unwrap().is_some());
    assert!(store.get("/registry/podsx/a/q").await.unwrap().is_some());

    // deleting what does not exist is NotFound; a future revision cannot be watched
    assert!(matches!(
        store
            .txn(vec![TxnOp::Delete {
                key: "/registry/pods/a/b".into(),
                expect: None
            }])
            .await,
        Err(StoreError::NotFound(_))
    ));
    let now = store.revision().await.unwrap();
    assert!(matches!(
        store.watch("/", now + 10).await,
        Err(StoreError::Future { .. })
    ));
}

#[tokio::test]
async fn embedded_store_passes_the_store_conformance_cases() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(EmbeddedStore::open(&dir.path().join("db")).unwrap());
    conformance(store).await;
}

#[tokio::test]
async fn embedded_store_keeps_objects_and_revision_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let rev = {
        let store = EmbeddedStore::open(&path).unwrap();
        store
            .txn(vec![put("/registry/configmaps/a/c", "{}")])
            .await
            .unwrap()
            .revision
    };
    let store = EmbeddedStore::open(&path).unwrap();
    assert_eq!(store.revision().await.unwrap(), rev);
    assert_eq!(
        store
            .get("/registry/configmaps/a/c")
            .await
            .unwrap()
            .unwrap()
            .mod_revision,
        rev
    );
    // History from before the restart is gone; watching from the current revision works.
    assert!(matches!(
        store.watch("/", rev - 1).await,
        Err(StoreError::Gone { .. })
    ));
    assert!(store.watch("/", rev).await.is_ok());
}

//! Embedded-store behaviour the shared conformance cases (`tests/store.rs`) cannot express:
//! what survives a reopen.

use super::embedded::EmbeddedStore;
use super::*;

fn put(key: &str, v: &str) -> TxnOp {
    TxnOp::Create {
        key: key.into(),
        value: v.as_bytes().to_vec(),
    }
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

//! The etcd backend against real etcd clusters started by [`common::etcd::Etcd`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use portcullis::storage::etcd::{EtcdConfig, EtcdStore};
use portcullis::storage::{EventKind, Store, StoreError, TxnOp};

use super::{all, conformance, keys, next, put, update};
use crate::common::etcd::Etcd;

/// A bound on recovering after etcd is back; only reached when the client never recovers.
const RECOVERY_DEADLINE: Duration = Duration::from_secs(60);

async fn connect(config: EtcdConfig) -> EtcdStore {
    EtcdStore::connect(&config).await.unwrap()
}

#[tokio::test]
async fn etcd_store_passes_the_store_conformance_cases() {
    let etcd = Etcd::start(1);
    let store = connect(EtcdConfig::new(etcd.endpoints())).await;
    conformance(Arc::new(store)).await;
}

#[tokio::test]
async fn etcd_store_over_tls_with_a_client_certificate_passes_the_store_conformance_cases() {
    let etcd = Etcd::start_tls();
    let (ca, cert, key) = etcd.tls_files().unwrap();
    let store = connect(EtcdConfig {
        ca_file: Some(ca),
        cert_file: Some(cert),
        key_file: Some(key),
        ..EtcdConfig::new(etcd.endpoints())
    })
    .await;
    conformance(Arc::new(store)).await;
}

#[tokio::test]
async fn etcd_over_tls_refuses_a_client_without_a_certificate() {
    let etcd = Etcd::start_tls();
    let (ca, _, _) = etcd.tls_files().unwrap();
    let store = connect(EtcdConfig {
        ca_file: Some(ca),
        request_timeout: Duration::from_secs(2),
        ..EtcdConfig::new(etcd.endpoints())
    })
    .await;
    let refused = store.get("/registry/pods/a/x").await;
    assert!(refused.is_err(), "{refused:?}");
    let refused = store.txn(vec![put("/registry/pods/a/x", "1")]).await;
    assert!(refused.is_err(), "{refused:?}");
}

#[tokio::test]
async fn etcd_list_pinned_at_a_revision_sees_the_state_of_that_revision() {
    let etcd = Etcd::start(1);
    let store = connect(EtcdConfig::new(etcd.endpoints())).await;
    let p = "/registry/pods/ns/";
    let first = store
        .txn(vec![put(&format!("{p}k0"), "old")])
        .await
        .unwrap()
        .revision;
    for i in 1..5 {
        store
            .txn(vec![put(&format!("{p}k{i}"), "old")])
            .await
            .unwrap();
    }
    let page = store.list(p, None, 2, 0, &all).await.unwrap();
    assert_eq!(keys(&page.items), [format!("{p}k0"), format!("{p}k1")]);
    assert!(page.more);
    let pinned = page.revision;

    // The world moves on between pages.
    store
        .txn(vec![update(&format!("{p}k2"), "new", None)])
        .await
        .unwrap();
    store
        .txn(vec![TxnOp::Delete {
            key: format!("{p}k3"),
            expect: None,
        }])
        .await
        .unwrap();
    store
        .txn(vec![put(&format!("{p}k5"), "new")])
        .await
        .unwrap();

    let rest = store
        .list(p, Some(&format!("{p}k1")), 0, pinned, &all)
        .await
        .unwrap();
    assert_eq!(rest.revision, pinned);
    assert_eq!(
        keys(&rest.items),
        [format!("{p}k2"), format!("{p}k3"), format!("{p}k4")]
    );
    assert!(rest.items.iter().all(|kv| &*kv.value == b"old"));
    assert!(rest.items.iter().all(|kv| kv.mod_revision <= pinned));

    // Earlier still: only the first key existed.
    let early = store.list(p, None, 0, first, &all).await.unwrap();
    assert_eq!(keys(&early.items), [format!("{p}k0")]);
    // And the latest state is what an unpinned list sees.
    let latest = store.list(p, None, 0, 0, &all).await.unwrap();
    assert_eq!(
        keys(&latest.items),
        [
            format!("{p}k0"),
            format!("{p}k1"),
            format!("{p}k2"),
            format!("{p}k4"),
            format!("{p}k5")
        ]
    );
    assert!(latest.revision > pinned);
}

#[tokio::test]
async fn etcd_compaction_makes_older_watches_and_lists_gone_but_open_watches_go_on() {
    let etcd = Etcd::start(1);
    let store = connect(EtcdConfig::new(etcd.endpoints())).await;
    let p = "/registry/configmaps/c/";
    let old = store
        .txn(vec![put(&format!("{p}a"), "1")])
        .await
        .unwrap()
        .revision;
    store
        .txn(vec![update(&format!("{p}a"), "2", None)])
        .await
        .unwrap();
    store.txn(vec![put(&format!("{p}b"), "1")]).await.unwrap();
    let now = store.revision().await.unwrap();
    let mut open = store.watch(p, now).await.unwrap();
    // A watch that is still replaying history from before the compaction.
    let mut behind = store.watch(p, old - 1).await.unwrap();

    store.compact(now).await.unwrap();

    let watch = store.watch(p, old).await;
    assert!(
        matches!(watch, Err(StoreError::Gone { requested, .. }) if requested == old),
        "{:?}",
        watch.err()
    );
    let list = store.list(p, None, 0, old, &all).await;
    assert!(
        matches!(list, Err(StoreError::Gone { requested, .. }) if requested == old),
        "{list:?}"
    );
    // The compacted revision itself is still readable, and the latest always is.
    assert_eq!(
        store.list(p, None, 0, now, &all).await.unwrap().items.len(),
        2
    );
    assert_eq!(
        store.list(p, None, 0, 0, &all).await.unwrap().items.len(),
        2
    );

    let r = store
        .txn(vec![put(&format!("{p}c"), "after")])
        .await
        .unwrap()
        .revision;
    let e = next(&mut open).await;
    assert_eq!(
        (e.kind, e.key.as_str(), e.revision),
        (EventKind::Added, format!("{p}c").as_str(), r)
    );
    let mut fresh = store.watch(p, now).await.unwrap();
    assert_eq!(next(&mut fresh).await.revision, r);

    // The watch opened from before the compaction had its history delivered already (etcd
    // sends it at once) or ends with Gone; it never skips events silently.
    let mut revisions = Vec::new();
    loop {
        match tokio::time::timeout(Duration::from_secs(30), behind.next()).await {
            Ok(Some(Ok(e))) => {
                revisions.push(e.revision);
                if e.revision == r {
                    break;
                }
            }
            Ok(Some(Err(StoreError::Gone { .. }))) => break,
            other => panic!("watch from before the compaction: {other:?}"),
        }
    }
    if revisions.last() == Some(&r) {
        assert_eq!(revisions, (old..=r).collect::<Vec<_>>());
    }
}

#[tokio::test]
async fn etcd_prefix_keeps_two_gateways_on_one_cluster_apart() {
    let etcd = Etcd::start(1);
    let a = connect(EtcdConfig::new(etcd.endpoints())).await;
    let b = connect(EtcdConfig {
        prefix: "/registry-b".into(),
        ..EtcdConfig::new(etcd.endpoints())
    })
    .await;
    let c = connect(EtcdConfig {
        prefix: "/tenants/c/".into(),
        ..EtcdConfig::new(etcd.endpoints())
    })
    .await;
    let stores = [&a, &b, &c];
    let start = a.revision().await.unwrap();
    let mut watches = Vec::new();
    for s in stores {
        watches.push(s.watch("/registry/", start).await.unwrap());
    }
    for (i, s) in stores.iter().enumerate() {
        s.txn(vec![put("/registry/pods/ns/p", &format!("store {i}"))])
            .await
            .unwrap();
    }
    for (i, s) in stores.iter().enumerate() {
        let mine = format!("store {i}");
        let got = s.get("/registry/pods/ns/p").await.unwrap().unwrap();
        assert_eq!(&*got.value, mine.as_bytes());
        let listed = s.list("/registry/", None, 0, 0, &all).await.unwrap();
        assert_eq!(keys(&listed.items), ["/registry/pods/ns/p"], "store {i}");
        assert_eq!(&*listed.items[0].value, mine.as_bytes());
        let e = next(&mut watches[i]).await;
        assert_eq!(
            (e.key.as_str(), &*e.value),
            ("/registry/pods/ns/p", mine.as_bytes())
        );
    }
    // Wiping one store's pods leaves the others', and its watch alone sees it.
    a.txn(vec![TxnOp::DeletePrefix {
        prefix: "/registry/".into(),
    }])
    .await
    .unwrap();
    assert_eq!(next(&mut watches[0]).await.kind, EventKind::Deleted);
    assert!(b.get("/registry/pods/ns/p").await.unwrap().is_some());
    assert!(c.get("/registry/pods/ns/p").await.unwrap().is_some());
    let r = b
        .txn(vec![update("/registry/pods/ns/p", "b again", None)])
        .await
        .unwrap()
        .revision;
    assert_eq!(next(&mut watches[1]).await.revision, r);
    let r = c
        .txn(vec![put("/registry/pods/ns/q", "c again")])
        .await
        .unwrap()
        .revision;
    // Had `c` seen `b`'s update, it would come first.
    assert_eq!(next(&mut watches[2]).await.revision, r);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_outage_is_unavailable_and_the_store_recovers_by_itself() {
    let mut etcd = Etcd::start(1);
    let store = connect(EtcdConfig {
        request_timeout: Duration::from_secs(1),
        dial_timeout: Duration::from_millis(500),
        ..EtcdConfig::new(etcd.endpoints())
    })
    .await;
    let p = "/registry/pods/o/";
    store.txn(vec![put(&format!("{p}a"), "1")]).await.unwrap();
    let mut w = store.watch(p, 0).await.unwrap();
    let before = store
        .txn(vec![put(&format!("{p}b"), "1")])
        .await
        .unwrap()
        .revision;
    assert_eq!(next(&mut w).await.revision, before);

    tokio::task::block_in_place(|| etcd.stop_all());
    // Every call fails as unavailable; the outer bound only catches a call that hangs.
    let bound = Duration::from_secs(20);
    let unavailable =
        |what: &str, r: Result<Result<(), StoreError>, tokio::time::error::Elapsed>| match r {
            Ok(Err(StoreError::Unavailable(_))) => {}
            other => panic!("{what} while etcd is down: {other:?}"),
        };
    unavailable(
        "get",
        tokio::time::timeout(bound, async { store.get(&format!("{p}a")).await.map(drop) }).await,
    );
    unavailable(
        "list",
        tokio::time::timeout(bound, async {
            store.list(p, None, 0, 0, &all).await.map(drop)
        })
        .await,
    );
    unavailable(
        "txn",
        tokio::time::timeout(bound, async {
            store.txn(vec![put(&format!("{p}c"), "1")]).await.map(drop)
        })
        .await,
    );
    unavailable(
        "revision",
        tokio::time::timeout(bound, async { store.revision().await.map(drop) }).await,
    );
    unavailable(
        "watch",
        tokio::time::timeout(bound, async { store.watch(p, 0).await.map(drop) }).await,
    );

    tokio::task::block_in_place(|| etcd.start_all());
    // The same client comes back once etcd does.
    let deadline = Instant::now() + RECOVERY_DEADLINE;
    let after = loop {
        match store.txn(vec![put(&format!("{p}c"), "2")]).await {
            Ok(r) => break r.revision,
            Err(StoreError::Unavailable(e)) => {
                assert!(
                    Instant::now() < deadline,
                    "etcd is back but the store is not: {e}"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("after etcd came back: {e:#}"),
        }
    };
    assert_eq!(after, before + 1, "the failed txn while down wrote nothing");
    assert_eq!(
        &*store.get(&format!("{p}c")).await.unwrap().unwrap().value,
        b"2"
    );
    // The watch opened before the outage resumed where it was: the next event, no repeat.
    let e = next(&mut w).await;
    assert_eq!(
        (e.key.as_str(), e.revision),
        (format!("{p}c").as_str(), after)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_watch_delivers_every_event_once_in_order_while_each_member_is_killed() {
    watch_outlives_each_member(Etcd::kill_member).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_watch_delivers_every_event_once_in_order_while_each_member_is_restarted() {
    watch_outlives_each_member(Etcd::terminate_member).await;
}

/// Stops each member of three in turn with `stop` while writing, restarts it, and checks that
/// a watch opened before saw every write exactly once, in order.
async fn watch_outlives_each_member(stop: fn(&mut Etcd, usize)) {
    let mut etcd = Etcd::start(3);
    let store = connect(EtcdConfig {
        request_timeout: Duration::from_secs(2),
        dial_timeout: Duration::from_millis(500),
        ..EtcdConfig::new(etcd.endpoints())
    })
    .await;
    let p = "/registry/leases/kill/";
    let start = store.revision().await.unwrap();
    let mut w = store.watch(p, start).await.unwrap();

    // Collect concurrently, as a gateway's watch cache does.
    let collector = tokio::spawn(async move {
        let mut events = Vec::new();
        loop {
            let e = next(&mut w).await;
            let done = e.key.ends_with("/done");
            events.push((e.revision, e.key.clone(), e.kind));
            if done {
                return events;
            }
        }
    });

    let mut written = Vec::new();
    let mut n = 0;
    for member in 0..3 {
        for phase in ["killed", "back"] {
            if phase == "killed" {
                tokio::task::block_in_place(|| stop(&mut etcd, member));
            } else {
                tokio::task::block_in_place(|| etcd.restart_member(member));
            }
            for _ in 0..10 {
                let key = format!("{p}k{n:03}");
                create_retrying(&store, &key).await;
                written.push(key);
                n += 1;
            }
        }
    }
    let done = format!("{p}done");
    create_retrying(&store, &done).await;
    written.push(done);
    let end = store.revision().await.unwrap();

    let events = tokio::time::timeout(Duration::from_secs(90), collector)
        .await
        .expect("the watch did not deliver every event")
        .unwrap();
    let revisions: Vec<u64> = events.iter().map(|e| e.0).collect();
    assert_eq!(
        revisions,
        (start + 1..=end).collect::<Vec<_>>(),
        "revisions delivered (a gap is a lost event, a repeat a duplicate)"
    );
    let delivered: Vec<String> = events.iter().map(|e| e.1.clone()).collect();
    assert_eq!(delivered, written);
    assert!(events.iter().all(|e| e.2 == EventKind::Added));
}

/// Creates `key`, retrying while the cluster is unavailable (an election after a kill). A
/// retry that finds the key means an earlier attempt committed but its answer was lost.
async fn create_retrying(store: &EtcdStore, key: &str) {
    let deadline = Instant::now() + RECOVERY_DEADLINE;
    let mut attempt = 0;
    loop {
        match store.txn(vec![put(key, "v")]).await {
            Ok(_) => return,
            Err(StoreError::AlreadyExists(_)) if attempt > 0 => return,
            Err(StoreError::Unavailable(e)) if Instant::now() < deadline => {
                eprintln!("retrying {key}: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("creating {key}: {e:#}"),
        }
        attempt += 1;
    }
}

#[tokio::test]
async fn etcd_compactor_compacts_history_without_writing_under_the_store_keys() {
    let etcd = Etcd::start(1);
    let a = connect(EtcdConfig::new(etcd.endpoints())).await;
    // A second gateway under another prefix shares the cluster, and so its compaction.
    let b = connect(EtcdConfig {
        prefix: "/other".into(),
        ..EtcdConfig::new(etcd.endpoints())
    })
    .await;
    let old = a
        .txn(vec![put("/registry/pods/ns/a", "1")])
        .await
        .unwrap()
        .revision;
    let mut w = a.watch("/registry/", old).await.unwrap();
    let mut wb = b.watch("/registry/", old).await.unwrap();
    a.spawn_compactor(Duration::from_millis(200));
    b.spawn_compactor(Duration::from_millis(200));

    let deadline = Instant::now() + RECOVERY_DEADLINE;
    loop {
        match a.list("/registry/", None, 0, old - 1, &all).await {
            Err(StoreError::Gone { .. }) => break,
            Ok(_) => {
                assert!(Instant::now() < deadline, "the compactor never compacted");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("{e:#}"),
        }
    }
    // Neither store sees the compactor's bookkeeping among its keys or in its watch.
    for s in [&a, &b] {
        let listed = s.list("/registry/", None, 0, 0, &all).await.unwrap();
        let expected: &[&str] = if std::ptr::eq(s, &a) {
            &["/registry/pods/ns/a"]
        } else {
            &[]
        };
        assert_eq!(keys(&listed.items), expected);
    }
    let r = a
        .txn(vec![put("/registry/pods/ns/b", "2")])
        .await
        .unwrap()
        .revision;
    let e = next(&mut w).await;
    assert_eq!((e.key.as_str(), e.revision), ("/registry/pods/ns/b", r));
    let r = b
        .txn(vec![put("/registry/pods/ns/c", "3")])
        .await
        .unwrap()
        .revision;
    let e = next(&mut wb).await;
    assert_eq!((e.key.as_str(), e.revision), ("/registry/pods/ns/c", r));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_store_works_when_a_member_is_down_from_the_start() {
    let mut etcd = Etcd::start(3);
    tokio::task::block_in_place(|| {
        etcd.kill_member(0);
        // Should it have led, the others elect a leader first: that wait is not under test.
        etcd.wait_healthy();
    });
    let store = connect(EtcdConfig {
        request_timeout: Duration::from_secs(2),
        dial_timeout: Duration::from_millis(500),
        ..EtcdConfig::new(etcd.endpoints())
    })
    .await;
    let mut failures = Vec::new();
    for i in 0..30 {
        let key = format!("/registry/pods/down/k{i:02}");
        if let Err(e) = store.txn(vec![put(&key, "v")]).await {
            failures.push(format!("txn {i}: {e}"));
        }
        if let Err(e) = store.get(&key).await {
            failures.push(format!("get {i}: {e}"));
        }
        if let Err(e) = store.list("/registry/pods/down/", None, 0, 0, &all).await {
            failures.push(format!("list {i}: {e}"));
        }
        if let Err(e) = store.watch("/registry/pods/down/", 0).await {
            failures.push(format!("watch {i}: {e}"));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_cluster_without_quorum_is_unavailable_until_a_member_returns() {
    let mut etcd = Etcd::start(3);
    let store = connect(EtcdConfig {
        request_timeout: Duration::from_secs(1),
        dial_timeout: Duration::from_millis(500),
        ..EtcdConfig::new(etcd.endpoints())
    })
    .await;
    let p = "/registry/pods/quorum/";
    let before = store
        .txn(vec![put(&format!("{p}a"), "1")])
        .await
        .unwrap()
        .revision;
    let mut w = store.watch(p, before).await.unwrap();

    // One member is left: it accepts connections but cannot answer writes or linearizable
    // reads, so each call runs into the request timeout.
    tokio::task::block_in_place(|| {
        etcd.kill_member(1);
        etcd.kill_member(2);
    });
    let bound = Duration::from_secs(20);
    let txn = tokio::time::timeout(bound, store.txn(vec![put(&format!("{p}maybe"), "1")])).await;
    assert!(
        matches!(txn, Ok(Err(StoreError::Unavailable(_)))),
        "{txn:?}"
    );
    let get = tokio::time::timeout(bound, store.get(&format!("{p}a"))).await;
    assert!(
        matches!(get, Ok(Err(StoreError::Unavailable(_)))),
        "{get:?}"
    );
    let list = tokio::time::timeout(bound, store.list(p, None, 0, 0, &all)).await;
    assert!(
        matches!(list, Ok(Err(StoreError::Unavailable(_)))),
        "{:?}",
        list.map(|r| r.map(|page| page.items.len()))
    );

    tokio::task::block_in_place(|| etcd.restart_member(2));
    create_retrying(&store, &format!("{p}b")).await;
    // The watch saw nothing it should not have, and then `b`, once.
    let mut seen = Vec::new();
    loop {
        let e = next(&mut w).await;
        seen.push((e.key.clone(), e.revision));
        if e.key.ends_with("/b") {
            break;
        }
    }
    let revisions: Vec<u64> = seen.iter().map(|s| s.1).collect();
    assert_eq!(
        revisions,
        (before + 1..=before + seen.len() as u64).collect::<Vec<_>>(),
        "{seen:?}"
    );
    assert!(
        seen.iter()
            .all(|(k, _)| k.ends_with("/b") || k.ends_with("/maybe")),
        "{seen:?}"
    );
}

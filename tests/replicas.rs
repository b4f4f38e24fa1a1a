//! Several gateways on one etcd cluster behave as one system; etcd faults give 503 and heal.
//!
//! Real parts only: etcd members started by the harness on 127.0.0.1, the built `portcullis`
//! binary, the real kubectl, HTTPS with the generated certificates.

#![cfg(feature = "etcd")]

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::Gateway;
use common::etcd::Etcd;
use serde_json::{Value, json};

fn etcd_flags(etcd: &Etcd) -> Vec<String> {
    vec![
        "--storage-backend".into(),
        "etcd3".into(),
        "--etcd-servers".into(),
        etcd.servers_flag(),
        "--etcd-request-timeout".into(),
        "2s".into(),
    ]
}

fn start(data_from: Option<&Path>, flags: &[String]) -> Gateway {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    if let Some(from) = data_from {
        // Replicas share the PKI and service-account keys, as kube-apiservers do; not the store.
        std::fs::create_dir_all(&data).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            let name = entry.file_name();
            if entry.file_type().unwrap().is_file() && name != "store.redb" {
                std::fs::copy(entry.path(), data.join(name)).unwrap();
            }
        }
    }
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    Gateway::start_in(dir, data, &flags)
}

/// A one-member etcd and two replicas on it, B sharing A's PKI and keys.
fn two_replicas() -> (Etcd, Gateway, Gateway) {
    let etcd = Etcd::start(1);
    let flags = etcd_flags(&etcd);
    let a = start(None, &flags);
    let b = start(Some(&a.data), &flags);
    (etcd, a, b)
}

/// Polls `check` until it returns true, failing after `limit`; returns how long it took.
fn eventually(limit: Duration, what: &str, mut check: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    loop {
        if check() {
            return start.elapsed();
        }
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn can_i(gw: &Gateway, args: &[&str]) -> bool {
    let out = gw.kubectl(&[&["auth", "can-i"], args].concat());
    String::from_utf8_lossy(&out.stdout).trim() == "yes"
}

#[test]
fn a_rolebinding_written_through_one_replica_is_enforced_by_the_other() {
    let (_etcd, a, b) = two_replicas();

    a.kubectl_ok(&["create", "namespace", "team"]);
    let ask = ["list", "pods", "-n", "team", "--as", "alice"];
    assert!(
        !can_i(&b, &ask),
        "alice may not list pods before the binding"
    );

    a.kubectl_ok(&[
        "create",
        "rolebinding",
        "alice-view",
        "-n",
        "team",
        "--clusterrole",
        "view",
        "--user",
        "alice",
    ]);
    let took = eventually(
        Duration::from_secs(10),
        "replica B enforces the binding",
        || can_i(&b, &ask),
    );
    // The issue's figure (within a second) is measured here, not asserted: machines are noisy.
    eprintln!("binding written through A enforced by B after {took:?} (including kubectl runs)");

    a.kubectl_ok(&["delete", "rolebinding", "alice-view", "-n", "team"]);
    eventually(
        Duration::from_secs(10),
        "replica B drops the binding",
        || !can_i(&b, &ask),
    );

    // A ClusterRole aggregated into `view` through A (secrets, which `view` lacks) is enforced
    // by B.
    let applied = a.kubectl_with_stdin(
        &["apply", "-f", "-"],
        Some(
            r#"{"apiVersion":"rbac.authorization.k8s.io/v1","kind":"ClusterRole","metadata":{"name":"secrets-view","labels":{"rbac.authorization.k8s.io/aggregate-to-view":"true"}},"rules":[{"apiGroups":[""],"resources":["secrets"],"verbs":["get"]}]}"#,
        ),
    );
    assert!(
        applied.status.success(),
        "{}",
        String::from_utf8_lossy(&applied.stderr)
    );
    a.kubectl_ok(&[
        "create",
        "rolebinding",
        "bob-view",
        "-n",
        "team",
        "--clusterrole",
        "view",
        "--user",
        "bob",
    ]);
    let ask = ["get", "secrets", "-n", "team", "--as", "bob"];
    eventually(
        Duration::from_secs(10),
        "aggregated rule enforced by A",
        || can_i(&a, &ask),
    );
    eventually(
        Duration::from_secs(10),
        "aggregated rule enforced by B",
        || can_i(&b, &ask),
    );
}

#[test]
fn a_watch_through_one_replica_sees_writes_through_the_other() {
    let (_etcd, a, b) = two_replicas();

    let mut watch = b
        .kubectl_command(&[
            "get",
            "configmaps",
            "-n",
            "default",
            "--watch",
            "-o",
            "name",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = watch.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    // kubectl lists first, then watches; give it a moment to be watching, then write through A.
    std::thread::sleep(Duration::from_millis(500));
    for name in ["one", "two", "three"] {
        a.kubectl_ok(&["create", "configmap", name, "--from-literal", "k=v"]);
    }
    let mut seen = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while seen.len() < 3 {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("watch through B saw only {seen:?}"));
        if let Some(name) = line.strip_prefix("configmap/") {
            seen.insert(name.to_owned());
        }
    }
    assert_eq!(
        seen,
        BTreeSet::from(["one".to_owned(), "three".to_owned(), "two".to_owned()])
    );
    let _ = watch.kill();
    let _ = watch.wait();
}

#[test]
fn a_deleted_service_account_stops_authenticating_on_every_replica() {
    let (_etcd, a, b) = two_replicas();

    a.kubectl_ok(&["create", "serviceaccount", "robot"]);
    let token = a
        .kubectl_ok(&["create", "token", "robot"])
        .trim()
        .to_owned();
    // The token alone, no client certificate: SelfSubjectReview says who it is.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let who = |gw: &Gateway| {
        let client = gw.client_with_identity(None);
        rt.block_on(async {
            let r = client
                .post(format!(
                    "{}/apis/authentication.k8s.io/v1/selfsubjectreviews",
                    gw.url
                ))
                .bearer_auth(&token)
                .json(
                    &json!({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}),
                )
                .send()
                .await
                .unwrap();
            if !r.status().is_success() {
                return false;
            }
            let v: Value = r.json().await.unwrap();
            assert_eq!(
                v["status"]["userInfo"]["username"], "system:serviceaccount:default:robot",
                "{v}"
            );
            true
        })
    };
    // B verifies the token (and caches the verdict).
    eventually(Duration::from_secs(10), "token accepted by B", || who(&b));
    a.kubectl_ok(&["delete", "serviceaccount", "robot"]);
    eventually(Duration::from_secs(10), "token refused by B", || !who(&b));
}

#[test]
fn replicas_starting_at_once_write_the_bootstrap_policy_once() {
    let etcd = Etcd::start(1);
    let flags = etcd_flags(&etcd);
    let replicas: Vec<Gateway> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..3).map(|_| s.spawn(|| start(None, &flags))).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    // The same policy as a lone gateway on the embedded store writes.
    let reference = Gateway::start();
    let policy = |gw: &Gateway| -> Vec<(String, Value)> {
        let mut out = Vec::new();
        for kind in ["clusterroles", "clusterrolebindings", "namespaces"] {
            let list: Value =
                serde_json::from_str(&gw.kubectl_ok(&["get", kind, "-o", "json"])).unwrap();
            for item in list["items"].as_array().unwrap() {
                let name = item["metadata"]["name"].as_str().unwrap().to_owned();
                let mut rules = item.get("rules").cloned().unwrap_or(Value::Null);
                if let Some(r) = rules.as_array_mut() {
                    r.sort_by_key(|v| v.to_string());
                }
                let body = json!({
                    "rules": rules,
                    "subjects": item.get("subjects"),
                    "roleRef": item.get("roleRef"),
                    "labels": item["metadata"].get("labels"),
                });
                out.push((format!("{kind}/{name}"), body));
            }
        }
        out.sort_by(|x, y| x.0.cmp(&y.0));
        out
    };
    let want = policy(&reference);
    assert!(
        want.len() > 20,
        "the bootstrap policy has {} objects",
        want.len()
    );
    for (i, gw) in replicas.iter().enumerate() {
        let got = policy(gw);
        let names = |p: &[(String, Value)]| p.iter().map(|x| x.0.clone()).collect::<Vec<_>>();
        assert_eq!(names(&got), names(&want), "replica {i}: object names");
        for ((name, g), (_, w)) in got.iter().zip(&want) {
            assert_eq!(g, w, "replica {i}: {name}");
        }
    }
}

/// Creates configmaps one after another until `stop`, returning the names answered 201 and the
/// number of other answers.
async fn create_loop(
    client: reqwest::Client,
    url: String,
    worker: usize,
    stop: tokio::sync::watch::Receiver<bool>,
) -> (Vec<String>, usize) {
    let mut acknowledged = Vec::new();
    let mut failed = 0;
    let mut i = 0;
    while !*stop.borrow() {
        i += 1;
        let name = format!("cm-{worker}-{i:05}");
        let body = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"i": i.to_string()}});
        let r = client
            .post(format!("{url}/api/v1/namespaces/default/configmaps"))
            .json(&body)
            .send()
            .await;
        match r {
            Ok(r) if r.status() == 201 => acknowledged.push(name),
            _ => failed += 1,
        }
    }
    (acknowledged, failed)
}

#[test]
fn killing_etcd_members_loses_no_acknowledged_write_and_a_dead_cluster_gives_503() {
    let mut etcd = Etcd::start(3);
    let flags = etcd_flags(&etcd);
    let gw = start(None, &flags);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let client = gw.admin_client();
    let url = gw.url.clone();

    rt.block_on(async {
        // A watch open through the whole run must see every acknowledged create.
        let list: Value = client
            .get(format!("{url}/api/v1/namespaces/default/configmaps"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let rv = list["metadata"]["resourceVersion"].as_str().unwrap().to_owned();
        let mut watch = client
            .get(format!(
                "{url}/api/v1/namespaces/default/configmaps?watch=1&resourceVersion={rv}&timeoutSeconds=600"
            ))
            .timeout(Duration::from_secs(600))
            .send()
            .await
            .unwrap();
        assert_eq!(watch.status(), 200);
        let (seen_tx, mut seen_rx) = tokio::sync::mpsc::unbounded_channel::<String>();
        tokio::spawn(async move {
            let mut buf = Vec::new();
            while let Ok(Some(chunk)) = watch.chunk().await {
                buf.extend_from_slice(&chunk);
                while let Some(nl) = buf.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = buf.drain(..=nl).collect();
                    if let Ok(v) = serde_json::from_slice::<Value>(&line)
                        && v["type"] == "ADDED"
                        && let Some(n) = v["object"]["metadata"]["name"].as_str()
                    {
                        let _ = seen_tx.send(n.to_owned());
                    }
                }
            }
        });

        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let mut loops = Vec::new();
        for worker in 0..4 {
            loops.push(tokio::spawn(create_loop(
                client.clone(),
                url.clone(),
                worker,
                stop_rx.clone(),
            )));
        }
        for member in 0..3 {
            tokio::time::sleep(Duration::from_millis(700)).await;
            tokio::task::block_in_place(|| etcd.kill_member(member));
            tokio::time::sleep(Duration::from_millis(1500)).await;
            tokio::task::block_in_place(|| etcd.restart_member(member));
        }
        tokio::time::sleep(Duration::from_millis(700)).await;
        stop_tx.send(true).unwrap();
        let mut acknowledged = Vec::new();
        let mut failed = 0;
        for l in loops {
            let (a, f) = l.await.unwrap();
            acknowledged.extend(a);
            failed += f;
        }
        eprintln!("{} creates acknowledged, {failed} refused while members died", acknowledged.len());
        assert!(acknowledged.len() > 20, "the loop made progress");

        // Every 201 is readable, and the watch saw every one of them.
        for name in &acknowledged {
            let r = client
                .get(format!("{url}/api/v1/namespaces/default/configmaps/{name}"))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "acknowledged create {name} is readable");
        }
        let mut seen = BTreeSet::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        while acknowledged.iter().any(|n| !seen.contains(n)) {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, seen_rx.recv()).await {
                Ok(Some(n)) => {
                    seen.insert(n);
                }
                _ => {
                    let missing: Vec<_> =
                        acknowledged.iter().filter(|n| !seen.contains(*n)).collect();
                    panic!("the watch missed {} creates: {missing:?}", missing.len());
                }
            }
        }
    });

    let probe = format!("{url}/api/v1/namespaces/default/configmaps/probe");
    rt.block_on(async {
        let body = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "probe"}});
        let r = client
            .post(format!("{url}/api/v1/namespaces/default/configmaps"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            201,
            "the probe object is created once the cluster healed"
        );
    });

    // All members down: storage requests get a 503 Status, /readyz fails, and decisions that
    // need no storage (a SubjectAccessReview) still come from the snapshot.
    etcd.stop_all();
    rt.block_on(async {
        let r = client.get(&probe).send().await.unwrap();
        assert_eq!(r.status(), 503);
        let status: Value = r.json().await.unwrap();
        assert_eq!(
            (status["kind"].as_str(), status["code"].as_u64(), status["reason"].as_str()),
            (Some("Status"), Some(503), Some("ServiceUnavailable")),
            "{status}"
        );
        let ready = client.get(format!("{url}/readyz")).send().await.unwrap();
        assert_eq!(ready.status(), 500, "readyz fails while etcd is down");
        let sar = json!({
            "apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
            "spec": {"user": "alice", "resourceAttributes": {"verb": "get", "resource": "pods", "namespace": "default"}},
        });
        let r = client
            .post(format!("{url}/apis/authorization.k8s.io/v1/subjectaccessreviews"))
            .json(&sar)
            .send()
            .await
            .unwrap();
        assert!(
            r.status().is_success(),
            "SubjectAccessReview answered from the snapshot: {}",
            r.status()
        );
        let review: Value = r.json().await.unwrap();
        assert_eq!(review["status"]["allowed"], false);
    });

    // etcd returns: the gateway heals by itself.
    etcd.start_all();
    rt.block_on(async {
        let start = Instant::now();
        loop {
            let ready = client.get(format!("{url}/readyz")).send().await;
            let get = client.get(&probe).send().await;
            if ready.is_ok_and(|r| r.status() == 200) && get.is_ok_and(|r| r.status() == 200) {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "gateway did not recover"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
}

#[test]
fn a_collection_larger_than_an_etcd_transaction_is_deleted() {
    // etcd refuses transactions of more than 128 operations; deletecollection must not need one.
    let etcd = Etcd::start(1);
    let gw = start(None, &etcd_flags(&etcd));
    let client = gw.admin_client();
    let url = gw.url.clone();
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let mut creates = Vec::new();
        for i in 0..300 {
            let (client, url) = (client.clone(), url.clone());
            creates.push(tokio::spawn(async move {
                let body = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": format!("c{i}"), "labels": {"batch": "x"}}});
                client
                    .post(format!("{url}/api/v1/namespaces/default/configmaps"))
                    .json(&body)
                    .send()
                    .await
                    .unwrap()
                    .status()
            }));
        }
        for c in creates {
            assert_eq!(c.await.unwrap(), 201);
        }
        let r = client
            .delete(format!(
                "{url}/api/v1/namespaces/default/configmaps?labelSelector=batch%3Dx"
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
        let deleted: Value = r.json().await.unwrap();
        assert_eq!(deleted["items"].as_array().unwrap().len(), 300);
        let left: Value = client
            .get(format!("{url}/api/v1/namespaces/default/configmaps"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(left["items"].as_array().unwrap().len(), 0, "{left}");
    });
}

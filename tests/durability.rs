//! Acknowledged writes survive a clean restart and a `kill -9`.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use common::Gateway;
use serde_json::json;

fn configmap(name: &str) -> serde_json::Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"n": name}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_survive_a_restart() {
    let mut gw = Gateway::start();
    let client = gw.admin_client();
    let url = format!("{}/api/v1/namespaces/default/configmaps", gw.url);
    let r = client
        .post(&url)
        .json(&configmap("kept"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let status = gw.terminate();
    assert!(
        status.success(),
        "SIGTERM ends the server cleanly: {status:?}"
    );
    gw.restart();
    let client = gw.admin_client();
    let r = client
        .get(format!(
            "{}/api/v1/namespaces/default/configmaps/kept",
            gw.url
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["data"]["n"], "kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_create_survives_kill_9() {
    let mut gw = Gateway::start();
    let client = gw.admin_client();
    let url = format!("{}/api/v1/namespaces/default/configmaps", gw.url);
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..4 {
        let (client, url, stop) = (client.clone(), url.clone(), stop.clone());
        writers.push(tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            for i in 0..100_000 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let name = format!("w{w}-{i}");
                match client.post(&url).json(&configmap(&name)).send().await {
                    Ok(r) if r.status() == 201 => acknowledged.push(name),
                    Ok(r) => panic!("create {name} answered {}", r.status()),
                    // The server died under us: this create was never acknowledged.
                    Err(_) => break,
                }
            }
            acknowledged
        }));
    }
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    gw.kill9();
    stop.store(true, Ordering::Relaxed);
    let mut acknowledged = Vec::new();
    for w in writers {
        acknowledged.extend(w.await.unwrap());
    }
    assert!(
        acknowledged.len() > 10,
        "the loop made progress before the kill: {}",
        acknowledged.len()
    );

    gw.restart();
    let client = gw.admin_client();
    let url = format!("{}/api/v1/namespaces/default/configmaps", gw.url);
    let list: serde_json::Value = client.get(&url).send().await.unwrap().json().await.unwrap();
    let present: std::collections::HashSet<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap())
        .collect();
    let lost: Vec<&String> = acknowledged
        .iter()
        .filter(|n| !present.contains(n.as_str()))
        .collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged creates lost after kill -9: {:?}",
        lost.len(),
        &lost[..lost.len().min(10)]
    );
}

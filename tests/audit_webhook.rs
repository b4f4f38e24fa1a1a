//! The audit webhook backend through the gateway: a receiver that fails, is slow or is down
//! loses nothing in blocking mode; acknowledged writes always have their events delivered.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use common::Gateway;
use serde_json::Value;

/// What the receiver does with the next POSTs, and what it got.
#[derive(Default)]
struct Receiver {
    /// Answer 500 to this many more POSTs.
    fail: AtomicUsize,
    /// Sleep this long (ms) before answering the next POST, once.
    slow_ms: AtomicUsize,
    posts: AtomicUsize,
    events: Mutex<Vec<Value>>,
}

async fn receive(State(r): State<Arc<Receiver>>, body: axum::body::Bytes) -> StatusCode {
    r.posts.fetch_add(1, Ordering::SeqCst);
    let slow = r.slow_ms.swap(0, Ordering::SeqCst);
    if slow > 0 {
        tokio::time::sleep(Duration::from_millis(slow as u64)).await;
    }
    if r.fail.load(Ordering::SeqCst) > 0 {
        r.fail.fetch_sub(1, Ordering::SeqCst);
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    let list: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(list["kind"], "EventList");
    assert_eq!(list["apiVersion"], "audit.k8s.io/v1");
    r.events
        .lock()
        .unwrap()
        .extend(list["items"].as_array().unwrap().iter().cloned());
    StatusCode::OK
}

async fn serve_receiver(
    listener: tokio::net::TcpListener,
    r: Arc<Receiver>,
) -> tokio::task::JoinHandle<()> {
    let app = Router::new().route("/audit", post(receive)).with_state(r);
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    })
}

fn delivered(r: &Receiver, id: &str, stage: &str) -> bool {
    r.events
        .lock()
        .unwrap()
        .iter()
        .any(|e| e["auditID"] == id && e["stage"] == stage)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocking_webhook_loses_nothing_when_the_receiver_fails_is_slow_or_down() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let receiver = Arc::new(Receiver::default());
    let server = serve_receiver(listener, receiver.clone()).await;

    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("audit-webhook.yaml");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: receiver\n  cluster: {{server: \"http://{addr}/audit\"}}\nusers:\n- name: gw\n  user: {{}}\ncontexts:\n- name: c\n  context: {{cluster: receiver, user: gw}}\ncurrent-context: c\n"
        ),
    )
    .unwrap();
    let data = dir.path().join("data");
    let k = kubeconfig.display().to_string();
    let gw = Gateway::start_in(
        dir,
        data,
        &[
            "--audit-webhook-config-file",
            &k,
            "--audit-webhook-mode",
            "blocking",
            "--audit-webhook-initial-backoff",
            "200ms",
        ],
    );
    let client = gw.admin_client();
    let url = format!("{}/api/v1/namespaces/default/configmaps", gw.url);
    let create = |name: String| {
        let (client, url) = (client.clone(), url.clone());
        async move {
            let body = serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}});
            let r = client.post(&url).json(&body).send().await.unwrap();
            (
                r.status().as_u16(),
                r.headers()["audit-id"].to_str().unwrap().to_owned(),
            )
        }
    };

    // The receiver answers 500 twice: retried, nothing lost.
    receiver.fail.store(2, Ordering::SeqCst);
    let (code, id) = create("after-500s".into()).await;
    assert_eq!(code, 201);
    assert!(
        delivered(&receiver, &id, "RequestReceived")
            && delivered(&receiver, &id, "ResponseComplete")
    );
    // The annotations added while the request was served travel with the webhook's events.
    {
        let events = receiver.events.lock().unwrap();
        let done = events
            .iter()
            .find(|e| e["auditID"] == id && e["stage"] == "ResponseComplete")
            .unwrap();
        common::assert_allowed_for_x509(done);
    }

    // Slow once (longer than nothing, shorter than the attempt timeout): delivered.
    receiver.slow_ms.store(1500, Ordering::SeqCst);
    let (code, id) = create("slow".into()).await;
    assert_eq!(code, 201);
    assert!(delivered(&receiver, &id, "ResponseComplete"));

    // Many concurrent writes are batched, and every acknowledged one is delivered.
    let before = receiver.posts.load(Ordering::SeqCst);
    let results =
        futures_util::future::join_all((0..40).map(|i| create(format!("many-{i}")))).await;
    for (code, id) in &results {
        assert_eq!(*code, 201);
        assert!(delivered(&receiver, id, "ResponseComplete"), "{id}");
    }
    let posts = receiver.posts.load(Ordering::SeqCst) - before;
    assert!(posts < 80, "80 events in {posts} POSTs: batched");

    // Down for good: the write is refused (fail closed), not stored, and the gateway says so.
    server.abort();
    let _ = server.await;
    let (code, _) = create("while-down".into()).await;
    assert_eq!(
        code, 500,
        "a mutation whose audit event cannot be delivered is refused"
    );
    let r = client
        .get(format!("{url}/while-down"))
        .send()
        .await
        .unwrap();
    assert_ne!(r.status(), 200, "the refused create was not stored");
    let ready = client
        .get(format!("{}/readyz", gw.url))
        .send()
        .await
        .unwrap();
    assert_ne!(ready.status(), 200);

    // Back up on the same port: writes go through again, and readyz recovers.
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let _server = serve_receiver(listener, receiver.clone()).await;
    let mut recovered = None;
    for _ in 0..20 {
        let (code, id) = create(format!("back-{}", receiver.posts.load(Ordering::SeqCst))).await;
        if code == 201 {
            recovered = Some(id);
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let id = recovered.expect("writes never recovered after the receiver came back");
    assert!(delivered(&receiver, &id, "ResponseComplete"));
    let ready = client
        .get(format!("{}/readyz", gw.url))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
}

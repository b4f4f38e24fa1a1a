use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use base64::Engine as _;
use jiff::Timestamp;
use portcullis_api::UserInfo;
use serde_json::json;

use super::test_support::{Answer, Pki, Receiver};
use super::*;
use crate::event::{AuditId, AuthenticationMetadata, EventList, ObjectReference, ResponseStatus};
use crate::policy::{Level, Stage};

fn event(n: u64) -> Event {
    let mut ev = Event::new(
        &AuditId::parse(format!("id-{n}").as_bytes()).unwrap(),
        Level::Metadata,
        Stage::ResponseComplete,
        Timestamp::from_second(1_700_000_000 + n as i64).unwrap(),
    );
    ev.verb = "create".into();
    ev.request_uri = format!("/api/v1/namespaces/default/configmaps/c{n}");
    ev
}

fn ids(range: std::ops::Range<u64>) -> Vec<String> {
    range.map(|n| format!("id-{n}")).collect()
}

fn endpoint_for(url: &str, user: &str) -> Endpoint {
    let yaml = format!(
        "clusters:\n- name: r\n  cluster:\n    server: {url}\n\
         users:\n- name: u\n  user:\n{user}\
         contexts:\n- name: c\n  context:\n    cluster: r\n    user: u\n\
         current-context: c\n"
    );
    Endpoint::from_kubeconfig_slice(
        yaml.as_bytes(),
        Path::new("."),
        KubeconfigOptions::default(),
    )
    .unwrap()
}

fn endpoint(url: &str) -> Endpoint {
    endpoint_for(url, "    {}\n")
}

/// Fast retries, so tests of the retry path take milliseconds.
fn config(mode: Mode) -> WebhookConfig {
    WebhookConfig {
        initial_backoff: Duration::from_millis(20),
        attempt_timeout: Duration::from_secs(10),
        ..WebhookConfig::new(mode)
    }
}

fn start(endpoint: Endpoint, config: WebhookConfig) -> WebhookBackend {
    WebhookBackend::start(endpoint, config, &tokio::runtime::Handle::current())
}

/// A port on 127.0.0.1 that nothing listens on (until a test starts a receiver there).
fn free_addr() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

fn full_event() -> Event {
    let mut ev = event(7);
    ev.level = Level::RequestResponse;
    ev.user = UserInfo {
        username: "alice".into(),
        uid: "u-1".into(),
        groups: vec!["dev".into(), "system:authenticated".into()],
        extra: BTreeMap::from([("scopes".into(), vec!["a".into(), "b".into()])]),
    };
    ev.impersonated_user = Some(UserInfo {
        username: "bob".into(),
        ..UserInfo::default()
    });
    ev.authentication_metadata = Some(AuthenticationMetadata {
        impersonation_constraint: "impersonate:user-info".into(),
    });
    ev.source_ips = vec!["10.0.0.1".into(), "192.168.0.7".into()];
    ev.set_user_agent("kubectl/v1.33.0");
    ev.object_ref = Some(ObjectReference {
        resource: "configmaps".into(),
        namespace: "default".into(),
        name: "c7".into(),
        uid: "0000-1111".into(),
        api_group: String::new(),
        api_version: "v1".into(),
        resource_version: "42".into(),
        subresource: String::new(),
    });
    ev.response_status = Some(ResponseStatus::from_code(201));
    ev.request_object = Some(json!({"kind": "ConfigMap", "data": {"k": "v"}}));
    ev.response_object = Some(json!({"kind": "ConfigMap", "metadata": {"name": "c7"}}));
    ev.stage_timestamp =
        crate::event::MicroTime::new(Timestamp::from_second(1_700_000_100).unwrap());
    ev.annotations
        .insert(crate::event::ANNOTATION_DECISION.into(), "allow".into());
    ev.annotations.insert(
        crate::event::ANNOTATION_REASON.into(),
        "RBAC: allowed by ClusterRoleBinding \"x\"".into(),
    );
    ev
}

/// Waits (up to 10 s) until `f` holds.
async fn eventually(what: &str, f: impl Fn() -> bool) {
    for _ in 0..1000 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting until {what}");
}

#[test]
fn the_list_body_is_what_serde_writes_for_an_event_list() {
    let events = vec![full_event(), event(1), event(2)];
    let jsons: Vec<Vec<u8>> = events
        .iter()
        .map(|e| serde_json::to_vec(e).unwrap())
        .collect();
    let body = sender::list_body_from(jsons.iter().map(Vec::as_slice));
    assert_eq!(body, serde_json::to_vec(&EventList::new(events)).unwrap());
    let empty = sender::list_body_from(std::iter::empty());
    assert_eq!(
        empty,
        serde_json::to_vec(&EventList::new(Vec::new())).unwrap()
    );
}

#[tokio::test]
async fn events_arrive_as_an_event_list_with_every_field() {
    let receiver = Receiver::start(Vec::new()).await;
    let backend = start(endpoint(&receiver.url()), config(Mode::Blocking));
    let ev = full_event();
    backend.write(ev.clone()).await.unwrap();

    let got = receiver.received();
    assert_eq!(got.len(), 1);
    let r = &got[0];
    assert_eq!(r.content_type.as_deref(), Some("application/json"));
    assert_eq!(r.authorization, None);
    assert_eq!(r.list.kind, "EventList");
    assert_eq!(r.list.api_version, "audit.k8s.io/v1");
    assert_eq!(r.list.items, vec![ev]);

    let stats = backend.stats();
    assert_eq!(
        (stats.events_sent, stats.batches_sent, stats.attempts_failed),
        (1, 1, 0)
    );
    assert!(!stats.failing);
    backend.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_blocking_writes_share_batches() {
    // The first POST is slow, so the writes made meanwhile queue up and go together.
    let receiver = Receiver::start(vec![Answer::Sleep(Duration::from_millis(300))]).await;
    let backend = Arc::new(start(
        endpoint(&receiver.url()),
        config(Mode::BlockingStrict),
    ));
    let mut tasks = Vec::new();
    for n in 0..200 {
        let backend = backend.clone();
        tasks.push(tokio::spawn(async move { backend.write(event(n)).await }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let got = receiver.received();
    assert!(got.len() < 200, "{} POSTs for 200 events", got.len());
    assert!(got.iter().all(|r| r.list.items.len() <= 400));
    let mut seen: Vec<String> = got
        .iter()
        .flat_map(|r| r.list.items.iter().map(|e| e.audit_id.clone()))
        .collect();
    seen.sort();
    let mut want = ids(0..200);
    want.sort();
    assert_eq!(seen, want);
    let stats = backend.stats();
    assert_eq!(stats.events_sent, 200);
    assert_eq!(stats.batches_sent, got.len() as u64);
}

#[tokio::test]
async fn retries_after_server_errors_and_loses_nothing() {
    let receiver = Receiver::start(vec![Answer::Status(500), Answer::Status(500)]).await;
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let observed = seen.clone();
    let backend = start(
        endpoint(&receiver.url()),
        WebhookConfig {
            observer: Some(Arc::new(move |o: &BatchOutcome| {
                observed.lock().unwrap().push((o.events, o.ok));
            })),
            ..config(Mode::Blocking)
        },
    );
    backend.write(event(1)).await.unwrap();

    let got = receiver.received();
    assert_eq!(got.len(), 3, "two failures, then success");
    assert!(got.iter().all(|r| r.list.items.len() == 1));
    assert_eq!(receiver.delivered_ids(), ids(1..2));
    let stats = backend.stats();
    assert_eq!(
        (
            stats.events_sent,
            stats.batches_sent,
            stats.attempts_failed,
            stats.batches_failed
        ),
        (1, 1, 2, 0)
    );
    assert!(!stats.failing);
    assert_eq!(*seen.lock().unwrap(), vec![(1, true)]);
}

#[tokio::test]
async fn a_receiver_started_within_the_retry_budget_loses_nothing() {
    let addr = free_addr();
    let backend = Arc::new(start(
        endpoint(&format!("http://{addr}/audit")),
        WebhookConfig {
            initial_backoff: Duration::from_millis(100),
            max_attempts: 10,
            ..config(Mode::Blocking)
        },
    ));
    let writer = {
        let backend = backend.clone();
        tokio::spawn(async move { backend.write(event(1)).await })
    };
    eventually("an attempt failed", || backend.stats().attempts_failed >= 1).await;
    let receiver = Receiver::start_on(addr, Vec::new()).await;
    writer.await.unwrap().unwrap();
    assert_eq!(receiver.delivered_ids(), ids(1..2));
    assert_eq!(backend.stats().batches_sent, 1);
}

#[tokio::test]
async fn a_receiver_slower_than_the_attempt_timeout_is_retried() {
    let receiver = Receiver::start(vec![Answer::Sleep(Duration::from_secs(5))]).await;
    let backend = start(
        endpoint(&receiver.url()),
        WebhookConfig {
            attempt_timeout: Duration::from_millis(300),
            ..config(Mode::Blocking)
        },
    );
    backend.write(event(1)).await.unwrap();
    assert_eq!(receiver.delivered_ids(), ids(1..2));
    let stats = backend.stats();
    assert_eq!((stats.attempts_failed, stats.batches_sent), (1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_down_for_good_fails_every_waiting_caller() {
    let addr = free_addr();
    let backend = Arc::new(start(
        endpoint(&format!("http://{addr}/audit")),
        WebhookConfig {
            max_attempts: 3,
            ..config(Mode::BlockingStrict)
        },
    ));
    let mut tasks = Vec::new();
    for n in 0..5 {
        let backend = backend.clone();
        tasks.push(tokio::spawn(async move { backend.write(event(n)).await }));
    }
    let results = tokio::time::timeout(Duration::from_secs(30), async {
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.unwrap());
        }
        out
    })
    .await
    .expect("blocking writes must fail within the retry budget");
    for r in &results {
        match r {
            Err(WriteError::Webhook { attempts, source }) => {
                assert_eq!(*attempts, 3);
                assert!(matches!(**source, DeliveryError::Request(_)), "{source:?}");
            }
            other => panic!("expected a webhook error, got {other:?}"),
        }
    }
    let stats = backend.stats();
    assert!(stats.failing);
    assert_eq!((stats.events_failed, stats.events_sent), (5, 0));
    assert!(stats.batches_failed >= 1);
    assert_eq!(stats.attempts_failed, 3 * stats.batches_failed);

    // The receiver comes back: the next write succeeds and clears `failing`.
    let receiver = Receiver::start_on(addr, Vec::new()).await;
    backend.write(event(9)).await.unwrap();
    assert!(!backend.stats().failing);
    assert_eq!(receiver.delivered_ids(), ids(9..10));
}

#[tokio::test]
async fn batch_mode_drops_events_when_the_buffer_is_full() {
    let receiver = Receiver::start(Vec::new()).await;
    let backend = start(
        endpoint(&receiver.url()),
        WebhookConfig {
            buffer_size: 5,
            max_batch_wait: Duration::from_secs(3600),
            ..config(Mode::Batch)
        },
    );
    // The sender task cannot run until this test yields: the first 5 fill the buffer.
    let accepted: Vec<bool> = (0..20).map(|n| backend.try_enqueue(event(n))).collect();
    assert_eq!(accepted.iter().filter(|a| **a).count(), 5);
    assert!(accepted[..5].iter().all(|a| *a));
    assert_eq!(backend.stats().events_dropped, 15);

    backend.flush().await.unwrap();
    assert_eq!(receiver.delivered_ids(), ids(0..5));
    assert_eq!(receiver.received().len(), 1);
    let stats = backend.stats();
    assert_eq!((stats.events_sent, stats.events_dropped), (5, 15));
}

#[tokio::test]
async fn batch_mode_sends_full_batches_and_the_rest_after_the_max_wait() {
    let receiver = Receiver::start(Vec::new()).await;
    let backend = start(
        endpoint(&receiver.url()),
        WebhookConfig {
            max_batch_size: 3,
            max_batch_wait: Duration::from_millis(200),
            ..config(Mode::Batch)
        },
    );
    for n in 0..7 {
        assert!(backend.try_enqueue(event(n)));
    }
    eventually("three POSTs", || receiver.received().len() == 3).await;
    let sizes: Vec<usize> = receiver
        .received()
        .iter()
        .map(|r| r.list.items.len())
        .collect();
    assert_eq!(sizes, vec![3, 3, 1]);
    assert_eq!(receiver.delivered_ids(), ids(0..7), "order is kept");
}

#[tokio::test]
async fn batch_mode_gives_up_a_batch_after_the_last_attempt() {
    let receiver = Receiver::start(vec![Answer::Status(503); 10]).await;
    let backend = start(
        endpoint(&receiver.url()),
        WebhookConfig {
            max_attempts: 2,
            ..config(Mode::Batch)
        },
    );
    assert!(backend.try_enqueue(event(1)));
    match backend.flush().await {
        Err(WriteError::Webhook {
            attempts: 2,
            source,
        }) => {
            assert!(matches!(*source, DeliveryError::Status(503)));
        }
        other => panic!("expected the batch to be given up, got {other:?}"),
    }
    let stats = backend.stats();
    assert_eq!(
        (
            stats.events_failed,
            stats.batches_failed,
            stats.attempts_failed
        ),
        (1, 1, 2)
    );
    assert!(stats.failing);
    assert_eq!(receiver.received().len(), 2);
}

#[tokio::test]
async fn an_oversized_event_loses_its_bodies_or_is_refused() {
    let receiver = Receiver::start(Vec::new()).await;
    let backend = start(
        endpoint(&receiver.url()),
        WebhookConfig {
            max_event_bytes: 4096,
            ..config(Mode::Blocking)
        },
    );
    let mut big = full_event();
    big.request_object = Some(json!({"data": "x".repeat(10_000)}));
    backend.write(big).await.unwrap();
    let got = receiver.received();
    let sent = &got[0].list.items[0];
    assert_eq!(sent.request_object, None);
    assert_eq!(sent.response_object, None);
    assert_eq!(
        sent.annotations
            .get(crate::event::ANNOTATION_TRUNCATED)
            .map(String::as_str),
        Some("true")
    );

    let mut hopeless = event(2);
    hopeless
        .annotations
        .insert("example.com/huge".into(), "y".repeat(10_000));
    assert!(matches!(
        backend.write(hopeless).await,
        Err(WriteError::Event(_))
    ));
    let stats = backend.stats();
    assert_eq!(
        (
            stats.events_truncated,
            stats.events_dropped,
            stats.events_sent
        ),
        (2, 1, 1)
    );
}

#[tokio::test]
async fn batches_are_split_to_stay_under_the_byte_limit() {
    let receiver = Receiver::start(Vec::new()).await;
    let backend = start(
        endpoint(&receiver.url()),
        WebhookConfig {
            max_batch_bytes: 64 * 1024,
            max_batch_wait: Duration::from_secs(3600),
            ..config(Mode::Batch)
        },
    );
    for n in 0..10 {
        let mut ev = event(n);
        ev.object_ref = Some(ObjectReference::default());
        ev.level = Level::Request;
        ev.request_object = Some(json!({"data": "z".repeat(20_000)}));
        assert!(backend.try_enqueue(ev));
    }
    backend.flush().await.unwrap();
    let got = receiver.received();
    assert!(got.len() >= 4, "{} POSTs", got.len());
    for r in &got {
        let size = serde_json::to_vec(&r.list).unwrap().len();
        assert!(size <= 64 * 1024, "a POST of {size} bytes");
    }
    assert_eq!(receiver.delivered_ids(), ids(0..10));
    assert_eq!(backend.stats().events_truncated, 0);
}

#[tokio::test]
async fn close_delivers_what_is_queued() {
    let receiver = Receiver::start(Vec::new()).await;
    let backend = start(
        endpoint(&receiver.url()),
        WebhookConfig {
            max_batch_wait: Duration::from_secs(3600),
            ..config(Mode::Batch)
        },
    );
    for n in 0..3 {
        assert!(backend.try_enqueue(event(n)));
    }
    backend.close().await;
    assert_eq!(receiver.delivered_ids(), ids(0..3));
}

#[tokio::test]
async fn sends_the_token_as_a_bearer_and_basic_credentials() {
    let receiver = Receiver::start(Vec::new()).await;
    let backend = start(
        endpoint_for(&receiver.url(), "    token: abc.def\n"),
        config(Mode::Blocking),
    );
    backend.write(event(1)).await.unwrap();
    let basic = start(
        endpoint_for(
            &receiver.url(),
            "    username: falco\n    password: hunter2\n",
        ),
        config(Mode::Blocking),
    );
    basic.write(event(2)).await.unwrap();
    let got = receiver.received();
    assert_eq!(got[0].authorization.as_deref(), Some("Bearer abc.def"));
    let want = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("falco:hunter2")
    );
    assert_eq!(got[1].authorization.as_deref(), Some(want.as_str()));
}

#[tokio::test]
async fn presents_the_client_certificate_and_trusts_only_the_given_ca() {
    let pki = Pki::new();
    let receiver = Receiver::start_tls(&pki).await;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let url = format!("https://127.0.0.1:{}/audit", receiver.addr.port());
    let yaml = format!(
        "clusters:\n- name: r\n  cluster:\n    server: {url}\n    certificate-authority-data: {}\n\
         users:\n- name: u\n  user:\n    client-certificate-data: {}\n    client-key-data: {}\n",
        b64(&pki.ca_pem),
        b64(&pki.client_cert_pem),
        b64(&pki.client_key_pem),
    );
    let endpoint = Endpoint::from_kubeconfig_slice(
        yaml.as_bytes(),
        Path::new("."),
        KubeconfigOptions::default(),
    )
    .unwrap();
    let backend = start(endpoint, config(Mode::Blocking));
    backend.write(event(1)).await.unwrap();
    let got = receiver.received();
    assert_eq!(got.len(), 1);
    assert!(
        got[0].client_cert,
        "the client certificate was not presented"
    );

    // Another CA: the server is not trusted, nothing is sent.
    let other = Pki::new();
    let yaml = format!(
        "clusters:\n- name: r\n  cluster:\n    server: {url}\n    certificate-authority-data: {}\n",
        b64(&other.ca_pem),
    );
    let untrusting = Endpoint::from_kubeconfig_slice(
        yaml.as_bytes(),
        Path::new("."),
        KubeconfigOptions::default(),
    )
    .unwrap();
    let backend = start(
        untrusting,
        WebhookConfig {
            max_attempts: 1,
            ..config(Mode::Blocking)
        },
    );
    assert!(matches!(
        backend.write(event(2)).await,
        Err(WriteError::Webhook { attempts: 1, .. })
    ));
    assert_eq!(receiver.received().len(), 1);
}

#[tokio::test]
async fn a_closed_backend_refuses_events() {
    let receiver = Receiver::start(Vec::new()).await;
    let backend = start(endpoint(&receiver.url()), config(Mode::Batch));
    let (tx, _) = mpsc::channel(1);
    let closed = WebhookBackend {
        tx,
        stats: backend.stats.clone(),
        mode: Mode::Batch,
        url: String::new(),
        task: tokio::spawn(async {}),
    };
    assert!(!closed.try_enqueue(event(1)));
    assert!(matches!(
        closed.write(event(2)).await,
        Err(WriteError::Closed)
    ));
    assert_eq!(backend.stats().events_dropped, 1);
    receiver.stop();
}

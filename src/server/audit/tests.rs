use axum::Router;
use axum::middleware::{from_fn, from_fn_with_state};
use axum::routing::get;
use portcullis_audit::{LogConfig, Policy, VerifyOptions, verify};

use super::*;

/// The gateway's audit layers around `app`, as `server::router` stacks them (authentication
/// stands in as a layer that sets the user), writing to a log at `path`.
fn audited(app: Router, path: &std::path::Path) -> (Router, Arc<Auditor>) {
    let log = LogBackend::open(LogConfig::new(path)).unwrap();
    let auditor = Arc::new(Auditor::new(
        PolicyEvaluator::new(Policy::default_metadata()),
        Some(log),
        None,
    ));
    let metrics = Arc::new(super::super::Metrics::default());
    let received = {
        let (auditor, metrics) = (auditor.clone(), metrics.clone());
        move |req: Request, next: Next| {
            let (auditor, metrics) = (auditor.clone(), metrics.clone());
            async move { received_with(&auditor, &metrics, req, next).await }
        }
    };
    let authenticate = |mut req: Request, next: Next| async move {
        req.extensions_mut().insert(UserInfo {
            username: "alice".into(),
            ..UserInfo::default()
        });
        next.run(req).await
    };
    let router = app
        .layer(from_fn(received))
        .layer(from_fn(authenticate))
        .layer(from_fn_with_state(
            auditor.clone(),
            |State(a): State<Arc<Auditor>>, req, next| begin_with(a, req, next),
        ))
        .layer(from_fn(super::super::filters::request_info));
    (router, auditor)
}

#[tokio::test]
async fn a_handler_panic_yields_a_panic_event_and_a_500_status() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let app = Router::new().route(
        "/api/v1/namespaces/default/configmaps/boom",
        get(|| async {
            if true {
                std::panic::panic_any("handler exploded".to_owned());
            }
            "unreachable"
        }),
    );
    let (app, auditor) = audited(app, &path);
    let request = Request::builder()
        .uri("/api/v1/namespaces/default/configmaps/boom")
        .body(Body::empty())
        .unwrap();
    let response = tower::ServiceExt::oneshot(app, request).await.unwrap();

    assert_eq!(response.status().as_u16(), 500);
    let audit_id = response
        .headers()
        .get(AUDIT_ID_HEADER)
        .expect("an Audit-ID header")
        .to_str()
        .unwrap()
        .to_owned();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    let status: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        (status["kind"].as_str(), status["code"].as_u64()),
        (Some("Status"), Some(500)),
        "{status}"
    );

    auditor.log().unwrap().flush().await.unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    let events: Vec<Event> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let stages: Vec<Stage> = events.iter().map(|e| e.stage).collect();
    assert_eq!(stages, [Stage::RequestReceived, Stage::Panic], "{text}");
    for e in &events {
        assert_eq!(e.audit_id, audit_id);
        assert_eq!(e.user.username, "alice");
        assert_eq!(e.verb, "get");
    }
    let panic = events[1].response_status.as_ref().expect("responseStatus");
    assert_eq!(panic.code, 500);
    assert_eq!(panic.status, "Failure");
    assert!(
        panic.message.contains("handler exploded"),
        "{}",
        panic.message
    );
    let report = verify(
        &[&path],
        VerifyOptions {
            require_start: true,
        },
    );
    assert!(report.is_intact(), "{:?}", report.problem);
    assert_eq!(report.events, 2);
}

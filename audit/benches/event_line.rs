//! The audit log's per-event cost outside the writer's I/O: serialising an event
//! ([`EventLine::from`], on the request's thread) and sealing it into the chain
//! ([`Chain::seal_line`], on the writer thread), against plain `serde_json` for scale.
//!
//! Run with `cargo bench -p portcullis-audit --bench event_line`. The event is what the gateway
//! writes for `GET /api/v1/namespaces/default/configmaps/bench-get` at Metadata level by the
//! admin of `scripts/bench` (about 900 bytes a line); a request writes two.

use std::collections::BTreeMap;
use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use jiff::Timestamp;
use portcullis_api::UserInfo;
use portcullis_audit::event::{EventLine, ObjectReference, ResponseStatus};
use portcullis_audit::{AuditId, Chain, Event, Level, Stage};

fn get_event() -> Event {
    let mut ev = Event::new(
        &AuditId::generate(),
        Level::Metadata,
        Stage::ResponseComplete,
        Timestamp::now(),
    );
    ev.request_uri = "/api/v1/namespaces/default/configmaps/bench-get".into();
    ev.verb = "get".into();
    ev.user = UserInfo {
        username: "portcullis-admin".into(),
        uid: String::new(),
        groups: vec!["system:masters".into(), "system:authenticated".into()],
        extra: BTreeMap::from([(
            "authentication.kubernetes.io/credential-id".into(),
            vec![format!("X509SHA256={}", "ab".repeat(32))],
        )]),
    };
    ev.source_ips = vec!["127.0.0.1".into()];
    ev.user_agent = "oha/1.16.0".into();
    ev.object_ref = Some(ObjectReference {
        resource: "configmaps".into(),
        namespace: "default".into(),
        name: "bench-get".into(),
        api_version: "v1".into(),
        ..ObjectReference::default()
    });
    ev.response_status = Some(ResponseStatus::from_code(200));
    ev.annotations = BTreeMap::from([
        ("authentication.portcullis.dev/method".into(), "x509".into()),
        ("authorization.k8s.io/decision".into(), "allow".into()),
    ]);
    ev
}

fn bench(c: &mut Criterion) {
    let ev = get_event();
    let mut g = c.benchmark_group("audit_event");
    g.bench_function("serde_json_to_vec", |b| {
        b.iter(|| serde_json::to_vec(black_box(&ev)))
    });
    g.bench_function("event_line", |b| b.iter(|| EventLine::from(black_box(&ev))));
    let line = EventLine::from(&ev);
    let mut chain = Chain::genesis();
    let mut out = Vec::with_capacity(1 << 20);
    g.bench_function("seal_line", |b| {
        b.iter(|| {
            if out.len() > (1 << 20) - 4096 {
                out.clear();
            }
            chain.seal_line(black_box(&line), &mut out)
        })
    });
    let mut chain = Chain::genesis();
    g.bench_function("event_line_and_seal", |b| {
        b.iter(|| {
            out.clear();
            chain.seal_line(&EventLine::from(black_box(&ev)), &mut out)
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

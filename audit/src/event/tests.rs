use serde_json::json;

use super::*;
use crate::policy::StageSet;

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn sample() -> Event {
    let id = AuditId::parse(b"5b1c0e5e-1a7a-4b1e-9f1e-1c2d3e4f5a6b").unwrap();
    let mut ev = Event::new(
        &id,
        Level::RequestResponse,
        Stage::ResponseComplete,
        ts("2024-05-01T12:00:00.123456789Z"),
    );
    ev.request_uri = "/api/v1/namespaces/default/pods?limit=500".into();
    ev.verb = "create".into();
    ev.user = UserInfo {
        username: "alice".into(),
        groups: vec!["dev".into(), "system:authenticated".into()],
        ..UserInfo::default()
    };
    ev.source_ips = vec!["10.0.0.1".into()];
    ev.object_ref = Some(ObjectReference {
        resource: "pods".into(),
        namespace: "default".into(),
        name: "web".into(),
        api_version: "v1".into(),
        ..ObjectReference::default()
    });
    ev.response_status = Some(ResponseStatus::from_code(201));
    ev.request_object = Some(pod_with_managed_fields());
    ev.response_object = Some(pod_with_managed_fields());
    ev.stage_timestamp = MicroTime::new(ts("2024-05-01T12:00:01Z"));
    ev.annotations
        .insert(ANNOTATION_DECISION.into(), "allow".into());
    ev
}

fn pod_with_managed_fields() -> Value {
    json!({"kind": "Pod", "metadata": {"name": "web", "managedFields": [{"manager": "kubectl"}]}})
}

#[test]
fn serializes_like_kube_apiserver() {
    let line = serde_json::to_string(&sample()).unwrap();
    let want = concat!(
        r#"{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"RequestResponse","#,
        r#""auditID":"5b1c0e5e-1a7a-4b1e-9f1e-1c2d3e4f5a6b","stage":"ResponseComplete","#,
        r#""requestURI":"/api/v1/namespaces/default/pods?limit=500","verb":"create","#,
        r#""user":{"username":"alice","groups":["dev","system:authenticated"]},"#,
        r#""sourceIPs":["10.0.0.1"],"#,
        r#""objectRef":{"resource":"pods","namespace":"default","name":"web","apiVersion":"v1"},"#,
        r#""responseStatus":{"metadata":{},"code":201},"#,
        r#""requestObject":{"kind":"Pod","metadata":{"managedFields":[{"manager":"kubectl"}],"name":"web"}},"#,
        r#""responseObject":{"kind":"Pod","metadata":{"managedFields":[{"manager":"kubectl"}],"name":"web"}},"#,
        r#""requestReceivedTimestamp":"2024-05-01T12:00:00.123456Z","#,
        r#""stageTimestamp":"2024-05-01T12:00:01.000000Z","#,
        r#""annotations":{"authorization.k8s.io/decision":"allow"}}"#
    );
    assert_eq!(line, want);
    let back: Event = serde_json::from_str(&line).unwrap();
    assert_eq!(back, sample());
}

#[test]
fn empty_optional_fields_are_omitted_and_user_is_always_present() {
    let ev = Event::new(
        &AuditId::generate(),
        Level::Metadata,
        Stage::RequestReceived,
        ts("2024-05-01T00:00:00Z"),
    );
    let v = serde_json::to_value(&ev).unwrap();
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    let mut want = vec![
        "apiVersion",
        "auditID",
        "kind",
        "level",
        "requestReceivedTimestamp",
        "requestURI",
        "stage",
        "stageTimestamp",
        "user",
        "verb",
    ];
    want.sort();
    assert_eq!(keys, want);
    assert_eq!(v["user"], json!({}));
}

#[test]
fn forbidden_status_keeps_upstream_field_order() {
    let info =
        portcullis_api::RequestInfo::parse("GET", "/api/v1/namespaces/default/pods", None).unwrap();
    let status = Status::forbidden_request("bob", &info, "");
    let rs = ResponseStatus::from(&status);
    let text = serde_json::to_string(&rs).unwrap();
    assert!(
        text.starts_with(r#"{"metadata":{},"status":"Failure","message":"#),
        "{text}"
    );
    assert!(text.ends_with(r#""code":403}"#), "{text}");
}

#[test]
fn micro_time_has_exactly_six_digits_in_utc() {
    for (input, want) in [
        ("2024-05-01T12:00:00Z", "2024-05-01T12:00:00.000000Z"),
        ("2024-05-01T12:00:00.5Z", "2024-05-01T12:00:00.500000Z"),
        (
            "2024-05-01T12:00:00.999999999Z",
            "2024-05-01T12:00:00.999999Z",
        ),
        (
            "2024-05-01T14:00:00.000001+02:00",
            "2024-05-01T12:00:00.000001Z",
        ),
    ] {
        assert_eq!(MicroTime::new(ts(input)).to_string(), want, "{input}");
    }
    let back: MicroTime = serde_json::from_str("\"2024-05-01T12:00:00.123456789Z\"").unwrap();
    assert_eq!(back.to_string(), "2024-05-01T12:00:00.123456Z");
    assert!(serde_json::from_str::<MicroTime>("\"yesterday\"").is_err());
}

fn config(level: Level, omit_managed_fields: bool) -> AuditConfig {
    AuditConfig {
        level,
        omit_stages: StageSet::EMPTY,
        omit_managed_fields,
    }
}

#[test]
fn level_decides_which_bodies_are_kept() {
    for (level, req, resp) in [
        (Level::None, false, false),
        (Level::Metadata, false, false),
        (Level::Request, true, false),
        (Level::RequestResponse, true, true),
    ] {
        let mut ev = sample();
        ev.apply_level(&config(level, false));
        assert_eq!(ev.level, level);
        assert_eq!(
            (ev.request_object.is_some(), ev.response_object.is_some()),
            (req, resp),
            "{level}"
        );
        // Metadata survives at every level.
        assert_eq!(ev.response_status, Some(ResponseStatus::from_code(201)));
        assert_eq!(ev.decision(), Some("allow"));
    }
}

#[test]
fn non_resource_requests_never_log_bodies() {
    let mut ev = sample();
    ev.object_ref = None;
    ev.apply_level(&config(Level::RequestResponse, false));
    assert!(ev.request_object.is_none() && ev.response_object.is_none());
}

#[test]
fn omit_managed_fields_strips_objects_lists_and_tables() {
    let mut ev = sample();
    ev.response_object = Some(json!({
        "kind": "PodList",
        "metadata": {"resourceVersion": "5"},
        "items": [pod_with_managed_fields(), pod_with_managed_fields(), "junk"]
    }));
    ev.apply_level(&config(Level::RequestResponse, true));
    let text = serde_json::to_string(&ev).unwrap();
    assert!(!text.contains("managedFields"), "{text}");
    assert!(text.contains(r#""resourceVersion":"5""#));

    let mut table =
        json!({"kind": "Table", "rows": [{"cells": [], "object": pod_with_managed_fields()}]});
    strip_managed_fields(&mut table);
    assert!(!table.to_string().contains("managedFields"));

    let mut kept = sample();
    kept.apply_level(&config(Level::RequestResponse, false));
    assert!(
        serde_json::to_string(&kept)
            .unwrap()
            .contains("managedFields")
    );
}

#[test]
fn user_agent_is_bounded_at_a_char_boundary() {
    assert_eq!(truncate_user_agent("kubectl/v1.30"), "kubectl/v1.30");
    let exact = "a".repeat(MAX_USER_AGENT_BYTES);
    assert_eq!(truncate_user_agent(&exact), exact);
    let long = "b".repeat(5000);
    let cut = truncate_user_agent(&long);
    assert_eq!(
        cut.len(),
        MAX_USER_AGENT_BYTES + USER_AGENT_TRUNCATED_SUFFIX.len()
    );
    assert!(cut.ends_with("...TRUNCATED"));
    // A 3-byte character straddling the limit is dropped whole.
    let tricky = format!("{}{}", "c".repeat(MAX_USER_AGENT_BYTES - 1), "€".repeat(10));
    let cut = truncate_user_agent(&tricky);
    assert_eq!(
        cut,
        format!("{}...TRUNCATED", "c".repeat(MAX_USER_AGENT_BYTES - 1))
    );
    let mut ev = sample();
    ev.set_user_agent(&long);
    assert!(ev.user_agent.len() < 1100);
}

#[test]
fn audit_id_header_is_used_only_when_safe() {
    let ok = AuditId::from_header(Some(b"abc-DEF_0.9"));
    assert_eq!(ok.as_str(), "abc-DEF_0.9");
    let max = "a".repeat(MAX_AUDIT_ID_CHARS);
    assert_eq!(AuditId::from_header(Some(max.as_bytes())).as_str(), max);
    let too_long = "a".repeat(MAX_AUDIT_ID_CHARS + 1);
    for bad in [
        too_long.as_bytes(),
        b"",
        b"has space",
        b"new\nline",
        b"quote\"",
        b"\xff\xfe",
        "ünï".as_bytes(),
    ] {
        let id = AuditId::from_header(Some(bad));
        assert_ne!(id.as_str().as_bytes(), bad);
        assert!(uuid::Uuid::parse_str(id.as_str()).is_ok(), "{id}");
    }
    let a = AuditId::from_header(None);
    let b = AuditId::from_header(None);
    assert_ne!(a, b);
}

#[test]
fn truncate_bodies_marks_the_event() {
    let mut ev = sample();
    ev.truncate_bodies();
    assert!(ev.request_object.is_none() && ev.response_object.is_none());
    assert_eq!(
        ev.annotations.get(ANNOTATION_TRUNCATED).map(String::as_str),
        Some("true")
    );
}

#[test]
fn for_stage_keeps_id_and_received_time() {
    let ev = sample();
    let next = ev.for_stage(Stage::Panic, ts("2024-05-01T12:00:02Z"));
    assert_eq!(next.audit_id, ev.audit_id);
    assert_eq!(
        next.request_received_timestamp,
        ev.request_received_timestamp
    );
    assert_eq!(next.stage, Stage::Panic);
    assert_eq!(
        next.stage_timestamp.to_string(),
        "2024-05-01T12:00:02.000000Z"
    );
}

#[test]
fn event_list_shape() {
    let list = EventList::new(vec![sample()]);
    let v = serde_json::to_value(&list).unwrap();
    assert_eq!(v["kind"], "EventList");
    assert_eq!(v["apiVersion"], "audit.k8s.io/v1");
    assert_eq!(v["metadata"], json!({}));
    assert_eq!(v["items"][0]["kind"], "Event");
}

#[test]
fn decodes_events_written_by_kube_apiserver() {
    let line = r#"{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"a1","stage":"ResponseComplete","requestURI":"/healthz","verb":"get","user":{"username":"system:anonymous","groups":["system:unauthenticated"]},"sourceIPs":["127.0.0.1"],"userAgent":"curl/8","responseStatus":{"metadata":{},"code":200},"requestReceivedTimestamp":"2024-05-01T12:00:00.000001Z","stageTimestamp":"2024-05-01T12:00:00.000200Z","annotations":{"authorization.k8s.io/decision":"allow","authorization.k8s.io/reason":""}}"#;
    let ev: Event = serde_json::from_str(line).unwrap();
    assert_eq!(serde_json::to_string(&ev).unwrap(), line);
}

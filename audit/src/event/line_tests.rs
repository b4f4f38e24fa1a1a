use std::collections::BTreeMap;

use jiff::Timestamp;
use portcullis_api::UserInfo;
use proptest::prelude::*;
use serde_json::json;

use super::*;
use crate::MAX_LINE_BYTES;
use crate::event::{AuditId, AuthenticationMetadata, ObjectReference, ResponseStatus};
use crate::policy::{Level, Stage};

/// What `serde_json` writes for `event` once the writer has put `seq:000…0` in its chain
/// annotation.
fn serde_line(event: &Event, seq: u64) -> Vec<u8> {
    let mut ev = event.clone();
    ev.annotations.insert(
        CHAIN_ANNOTATION.to_owned(),
        format!("{seq}:{}", "0".repeat(HASH_HEX_LEN)),
    );
    serde_json::to_vec(&ev).unwrap()
}

fn our_line(event: &Event, seq: u64) -> Vec<u8> {
    let line = EventLine::from(event);
    let (encoded, truncated) = line.fitting(seq).unwrap();
    assert!(!truncated);
    let mut out = b"before".to_vec();
    let hex_start = encoded.write_with_placeholder(seq, &mut out);
    assert_eq!(&out[hex_start..hex_start + HASH_HEX_LEN], &[b'0'; 64]);
    assert_eq!(&out[..6], b"before");
    out.split_off(6)
}

fn full_event() -> Event {
    let mut ev = Event::new(
        &AuditId::parse(b"a-1").unwrap(),
        Level::RequestResponse,
        Stage::ResponseComplete,
        Timestamp::from_second(1_700_000_000).unwrap(),
    );
    ev.stage_timestamp = MicroTime::new(Timestamp::new(1_700_000_001, 123_456_789).unwrap());
    ev.request_uri = "/api/v1/namespaces/default/pods?x=\"y\"&z=\\".into();
    ev.verb = "create".into();
    ev.user = UserInfo {
        username: "jane".into(),
        uid: "u\u{1}".into(),
        groups: vec!["system:authenticated".into(), "dev\n".into()],
        extra: BTreeMap::from([("k".into(), vec!["v".into()])]),
    };
    ev.impersonated_user = Some(UserInfo {
        username: "bob".into(),
        ..UserInfo::default()
    });
    ev.authentication_metadata = Some(AuthenticationMetadata {
        impersonation_constraint: "impersonate:user-info".into(),
    });
    ev.source_ips = vec!["10.0.0.1".into(), "127.0.0.1".into()];
    ev.user_agent = "kubectl/v1.33 (ünïcode) \t".into();
    ev.object_ref = Some(ObjectReference {
        resource: "pods".into(),
        namespace: "default".into(),
        name: "web".into(),
        uid: "1234".into(),
        api_version: "v1".into(),
        resource_version: "7".into(),
        ..ObjectReference::default()
    });
    ev.response_status = Some(ResponseStatus {
        metadata: serde_json::from_value(json!({"resourceVersion": "9"})).unwrap(),
        status: "Failure".into(),
        message: "pods \"web\" already exists".into(),
        reason: "AlreadyExists".into(),
        details: Some(serde_json::from_value(json!({"name": "web", "kind": "pods"})).unwrap()),
        code: 409,
    });
    ev.request_object = Some(json!({"kind": "Pod", "metadata": {"name": "web"}}));
    ev.response_object = Some(json!({"kind": "Pod", "n": 1.5, "list": [null, true]}));
    ev.annotations = BTreeMap::from([
        ("authorization.k8s.io/decision".into(), "allow".into()),
        ("zz/after".into(), "\"quoted\"".into()),
    ]);
    ev
}

#[test]
fn encodes_exactly_what_serde_json_writes() {
    let ev = full_event();
    for seq in [0, 7, 10, 12_345, u64::MAX] {
        assert_eq!(
            String::from_utf8(our_line(&ev, seq)).unwrap(),
            String::from_utf8(serde_line(&ev, seq)).unwrap()
        );
    }
    let bare = Event::new(
        &AuditId::parse(b"b").unwrap(),
        Level::Metadata,
        Stage::RequestReceived,
        Timestamp::from_second(0).unwrap(),
    );
    assert_eq!(our_line(&bare, 0), serde_line(&bare, 0));
    // An event read back from elsewhere may carry another kind or apiVersion.
    let mut other = full_event();
    other.kind = "Ev\"ent".into();
    other.api_version = "audit.k8s.io/v1beta1".into();
    assert_eq!(our_line(&other, 3), serde_line(&other, 3));
}

#[test]
fn replaces_a_chain_annotation_already_present() {
    let mut ev = full_event();
    ev.annotations
        .insert(CHAIN_ANNOTATION.to_owned(), "3:abc".to_owned());
    assert_eq!(our_line(&ev, 9), serde_line(&ev, 9));
}

#[test]
fn audit_id_is_read_from_the_line() {
    let ev = full_event();
    assert_eq!(EventLine::from(&ev).audit_id(), "a-1");
}

#[test]
fn a_line_that_might_not_fit_carries_its_form_without_bodies() {
    let mut ev = full_event();
    ev.request_object = Some(json!({"data": "x".repeat(MAX_LINE_BYTES)}));
    let line = EventLine::from(&ev);
    let (encoded, truncated) = line.fitting(0).unwrap();
    assert!(truncated);
    let mut out = Vec::new();
    encoded.write_with_placeholder(0, &mut out);
    let mut bare = ev.clone();
    bare.truncate_bodies();
    assert_eq!(out, serde_line(&bare, 0));
}

/// Each `(seconds, nanoseconds)` written by `write_micro_time`, in order, as `Display` writes it.
fn assert_micro_times_match_display(cases: &[(i64, i32)]) {
    for &(secs, nanos) in cases {
        let t = MicroTime::new(Timestamp::new(secs, nanos).unwrap());
        let mut out = Vec::new();
        write_micro_time(&mut out, t);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            t.to_string(),
            "{secs}.{nanos}"
        );
    }
}

#[test]
fn micro_time_matches_display_at_the_edges() {
    assert_micro_times_match_display(&[
        (0, 0),
        (951_782_400, 999_999_000), // 2000-02-29
        (4_107_542_400, 1_000),     // 2100-03-01
        (253_402_207_199, 999_999_000),
        (253_402_207_200, 0),
        (-1, 0),
        (-62_135_596_800, 0),
    ]);
}

#[test]
fn micro_time_reuses_a_second_only_for_that_second() {
    // The same second twice (the cached text), the next second, then back to the first.
    assert_micro_times_match_display(&[
        (1_795_000_000, 1_000),
        (1_795_000_000, 999_999_000),
        (1_795_000_001, 0),
        (1_795_000_000, 5_000),
        (1_795_086_400, 5_000),
    ]);
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z:/.-]{0,12}",
        any::<String>(),
        Just(CHAIN_ANNOTATION.to_owned()),
        Just("portcullis.dev/audit-chaim".to_owned()),
        Just("portcullis.dev/audit-chain0".to_owned()),
    ]
}

fn user() -> impl Strategy<Value = UserInfo> {
    (
        text(),
        text(),
        prop::collection::vec(text(), 0..3),
        prop::collection::btree_map(text(), prop::collection::vec(text(), 0..2), 0..2),
    )
        .prop_map(|(username, uid, groups, extra)| UserInfo {
            username,
            uid,
            groups,
            extra,
        })
}

fn event() -> impl Strategy<Value = Event> {
    (
        (text(), text(), text(), user(), prop::option::of(user())),
        (
            prop::collection::vec(text(), 0..3),
            text(),
            prop::option::of(prop::collection::vec(text(), 8)),
            prop::option::of((any::<i32>(), text(), text(), any::<bool>())),
            prop::option::of(text()),
        ),
        (
            -377_705_023_201i64..=253_402_207_200i64,
            0..1_000_000_000i32,
            prop::collection::btree_map(text(), text(), 0..4),
            0..4usize,
            0..4usize,
        ),
    )
        .prop_map(
            |(
                (audit_id, request_uri, verb, user, impersonated),
                (source_ips, user_agent, object, status, body),
                (secs, nanos, annotations, level, stage),
            )| {
                let at = Timestamp::new(secs, nanos).unwrap();
                let mut ev = Event::new(
                    &AuditId::generate(),
                    Level::ALL[level],
                    Stage::ALL[stage],
                    at,
                );
                ev.audit_id = audit_id;
                ev.request_uri = request_uri;
                ev.verb = verb;
                ev.user = user;
                ev.impersonated_user = impersonated;
                ev.source_ips = source_ips;
                ev.user_agent = user_agent;
                ev.object_ref = object.map(|f| ObjectReference {
                    resource: f[0].clone(),
                    namespace: f[1].clone(),
                    name: f[2].clone(),
                    uid: f[3].clone(),
                    api_group: f[4].clone(),
                    api_version: f[5].clone(),
                    resource_version: f[6].clone(),
                    subresource: f[7].clone(),
                });
                ev.response_status =
                    status.map(|(code, message, reason, details)| ResponseStatus {
                        status: if code % 2 == 0 {
                            "Failure".into()
                        } else {
                            String::new()
                        },
                        message,
                        reason,
                        details: details.then(|| {
                            serde_json::from_value(json!({"name": "web", "kind": "pods",
                                    "causes": [{"field": "x", "reason": "r", "message": "m"}]}))
                            .unwrap()
                        }),
                        code,
                        metadata: serde_json::Map::new(),
                    });
                ev.request_object = body.map(|b| json!({"b": b}));
                ev.stage_timestamp = MicroTime::new(Timestamp::from_second(secs / 2).unwrap());
                ev.annotations = annotations;
                ev
            },
        )
}

proptest! {
    #[test]
    fn encoder_agrees_with_serde_json(ev in event(), seq in any::<u64>()) {
        prop_assert_eq!(our_line(&ev, seq), serde_line(&ev, seq));
    }

    #[test]
    fn micro_time_agrees_with_display(
        secs in -377_705_023_201i64..=253_402_207_200i64,
        nanos in 0..1_000_000_000i32,
    ) {
        let t = MicroTime::new(Timestamp::new(secs, nanos).unwrap());
        let mut out = Vec::new();
        write_micro_time(&mut out, t);
        prop_assert_eq!(String::from_utf8(out).unwrap(), t.to_string());
    }
}

#[test]
fn needs_escape_finds_every_escaped_byte_at_every_position() {
    // Up to three blocks of sixteen and a partial one.
    for len in 0..52 {
        for at in 0..len {
            for b in 0..=255u8 {
                let mut bytes = vec![b'a'; len];
                bytes[at] = b;
                let naive = bytes.iter().any(|&c| c < 0x20 || c == b'"' || c == b'\\');
                assert_eq!(needs_escape(&bytes), naive, "byte {b:#x} at {at} of {len}");
            }
        }
    }
}

proptest! {
    #[test]
    fn needs_escape_agrees_with_a_byte_scan(bytes in prop::collection::vec(any::<u8>(), 0..40)) {
        let naive = bytes.iter().any(|&c| c < 0x20 || c == b'"' || c == b'\\');
        prop_assert_eq!(needs_escape(&bytes), naive);
    }
}

proptest! {
    #[test]
    fn a_later_stage_reusing_the_stable_part_is_the_same_line(ev in event(), code in any::<u16>()) {
        let first = EventLine::from(&ev);
        let mut later = ev.clone();
        later.stage = Stage::ResponseComplete;
        later.stage_timestamp = MicroTime::new(Timestamp::from_second(1_800_000_000).unwrap());
        later.response_status = Some(ResponseStatus::from_code(code));
        later
            .annotations
            .insert("authorization.k8s.io/decision".into(), "allow".into());
        let parts = LineParts {
            stable: first.stable_part(),
            ..LineParts::default()
        };
        let reused = EventLine::with_parts(&later, parts);
        prop_assert_eq!(reused, EventLine::from(&later));
    }

    #[test]
    fn annotations_kept_apart_are_written_as_if_the_event_held_them(
        ev in event(),
        extra in prop::collection::vec(("[a-z./-]{1,12}|portcullis.dev/audit-chain", "[ -~]{0,8}"), 0..6),
    ) {
        let mut kept = Annotations::new();
        let mut expected = ev.clone();
        for (k, v) in extra {
            kept.insert(k, v);
        }
        for (k, v) in kept.iter() {
            // The event's own value wins over a kept one.
            expected.annotations.entry(k.to_owned()).or_insert_with(|| v.to_owned());
        }
        let parts = LineParts {
            annotations: Some(&kept),
            ..LineParts::default()
        };
        prop_assert_eq!(EventLine::with_parts(&ev, parts), EventLine::from(&expected));
    }

    #[test]
    fn users_given_apart_are_written_as_if_the_event_held_them(ev in event(), other in event()) {
        // The users of `ev` written for an event that holds another's (`other`'s).
        prop_assert_eq!(users_given_apart(&ev, &other), EventLine::from(&ev));
    }
}

/// `ev`'s line, written from an event that holds the users of `other` with `ev`'s users given
/// apart.
fn users_given_apart(ev: &Event, other: &Event) -> EventLine {
    let mut holder = ev.clone();
    holder.user = other.user.clone();
    holder.impersonated_user = other.impersonated_user.clone();
    let parts = LineParts {
        users: Some((&ev.user, ev.impersonated_user.as_ref())),
        ..LineParts::default()
    };
    EventLine::with_parts(&holder, parts)
}

#[test]
fn users_given_apart_are_kept_in_the_form_without_bodies() {
    let mut ev = full_event();
    ev.request_object = Some(json!({"data": "x".repeat(MAX_LINE_BYTES)}));
    let other = Event::new(
        &AuditId::parse(b"b-2").unwrap(),
        Level::Metadata,
        Stage::RequestReceived,
        Timestamp::from_second(1_700_000_000).unwrap(),
    );
    let line = users_given_apart(&ev, &other);
    assert_eq!(line, EventLine::from(&ev));
    let (bare, truncated) = line.fitting(0).unwrap();
    assert!(truncated);
    let mut out = Vec::new();
    bare.write_with_placeholder(0, &mut out);
    let written: Event = serde_json::from_slice(&out).unwrap();
    assert_eq!(written.user, ev.user);
    assert_eq!(written.impersonated_user, ev.impersonated_user);
}

#[test]
fn kept_annotations_replace_their_own_earlier_values_and_stay_sorted() {
    let mut kept = Annotations::new();
    kept.insert("b", "1");
    kept.insert("a", "1");
    kept.insert(String::from("b"), String::from("2"));
    assert_eq!(kept.iter().collect::<Vec<_>>(), [("a", "1"), ("b", "2")]);
    assert_eq!(kept.get("b"), Some("2"));
    assert_eq!(kept.get("c"), None);
    let mut map = BTreeMap::from([("b".to_owned(), "0".to_owned())]);
    kept.copy_into(&mut map);
    assert_eq!(map["b"], "2");
    assert_eq!(map.len(), 2);
}

#[test]
fn decimal_len_counts_digits() {
    for n in [0u64, 1, 9, 10, 99, 100, 12_345, u64::MAX / 10, u64::MAX] {
        assert_eq!(decimal_len(n), n.to_string().len(), "{n}");
    }
}

use std::io::Write;

use flate2::Compression;
use flate2::write::GzEncoder;
use portcullis_api::UserInfo;

use super::*;
use crate::chain::Chain;
use crate::event::{AuditId, ObjectReference, ResponseStatus};
use crate::policy::Level;

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn event(n: u64, user: &str, verb: &str, resource: &str, ns: &str, decision: &str) -> Event {
    let at = ts("2024-05-01T12:00:00Z")
        .checked_add(jiff::SignedDuration::from_secs(n as i64 * 60))
        .unwrap();
    let mut ev = Event::new(
        &AuditId::parse(format!("id-{n}").as_bytes()).unwrap(),
        Level::Metadata,
        Stage::ResponseComplete,
        at,
    );
    ev.verb = verb.into();
    ev.user = UserInfo {
        username: user.into(),
        ..UserInfo::default()
    };
    let (res, sub) = resource.split_once('/').unwrap_or((resource, ""));
    ev.object_ref = Some(ObjectReference {
        resource: res.into(),
        subresource: sub.into(),
        namespace: ns.into(),
        name: format!("obj{n}"),
        ..ObjectReference::default()
    });
    ev.response_status = Some(ResponseStatus::from_code(if decision == "forbid" {
        403
    } else {
        200
    }));
    ev.annotations
        .insert(ANNOTATION_DECISION.into(), decision.into());
    ev
}

fn trail() -> Vec<Event> {
    vec![
        event(0, "alice", "get", "pods", "default", "allow"),
        event(1, "bob", "delete", "pods", "prod", "forbid"),
        event(2, "alice", "get", "pods/log", "default", "allow"),
        event(3, "carol", "create", "deployments", "prod", "allow"),
        event(4, "bob", "list", "secrets", "prod", "forbid"),
    ]
}

/// Writes the trail as a gzip rotated file (first three) and a plain current file.
fn write_trail(dir: &Path) -> Vec<PathBuf> {
    let mut chain = Chain::genesis();
    let lines: Vec<Vec<u8>> = trail()
        .into_iter()
        .map(|mut ev| {
            let mut out = Vec::new();
            chain.seal(&mut ev, &mut out).unwrap();
            out
        })
        .collect();
    let gz = dir.join("audit-2024-05-01T12-03-00.000.log.gz");
    let mut enc = GzEncoder::new(Vec::new(), Compression::default());
    enc.write_all(&lines[..3].concat()).unwrap();
    std::fs::write(&gz, enc.finish().unwrap()).unwrap();
    let cur = dir.join("audit.log");
    std::fs::write(&cur, lines[3..].concat()).unwrap();
    vec![cur, gz]
}

fn ids(files: &[PathBuf], filter: Filter) -> Vec<String> {
    query(files, filter)
        .map(|r| r.unwrap().event.audit_id)
        .collect()
}

#[test]
fn reads_rotated_files_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let files = write_trail(dir.path());
    assert_eq!(
        ids(&files, Filter::default()),
        vec!["id-0", "id-1", "id-2", "id-3", "id-4"]
    );
    let first = query(&files, Filter::default()).next().unwrap().unwrap();
    assert_eq!(first.line, 1);
    assert!(first.file.to_string_lossy().ends_with(".log.gz"));
    assert!(first.raw.starts_with(r#"{"kind":"Event""#));
}

#[test]
fn filters_by_each_field() {
    let dir = tempfile::tempdir().unwrap();
    let files = write_trail(dir.path());
    let cases: Vec<(Filter, Vec<&str>)> = vec![
        (
            Filter {
                user: Some("bob".into()),
                ..Filter::default()
            },
            vec!["id-1", "id-4"],
        ),
        (
            Filter {
                verb: Some("get".into()),
                ..Filter::default()
            },
            vec!["id-0", "id-2"],
        ),
        (
            Filter {
                resource: Some("pods".into()),
                ..Filter::default()
            },
            vec!["id-0", "id-1", "id-2"],
        ),
        (
            Filter {
                resource: Some("pods/log".into()),
                ..Filter::default()
            },
            vec!["id-2"],
        ),
        (
            Filter {
                namespace: Some("prod".into()),
                ..Filter::default()
            },
            vec!["id-1", "id-3", "id-4"],
        ),
        (
            Filter {
                decision: Some("forbid".into()),
                ..Filter::default()
            },
            vec!["id-1", "id-4"],
        ),
        (
            Filter {
                since: Some(ts("2024-05-01T12:01:00Z")),
                until: Some(ts("2024-05-01T12:03:00Z")),
                ..Filter::default()
            },
            vec!["id-1", "id-2"],
        ),
        (
            Filter {
                stage: Some(Stage::RequestReceived),
                ..Filter::default()
            },
            vec![],
        ),
        (
            Filter {
                user: Some("bob".into()),
                namespace: Some("prod".into()),
                verb: Some("list".into()),
                ..Filter::default()
            },
            vec!["id-4"],
        ),
    ];
    for (filter, want) in cases {
        assert_eq!(ids(&files, filter.clone()), want, "{filter:?}");
    }
}

#[test]
fn user_filter_matches_impersonated_user() {
    let mut ev = event(0, "admin", "get", "pods", "default", "allow");
    ev.impersonated_user = Some(UserInfo {
        username: "dave".into(),
        ..UserInfo::default()
    });
    let f = Filter {
        user: Some("dave".into()),
        ..Filter::default()
    };
    assert!(f.matches(&ev));
    assert_eq!(table_row(&ev)[2], "admin (as dave)");
}

#[test]
fn bad_lines_are_reported_with_file_and_line_and_reading_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let good = serde_json::to_string(&trail()[0]).unwrap();
    let content = [
        good.as_bytes(),
        b"\n{not json\n",
        b"\xff\xfe\n",
        &vec![b'x'; MAX_LINE_BYTES + 1],
        b"\n",
        good.as_bytes(),
        b"\n{\"kind\":\"Ev",
    ]
    .concat();
    std::fs::write(&path, content).unwrap();
    let items: Vec<_> = query(&[&path], Filter::default()).collect();
    let summary: Vec<String> = items
        .iter()
        .map(|r| match r {
            Ok(rec) => format!("ok:{}", rec.line),
            Err(e) => e.to_string().rsplit_once('/').unwrap().1.to_owned(),
        })
        .collect();
    assert_eq!(summary.len(), 6, "{summary:?}");
    assert_eq!(summary[0], "ok:1");
    assert!(
        summary[1].starts_with("audit.log:2: not an audit event"),
        "{}",
        summary[1]
    );
    assert_eq!(summary[2], "audit.log:3: not an audit event: invalid UTF-8");
    assert!(
        summary[3].starts_with("audit.log:4: line of"),
        "{}",
        summary[3]
    );
    assert_eq!(summary[4], "ok:5");
    assert_eq!(summary[5], "audit.log:6: incomplete last line");
}

#[test]
fn unreadable_files_are_errors_not_panics() {
    let dir = tempfile::tempdir().unwrap();
    let bad_gz = dir.path().join("x.log.gz");
    std::fs::write(&bad_gz, b"\x1f\x8b\x08\x00garbage").unwrap();
    let missing = dir.path().join("missing.log");
    let items: Vec<_> = query(&[&bad_gz, &missing], Filter::default()).collect();
    assert_eq!(items.len(), 2);
    assert!(
        items
            .iter()
            .all(|r| matches!(r, Err(QueryError::Unreadable { .. })))
    );
}

#[test]
fn table_has_the_columns_and_escapes_control_characters() {
    let mut evil = event(9, "eve\u{1b}[31m\nroot", "get", "pods", "default", "allow");
    evil.response_status = Some(ResponseStatus::from_code(200));
    let rows = [trail()[1].clone(), evil];
    let table = render_table(rows.iter());
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3);
    assert!(lines[0].starts_with("TIME"));
    for col in TABLE_COLUMNS {
        assert!(lines[0].contains(col));
    }
    assert!(lines[1].contains("bob") && lines[1].contains("prod/obj1") && lines[1].contains("403"));
    assert!(lines[1].ends_with("forbid"));
    assert!(!table.contains('\u{1b}'));
    assert!(lines[2].contains(r"eve\u{1b}[31m\nroot"));
    let cells = table_row(&trail()[2]);
    assert_eq!(cells[4], "pods/log");
    assert_eq!(cells[0], "2024-05-01T12:02:00.000000Z");
}

#[test]
fn non_resource_rows_show_the_path() {
    let mut ev = event(0, "alice", "get", "pods", "", "allow");
    ev.object_ref = None;
    ev.request_uri = "/healthz?verbose=1".into();
    let cells = table_row(&ev);
    assert_eq!((cells[4].as_str(), cells[5].as_str()), ("/healthz", ""));
    let f = Filter {
        namespace: Some("default".into()),
        ..Filter::default()
    };
    assert!(!f.matches(&ev));
}

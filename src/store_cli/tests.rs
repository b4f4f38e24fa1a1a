//! The export format's rules, line by line.

use super::format::{ExportReader, FormatError, MAX_LINE, end_line, header_line, object_line};

fn export(lines: &[&str]) -> String {
    let mut file = String::from_utf8(header_line(7, "2026-11-22T05:00:00Z").unwrap()).unwrap();
    file.push('\n');
    for line in lines {
        file.push_str(line);
        file.push('\n');
    }
    file.push_str(&String::from_utf8(end_line(lines.len() as u64).unwrap()).unwrap());
    file.push('\n');
    file
}

fn read(file: &str) -> Result<Vec<super::format::Record>, FormatError> {
    let mut reader = ExportReader::new(file.as_bytes(), 100)?;
    let mut records = Vec::new();
    while let Some(r) = reader.next_record()? {
        records.push(r);
    }
    Ok(records)
}

fn problem(file: &str) -> String {
    read(file).unwrap_err().to_string()
}

const CM: &str = r#"{"key":"/registry/configmaps/team/app","object":{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"app","namespace":"team","uid":"u1","resourceVersion":"9"},"data":{"a":"b"}}}"#;
const NS: &str = r#"{"key":"/registry/namespaces/team","object":{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"team"}}}"#;

#[test]
fn reads_records_and_drops_resource_versions() {
    let records = read(&export(&[CM, NS])).unwrap();
    assert_eq!(records.len(), 2);
    assert_eq!(records[0].key, "/registry/configmaps/team/app");
    assert_eq!(records[0].resource, "configmaps");
    assert_eq!(records[0].line, 2);
    let v: serde_json::Value = serde_json::from_slice(&records[0].value).unwrap();
    assert_eq!(v["metadata"]["uid"], "u1");
    assert!(v["metadata"].get("resourceVersion").is_none());
}

#[test]
fn an_object_line_reads_back_as_written() {
    let value = br#"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"team"}}"#;
    let line = object_line("/registry/namespaces/team", value).unwrap();
    let file = export(&[std::str::from_utf8(&line).unwrap()]);
    let records = read(&file).unwrap();
    assert_eq!(records[0].value, value.to_vec());
}

#[test]
fn a_stored_value_that_is_not_a_json_object_is_an_export_error() {
    assert!(object_line("/registry/namespaces/x", b"12").is_err());
    assert!(object_line("/registry/namespaces/x", b"{nope").is_err());
}

#[test]
fn services_keys_use_their_two_segment_prefix() {
    let svc = r#"{"key":"/registry/services/specs/team/web","object":{"kind":"Service","metadata":{"name":"web","namespace":"team"}}}"#;
    assert_eq!(read(&export(&[svc])).unwrap()[0].resource, "services");
}

#[test]
fn unknown_resources_are_kept_under_their_first_segment() {
    let other =
        r#"{"key":"/registry/widgets.example.com/team/w","object":{"metadata":{"name":"w"}}}"#;
    assert_eq!(
        read(&export(&[other])).unwrap()[0].resource,
        "widgets.example.com"
    );
}

#[test]
fn refuses_key_object_mismatches() {
    let cases = [
        (
            r#"{"key":"/registry/configmaps/other/app","object":{"kind":"ConfigMap","metadata":{"name":"app","namespace":"team"}}}"#,
            "metadata.namespace is `team`",
        ),
        (
            r#"{"key":"/registry/configmaps/team/app","object":{"metadata":{"name":"web","namespace":"team"}}}"#,
            "metadata.name is `web`",
        ),
        (
            r#"{"key":"/registry/configmaps/app","object":{"metadata":{"name":"app"}}}"#,
            "end in `<namespace>/<name>`",
        ),
        (
            r#"{"key":"/registry/namespaces/team","object":{"metadata":{"name":"team","namespace":"x"}}}"#,
            "metadata.namespace is `x`",
        ),
        (
            r#"{"key":"/registry/configmaps/team/app","object":{"kind":"Secret","metadata":{"name":"app","namespace":"team"}}}"#,
            "of kind `Secret`",
        ),
        (
            r#"{"key":"/etc/passwd","object":{}}"#,
            "not under `/registry/`",
        ),
        (
            r#"{"key":"/registry/compact_rev_key","object":{}}"#,
            "not an object key",
        ),
        (
            r#"{"key":"/registry/configmaps/../secrets/x","object":{}}"#,
            "not an object key",
        ),
        (
            r#"{"key":"/registry/configmaps/team/a%2Fb","object":{}}"#,
            "not an object key",
        ),
        (
            r#"{"key":"/registry/configmaps/team/app","object":[1]}"#,
            "not a JSON object",
        ),
    ];
    for (line, expected) in cases {
        let message = problem(&export(&[line]));
        assert!(
            message.starts_with("line 2: ") && message.contains(expected),
            "line {line}\nexpected: {expected}\nactual:   {message}"
        );
    }
}

#[test]
fn refuses_unknown_fields_in_object_lines() {
    let line =
        r#"{"key":"/registry/namespaces/team","object":{"metadata":{"name":"team"}},"extra":1}"#;
    assert!(matches!(
        read(&export(&[line])),
        Err(FormatError::Json { line: 2, .. })
    ));
}

#[test]
fn refuses_duplicates_naming_both_lines() {
    assert_eq!(
        problem(&export(&[NS, CM, NS])),
        "line 4: duplicate key `/registry/namespaces/team` (first on line 2)"
    );
}

#[test]
fn refuses_truncated_files() {
    let file = export(&[CM, NS]);
    // Cut inside the last object line, at a line boundary, and the end line alone.
    let cut = file.find(NS).unwrap() + 10;
    assert!(matches!(
        read(&file[..cut]),
        Err(FormatError::Incomplete { line: 3 })
    ));
    let before_end = file.rfind("{\"kind\"").unwrap();
    assert!(matches!(
        read(&file[..before_end]),
        Err(FormatError::MissingEnd { line: 3 })
    ));
    assert!(matches!(read(""), Err(FormatError::Empty)));
}

#[test]
fn refuses_a_wrong_count_and_content_after_the_end() {
    let file = export(&[CM]).replace("\"objects\":1", "\"objects\":2");
    assert!(matches!(
        read(&file),
        Err(FormatError::CountMismatch {
            declared: 2,
            actual: 1,
            ..
        })
    ));
    let file = format!("{}{NS}\n", export(&[CM]));
    assert!(matches!(
        read(&file),
        Err(FormatError::AfterEnd { line: 4 })
    ));
    // Blank lines after the end are fine.
    assert!(read(&format!("{}\n\n", export(&[CM]))).is_ok());
}

#[test]
fn refuses_other_headers_and_versions() {
    assert!(matches!(
        read("{\"kind\":\"ConfigMap\"}\n"),
        Err(FormatError::NotAnExport)
    ));
    assert!(matches!(read("hello\n"), Err(FormatError::NotAnExport)));
    let file = export(&[]).replace("\"version\":1", "\"version\":2");
    assert!(matches!(read(&file), Err(FormatError::Version(2))));
}

#[test]
fn refuses_lines_over_the_bound() {
    let big = format!(
        r#"{{"key":"/registry/namespaces/team","object":{{"metadata":{{"name":"team"}},"pad":"{}"}}}}"#,
        "x".repeat(MAX_LINE)
    );
    assert!(matches!(
        read(&export(&[&big])),
        Err(FormatError::LineTooLong { line: 2 })
    ));
}

#[test]
fn refuses_more_objects_than_the_bound() {
    let file = export(&[CM, NS]);
    let mut reader = ExportReader::new(file.as_bytes(), 1).unwrap();
    assert!(reader.next_record().unwrap().is_some());
    assert!(matches!(
        reader.next_record(),
        Err(FormatError::TooMany { line: 3, max: 1 })
    ));
}

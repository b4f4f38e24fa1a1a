//! `portcullis policy verify`: Gatekeeper test suites (the `gator verify` format) run through
//! portcullis' Rego engine. The suites are our own (tests/fixtures/gatekeeper); the upstream
//! gatekeeper-library is checked by `scripts/gatekeeper-conformance` (see CONFORMANCE.md).

use std::path::Path;
use std::process::{Command, Output};

fn verify(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["policy", "verify"])
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn our_suites_pass_case_by_case() {
    let out = verify(&["tests/fixtures/gatekeeper"]);
    let text = stdout(&out);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for case in [
        "required-labels/labelled",
        "required-labels/unlabelled",
        "unique-host/no-inventory",
        "unique-host/collides-with-inventory",
        "multi-engine/host-network-create",
        "multi-engine/host-network-update-is-exempt",
        "multi-engine/plain-pod",
    ] {
        assert!(
            text.lines()
                .any(|l| l.starts_with("PASS") && l.ends_with(case)),
            "{case} did not pass:\n{text}"
        );
    }
    assert!(text.contains("SKIP  tests/fixtures/gatekeeper/suite.yaml skipped/never-run"));
    assert!(
        text.ends_with("8 cases: 7 passed, 0 failed, 0 errors, 1 skipped\n"),
        "{text}"
    );
}

#[test]
fn json_output_and_run_filter() {
    let out = verify(&[
        "-o",
        "json",
        "--run",
        "^unique-host/",
        "tests/fixtures/gatekeeper/suite.yaml",
    ]);
    assert_eq!(out.status.code(), Some(0));
    let lines: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert!(
        lines
            .iter()
            .all(|l| l["test"] == "unique-host" && l["result"] == "pass")
    );
    assert_eq!(lines[1]["case"], "collides-with-inventory");
}

/// Writes `files` (name, text) into a temporary directory.
fn dir_with(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        let path = dir.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    dir
}

fn fixture(name: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(name)).unwrap()
}

const SUITE_HEAD: &str =
    "kind: Suite\napiVersion: test.gatekeeper.sh/v1alpha1\nmetadata:\n  name: t\ntests:\n";

#[test]
fn a_wrong_assertion_fails_and_says_what_came() {
    let suite = format!(
        "{SUITE_HEAD}- name: labels\n  template: t.yaml\n  constraint: c.yaml\n  cases:\n  - name: expects-none\n    object: pod.yaml\n    assertions:\n    - violations: no\n  - name: expects-two\n    object: pod.yaml\n    assertions:\n    - violations: 2\n"
    );
    let dir = dir_with(&[
        ("suite.yaml", &suite),
        (
            "t.yaml",
            &fixture("admission/tests/rego/requiredlabels.yaml"),
        ),
        (
            "c.yaml",
            &fixture("tests/fixtures/gatekeeper/constraints/must-have-owner.yaml"),
        ),
        (
            "pod.yaml",
            &fixture("tests/fixtures/gatekeeper/objects/pod-without-owner.yaml"),
        ),
    ]);
    let out = verify(&[dir.path().to_str().unwrap()]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("labels/expects-none: expected 0 violations, got 1: [\"Pod web lacks the labels [\\\"owner\\\"]\"]"), "{text}");
    assert!(
        text.contains("labels/expects-two: expected 2 violations, got 1"),
        "{text}"
    );
    assert!(
        text.ends_with("2 cases: 0 passed, 2 failed, 0 errors, 0 skipped\n"),
        "{text}"
    );
}

#[test]
fn templates_that_cannot_run_are_errors_with_the_reason() {
    let cel_only = "apiVersion: templates.gatekeeper.sh/v1\nkind: ConstraintTemplate\nmetadata:\n  name: celonly\nspec:\n  crd:\n    spec:\n      names:\n        kind: CelOnly\n  targets:\n  - target: admission.k8s.gatekeeper.sh\n    code:\n    - engine: K8sNativeValidation\n      source:\n        validations:\n        - expression: 'true'\n";
    let broken = "apiVersion: templates.gatekeeper.sh/v1\nkind: ConstraintTemplate\nmetadata:\n  name: broken\nspec:\n  crd:\n    spec:\n      names:\n        kind: Broken\n  targets:\n  - target: admission.k8s.gatekeeper.sh\n    rego: |\n      package broken\n      violation[{\"msg\": msg}] {\n        msg := no_such_function(1)\n      }\n";
    let suite = format!(
        "{SUITE_HEAD}- name: cel\n  template: cel.yaml\n  cases:\n  - name: a\n    object: pod.yaml\n- name: broken\n  template: broken.yaml\n  cases:\n  - name: b\n    object: pod.yaml\n- name: missing\n  template: nowhere.yaml\n  cases:\n  - name: c\n    object: pod.yaml\n"
    );
    let dir = dir_with(&[
        ("suite.yaml", &suite),
        ("cel.yaml", cel_only),
        ("broken.yaml", broken),
        (
            "pod.yaml",
            &fixture("tests/fixtures/gatekeeper/objects/pod-without-owner.yaml"),
        ),
    ]);
    let out = verify(&[dir.path().to_str().unwrap()]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let line = |case: &str| text.lines().find(|l| l.contains(case)).unwrap().to_owned();
    assert!(
        line("cel/a").starts_with("ERROR") && line("cel/a").contains("written only in CEL"),
        "{text}"
    );
    assert!(
        line("broken/b").starts_with("ERROR") && line("broken/b").contains("no_such_function"),
        "{text}"
    );
    assert!(
        line("missing/c").starts_with("ERROR") && line("missing/c").contains("nowhere.yaml"),
        "{text}"
    );
}

#[test]
fn hostile_inputs_are_bounded_and_reported() {
    // An object file over the size bound, and a YAML alias bomb.
    let big = format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: big\n  annotations:\n    a: \"{}\"\n",
        "x".repeat(5 << 20)
    );
    let bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\ne: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\ng: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f]\nh: [*g, *g, *g, *g, *g, *g, *g, *g, *g, *g]\n";
    let suite = format!(
        "{SUITE_HEAD}- name: hostile\n  template: t.yaml\n  constraint: c.yaml\n  cases:\n  - name: big\n    object: big.yaml\n  - name: bomb\n    object: bomb.yaml\n"
    );
    let dir = dir_with(&[
        ("suite.yaml", &suite),
        (
            "t.yaml",
            &fixture("admission/tests/rego/requiredlabels.yaml"),
        ),
        (
            "c.yaml",
            &fixture("tests/fixtures/gatekeeper/constraints/must-have-owner.yaml"),
        ),
        ("big.yaml", &big),
        ("bomb.yaml", bomb),
    ]);
    let out = verify(&[dir.path().to_str().unwrap()]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("hostile/big: `") && text.contains("larger than 4 MiB"),
        "{text}"
    );
    let bomb_line = text.lines().find(|l| l.contains("hostile/bomb")).unwrap();
    assert!(bomb_line.starts_with("ERROR"), "{text}");

    // Nothing to verify is a usage error.
    let empty = tempfile::tempdir().unwrap();
    let out = verify(&[empty.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no Suite"));
}

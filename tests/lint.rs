//! `portcullis lint`, driven as a user runs it: the Pod Security fixtures through lint, every
//! report format checked by a parser of that format, bad input, suppression, and parity with
//! the gateway (dry-run creates of the same objects with the same configuration).

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::Gateway;
use serde_json::Value;

fn lint(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .arg("lint")
        .args(args)
        .current_dir(cwd)
        .env("NO_COLOR", "1")
        .output()
        .expect("running portcullis lint")
}

fn lint_stdin(args: &[&str], input: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .arg("lint")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    // lint stops reading at its size limit, so a long input may meet a closed pipe.
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    out
}

fn json_of(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "lint output is not JSON: {e}\n--- stdout\n{}\n--- stderr\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn rules_of(report: &Value) -> Vec<String> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["rule"].as_str().unwrap().to_owned())
        .collect()
}

const SAMPLE: &str = r#"apiVersion: v1
kind: Namespace
metadata:
  name: secure
  labels: {pod-security.kubernetes.io/enforce: restricted}
---
apiVersion: v1
kind: Pod
metadata:
  name: bad
  namespace: secure
  annotations:
    portcullis.dev/ignore: "PCS-007=a test pod, PCS-999=nothing"
spec:
  containers:
  - name: app
    image: nginx
    securityContext: {privileged: true}
---
# a workload: Pod Security of its template is a finding too
apiVersion: apps/v1
kind: Deployment
metadata: {name: "web, \"quoted\": 100%", namespace: secure}
spec:
  template:
    spec:
      containers: [{name: app, image: nginx:1.27}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: ci-admin}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cluster-admin}
subjects: [{kind: ServiceAccount, name: ci, namespace: ci}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: peek, namespace: secure}
rules:
- {apiGroups: [""], resources: [secrets], verbs: [get, list]}
- {apiGroups: [""], resources: [pods/exec], verbs: [create]}
- {apiGroups: [""], resources: [users], verbs: [impersonate]}
"#;

fn sample_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("app.yaml"), SAMPLE).unwrap();
    dir
}

#[test]
fn findings_carry_rule_severity_object_line_and_fix() {
    let dir = sample_dir();
    let out = lint(&["--format", "json", "app.yaml"], dir.path());
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = json_of(&out);
    let findings = report["findings"].as_array().unwrap();
    let find = |rule: &str, kind: &str| {
        findings
            .iter()
            .find(|f| f["rule"] == rule && f["object"]["kind"] == kind)
            .unwrap_or_else(|| panic!("no {rule} on a {kind} in {findings:#?}"))
    };
    let f = find("PSS-privileged", "Pod");
    assert_eq!(f["severity"], "error");
    assert_eq!(f["file"], "app.yaml");
    assert_eq!(f["line"], 7);
    assert_eq!(f["object"]["namespace"], "secure");
    assert_eq!(
        f["message"],
        r#"violates PodSecurity "restricted:latest": privileged (container "app" must not set securityContext.privileged=true)"#
    );
    assert!(f["fix"].as_str().unwrap().contains("privileged"));
    // Pod templates are checked at the namespace's level, with upstream's check IDs.
    let f = find("PSS-allowPrivilegeEscalation", "Deployment");
    assert_eq!(f["severity"], "error");
    assert_eq!(f["line"], 21);
    find("PSS-runAsNonRoot", "Deployment");
    // The library's IDs and hints; RBAC risks.
    assert_eq!(find("PCS-002", "Deployment")["severity"], "warning");
    assert_eq!(find("RBAC-010", "ClusterRoleBinding")["severity"], "error");
    for rule in ["RBAC-003", "RBAC-005", "RBAC-007"] {
        find(rule, "Role");
    }
    // The annotation suppresses PCS-007 on the pod and reports the entry that matched nothing.
    let suppressed = report["suppressed"].as_array().unwrap();
    assert!(suppressed.iter().any(|f| f["rule"] == "PCS-007"
        && f["suppressed"]["kind"] == "annotation"
        && f["suppressed"]["reason"] == "a test pod"));
    assert!(
        findings
            .iter()
            .any(|f| f["rule"] == "LINT-UNUSED"
                && f["message"].as_str().unwrap().contains("PCS-999"))
    );
    // The gateway's verdicts ride along.
    let objects = report["objects"].as_array().unwrap();
    assert_eq!(objects.len(), 5);
    assert_eq!(objects[1]["admission"]["allowed"], false);
    assert_eq!(objects[2]["admission"]["allowed"], true);
    assert!(
        objects[2]["admission"]["warnings"][0]
            .as_str()
            .unwrap()
            .starts_with("would violate PodSecurity")
    );
    assert_eq!(report["summary"]["objects"], 5);

    // --fail-on never: exit 0; the summary line goes to stderr for machine formats.
    let out = lint(
        &["--format", "json", "--fail-on", "never", "app.yaml"],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stderr).contains("portcullis lint: 5 objects in 1 file:"));
}

#[test]
fn text_output_is_grouped_by_file_with_a_summary() {
    let dir = sample_dir();
    let out = lint(&["app.yaml"], dir.path());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("app.yaml\n"), "{text}");
    assert!(!text.contains('\x1b'), "no colour when piped");
    let last = text.lines().last().unwrap();
    assert!(
        last.starts_with("portcullis lint: 5 objects in 1 file: "),
        "{last}"
    );
    assert!(last.contains("(1 suppressed)"), "{last}");
}

#[test]
fn config_file_disables_overrides_and_exempts() {
    let dir = sample_dir();
    std::fs::write(
        dir.path().join(".portcullis.yaml"),
        "rules:\n  disabled: ['PCS-00*']\n  severity: {RBAC-010: note}\nexemptions:\n- rule: PSS-privileged\n  namespace: secure\n  kind: Pod\n  reason: the debugging pod\n- rule: RBAC-001\n  path: 'nowhere/**'\n  reason: stale\n",
    )
    .unwrap();
    let out = lint(&["--format", "json", "app.yaml"], dir.path());
    let report = json_of(&out);
    let rules = rules_of(&report);
    assert!(!rules.iter().any(|r| r.starts_with("PCS-00")), "{rules:?}");
    let rbac = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["rule"] == "RBAC-010")
        .unwrap();
    assert_eq!(rbac["severity"], "note");
    assert!(
        report["suppressed"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["rule"] == "PSS-privileged" && f["suppressed"]["kind"] == "config")
    );
    let unused = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["rule"] == "LINT-UNUSED" && f["file"] == ".portcullis.yaml")
        .expect("the unused exemption is reported");
    assert_eq!(unused["line"], 9);

    // A malformed annotation is itself a finding.
    let bad = SAMPLE.replace("PCS-007=a test pod, PCS-999=nothing", "PCS-007");
    let out = lint_stdin(&["--format", "json", "-"], bad.as_bytes());
    let report = json_of(&out);
    let f = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["rule"] == "LINT-SUPPRESSION")
        .expect("malformed suppression reported");
    assert_eq!(f["file"], "<stdin>");
    assert_eq!(f["severity"], "error");
}

#[test]
fn stdin_lists_json_and_usage_errors() {
    let list = r#"{"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "a"}, "spec": {"hostNetwork": true, "containers": [{"name": "c", "image": "x"}]}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "b"}}]}"#;
    let out = lint_stdin(
        &[
            "--format",
            "json",
            "--pod-security",
            "baseline",
            "--no-default-policies",
            "-",
        ],
        list.as_bytes(),
    );
    assert_eq!(out.status.code(), Some(1));
    let report = json_of(&out);
    assert_eq!(report["summary"]["objects"], 2);
    assert_eq!(rules_of(&report), ["PSS-hostNamespaces"]);

    let dir = tempfile::tempdir().unwrap();
    for args in [
        &["missing.yaml"][..],
        &["--pod-security", "strictest", "-"],
        &["--output", "nonsense", "-"],
        &["--format", "xml", "-"],
    ] {
        let out = lint(args, dir.path());
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Clean input exits 0.
    let out = lint_stdin(
        &["-"],
        b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n",
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn bad_input_is_reported_bounded_and_the_run_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("a-syntax.yaml"),
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: [x\n",
    )
    .unwrap();
    let mut bomb = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 0..9 {
        let prev = if i == 0 {
            "a".to_owned()
        } else {
            format!("b{}", i - 1)
        };
        bomb.push_str(&format!(
            "b{i}: &b{i} [{}]\n",
            vec![format!("*{prev}"); 10].join(", ")
        ));
    }
    std::fs::write(d.join("b-bomb.yaml"), bomb).unwrap();
    let big = "# padding\n".repeat(5 * 1024 * 1024);
    std::fs::write(d.join("c-huge.yaml"), big).unwrap();
    std::fs::write(
        d.join("d-deep.json"),
        "[".repeat(100_000) + &"]".repeat(100_000),
    )
    .unwrap();
    std::fs::write(d.join("e-binary.yaml"), b"\x7fELF\x00\x01\x02kind: Pod").unwrap();
    std::fs::write(d.join("f-latin1.yaml"), b"kind: ConfigMap\nname: caf\xe9\n").unwrap();
    std::fs::write(d.join("g-deep.yaml"), "- ".repeat(5_000) + "x\n").unwrap();
    std::fs::write(
        d.join("z-good.yaml"),
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  hostPID: true\n  containers: [{name: c, image: x}]\n",
    )
    .unwrap();
    let out = lint(&["--format", "json", "--pod-security", "baseline", "."], d);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = json_of(&out);
    let findings = report["findings"].as_array().unwrap();
    let input: BTreeMap<String, (u64, String)> = findings
        .iter()
        .filter(|f| f["rule"] == "LINT-INPUT")
        .map(|f| {
            (
                f["file"].as_str().unwrap().to_owned(),
                (
                    f["line"].as_u64().unwrap(),
                    f["message"].as_str().unwrap().to_owned(),
                ),
            )
        })
        .collect();
    let names = [
        "a-syntax.yaml",
        "b-bomb.yaml",
        "c-huge.yaml",
        "d-deep.json",
        "e-binary.yaml",
        "f-latin1.yaml",
        "g-deep.yaml",
    ];
    assert_eq!(
        input.keys().cloned().collect::<Vec<_>>(),
        names,
        "{findings:#?}"
    );
    assert_eq!(input["a-syntax.yaml"].0, 4, "{:?}", input["a-syntax.yaml"]);
    assert!(input["c-huge.yaml"].1.contains("larger than 8 MiB"));
    assert!(input["e-binary.yaml"].1.contains("binary"));
    assert!(input["f-latin1.yaml"].1.contains("UTF-8"));
    assert_eq!(input["f-latin1.yaml"].0, 2);
    // The good file was still checked.
    assert!(
        findings
            .iter()
            .any(|f| f["file"] == "z-good.yaml" && f["rule"] == "PSS-hostNamespaces")
    );

    // 50 MB on stdin is refused too, without reading it all.
    let out = lint_stdin(&["-"], &vec![b'#'; 50 * 1024 * 1024]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stdout).contains("larger than 8 MiB"));
}

#[test]
fn sarif_is_valid_against_the_sarif_2_1_0_schema() {
    let dir = sample_dir();
    std::fs::write(dir.path().join("broken file.yaml"), "a: [\n").unwrap();
    let out = lint(&["--format", "sarif", "."], dir.path());
    let sarif = json_of(&out);
    let schema_path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sarif/sarif-schema-2.1.0.json");
    // The published rtm.5 schema has one pattern that is not a valid regex (a stray `]` in
    // run.language); later copies of the schema fix it so, and so does this test.
    let text = std::fs::read_to_string(schema_path).unwrap().replace(
        "^[a-zA-Z]{2}|^[a-zA-Z]{2}-[a-zA-Z]{2}]?$",
        "^[a-zA-Z]{2}(-[a-zA-Z]{2})?$",
    );
    let schema: Value = serde_json::from_str(&text).unwrap();
    let validator = jsonschema::validator_for(&schema).expect("the SARIF schema compiles");
    let errors: Vec<String> = validator
        .iter_errors(&sarif)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "SARIF does not validate:\n{}",
        errors.join("\n")
    );
    // The schema is not vacuous: a broken log fails it.
    let mut broken = sarif.clone();
    broken["runs"][0]["results"][0]["level"] = "fatal".into();
    assert!(!validator.is_valid(&broken));

    let run = &sarif["runs"][0];
    let rules = run["tool"]["driver"]["rules"].as_array().unwrap();
    let ids: Vec<&str> = rules.iter().map(|r| r["id"].as_str().unwrap()).collect();
    let mut unique = ids.clone();
    unique.dedup();
    assert_eq!(ids, unique, "one rule per rule ID");
    assert!(
        rules
            .iter()
            .all(|r| !r["help"]["text"].as_str().unwrap().is_empty())
    );
    let results = run["results"].as_array().unwrap();
    for r in results {
        let i = r["ruleIndex"].as_u64().unwrap() as usize;
        assert_eq!(rules[i]["id"], r["ruleId"]);
    }
    let pss = results
        .iter()
        .find(|r| r["ruleId"] == "PSS-privileged")
        .unwrap();
    assert_eq!(
        pss["locations"][0]["physicalLocation"]["artifactLocation"]["uri"],
        "app.yaml"
    );
    assert_eq!(
        pss["locations"][0]["physicalLocation"]["region"]["startLine"],
        7
    );
    assert!(
        results
            .iter()
            .any(|r| r["ruleId"] == "PCS-007" && r["suppressions"][0]["kind"] == "inSource")
    );
    assert!(results.iter().any(
        |r| r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
            == "broken%20file.yaml"
    ));
}

#[test]
fn junit_loads_in_an_xml_parser_with_suites_cases_and_failures() {
    use quick_xml::Reader;
    use quick_xml::events::Event;
    let dir = sample_dir();
    let out = lint(
        &[
            "--format",
            "junit",
            "--output",
            "json=report.json",
            "app.yaml",
        ],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        dir.path().join("report.json").is_file(),
        "--output wrote the second format"
    );
    let xml = String::from_utf8(out.stdout).unwrap();
    let mut reader = Reader::from_str(&xml);
    let mut stack: Vec<String> = Vec::new();
    let mut suites = 0;
    let mut cases = Vec::new();
    let mut failures = Vec::new();
    let attrs_of = |e: &quick_xml::events::BytesStart<'_>| -> BTreeMap<String, String> {
        e.attributes()
            .map(|a| {
                let a = a.unwrap();
                (
                    String::from_utf8(a.key.as_ref().to_vec()).unwrap(),
                    a.unescape_value().unwrap().into_owned(),
                )
            })
            .collect()
    };
    loop {
        match reader.read_event().expect("well-formed XML") {
            Event::Start(e) => {
                let name = String::from_utf8(e.name().as_ref().to_vec()).unwrap();
                let attrs = attrs_of(&e);
                match name.as_str() {
                    "testsuite" => {
                        assert_eq!(stack.last().map(String::as_str), Some("testsuites"));
                        suites += 1;
                    }
                    "testcase" => {
                        assert_eq!(stack.last().map(String::as_str), Some("testsuite"));
                        cases.push(attrs["name"].clone());
                    }
                    "failure" => {
                        assert_eq!(stack.last().map(String::as_str), Some("testcase"));
                        failures.push((attrs["type"].clone(), attrs["message"].clone()));
                    }
                    _ => {}
                }
                stack.push(name);
            }
            Event::Empty(e) => {
                let name = String::from_utf8(e.name().as_ref().to_vec()).unwrap();
                if name == "testcase" {
                    assert_eq!(stack.last().map(String::as_str), Some("testsuite"));
                    cases.push(attrs_of(&e)["name"].clone());
                }
            }
            Event::End(_) => {
                stack.pop();
            }
            Event::Eof => break,
            _ => {}
        }
    }
    assert!(stack.is_empty());
    assert_eq!(suites, 1);
    assert_eq!(cases.len(), 5, "{cases:?}");
    assert!(
        cases.contains(&"Deployment secure/web, \"quoted\": 100%".to_owned()),
        "{cases:?}"
    );
    let types: Vec<&str> = failures.iter().map(|(t, _)| t.as_str()).collect();
    assert!(types.iter().any(|t| t.starts_with("PSS-")), "{failures:?}");
    assert!(types.contains(&"RBAC-010"), "{failures:?}");
    assert!(failures.iter().all(|(_, m)| !m.is_empty()));
    assert!(
        xml.contains("PSS-privileged"),
        "every finding is in the failure text"
    );
}

#[test]
fn github_annotations_follow_the_workflow_command_format() {
    let dir = sample_dir();
    let out = lint(&["--format", "github", "app.yaml"], dir.path());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(!text.is_empty());
    for line in text.lines() {
        let (command, rest) = line
            .strip_prefix("::")
            .and_then(|l| l.split_once(' '))
            .unwrap_or_else(|| panic!("not a workflow command: {line}"));
        assert!(matches!(command, "error" | "warning" | "notice"), "{line}");
        let (props, message) = rest.split_once("::").unwrap_or_else(|| panic!("{line}"));
        let props: BTreeMap<&str, &str> = props
            .split(',')
            .map(|p| {
                p.split_once('=')
                    .unwrap_or_else(|| panic!("bad property in {line}"))
            })
            .collect();
        assert_eq!(
            props.keys().copied().collect::<Vec<_>>(),
            ["file", "line", "title"],
            "{line}"
        );
        assert!(props["line"].parse::<u64>().unwrap() >= 1);
        for value in props.values() {
            assert!(
                !value.contains(':') && !value.contains('\n') && !value.contains('\r'),
                "{line}"
            );
        }
        assert!(!message.contains('\n') && !message.contains('\r'));
        // Every % is an escape.
        for (i, _) in message.match_indices('%') {
            let esc = &message[i..(i + 3).min(message.len())];
            assert!(
                matches!(esc, "%25" | "%0A" | "%0D"),
                "unescaped % in {line}"
            );
        }
    }
    let pss = text
        .lines()
        .find(|l| l.contains("title=PSS-privileged (error)"))
        .expect("PSS annotation");
    assert!(pss.starts_with("::error file=app.yaml,line=7,title=PSS-privileged (error)::Pod secure/bad: violates PodSecurity"), "{pss}");
    assert!(pss.contains("%0Afix: "), "{pss}");
    // A name with `"`, `,`, `:` and `%`: the message escapes % only.
    assert!(
        text.contains("Deployment secure/web, \"quoted\": 100%25:"),
        "{text}"
    );
}

/// The Pod Security fixtures (`$PORTCULLIS_CONFORMANCE_DIR/pod-security/`, by default
/// `../shared/conformance/pod-security/`) through `portcullis lint`, one run per level and version.
#[test]
fn every_pod_security_fixture_gets_its_verdict_through_lint() {
    let root = match std::env::var_os("PORTCULLIS_CONFORMANCE_DIR") {
        Some(dir) => PathBuf::from(dir).join("pod-security"),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/conformance/pod-security"),
    };
    if !root.is_dir() {
        eprintln!("\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!");
        eprintln!(
            "!!! POD SECURITY CONFORMANCE FIXTURES NOT FOUND: {}",
            root.display()
        );
        eprintln!("!!! set PORTCULLIS_CONFORMANCE_DIR to the folder holding pod-security/");
        eprintln!("!!! NOTHING WAS CHECKED");
        eprintln!("!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!");
        return;
    }
    let dirs = |p: &Path| {
        let mut v: Vec<PathBuf> = std::fs::read_dir(p)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_dir())
            .collect();
        v.sort();
        v
    };
    let mut checked = 0usize;
    let mut failures = Vec::new();
    for level in dirs(&root) {
        for version in dirs(&level) {
            let name = |p: &Path| p.file_name().unwrap().to_string_lossy().into_owned();
            let policy = format!("{}:{}", name(&level), name(&version));
            let out = lint(
                &[
                    "--format",
                    "json",
                    "--no-default-policies",
                    "--fail-on",
                    "never",
                    "--pod-security",
                    &policy,
                    ".",
                ],
                &version,
            );
            assert_eq!(
                out.status.code(),
                Some(0),
                "{policy}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let report = json_of(&out);
            let mut denied: BTreeMap<String, Vec<String>> = BTreeMap::new();
            for f in report["findings"].as_array().unwrap() {
                let rule = f["rule"].as_str().unwrap();
                assert!(rule.starts_with("PSS-"), "{policy}: unexpected finding {f}");
                assert_eq!(f["severity"], "error");
                denied
                    .entry(f["file"].as_str().unwrap().to_owned())
                    .or_default()
                    .push(rule.to_owned());
            }
            for o in report["objects"].as_array().unwrap() {
                let file = o["file"].as_str().unwrap();
                let expect_allowed = file.starts_with("pass/");
                assert!(expect_allowed || file.starts_with("fail/"), "{file}");
                let lint_denied = denied.contains_key(file);
                let gateway_allowed = o["admission"]["allowed"].as_bool().unwrap();
                checked += 1;
                if lint_denied == expect_allowed || gateway_allowed != expect_allowed {
                    failures.push(format!(
                        "{policy}/{file}: expected {}, lint found {:?}, gateway verdict {}",
                        if expect_allowed { "allowed" } else { "denied" },
                        denied.get(file),
                        o["admission"]
                    ));
                }
            }
        }
    }
    eprintln!(
        "pod security fixtures through lint: {checked} checked, {} failed, root {}",
        failures.len(),
        root.display()
    );
    assert!(
        checked >= 4_000,
        "only {checked} fixtures found under {}",
        root.display()
    );
    assert!(
        failures.is_empty(),
        "{} fixtures failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

const PARITY_OBJECTS: &str = r#"apiVersion: v1
kind: Namespace
metadata: {name: strict, labels: {pod-security.kubernetes.io/enforce: restricted}}
---
apiVersion: v1
kind: Namespace
metadata: {name: loose, labels: {pod-security.kubernetes.io/enforce: baseline, pod-security.kubernetes.io/warn: restricted}}
---
apiVersion: v1
kind: Namespace
metadata: {name: prod, labels: {env: prod}}
---
apiVersion: v1
kind: Pod
metadata: {name: hardened, namespace: strict, labels: {app.kubernetes.io/name: hardened}}
spec:
  automountServiceAccountToken: false
  securityContext: {runAsNonRoot: true, seccompProfile: {type: RuntimeDefault}}
  containers:
  - name: app
    image: registry.example.com/app:1.0
    securityContext: {allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}, readOnlyRootFilesystem: true}
    resources: {requests: {cpu: 10m, memory: 16Mi}, limits: {cpu: 10m, memory: 16Mi}}
---
apiVersion: v1
kind: Pod
metadata: {name: privileged, namespace: strict}
spec:
  containers: [{name: app, image: nginx:1.27, securityContext: {privileged: true}}]
---
apiVersion: v1
kind: Pod
metadata: {name: root, namespace: loose}
spec:
  containers: [{name: app, image: nginx:1.27}]
---
apiVersion: v1
kind: Pod
metadata: {name: hostpid, namespace: loose}
spec:
  hostPID: true
  containers: [{name: app, image: nginx:1.27}]
---
apiVersion: v1
kind: Pod
metadata: {name: unconfined, namespace: default}
spec:
  securityContext: {seccompProfile: {type: Unconfined}}
  containers: [{name: app, image: nginx:1.27}]
---
apiVersion: v1
kind: Pod
metadata: {name: latest, namespace: prod}
spec:
  containers: [{name: app, image: nginx:latest}]
---
apiVersion: v1
kind: Pod
metadata: {name: latest-elsewhere, namespace: default}
spec:
  containers: [{name: app, image: nginx:latest}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: privileged-template, namespace: strict}
spec:
  selector: {matchLabels: {app: x}}
  template:
    metadata: {labels: {app: x}}
    spec:
      containers: [{name: app, image: nginx:1.27, securityContext: {privileged: true}}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: hostpath, namespace: default}
spec:
  selector: {matchLabels: {app: hp}}
  template:
    metadata: {labels: {app: hp}}
    spec:
      volumes: [{name: r, hostPath: {path: /}}]
      containers: [{name: app, image: nginx:1.27}]
---
apiVersion: batch/v1
kind: CronJob
metadata: {name: nightly, namespace: prod}
spec:
  schedule: "0 0 * * *"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          containers: [{name: app, image: busybox:latest}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: settings, namespace: strict}
data: {a: b}
"#;

const PARITY_IMAGE_POLICY: &str = r#"apiVersion: portcullis.dev/v1
kind: ImagePolicy
rules:
- name: prod-pinned
  namespaceSelector: {matchLabels: {env: prod}}
  disallowLatestTag: true
"#;

/// The same objects, the same configuration: lint's verdict is the gateway's dry-run verdict.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lint_and_the_gateway_agree_on_every_object() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("objects.yaml"), PARITY_OBJECTS).unwrap();
    std::fs::write(d.join("images.yaml"), PARITY_IMAGE_POLICY).unwrap();
    let library = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");

    let out = lint(
        &[
            "--format",
            "json",
            "--image-policy",
            "images.yaml",
            "objects.yaml",
        ],
        d,
    );
    let report = json_of(&out);

    let gw_dir = tempfile::tempdir().unwrap();
    let data = gw_dir.path().join("data");
    let image_policy = d.join("images.yaml");
    let gw = Gateway::start_in(
        gw_dir,
        data,
        &[
            "--image-policy-file",
            image_policy.to_str().unwrap(),
            "--admission-policy-dir",
            library.to_str().unwrap(),
        ],
    );
    let client = gw.admin_client();
    let docs: Vec<Value> = serde_saphyr::from_str_multiple(PARITY_OBJECTS).unwrap();
    for ns in docs.iter().filter(|d| d["kind"] == "Namespace") {
        let resp = client
            .post(format!("{}/api/v1/namespaces", gw.url))
            .json(ns)
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success(), "{}", resp.text().await.unwrap());
    }
    let objects = report["objects"].as_array().unwrap();
    let mut compared = 0;
    let mut mismatches = Vec::new();
    let mut verdicts = BTreeMap::new();
    for (doc, o) in docs.iter().zip(objects) {
        assert_eq!(doc["metadata"]["name"], o["object"]["name"]);
        if doc["kind"] == "Namespace" {
            continue;
        }
        let ns = o["object"]["namespace"].as_str().unwrap();
        let (prefix, plural) = match doc["kind"].as_str().unwrap() {
            "Pod" => ("/api/v1", "pods"),
            "ConfigMap" => ("/api/v1", "configmaps"),
            "Deployment" => ("/apis/apps/v1", "deployments"),
            "CronJob" => ("/apis/batch/v1", "cronjobs"),
            other => panic!("no URL for {other}"),
        };
        let resp = client
            .post(format!(
                "{}{prefix}/namespaces/{ns}/{plural}?dryRun=All",
                gw.url
            ))
            .json(doc)
            .send()
            .await
            .unwrap();
        let status = resp.status();
        let warned = resp.headers().get_all("warning").iter().count() > 0;
        let body = resp.text().await.unwrap();
        assert!(
            status.is_success() || status.as_u16() == 403,
            "{status} {body}"
        );
        let gateway_allowed = status.is_success();
        let lint_allowed = o["admission"]["allowed"].as_bool().unwrap();
        let lint_warned = o["admission"]["warnings"]
            .as_array()
            .is_some_and(|w| !w.is_empty());
        let name = o["object"]["name"].as_str().unwrap().to_owned();
        verdicts.insert(name.clone(), gateway_allowed);
        compared += 1;
        if gateway_allowed != lint_allowed || (gateway_allowed && warned != lint_warned) {
            mismatches.push(format!(
                "{name}: gateway {status} (warnings: {warned}) {body}\n    lint {}",
                o["admission"]
            ));
        }
        if !gateway_allowed {
            let message: Value = serde_json::from_str(&body).unwrap();
            let lint_message = o["admission"]["message"].as_str().unwrap();
            assert!(
                message["message"].as_str().unwrap().ends_with(lint_message),
                "{name}: gateway says {message}, lint says {lint_message}"
            );
        }
    }
    assert!(
        mismatches.is_empty(),
        "verdicts differ:\n{}",
        mismatches.join("\n")
    );
    assert_eq!(compared, 11);
    // The set exercises every stage both ways.
    let expect = [
        ("hardened", true),
        ("privileged", false),
        ("root", true),
        ("hostpid", false),
        ("unconfined", false),
        ("latest", false),
        ("latest-elsewhere", true),
        ("privileged-template", true),
        ("hostpath", false),
        ("nightly", false),
        ("settings", true),
    ];
    for (name, allowed) in expect {
        assert_eq!(verdicts[name], allowed, "{name}");
    }
    // A template that violates the namespace's level is admitted with a warning by the
    // gateway, and is an error finding in lint.
    assert!(
        report["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["object"]["name"] == "privileged-template"
                && f["rule"] == "PSS-privileged"
                && f["severity"] == "error")
    );
}

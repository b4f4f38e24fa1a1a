//! The shipped policy library (`policies/`): every case of `policies/tests/cases.yaml` is denied
//! and warned by exactly the policy IDs it lists.

use std::path::Path;

use portcullis_admission::rego::PolicySet;
use serde_json::{Value, json};

fn ids(findings: &[portcullis_admission::rego::Finding]) -> Vec<String> {
    let mut out: Vec<String> = findings
        .iter()
        .filter_map(|f| f.message.split_whitespace().next().map(str::to_owned))
        .collect();
    out.sort();
    out.dedup();
    out
}

#[test]
fn every_case_of_the_policy_library_gets_exactly_its_findings() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    let set: PolicySet = portcullis::policies::load(&root).expect("the policy library compiles");
    let cases: Vec<Value> =
        serde_saphyr::from_str(&std::fs::read_to_string(root.join("tests/cases.yaml")).unwrap())
            .unwrap();
    assert!(cases.len() >= 5);
    let mut failures = Vec::new();
    for case in &cases {
        let object = &case["object"];
        let api_version = object["apiVersion"].as_str().unwrap();
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
        let request = json!({
            "uid": "1", "operation": "CREATE", "name": object["metadata"]["name"], "namespace": "default",
            "kind": {"group": group, "version": version, "kind": object["kind"]},
            "userInfo": {"username": "dev"}, "object": object,
        });
        let verdict = set.evaluate(&request, &json!({})).unwrap();
        let want = |k: &str| {
            let mut v: Vec<String> = case[k]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i.as_str().unwrap().to_owned())
                .collect();
            v.sort();
            v
        };
        let (deny, warn) = (ids(&verdict.denials), ids(&verdict.warnings));
        if deny != want("deny") || warn != want("warn") {
            failures.push(format!(
                "{}\n    expected deny {:?} warn {:?}\n    actual   deny {:?} warn {:?}\n    {:?}",
                case["name"].as_str().unwrap(),
                want("deny"),
                want("warn"),
                deny,
                warn,
                verdict
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

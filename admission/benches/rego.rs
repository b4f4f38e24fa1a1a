//! Rego evaluation of one typical pod: one conftest-style policy, and one Gatekeeper constraint
//! (the allowed-repos template of the test fixtures, with a lib). The admission budget
//! (DESIGN.md: > 10k AdmissionReviews/s with PSS, images and 5 Rego policies on 2 cores)
//! leaves roughly 40 µs per policy.
//!
//! `cargo bench -p portcullis-admission --bench rego`

#![allow(missing_docs)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use portcullis_admission::rego::{Document, GatekeeperPolicy, PolicySet, PolicySource, RegoFile};
use serde_json::{Value, json};

const ALLOWED_REPOS: &str = include_str!("../tests/rego/allowedrepos.yaml");

const CONFTEST: &str = r#"
package kubernetes.pods

deny contains msg if {
    input.request.kind.kind == "Pod"
    some c in input.request.object.spec.containers
    not c.securityContext.runAsNonRoot
    not input.request.object.spec.securityContext.runAsNonRoot
    msg := sprintf("container %s must run as non-root", [c.name])
}

deny contains msg if {
    some c in input.request.object.spec.containers
    endswith(c.image, ":latest")
    msg := sprintf("container %s uses a latest tag", [c.name])
}

warn contains msg if {
    some c in input.request.object.spec.containers
    not c.resources.limits.memory
    msg := sprintf("container %s has no memory limit", [c.name])
}
"#;

fn pod_request() -> Value {
    json!({
        "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
        "kind": {"group": "", "version": "v1", "kind": "Pod"},
        "resource": {"group": "", "version": "v1", "resource": "pods"},
        "namespace": "prod",
        "name": "web",
        "operation": "CREATE",
        "userInfo": {"username": "alice", "groups": ["dev", "system:authenticated"]},
        "object": {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "web", "namespace": "prod", "labels": {"app": "web", "owner": "alice"}},
            "spec": {
                "securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
                "initContainers": [{"name": "init", "image": "registry.example.com/pause:3.9"}],
                "containers": [
                    {
                        "name": "app",
                        "image": "registry.example.com/app:1.2.3",
                        "ports": [{"containerPort": 8080}],
                        "resources": {"limits": {"memory": "256Mi", "cpu": "500m"}},
                        "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}}
                    },
                    {
                        "name": "sidecar",
                        "image": "registry.example.com/sidecar:4",
                        "resources": {"limits": {"memory": "64Mi"}},
                        "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}}
                    }
                ],
                "volumes": [{"name": "config", "configMap": {"name": "app-config"}}]
            }
        },
        "oldObject": null,
        "dryRun": false
    })
}

fn conftest_set() -> PolicySet {
    let source = PolicySource::Rego(RegoFile::new("pods.rego", CONFTEST));
    PolicySet::compile(&[source]).unwrap()
}

fn gatekeeper_set() -> PolicySet {
    let template: Value = serde_saphyr::from_str(ALLOWED_REPOS).unwrap();
    let constraint = json!({
        "apiVersion": "constraints.gatekeeper.sh/v1beta1",
        "kind": "PortcullisAllowedRepos",
        "metadata": {"name": "internal-registry"},
        "spec": {
            "match": {
                "kinds": [{"apiGroups": [""], "kinds": ["Pod"]}],
                "excludedNamespaces": ["kube-*"]
            },
            "parameters": {"repos": ["registry.example.com/"]}
        }
    });
    let source = PolicySource::Gatekeeper(GatekeeperPolicy {
        template: Document::new("allowedrepos.yaml", template),
        constraints: vec![Document::new("constraint.yaml", constraint)],
    });
    PolicySet::compile(&[source]).unwrap()
}

/// Five policies of the shipped library (policies/), with their shared lib: the admission
/// budget's "five Rego policies".
fn library_set() -> PolicySet {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../policies");
    let mut sources = Vec::new();
    for name in [
        "lib/pods",
        "readonly_root_fs",
        "resources",
        "automount_token",
        "host_path",
        "seccomp",
    ] {
        let path = format!("{root}/{name}.rego");
        let text = std::fs::read_to_string(&path).unwrap();
        sources.push(PolicySource::Rego(RegoFile::new(path, text)));
    }
    PolicySet::compile(&sources).unwrap()
}

fn bench(c: &mut Criterion) {
    let request = pod_request();
    let labels = json!({"env": "prod"});

    let conftest = conftest_set();
    assert!(conftest.evaluate(&request, &labels).unwrap().is_allowed());
    c.bench_function("rego/conftest_pod", |b| {
        b.iter(|| conftest.evaluate(black_box(&request), black_box(&labels)))
    });

    let gatekeeper = gatekeeper_set();
    assert!(gatekeeper.evaluate(&request, &labels).unwrap().is_allowed());
    c.bench_function("rego/gatekeeper_pod", |b| {
        b.iter(|| gatekeeper.evaluate(black_box(&request), black_box(&labels)))
    });
}

fn bench_library(c: &mut Criterion) {
    let request = pod_request();
    let labels = json!({"env": "prod"});
    let library = library_set();
    assert!(library.evaluate(&request, &labels).unwrap().is_allowed());
    c.bench_function("rego/library_five_pod", |b| {
        b.iter(|| library.evaluate(black_box(&request), black_box(&labels)))
    });
}

criterion_group!(benches, bench, bench_library);
criterion_main!(benches);

//! Pod Security check of one pod at `restricted:latest` (budget: < 5 µs, DESIGN.md).
//!
//! `cargo bench -p portcullis-admission --bench pod_security`

#![allow(missing_docs)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use portcullis_admission::pod_security::{Level, LevelVersion, Version, check_pod, evaluate};
use serde_json::{Value, json};

fn compliant_pod() -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web", "namespace": "prod", "labels": {"app": "web"}},
        "spec": {
            "securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
            "initContainers": [{
                "name": "init",
                "image": "registry.k8s.io/pause",
                "securityContext": {
                    "allowPrivilegeEscalation": false,
                    "capabilities": {"drop": ["ALL"]}
                }
            }],
            "containers": [
                {
                    "name": "app",
                    "image": "registry.example/app:1.2.3",
                    "ports": [{"containerPort": 8080}],
                    "readinessProbe": {"httpGet": {"path": "/healthz", "port": 8080}},
                    "securityContext": {
                        "allowPrivilegeEscalation": false,
                        "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]},
                        "runAsUser": 1000
                    },
                    "volumeMounts": [{"name": "config", "mountPath": "/etc/app"}]
                },
                {
                    "name": "sidecar",
                    "image": "registry.example/sidecar:4",
                    "securityContext": {
                        "allowPrivilegeEscalation": false,
                        "capabilities": {"drop": ["ALL"]}
                    }
                }
            ],
            "volumes": [
                {"name": "config", "configMap": {"name": "app-config"}},
                {"name": "scratch", "emptyDir": {}}
            ]
        }
    })
}

fn violating_pod() -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "bad", "namespace": "prod"},
        "spec": {
            "hostNetwork": true,
            "containers": [{
                "name": "app",
                "image": "registry.example/app:1.2.3",
                "ports": [{"containerPort": 80, "hostPort": 80}],
                "securityContext": {
                    "privileged": true,
                    "capabilities": {"add": ["SYS_ADMIN"]},
                    "runAsUser": 0
                }
            }],
            "volumes": [{"name": "root", "hostPath": {"path": "/"}}]
        }
    })
}

fn bench(c: &mut Criterion) {
    let policy = LevelVersion::new(Level::Restricted, Version::LATEST);
    let compliant = compliant_pod();
    let violating = violating_pod();
    assert!(check_pod(policy, &compliant).is_ok());
    assert!(check_pod(policy, &violating).is_err());

    c.bench_function("check_pod restricted:latest compliant", |b| {
        b.iter(|| check_pod(black_box(policy), black_box(&compliant)))
    });
    c.bench_function("check_pod restricted:latest violating", |b| {
        b.iter(|| check_pod(black_box(policy), black_box(&violating)))
    });
    c.bench_function("check_pod restricted:latest violating + message", |b| {
        b.iter(|| check_pod(black_box(policy), black_box(&violating)).map_err(|v| v.message()))
    });
    c.bench_function("evaluate restricted:latest compliant", |b| {
        b.iter(|| {
            evaluate(
                Level::Restricted,
                Version::LATEST,
                black_box(&compliant["metadata"]),
                black_box(&compliant["spec"]),
            )
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);

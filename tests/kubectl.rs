//! The user's path: the real kubectl against the zero-config gateway, as the README says.

mod common;

use std::io::Read;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::Gateway;

const WORKLOADS: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: demo
  labels: {app: web}
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: nginx:IMAGE_TAG
        ports:
        - containerPort: 80
        env:
        - name: MODE
          value: prod
      - name: sidecar
        image: busybox:1.36
---
apiVersion: v1
kind: Pod
metadata:
  name: probe
  namespace: demo
spec:
  containers:
  - name: c
    image: busybox:1.36
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  namespace: demo
data:
  level: "3"
"#;

fn manifest(dir: &std::path::Path, tag: &str) -> String {
    let path = dir.join(format!("workloads-{tag}.yaml"));
    std::fs::write(&path, WORKLOADS.replace("IMAGE_TAG", tag)).unwrap();
    path.to_string_lossy().into_owned()
}

#[test]
fn kubectl_create_apply_get_watch_delete_work_as_against_kube_apiserver() {
    let gw = Gateway::start();
    let out = gw.kubectl_ok(&["create", "namespace", "demo"]);
    assert_eq!(out.trim(), "namespace/demo created");

    let v1 = manifest(gw.dir.path(), "1.25");
    let out = gw.kubectl_ok(&["apply", "-f", &v1]);
    assert_eq!(
        out.trim(),
        "deployment.apps/web created\npod/probe created\nconfigmap/settings created"
    );
    let generation = |gw: &Gateway| {
        gw.kubectl_ok(&[
            "get",
            "deploy",
            "web",
            "-n",
            "demo",
            "-o",
            "jsonpath={.metadata.generation}",
        ])
    };
    assert_eq!(generation(&gw), "1");

    // Applying the same file again changes nothing.
    let out = gw.kubectl_ok(&["apply", "-f", &v1]);
    assert!(out.contains("deployment.apps/web unchanged"), "{out}");
    assert_eq!(generation(&gw), "1");

    // A changed image: a strategic merge patch, the generation goes up, the rest stays.
    let v2 = manifest(gw.dir.path(), "1.26");
    let out = gw.kubectl_ok(&["apply", "-f", &v2]);
    assert!(out.contains("deployment.apps/web configured"), "{out}");
    assert!(out.contains("pod/probe unchanged"), "{out}");
    assert_eq!(generation(&gw), "2");
    let images = gw.kubectl_ok(&[
        "get",
        "deploy",
        "web",
        "-n",
        "demo",
        "-o",
        "jsonpath={.spec.template.spec.containers[*].image}",
    ]);
    assert_eq!(images, "nginx:1.26 busybox:1.36");
    let env = gw.kubectl_ok(&[
        "get",
        "deploy",
        "web",
        "-n",
        "demo",
        "-o",
        "jsonpath={.spec.template.spec.containers[0].env[0].value}",
    ]);
    assert_eq!(env, "prod");

    // Tables: the columns kube-apiserver serves.
    let pods = gw.kubectl_ok(&["get", "pods", "-A", "-o", "wide"]);
    let header: Vec<&str> = pods.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        [
            "NAMESPACE",
            "NAME",
            "READY",
            "STATUS",
            "RESTARTS",
            "AGE",
            "IP",
            "NODE",
            "NOMINATED",
            "NODE",
            "READINESS",
            "GATES"
        ]
    );
    let row: Vec<&str> = pods.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(&row[..5], ["demo", "probe", "0/1", "Pending", "0"]);
    let deploys = gw.kubectl_ok(&["get", "deploy", "-n", "demo"]);
    assert!(
        deploys.lines().nth(1).unwrap().starts_with("web "),
        "{deploys}"
    );
    assert!(deploys.contains("0/2"), "{deploys}");

    let yaml = gw.kubectl_ok(&["get", "deploy", "-n", "demo", "-o", "yaml"]);
    assert!(
        yaml.contains("kind: List") && yaml.contains("kind: Deployment"),
        "{yaml}"
    );
    assert!(yaml.contains("image: nginx:1.26"), "{yaml}");
    assert!(
        yaml.contains("resourceVersion:") && yaml.contains("uid:"),
        "{yaml}"
    );

    // A watch sees a change made meanwhile.
    let mut watch = gw
        .kubectl_command(&["get", "pods", "-n", "demo", "-w", "--output-watch-events"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    gw.kubectl_ok(&["label", "pod", "probe", "-n", "demo", "tier=edge"]);
    std::thread::sleep(Duration::from_millis(1500));
    let _ = watch.kill();
    let mut seen = String::new();
    watch
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut seen)
        .unwrap();
    let _ = watch.wait();
    assert!(
        seen.lines()
            .any(|l| l.starts_with("ADDED") && l.contains("probe")),
        "{seen}"
    );
    assert!(
        seen.lines()
            .any(|l| l.starts_with("MODIFIED") && l.contains("probe")),
        "{seen}"
    );

    // delete -f returns (kubectl waits for each object to be gone) and the objects are gone.
    let started = Instant::now();
    let out = gw.kubectl_ok(&["delete", "-f", &v2]);
    assert!(started.elapsed() < Duration::from_secs(60));
    assert_eq!(
        out.trim(),
        "deployment.apps \"web\" deleted\npod \"probe\" deleted\nconfigmap \"settings\" deleted"
    );
    let gone = gw.kubectl(&["get", "deploy", "web", "-n", "demo"]);
    assert!(!gone.status.success());
    assert_eq!(
        String::from_utf8_lossy(&gone.stderr).trim(),
        r#"Error from server (NotFound): deployments.apps "web" not found"#
    );
}

#[test]
fn deleting_a_namespace_deletes_its_objects() {
    let gw = Gateway::start();
    gw.kubectl_ok(&["create", "namespace", "team"]);
    gw.kubectl_ok(&[
        "create",
        "configmap",
        "a",
        "-n",
        "team",
        "--from-literal=k=v",
    ]);
    gw.kubectl_ok(&["create", "namespace", "other"]);
    gw.kubectl_ok(&[
        "create",
        "configmap",
        "b",
        "-n",
        "other",
        "--from-literal=k=v",
    ]);
    gw.kubectl_ok(&["delete", "namespace", "team"]);
    let out = gw.kubectl(&["get", "configmap", "a", "-n", "team"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("NotFound"));
    gw.kubectl_ok(&["get", "configmap", "b", "-n", "other"]);
    let out = gw.kubectl(&[
        "create",
        "configmap",
        "c",
        "-n",
        "team",
        "--from-literal=k=v",
    ]);
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        r#"error: failed to create configmap: namespaces "team" not found"#
    );
}

#[test]
fn strict_field_validation_rejects_unknown_fields_through_kubectl() {
    let gw = Gateway::start();
    let bad = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n  namespace: default\ndatta:\n  a: b\n";
    let out = gw.kubectl_with_stdin(&["apply", "-f", "-"], Some(bad));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(r#"unknown field "datta""#), "{err}");
    let out = gw.kubectl(&["get", "configmap", "x"]);
    assert!(!out.status.success(), "nothing was stored");
}

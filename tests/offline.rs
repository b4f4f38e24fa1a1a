//! `portcullis can-i` and `who-can` answer from manifests with the gateway's engine.

use std::process::Command;

const RBAC: &str = r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: pod-reader, namespace: team}
rules:
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get", "list"]
---
apiVersion: v1
kind: List
items:
- apiVersion: rbac.authorization.k8s.io/v1
  kind: RoleBinding
  metadata: {name: alice-pods, namespace: team}
  subjects: [{kind: User, name: alice, apiGroup: rbac.authorization.k8s.io}]
  roleRef: {kind: Role, name: pod-reader, apiGroup: rbac.authorization.k8s.io}
- apiVersion: rbac.authorization.k8s.io/v1
  kind: ClusterRoleBinding
  metadata: {name: ops-view}
  subjects:
  - {kind: Group, name: ops, apiGroup: rbac.authorization.k8s.io}
  - {kind: ServiceAccount, name: ci, namespace: build}
  roleRef: {kind: ClusterRole, name: view, apiGroup: rbac.authorization.k8s.io}
"#;

fn run(dir: &std::path::Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(args)
        .arg("-f")
        .arg(dir)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn can_i_and_who_can_answer_from_manifests() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("nested")).unwrap();
    std::fs::write(dir.path().join("nested/rbac.yaml"), RBAC).unwrap();
    std::fs::write(dir.path().join("notes.txt"), "not a manifest").unwrap();

    let (code, out, _) = run(
        dir.path(),
        &["can-i", "list", "pods", "-n", "team", "--as", "alice"],
    );
    assert_eq!(
        (code, out.trim()),
        (
            0,
            r#"yes - RBAC: allowed by RoleBinding "alice-pods/team" of Role "pod-reader" to User "alice""#
        )
    );
    let (code, out, _) = run(
        dir.path(),
        &["can-i", "delete", "pods", "-n", "team", "--as", "alice"],
    );
    assert_eq!((code, out.trim()), (1, "no"));
    // `view` comes from the bootstrap policy, aggregated as in a cluster.
    let (code, _, _) = run(
        dir.path(),
        &[
            "can-i",
            "list",
            "deployments.apps",
            "-n",
            "x",
            "--as-group",
            "ops",
        ],
    );
    assert_eq!(code, 0);
    let (code, _, _) = run(
        dir.path(),
        &["can-i", "get", "secrets", "-n", "x", "--as-group", "ops"],
    );
    assert_eq!(code, 1);
    let (code, _, _) = run(
        dir.path(),
        &[
            "can-i",
            "get",
            "configmaps",
            "-n",
            "x",
            "--as",
            "system:serviceaccount:build:ci",
        ],
    );
    assert_eq!(code, 0);

    let (code, out, _) = run(dir.path(), &["who-can", "list", "pods", "-n", "team"]);
    assert_eq!(code, 0);
    assert!(
        out.lines().any(|l| l.starts_with("User")
            && l.contains("alice")
            && l.contains("RoleBinding/team/alice-pods")),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("ServiceAccount") && l.contains("build/ci")),
        "{out}"
    );
    assert!(!out.contains("RoleBinding/team/alice-pods") || !out.contains("delete"));

    let (code, out, _) = run(
        dir.path(),
        &["can-i", "--list", "-n", "team", "--as", "alice"],
    );
    assert_eq!(code, 0);
    assert!(
        out.lines()
            .any(|l| l.starts_with("pods ") && l.ends_with("[get list]")),
        "{out}"
    );

    // Unreadable input is exit 2 with the file named.
    std::fs::write(dir.path().join("broken.yaml"), "kind: [unclosed").unwrap();
    let (code, _, err) = run(dir.path(), &["can-i", "get", "pods", "--as", "a"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("broken.yaml"), "{err}");
}

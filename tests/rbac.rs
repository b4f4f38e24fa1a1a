//! RBAC through the real kubectl: objects applied with kubectl, `kubectl auth can-i` (yes and no,
//! `--as`, `--as-group`, `-n`, `--list`, non-resource paths), requests made with impersonation,
//! and escalation prevention, with kube-apiserver's answers and messages.

mod common;

use common::Gateway;

const POLICY: &str = r#"
apiVersion: v1
kind: Namespace
metadata:
  name: team
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: pod-reader
  namespace: team
rules:
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get", "list", "watch"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: alice-reads-pods
  namespace: team
subjects:
- kind: User
  name: alice
  apiGroup: rbac.authorization.k8s.io
roleRef:
  kind: Role
  name: pod-reader
  apiGroup: rbac.authorization.k8s.io
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: viewers-view
subjects:
- kind: Group
  name: viewers
  apiGroup: rbac.authorization.k8s.io
roleRef:
  kind: ClusterRole
  name: view
  apiGroup: rbac.authorization.k8s.io
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: dev-admin
  namespace: team
subjects:
- kind: User
  name: dev
  apiGroup: rbac.authorization.k8s.io
roleRef:
  kind: ClusterRole
  name: admin
  apiGroup: rbac.authorization.k8s.io
"#;

fn can_i(gw: &Gateway, args: &[&str]) -> (bool, String) {
    let mut full = vec!["auth", "can-i"];
    full.extend_from_slice(args);
    let out = gw.kubectl(&full);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).trim().to_owned(),
    )
}

#[test]
fn kubectl_auth_can_i_and_impersonated_requests_get_kube_apiserver_answers() {
    let gw = Gateway::start();
    let out = gw.kubectl_with_stdin(&["apply", "-f", "-"], Some(POLICY));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The admin (system:masters) may do anything.
    assert_eq!(can_i(&gw, &["delete", "nodes"]), (true, "yes".into()));

    // A Role through a RoleBinding, only in its namespace.
    assert_eq!(
        can_i(&gw, &["list", "pods", "-n", "team", "--as", "alice"]),
        (true, "yes".into())
    );
    assert_eq!(
        can_i(&gw, &["delete", "pods", "-n", "team", "--as", "alice"]),
        (false, "no".into())
    );
    assert_eq!(
        can_i(&gw, &["list", "pods", "-n", "default", "--as", "alice"]),
        (false, "no".into())
    );
    assert_eq!(
        can_i(
            &gw,
            &[
                "get",
                "pods",
                "--subresource=log",
                "-n",
                "team",
                "--as",
                "alice"
            ]
        ),
        (false, "no".into())
    );
    // `pods/NAME` names an object, which the role does not restrict.
    assert_eq!(
        can_i(&gw, &["get", "pods/web", "-n", "team", "--as", "alice"]),
        (true, "yes".into())
    );

    // The aggregated `view` ClusterRole through a group: deployments yes, secrets no.
    assert_eq!(
        can_i(
            &gw,
            &[
                "get",
                "deployments",
                "-n",
                "team",
                "--as",
                "bob",
                "--as-group",
                "viewers"
            ]
        ),
        (true, "yes".into())
    );
    assert_eq!(
        can_i(
            &gw,
            &[
                "get",
                "secrets",
                "-n",
                "team",
                "--as",
                "bob",
                "--as-group",
                "viewers"
            ]
        ),
        (false, "no".into())
    );

    // Non-resource paths: public info is granted to every authenticated user, metrics is not.
    assert_eq!(
        can_i(&gw, &["get", "/healthz", "--as", "alice"]),
        (true, "yes".into())
    );
    assert_eq!(
        can_i(&gw, &["get", "/metrics", "--as", "alice"]),
        (false, "no".into())
    );

    // --list shows the rules (SelfSubjectRulesReview), re-compacted by kubectl.
    let out = gw.kubectl_ok(&["auth", "can-i", "--list", "-n", "team", "--as", "alice"]);
    let pods = out
        .lines()
        .find(|l| l.starts_with("pods "))
        .unwrap_or_else(|| panic!("no pods line in\n{out}"));
    assert!(pods.contains("[get list watch]"), "{pods}");
    assert!(
        out.lines().any(
            |l| l.contains("selfsubjectaccessreviews.authorization.k8s.io")
                && l.contains("[create]")
        ),
        "{out}"
    );

    // Real requests as alice: allowed in team, the upstream 403 elsewhere.
    let out = gw.kubectl(&["get", "pods", "-n", "team", "--as", "alice"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = gw.kubectl(&["get", "pods", "-n", "default", "--as", "alice"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        r#"Error from server (Forbidden): pods is forbidden: User "alice" cannot list resource "pods" in API group "" in the namespace "default""#
    );

    // whoami shows the impersonated identity.
    let out = gw.kubectl_ok(&["auth", "whoami", "--as", "alice", "--as-group", "viewers"]);
    assert!(
        out.lines()
            .any(|l| l.starts_with("Username") && l.ends_with("alice")),
        "{out}"
    );
    assert!(
        out.contains("viewers") && out.contains("system:authenticated"),
        "{out}"
    );

    // Escalation: an admin of `team` may grant what it holds but not cluster-admin.
    let grant = |role: &str| {
        format!(
            "apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata:\n  name: grant-{role}\n  namespace: team\nsubjects:\n- kind: User\n  name: mallory\n  apiGroup: rbac.authorization.k8s.io\nroleRef:\n  kind: ClusterRole\n  name: {role}\n  apiGroup: rbac.authorization.k8s.io\n"
        )
    };
    let out = gw.kubectl_with_stdin(&["apply", "-f", "-", "--as", "dev"], Some(&grant("view")));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = gw.kubectl_with_stdin(
        &["apply", "-f", "-", "--as", "dev"],
        Some(&grant("cluster-admin")),
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(r#"rolebindings.rbac.authorization.k8s.io "grant-cluster-admin" is forbidden: user "dev" (groups=["system:authenticated"]) is attempting to grant RBAC permissions not currently held:"#),
        "{err}"
    );
    assert!(
        err.contains(r#"{APIGroups:["*"], Resources:["*"], Verbs:["*"]}"#),
        "{err}"
    );
    assert_eq!(
        can_i(&gw, &["get", "pods", "-n", "team", "--as", "mallory"]),
        (true, "yes".into())
    );
    assert_eq!(
        can_i(&gw, &["delete", "nodes", "--as", "mallory"]),
        (false, "no".into())
    );

    // A binding written through the API is in force for the very next request.
    gw.kubectl_ok(&["delete", "rolebinding", "alice-reads-pods", "-n", "team"]);
    assert_eq!(
        can_i(&gw, &["list", "pods", "-n", "team", "--as", "alice"]),
        (false, "no".into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn impersonation_is_authorized_for_the_requesting_user() {
    let gw = Gateway::start();
    let admin = gw.admin_client();
    let pods = format!("{}/api/v1/namespaces/default/pods", gw.url);
    // The admin may impersonate anyone; the request runs as the impersonated user.
    let r = admin
        .get(&pods)
        .header("Impersonate-User", "carol")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(
        body["message"],
        r#"pods is forbidden: User "carol" cannot list resource "pods" in API group "" in the namespace "default""#
    );
    // A group without a user is a bad request.
    let r = admin
        .get(&pods)
        .header("Impersonate-Group", "g")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(
        body["message"],
        "requested [Impersonate-Group=g] without impersonating a user"
    );
    // Impersonating a service account gives it the service-account groups.
    let r = admin
        .post(format!("{}/apis/authentication.k8s.io/v1/selfsubjectreviews", gw.url))
        .header("Impersonate-User", "system:serviceaccount:ci:builder")
        .json(&serde_json::json!({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(
        body["status"]["userInfo"]["groups"],
        serde_json::json!([
            "system:serviceaccounts",
            "system:serviceaccounts:ci",
            "system:authenticated"
        ])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subject_access_review_webhook_answers_v1_and_v1beta1() {
    let gw = Gateway::start();
    let admin = gw.admin_client();
    let url = format!(
        "{}/apis/authorization.k8s.io/v1/subjectaccessreviews",
        gw.url
    );
    let ask = |api_version: &str, groups_field: &str, verb: &str| {
        let mut body = serde_json::json!({
            "apiVersion": api_version, "kind": "SubjectAccessReview",
            "spec": {"user": "jane", "resourceAttributes": {"verb": verb, "resource": "pods", "namespace": "default"}}
        });
        body["spec"][groups_field] = serde_json::json!(["system:masters"]);
        body
    };
    for (version, field) in [
        ("authorization.k8s.io/v1", "groups"),
        ("authorization.k8s.io/v1beta1", "group"),
    ] {
        let r = admin
            .post(&url)
            .json(&ask(version, field, "get"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{version}");
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["apiVersion"], version);
        assert_eq!(body["status"]["allowed"], true, "{body}");
        assert_eq!(
            body["spec"][field],
            serde_json::json!(["system:masters"]),
            "{body}"
        );
    }
    // A subject nothing grants: 200, allowed false, no reason.
    let mut nobody = ask("authorization.k8s.io/v1", "groups", "get");
    nobody["spec"]["groups"] = serde_json::json!([]);
    let r = admin.post(&url).json(&nobody).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["status"], serde_json::json!({"allowed": false}));
    // Malformed: neither user nor groups, both attribute kinds.
    let r = admin
        .post(&url)
        .json(&serde_json::json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
            "spec": {"resourceAttributes": {"verb": "get"}, "nonResourceAttributes": {"verb": "get", "path": "/x"}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let body: serde_json::Value = r.json().await.unwrap();
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains("at least one of user or group must be specified"),
        "{message}"
    );
    assert!(
        message.contains("cannot be specified in combination with resourceAttributes"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_config_gives_kube_apiserver_a_review_only_identity() {
    let gw = Gateway::start();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["webhook-config", "authz", "--server", &gw.url, "--data-dir"])
        .arg(&gw.data)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let config: serde_json::Value = serde_saphyr::from_str(&text).unwrap();
    let server = config["clusters"][0]["cluster"]["server"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        server,
        format!(
            "{}/apis/authorization.k8s.io/v1/subjectaccessreviews",
            gw.url
        )
    );
    use base64::Engine;
    let decode = |k: &str| {
        base64::engine::general_purpose::STANDARD
            .decode(config["users"][0]["user"][k].as_str().unwrap())
            .unwrap()
    };
    let (cert, key) = (
        gw.dir.path().join("webhook.crt"),
        gw.dir.path().join("webhook.key"),
    );
    std::fs::write(&cert, decode("client-certificate-data")).unwrap();
    std::fs::write(&key, decode("client-key-data")).unwrap();
    let client = gw.client_with_identity(Some((&cert, &key)));
    let review = serde_json::json!({"apiVersion": "authorization.k8s.io/v1beta1", "kind": "SubjectAccessReview",
        "spec": {"user": "jane", "group": ["system:masters"], "nonResourceAttributes": {"verb": "get", "path": "/metrics"}}});
    let r = client.post(&server).json(&review).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["status"]["allowed"], true);
    // The webhook identity may ask reviews, nothing else.
    let r = client
        .get(format!("{}/api/v1/namespaces/default/secrets", gw.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rbac_manifests_are_reloaded_and_a_bad_file_keeps_the_old_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let manifests = dir.path().join("rbac");
    std::fs::create_dir(&manifests).unwrap();
    let binding = |user: &str| {
        format!(
            "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {{name: viewers}}\nsubjects: [{{kind: User, name: {user}, apiGroup: rbac.authorization.k8s.io}}]\nroleRef: {{kind: ClusterRole, name: view, apiGroup: rbac.authorization.k8s.io}}\n"
        )
    };
    std::fs::write(manifests.join("binding.yaml"), binding("ann")).unwrap();
    let data = dir.path().join("data");
    let flag = manifests.to_string_lossy().into_owned();
    let gw = Gateway::start_in(dir, data, &["--rbac-manifests", &flag]);
    let admin = gw.admin_client();
    let url = format!(
        "{}/apis/authorization.k8s.io/v1/subjectaccessreviews",
        gw.url
    );
    let allowed = |user: &'static str| {
        let admin = admin.clone();
        let url = url.clone();
        async move {
            let review = serde_json::json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
                "spec": {"user": user, "resourceAttributes": {"verb": "list", "resource": "pods", "namespace": "x"}}});
            let body: serde_json::Value = admin
                .post(&url)
                .json(&review)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            body["status"]["allowed"] == true
        }
    };
    assert!(allowed("ann").await);
    assert!(!allowed("ben").await);
    std::fs::write(manifests.join("binding.yaml"), binding("ben")).unwrap();
    let mut switched = false;
    for _ in 0..50 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        if allowed("ben").await {
            switched = true;
            break;
        }
    }
    assert!(switched, "the changed manifest was not picked up");
    assert!(!allowed("ann").await);
    // A broken file: the previous snapshot stays.
    std::fs::write(manifests.join("broken.yaml"), "kind: [unclosed").unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    assert!(allowed("ben").await);
}

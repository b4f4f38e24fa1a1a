//! Pod Security admission through the gateway, with the real kubectl: enforcement from namespace
//! labels, and the bypass attempts that must fail (update, every patch type, ephemeral
//! containers, init containers, relabelling the namespace without permission).

mod common;

use common::Gateway;
use serde_json::json;

const GOOD: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: good, namespace: secure}
spec:
  securityContext: {runAsNonRoot: true, seccompProfile: {type: RuntimeDefault}}
  containers:
  - name: app
    image: nginx:1.27
    securityContext:
      allowPrivilegeEscalation: false
      capabilities: {drop: [ALL]}
"#;

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_security_is_enforced_and_cannot_be_bypassed() {
    let gw = Gateway::start();
    gw.kubectl_ok(&["create", "namespace", "secure"]);
    gw.kubectl_ok(&[
        "label",
        "namespace",
        "secure",
        "pod-security.kubernetes.io/enforce=restricted",
    ]);

    // A privileged pod is refused with the upstream message.
    let bad = GOOD.replace("name: good", "name: bad").replace(
        "allowPrivilegeEscalation: false",
        "allowPrivilegeEscalation: false\n      privileged: true",
    );
    let out = gw.kubectl_with_stdin(&["apply", "-f", "-"], Some(&bad));
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains(r#"pods "bad" is forbidden: violates PodSecurity "restricted:latest": privileged (container "app" must not set securityContext.privileged=true)"#),
        "{err}"
    );

    // A compliant pod is admitted.
    let out = gw.kubectl_with_stdin(&["apply", "-f", "-"], Some(GOOD));
    assert!(out.status.success(), "{}", stderr(&out));

    // Bypass attempts on the stored pod: every patch type, and a full update.
    let privileged_patch =
        json!({"spec": {"containers": [{"name": "app", "securityContext": {"privileged": true}}]}})
            .to_string();
    for patch_type in ["merge", "strategic"] {
        let out = gw.kubectl(&[
            "patch",
            "pod",
            "good",
            "-n",
            "secure",
            "--type",
            patch_type,
            "-p",
            &privileged_patch,
        ]);
        assert!(!out.status.success(), "{patch_type} patch was admitted");
        assert!(
            stderr(&out).contains("violates PodSecurity"),
            "{}",
            stderr(&out)
        );
    }
    let json_patch =
        r#"[{"op":"add","path":"/spec/containers/0/securityContext/privileged","value":true}]"#;
    let out = gw.kubectl(&[
        "patch", "pod", "good", "-n", "secure", "--type", "json", "-p", json_patch,
    ]);
    assert!(
        !out.status.success() && stderr(&out).contains("violates PodSecurity"),
        "{}",
        stderr(&out)
    );
    let replaced = GOOD.replace(
        "allowPrivilegeEscalation: false",
        "allowPrivilegeEscalation: true",
    );
    let out = gw.kubectl_with_stdin(&["replace", "-f", "-"], Some(&replaced));
    assert!(
        !out.status.success() && stderr(&out).contains("allowPrivilegeEscalation != false"),
        "{}",
        stderr(&out)
    );

    // An ephemeral container added through the subresource.
    let client = gw.admin_client();
    let pod: serde_json::Value = client
        .get(format!("{}/api/v1/namespaces/secure/pods/good", gw.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut with_debug = pod.clone();
    with_debug["spec"]["ephemeralContainers"] =
        json!([{"name": "debug", "image": "busybox", "securityContext": {"privileged": true}}]);
    let r = client
        .put(format!(
            "{}/api/v1/namespaces/secure/pods/good/ephemeralcontainers",
            gw.url
        ))
        .json(&with_debug)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let body: serde_json::Value = r.json().await.unwrap();
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains(r#"container "debug" must not set securityContext.privileged=true"#),
        "{body}"
    );

    // The stored pod never changed.
    let now: serde_json::Value = client
        .get(format!("{}/api/v1/namespaces/secure/pods/good", gw.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(now["spec"], pod["spec"]);

    // A forbidden setting in an init container.
    let init = GOOD.replace("name: good", "name: init").replace("  containers:", "  initContainers:\n  - name: setup\n    image: busybox\n    securityContext: {privileged: true, allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}\n  containers:");
    let out = gw.kubectl_with_stdin(&["apply", "-f", "-"], Some(&init));
    assert!(
        !out.status.success()
            && stderr(&out)
                .contains(r#"container "setup" must not set securityContext.privileged=true"#),
        "{}",
        stderr(&out)
    );

    // Workloads are not refused; kubectl shows the warning.
    let deploy = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: secure}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - {name: web, image: nginx, securityContext: {privileged: true}}
"#;
    let out = gw.kubectl_with_stdin(&["apply", "-f", "-"], Some(deploy));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(r#"Warning: would violate PodSecurity "restricted:latest""#),
        "{}",
        stderr(&out)
    );

    // A user who may edit the namespace's objects may not relabel the namespace itself.
    gw.kubectl_ok(&[
        "create",
        "rolebinding",
        "dev-edit",
        "--clusterrole=edit",
        "--user=dev",
        "-n",
        "secure",
    ]);
    let out = gw.kubectl(&[
        "label",
        "namespace",
        "secure",
        "pod-security.kubernetes.io/enforce=privileged",
        "--overwrite",
        "--as",
        "dev",
    ]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(
            r#"namespaces "secure" is forbidden: User "dev" cannot patch resource "namespaces""#
        ),
        "{}",
        stderr(&out)
    );
    let out = gw.kubectl_with_stdin(&["apply", "-f", "-", "--as", "dev"], Some(&bad));
    assert!(
        !out.status.success() && stderr(&out).contains("violates PodSecurity"),
        "{}",
        stderr(&out)
    );

    // Metadata-only updates of a pod are not re-checked.
    gw.kubectl_ok(&["label", "pod", "good", "-n", "secure", "tier=front"]);

    // Tightening a namespace warns about the pods already in it.
    gw.kubectl_ok(&["create", "namespace", "loose"]);
    let loose = bad.replace("namespace: secure", "namespace: loose");
    let out = gw.kubectl_with_stdin(&["apply", "-f", "-"], Some(&loose));
    assert!(out.status.success(), "{}", stderr(&out));
    let out = gw.kubectl(&[
        "label",
        "namespace",
        "loose",
        "pod-security.kubernetes.io/enforce=restricted",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains(r#"Warning: existing pods in namespace "loose" violate the new PodSecurity enforce level "restricted:latest""#), "{err}");
    assert!(err.contains("Warning: bad: privileged"), "{err}");
}

//! Admission webhooks for a kube-apiserver, and the PodSecurity AdmissionConfiguration
//! (defaults for unlabelled namespaces, exemptions).

mod common;

use common::Gateway;
use serde_json::{Value, json};

const CONFIG: &str = r#"
apiVersion: apiserver.config.k8s.io/v1
kind: AdmissionConfiguration
plugins:
- name: PodSecurity
  configuration:
    apiVersion: pod-security.admission.config.k8s.io/v1
    kind: PodSecurityConfiguration
    defaults:
      enforce: baseline
      enforce-version: latest
      warn: restricted
    exemptions:
      usernames: [ci-bot]
      namespaces: [kube-system]
"#;

fn review(api_version: &str, namespace: &str, user: &str, kind: &str, object: Value) -> Value {
    let resource = if kind == "Pod" { "pods" } else { "deployments" };
    let group = if kind == "Pod" { "" } else { "apps" };
    json!({"apiVersion": api_version, "kind": "AdmissionReview", "request": {
        "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
        "kind": {"group": group, "version": "v1", "kind": kind},
        "resource": {"group": group, "version": "v1", "resource": resource},
        "name": "p", "namespace": namespace, "operation": "CREATE",
        "userInfo": {"username": user, "groups": ["system:authenticated"]},
        "object": object, "oldObject": null, "dryRun": false}})
}

fn privileged_pod() -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
           "spec": {"containers": [{"name": "c", "image": "busybox", "securityContext": {"privileged": true}}]}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validating_webhook_applies_defaults_and_exemptions() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("admission.yaml");
    std::fs::write(&config, CONFIG).unwrap();
    let flag = config.to_string_lossy().into_owned();
    let data = dir.path().join("data");
    let gw = Gateway::start_in(dir, data, &["--admission-control-config-file", &flag]);
    // kube-apiserver calls without credentials unless configured to.
    let client = gw.client_with_identity(None);
    let url = format!("{}/admission/validate", gw.url);
    let ask = |body: Value| {
        let client = client.clone();
        let url = url.clone();
        async move {
            let r = client.post(&url).json(&body).send().await.unwrap();
            assert_eq!(r.status(), 200);
            r.json::<Value>().await.unwrap()
        }
    };

    let denied = ask(review(
        "admission.k8s.io/v1",
        "apps",
        "jane",
        "Pod",
        privileged_pod(),
    ))
    .await;
    assert_eq!(denied["apiVersion"], "admission.k8s.io/v1");
    let response = &denied["response"];
    assert_eq!(response["uid"], "705ab4f5-6393-11e8-b7cc-42010a800002");
    assert_eq!(response["allowed"], false);
    assert_eq!(response["status"]["code"], 403);
    assert_eq!(
        response["status"]["message"],
        r#"pods "p" is forbidden: violates PodSecurity "baseline:latest": privileged (container "c" must not set securityContext.privileged=true)"#
    );
    assert_eq!(
        response["auditAnnotations"]["enforce-policy"],
        "baseline:latest"
    );

    for (ns, user) in [("kube-system", "jane"), ("apps", "ci-bot")] {
        let ok = ask(review(
            "admission.k8s.io/v1",
            ns,
            user,
            "Pod",
            privileged_pod(),
        ))
        .await;
        assert_eq!(ok["response"]["allowed"], true, "{ns} {user}: {ok}");
    }
    let beta = ask(review(
        "admission.k8s.io/v1beta1",
        "apps",
        "jane",
        "Pod",
        privileged_pod(),
    ))
    .await;
    assert_eq!(beta["apiVersion"], "admission.k8s.io/v1beta1");
    assert_eq!(beta["response"]["allowed"], false);

    // Workloads are warned about, not refused.
    let deploy = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
        "spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {"metadata": {"labels": {"a": "b"}},
        "spec": {"containers": [{"name": "c", "image": "busybox", "securityContext": {"privileged": true}}]}}}});
    let warned = ask(review(
        "admission.k8s.io/v1",
        "apps",
        "jane",
        "Deployment",
        deploy,
    ))
    .await;
    assert_eq!(warned["response"]["allowed"], true);
    let warnings = warned["response"]["warnings"].as_array().unwrap();
    assert!(
        warnings.iter().any(|w| w
            .as_str()
            .unwrap()
            .starts_with(r#"would violate PodSecurity "baseline:latest""#)),
        "{warned}"
    );

    // Malformed reviews.
    for bad in [
        json!({"kind": "AdmissionReview"}),
        json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}),
        json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {"uid": ""}}),
    ] {
        let r = client.post(&url).json(&bad).send().await.unwrap();
        assert_eq!(r.status(), 400, "{bad}");
    }

    // The gateway applies the same defaults to unlabelled namespaces.
    gw.kubectl_ok(&["create", "namespace", "apps"]);
    let pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: apps}\nspec:\n  containers:\n  - {name: c, image: busybox, securityContext: {privileged: true}}\n";
    let out = gw.kubectl_with_stdin(&["apply", "-f", "-"], Some(pod));
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(r#"violates PodSecurity "baseline:latest""#)
    );

    // The configuration is reloaded when the file changes; a bad one is refused and the previous
    // one stays in force.
    let privileged_in_apps = || {
        ask(review(
            "admission.k8s.io/v1",
            "apps",
            "jane",
            "Pod",
            privileged_pod(),
        ))
    };
    std::fs::write(&config, "kind: AdmissionConfiguration\nplugins: [{name: PodSecurity, configuration: {kind: Nonsense}}]\n").unwrap();
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    assert_eq!(privileged_in_apps().await["response"]["allowed"], false);
    std::fs::write(
        &config,
        CONFIG.replace("[kube-system]", "[kube-system, apps]"),
    )
    .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        if privileged_in_apps().await["response"]["allowed"] == true {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the new exemption was never loaded"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutation_makes_a_plain_pod_restricted_where_it_is_safe() {
    let gw = Gateway::start();
    // The mutating webhook answers with a JSON patch.
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                     "spec": {"securityContext": {"runAsUser": 1000}, "containers": [{"name": "c", "image": "busybox"}]}});
    let r = gw
        .client_with_identity(None)
        .post(format!("{}/admission/mutate", gw.url))
        .json(&review(
            "admission.k8s.io/v1",
            "apps",
            "jane",
            "Pod",
            pod.clone(),
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["response"]["allowed"], true);
    assert_eq!(body["response"]["patchType"], "JSONPatch");
    use base64::Engine;
    let patch: Value = serde_json::from_slice(
        &base64::engine::general_purpose::STANDARD
            .decode(body["response"]["patch"].as_str().unwrap())
            .unwrap(),
    )
    .unwrap();
    let paths: Vec<&str> = patch
        .as_array()
        .unwrap()
        .iter()
        .map(|op| op["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        paths,
        [
            "/spec/containers/0/securityContext",
            "/spec/securityContext/runAsNonRoot",
            "/spec/securityContext/seccompProfile"
        ]
    );

    // At the gateway, an opted-in restricted namespace admits the plain pod, with the defaults.
    gw.kubectl_ok(&["create", "namespace", "team"]);
    gw.kubectl_ok(&[
        "label",
        "namespace",
        "team",
        "pod-security.kubernetes.io/enforce=restricted",
        "portcullis.dev/pod-security-defaults=restricted",
    ]);
    let manifest = "apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: team}\nspec:\n  securityContext: {runAsUser: 1000}\n  containers:\n  - {name: c, image: busybox}\n";
    let out = gw.kubectl_with_stdin(&["apply", "-f", "-"], Some(manifest));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stored = gw.kubectl_ok(&["get", "pod", "p", "-n", "team", "-o", "jsonpath={.spec.containers[0].securityContext.allowPrivilegeEscalation} {.spec.securityContext.seccompProfile.type} {.spec.securityContext.runAsNonRoot}"]);
    assert_eq!(stored, "false RuntimeDefault true");
    // An explicit privileged container is not rescued.
    let privileged = manifest.replace("name: p,", "name: q,").replace(
        "{name: c, image: busybox}",
        "{name: c, image: busybox, securityContext: {privileged: true}}",
    );
    let out = gw.kubectl_with_stdin(&["apply", "-f", "-"], Some(&privileged));
    assert!(!out.status.success());
}

#[test]
fn webhook_config_admission_prints_both_configurations_with_the_ca() {
    let gw = Gateway::start();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args([
            "webhook-config",
            "admission",
            "--server",
            "https://gw.example:6443",
            "--data-dir",
        ])
        .arg(&gw.data)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let docs: Vec<Value> =
        serde_saphyr::from_str_multiple(&String::from_utf8(out.stdout).unwrap()).unwrap();
    assert_eq!(docs.len(), 2);
    assert_eq!(docs[0]["kind"], "ValidatingWebhookConfiguration");
    assert_eq!(docs[1]["kind"], "MutatingWebhookConfiguration");
    use base64::Engine;
    let ca = std::fs::read(gw.data.join("ca.crt")).unwrap();
    for (doc, path) in docs
        .iter()
        .zip(["/admission/validate", "/admission/mutate"])
    {
        let hook = &doc["webhooks"][0];
        assert_eq!(
            hook["clientConfig"]["url"],
            format!("https://gw.example:6443{path}")
        );
        assert_eq!(
            base64::engine::general_purpose::STANDARD
                .decode(hook["clientConfig"]["caBundle"].as_str().unwrap())
                .unwrap(),
            ca
        );
        assert_eq!(hook["sideEffects"], "None");
        assert!(
            hook["rules"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r["resources"].as_array().unwrap().contains(&json!("pods")))
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_policy_refuses_pods_and_workloads_and_reloads() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("images.yaml");
    let write = |allowed: &str| {
        std::fs::write(
            &policy,
            format!("apiVersion: portcullis.dev/v1\nkind: ImagePolicy\nrules:\n- name: prod\n  namespaceSelector:\n    matchLabels: {{env: prod}}\n  allowedRegistries: [\"{allowed}\"]\n  disallowLatestTag: true\n"),
        )
        .unwrap();
    };
    write("registry.example.com");
    let flag = policy.to_string_lossy().into_owned();
    let data = dir.path().join("data");
    let gw = Gateway::start_in(dir, data, &["--image-policy-file", &flag]);
    gw.kubectl_ok(&["create", "namespace", "shop"]);
    gw.kubectl_ok(&["label", "namespace", "shop", "env=prod"]);
    let pod = |name: &str, image: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: shop}}\nspec:\n  containers:\n  - {{name: app, image: \"{image}\"}}\n"
        )
    };
    let out = gw.kubectl_with_stdin(&["apply", "-f", "-"], Some(&pod("a", "nginx:1.27")));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        err.contains(r#"pods "a" is forbidden: violates ImagePolicy"#)
            && err.contains(r#"container "app""#)
            && err.contains(r#"(rule "prod")"#),
        "{err}"
    );
    // The allow-list is not fooled by a look-alike host.
    let out = gw.kubectl_with_stdin(
        &["apply", "-f", "-"],
        Some(&pod("b", "registry.example.com.evil.io/app:1")),
    );
    assert!(!out.status.success());
    let out = gw.kubectl_with_stdin(
        &["apply", "-f", "-"],
        Some(&pod("c", "registry.example.com/app:1")),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Workload templates are refused too.
    let deploy = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d, namespace: shop}\nspec:\n  selector: {matchLabels: {a: b}}\n  template:\n    metadata: {labels: {a: b}}\n    spec:\n      containers:\n      - {name: app, image: \"registry.example.com/app:latest\"}\n";
    let out = gw.kubectl_with_stdin(&["apply", "-f", "-"], Some(deploy));
    assert!(
        !out.status.success() && String::from_utf8_lossy(&out.stderr).contains(":latest"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Reload: allow docker.io images from now on.
    write("docker.io/library/");
    let mut allowed = false;
    for _ in 0..40 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        if gw
            .kubectl_with_stdin(&["apply", "-f", "-"], Some(&pod("a", "nginx:1.27")))
            .status
            .success()
        {
            allowed = true;
            break;
        }
    }
    assert!(allowed, "the new image policy was not picked up");
}

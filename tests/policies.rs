//! Rego admission policies at the gateway: conftest packages and Gatekeeper templates from
//! `--admission-policy-dir`, recompiled when they change; a broken policy keeps the old set.

mod common;

use common::Gateway;

const CONFTEST: &str = r#"package main

deny contains msg if {
	input.request.kind.kind == "Pod"
	not input.request.object.metadata.labels.team
	msg := "pod must have a team label"
}

warn contains msg if {
	input.request.kind.kind == "Pod"
	some c in input.request.object.spec.containers
	not c.resources.limits
	msg := sprintf("container %q has no resource limits", [c.name])
}
"#;

const GATEKEEPER: &str = r#"apiVersion: templates.gatekeeper.sh/v1
kind: ConstraintTemplate
metadata: {name: k8srequiredlabels}
spec:
  crd:
    spec:
      names: {kind: K8sRequiredLabels}
  targets:
  - target: admission.k8s.gatekeeper.sh
    rego: |
      package k8srequiredlabels
      violation[{"msg": msg}] {
        provided := {l | input.review.object.metadata.labels[l]}
        required := {l | l := input.parameters.labels[_]}
        missing := required - provided
        count(missing) > 0
        msg := sprintf("missing required labels: %v", [missing])
      }
---
apiVersion: constraints.gatekeeper.sh/v1beta1
kind: K8sRequiredLabels
metadata: {name: deployments-need-owner}
spec:
  match:
    kinds: [{apiGroups: ["apps"], kinds: ["Deployment"]}]
  parameters: {labels: ["owner"]}
"#;

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn rego_and_gatekeeper_policies_decide_and_reload() {
    let dir = tempfile::tempdir().unwrap();
    let policies = dir.path().join("policies");
    std::fs::create_dir(&policies).unwrap();
    std::fs::write(policies.join("pods.rego"), CONFTEST).unwrap();
    std::fs::write(policies.join("labels.yaml"), GATEKEEPER).unwrap();
    let flag = policies.to_string_lossy().into_owned();
    let data = dir.path().join("data");
    let gw = Gateway::start_in(dir, data, &["--admission-policy-dir", &flag]);

    let pod = |labels: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: p, namespace: default, labels: {{{labels}}}}}\nspec:\n  containers:\n  - {{name: app, image: nginx}}\n"
        )
    };
    let out = gw.kubectl_with_stdin(&["apply", "-f", "-"], Some(&pod("")));
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(r#"pods "p" is forbidden: [main] pod must have a team label"#),
        "{}",
        stderr(&out)
    );
    let out = gw.kubectl_with_stdin(&["apply", "-f", "-"], Some(&pod("team: a")));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(r#"Warning: [main] container "app" has no resource limits"#),
        "{}",
        stderr(&out)
    );

    let deploy = |labels: &str| {
        format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: d, namespace: default, labels: {{{labels}}}}}\nspec:\n  selector: {{matchLabels: {{a: b}}}}\n  template:\n    metadata: {{labels: {{a: b}}}}\n    spec:\n      containers:\n      - {{name: app, image: nginx}}\n"
        )
    };
    let out = gw.kubectl_with_stdin(&["apply", "-f", "-"], Some(&deploy("")));
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("deployments-need-owner")
            && stderr(&out).contains("missing required labels"),
        "{}",
        stderr(&out)
    );
    let out = gw.kubectl_with_stdin(&["apply", "-f", "-"], Some(&deploy("owner: me")));
    assert!(out.status.success(), "{}", stderr(&out));

    // A policy that does not compile: the previous set stays in force.
    std::fs::write(
        policies.join("broken.rego"),
        "package broken\n\ndeny contains msg if {\n",
    )
    .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(2500));
    let out = gw.kubectl_with_stdin(
        &["apply", "-f", "-"],
        Some(&pod("").replace("name: p,", "name: q,")),
    );
    assert!(
        !out.status.success() && stderr(&out).contains("pod must have a team label"),
        "{}",
        stderr(&out)
    );
    // Removing the pod rule (and the broken file) takes effect.
    std::fs::remove_file(policies.join("broken.rego")).unwrap();
    std::fs::remove_file(policies.join("pods.rego")).unwrap();
    let mut allowed = false;
    for _ in 0..40 {
        std::thread::sleep(std::time::Duration::from_millis(100));
        if gw
            .kubectl_with_stdin(
                &["apply", "-f", "-"],
                Some(&pod("").replace("name: p,", "name: r,")),
            )
            .status
            .success()
        {
            allowed = true;
            break;
        }
    }
    assert!(allowed, "the removed policy still applies");
}

use std::time::Duration;

use serde_json::{Value, json};

use super::*;

const REQUIRED_LABELS: &str = include_str!("../../tests/rego/requiredlabels.yaml");
const ALLOWED_REPOS: &str = include_str!("../../tests/rego/allowedrepos.yaml");
const PRIVILEGED: &str = include_str!("../../tests/rego/privileged.yaml");

// === helpers ===

fn rego(path: &str, text: &str) -> PolicySource {
    PolicySource::Rego(RegoFile::new(path, text))
}

fn compile(sources: Vec<PolicySource>) -> PolicySet {
    PolicySet::compile(&sources).unwrap()
}

fn compile_error(sources: Vec<PolicySource>) -> String {
    PolicySet::compile(&sources).unwrap_err().to_string()
}

/// A template from a YAML fixture, with constraints of its kind.
fn gatekeeper(template_yaml: &str, constraints: Vec<Value>) -> PolicySource {
    let template: Value = serde_saphyr::from_str(template_yaml).unwrap();
    PolicySource::Gatekeeper(GatekeeperPolicy {
        template: Document::new("template.yaml", template),
        constraints: constraints
            .into_iter()
            .enumerate()
            .map(|(index, value)| Document::new(format!("constraints.yaml#{index}"), value))
            .collect(),
    })
}

fn constraint(kind: &str, name: &str, spec: Value) -> Value {
    json!({
        "apiVersion": "constraints.gatekeeper.sh/v1beta1",
        "kind": kind,
        "metadata": {"name": name},
        "spec": spec,
    })
}

/// A CREATE request for `object` of `kind` (core group) in `namespace`.
fn request(kind: &str, namespace: &str, object: Value) -> Value {
    json!({
        "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
        "kind": {"group": "", "version": "v1", "kind": kind},
        "resource": {"group": "", "version": "v1", "resource": format!("{}s", kind.to_lowercase())},
        "namespace": namespace,
        "name": object["metadata"]["name"],
        "operation": "CREATE",
        "userInfo": {"username": "alice", "groups": ["system:authenticated"]},
        "object": object,
        "oldObject": null,
    })
}

fn pod(name: &str, labels: Value, containers: Value) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels},
        "spec": {"containers": containers},
    })
}

fn nginx_pod(labels: Value) -> Value {
    pod(
        "web",
        labels,
        json!([{"name": "app", "image": "nginx:1.27"}]),
    )
}

fn messages(findings: &[Finding]) -> Vec<String> {
    findings.iter().map(ToString::to_string).collect()
}

fn denials(set: &PolicySet, request: &Value, namespace_labels: &Value) -> Vec<String> {
    messages(&set.evaluate(request, namespace_labels).unwrap().denials)
}

/// A required-labels constraint named `must-have-owner` with the given `match`.
fn owner_label_set(matcher: Value) -> PolicySet {
    compile(vec![gatekeeper(
        REQUIRED_LABELS,
        vec![constraint(
            "PortcullisRequiredLabels",
            "must-have-owner",
            json!({"match": matcher, "parameters": {"labels": ["owner"]}}),
        )],
    )])
}

/// Whether the `must-have-owner` constraint with `matcher` denies an unlabelled `kind` in
/// `namespace` whose namespace has `namespace_labels`.
fn owner_label_applies(
    matcher: Value,
    kind: &str,
    namespace: &str,
    namespace_labels: Value,
) -> bool {
    let set = owner_label_set(matcher);
    let object = json!({"metadata": {"name": "thing"}});
    !denials(&set, &request(kind, namespace, object), &namespace_labels).is_empty()
}

const NO_DEFAULT_NAMESPACE: &str = r#"
package main

deny contains msg if {
    input.request.namespace == "default"
    msg := sprintf("%s %s must not live in the default namespace", [input.request.kind.kind, input.request.name])
}

warn contains msg if {
    not input.request.object.metadata.labels.team
    msg := "objects should carry a team label"
}
"#;

// === conftest style ===

#[test]
fn conftest_deny_strings_deny_and_warn_strings_warn() {
    let set = compile(vec![rego("policies/namespace.rego", NO_DEFAULT_NAMESPACE)]);
    let verdict = set
        .evaluate(
            &request("Pod", "default", nginx_pod(json!({}))),
            &Value::Null,
        )
        .unwrap();
    assert_eq!(
        messages(&verdict.denials),
        ["[main] Pod web must not live in the default namespace"]
    );
    assert_eq!(
        messages(&verdict.warnings),
        ["[main] objects should carry a team label"]
    );
    assert!(!verdict.is_allowed());

    let labelled = request("Pod", "apps", nginx_pod(json!({"team": "web"})));
    let verdict = set.evaluate(&labelled, &Value::Null).unwrap();
    assert!(verdict.is_allowed() && verdict.warnings.is_empty());
}

#[test]
fn conftest_object_messages_are_read_from_msg() {
    let policy = r#"
        package kubernetes.pods

        violation contains {"msg": msg, "details": {"image": c.image}} if {
            some c in input.request.object.spec.containers
            endswith(c.image, ":latest")
            msg := sprintf("container %s uses a latest tag", [c.name])
        }

        warn contains {"msg": "pods should set resource limits"} if {
            some c in input.request.object.spec.containers
            not c.resources.limits
        }
    "#;
    let set = compile(vec![rego("pods.rego", policy)]);
    let object = pod(
        "web",
        json!({}),
        json!([{"name": "app", "image": "nginx:latest"}]),
    );
    let verdict = set
        .evaluate(&request("Pod", "apps", object), &Value::Null)
        .unwrap();
    assert_eq!(
        messages(&verdict.denials),
        ["[kubernetes.pods] container app uses a latest tag"]
    );
    assert_eq!(
        messages(&verdict.warnings),
        ["[kubernetes.pods] pods should set resource limits"]
    );
}

#[test]
fn conftest_v0_files_and_shared_packages_compile_together() {
    let v0 = PolicySource::Rego(RegoFile {
        path: "legacy.rego".to_owned(),
        text: "package main\n\ndeny[msg] {\n  input.request.operation == \"DELETE\"\n  msg := \"no deletes\"\n}\n".to_owned(),
        version: RegoVersion::V0,
    });
    let set = compile(vec![rego("namespace.rego", NO_DEFAULT_NAMESPACE), v0]);
    assert_eq!(set.policies(), ["main"]);
    let mut delete = request("Pod", "default", nginx_pod(json!({"team": "a"})));
    delete["operation"] = json!("DELETE");
    assert_eq!(
        denials(&set, &delete, &Value::Null),
        [
            "[main] Pod web must not live in the default namespace",
            "[main] no deletes"
        ]
    );
}

#[test]
fn a_compile_error_names_the_file_and_line() {
    let broken = "package main\n\ndeny contains msg if {\n    msg := \n}\n";
    let error = compile_error(vec![rego("policies/broken.rego", broken)]);
    assert!(
        error.starts_with("rego policy `policies/broken.rego` does not compile: "),
        "{error}"
    );
    assert!(error.contains("policies/broken.rego:4:"), "{error}");
    assert!(!error.contains('\n'), "{error}");
}

#[test]
fn a_call_to_an_unknown_function_fails_at_compile_time() {
    let policy = "package main\n\ndeny contains msg if {\n    msg := no.such_function(1)\n}\n";
    let error = compile_error(vec![rego("unknown.rego", policy)]);
    assert!(error.contains("unknown.rego:4:"), "{error}");
    assert!(error.contains("no.such_function"), "{error}");
}

#[test]
fn a_broken_template_names_the_template_field_and_line() {
    let broken = REQUIRED_LABELS.replace("count(missing) > 0", "count(missing) >");
    let error = compile_error(vec![gatekeeper(&broken, vec![])]);
    assert!(
        error.contains("template.yaml#spec.targets[0].rego:"),
        "{error}"
    );
}

// === Gatekeeper style ===

#[test]
fn required_labels_constraint_denies_what_its_parameters_require() {
    let set = owner_label_set(json!({"kinds": [{"apiGroups": [""], "kinds": ["Pod"]}]}));
    let unlabelled = request("Pod", "apps", nginx_pod(json!({"app": "web"})));
    assert_eq!(
        denials(&set, &unlabelled, &Value::Null),
        [r#"[must-have-owner] Pod web lacks the labels ["owner"]"#]
    );
    let labelled = request("Pod", "apps", nginx_pod(json!({"owner": "alice"})));
    assert!(denials(&set, &labelled, &Value::Null).is_empty());
}

#[test]
fn allowed_repos_constraint_reads_its_parameters_and_libs() {
    let set = compile(vec![gatekeeper(
        ALLOWED_REPOS,
        vec![constraint(
            "PortcullisAllowedRepos",
            "internal-registry",
            json!({"parameters": {"repos": ["registry.example.com/"]}}),
        )],
    )]);
    let object = json!({
        "metadata": {"name": "web"},
        "spec": {
            "initContainers": [{"name": "init", "image": "busybox"}],
            "containers": [{"name": "app", "image": "registry.example.com/web:1"}],
        },
    });
    assert_eq!(
        denials(&set, &request("Pod", "apps", object), &Value::Null),
        [
            r#"[internal-registry] container init uses image busybox, which is not under ["registry.example.com/"]"#
        ]
    );
}

#[test]
fn privileged_container_is_denied() {
    let set = compile(vec![gatekeeper(
        PRIVILEGED,
        vec![constraint(
            "PortcullisPrivileged",
            "no-privileged",
            json!({}),
        )],
    )]);
    let containers = json!([
        {"name": "app", "image": "nginx"},
        {"name": "debug", "image": "busybox", "securityContext": {"privileged": true}},
    ]);
    let object = pod("web", json!({}), containers);
    assert_eq!(
        denials(&set, &request("Pod", "apps", object), &Value::Null),
        ["[no-privileged] container debug must not run privileged"]
    );
}

#[test]
fn constraint_applies_only_to_the_kinds_it_lists() {
    let matcher = json!({"kinds": [{"apiGroups": [""], "kinds": ["Pod", "Service"]}]});
    assert!(owner_label_applies(
        matcher.clone(),
        "Pod",
        "apps",
        Value::Null
    ));
    assert!(owner_label_applies(
        matcher.clone(),
        "Service",
        "apps",
        Value::Null
    ));
    assert!(!owner_label_applies(
        matcher,
        "ConfigMap",
        "apps",
        Value::Null
    ));
    let any_group = json!({"kinds": [{"apiGroups": ["*"], "kinds": ["ConfigMap"]}]});
    assert!(owner_label_applies(
        any_group,
        "ConfigMap",
        "apps",
        Value::Null
    ));
    let other_group = json!({"kinds": [{"apiGroups": ["apps"], "kinds": ["Pod"]}]});
    assert!(!owner_label_applies(
        other_group,
        "Pod",
        "apps",
        Value::Null
    ));
}

#[test]
fn constraint_applies_only_in_the_namespaces_it_lists_with_globs() {
    let matcher = json!({"namespaces": ["prod", "team-*"]});
    assert!(owner_label_applies(
        matcher.clone(),
        "Pod",
        "prod",
        Value::Null
    ));
    assert!(owner_label_applies(
        matcher.clone(),
        "Pod",
        "team-a",
        Value::Null
    ));
    assert!(!owner_label_applies(
        matcher.clone(),
        "Pod",
        "dev",
        Value::Null
    ));
    // A cluster-scoped object that is not a Namespace is never disqualified by namespaces.
    assert!(owner_label_applies(
        matcher,
        "PersistentVolume",
        "",
        Value::Null
    ));
}

#[test]
fn constraint_skips_excluded_namespaces() {
    let matcher = json!({"excludedNamespaces": ["kube-*", "*-system"]});
    assert!(!owner_label_applies(
        matcher.clone(),
        "Pod",
        "kube-public",
        Value::Null
    ));
    assert!(!owner_label_applies(
        matcher.clone(),
        "Pod",
        "gatekeeper-system",
        Value::Null
    ));
    assert!(owner_label_applies(
        matcher.clone(),
        "Pod",
        "apps",
        Value::Null
    ));
    // For a Namespace, its own name is the namespace.
    let set = owner_label_set(matcher);
    let namespace = |name: &str| request("Namespace", "", json!({"metadata": {"name": name}}));
    assert!(denials(&set, &namespace("kube-system"), &Value::Null).is_empty());
    assert_eq!(denials(&set, &namespace("apps"), &Value::Null).len(), 1);
}

#[test]
fn label_selector_reads_the_object_labels() {
    let set = owner_label_set(json!({
        "labelSelector": {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["frontend"]}]},
    }));
    let frontend = request("Pod", "apps", nginx_pod(json!({"tier": "frontend"})));
    let backend = request("Pod", "apps", nginx_pod(json!({"tier": "backend"})));
    assert_eq!(denials(&set, &frontend, &Value::Null).len(), 1);
    assert!(denials(&set, &backend, &Value::Null).is_empty());
}

#[test]
fn namespace_selector_reads_the_namespace_labels() {
    let matcher = json!({"namespaceSelector": {"matchLabels": {"env": "prod"}}});
    assert!(owner_label_applies(
        matcher.clone(),
        "Pod",
        "a",
        json!({"env": "prod"})
    ));
    assert!(!owner_label_applies(
        matcher.clone(),
        "Pod",
        "a",
        json!({"env": "dev"})
    ));
    assert!(!owner_label_applies(
        matcher.clone(),
        "Pod",
        "a",
        Value::Null
    ));
    // Cluster-scoped objects other than Namespaces always match.
    assert!(owner_label_applies(
        matcher.clone(),
        "PersistentVolume",
        "",
        Value::Null
    ));

    // A Namespace is selected by its own labels.
    let set = owner_label_set(matcher);
    let namespace = |labels: Value| {
        request(
            "Namespace",
            "",
            json!({"metadata": {"name": "a", "labels": labels}}),
        )
    };
    assert_eq!(
        denials(&set, &namespace(json!({"env": "prod"})), &Value::Null).len(),
        1
    );
    assert!(
        denials(
            &set,
            &namespace(json!({"env": "dev"})),
            &json!({"env": "prod"})
        )
        .is_empty()
    );
}

#[test]
fn warn_action_warns_and_dryrun_action_only_records() {
    let constraints = ["deny", "warn", "dryrun"]
        .iter()
        .map(|action| {
            constraint(
                "PortcullisRequiredLabels",
                &format!("owner-{action}"),
                json!({"enforcementAction": action, "parameters": {"labels": ["owner"]}}),
            )
        })
        .collect();
    let set = compile(vec![gatekeeper(REQUIRED_LABELS, constraints)]);
    let verdict = set
        .evaluate(&request("Pod", "apps", nginx_pod(json!({}))), &Value::Null)
        .unwrap();
    let policies = |findings: &[Finding]| -> Vec<String> {
        findings.iter().map(|f| f.policy.clone()).collect()
    };
    assert_eq!(policies(&verdict.denials), ["owner-deny"]);
    assert_eq!(policies(&verdict.warnings), ["owner-warn"]);
    assert_eq!(policies(&verdict.dry_runs), ["owner-dryrun"]);
}

#[test]
fn malformed_constraints_fail_the_whole_compile() {
    let wrong_kind = constraint("K8sSomethingElse", "x", json!({}));
    let error = compile_error(vec![gatekeeper(REQUIRED_LABELS, vec![wrong_kind])]);
    assert_eq!(
        error,
        "`constraints.yaml#0`: kind `K8sSomethingElse` is not `PortcullisRequiredLabels`"
    );
    let bad_action = constraint(
        "PortcullisRequiredLabels",
        "x",
        json!({"enforcementAction": "scoped"}),
    );
    let error = compile_error(vec![gatekeeper(REQUIRED_LABELS, vec![bad_action])]);
    assert_eq!(
        error,
        "`constraints.yaml#0`: spec.enforcementAction must be one of `deny`, `warn`, `dryrun`"
    );
    let bad_selector = constraint(
        "PortcullisRequiredLabels",
        "x",
        json!({"match": {"labelSelector": {"matchExpressions": [{"key": "a", "operator": "In"}]}}}),
    );
    let error = compile_error(vec![gatekeeper(REQUIRED_LABELS, vec![bad_selector])]);
    assert!(
        error.contains("spec.match.labelSelector.matchExpressions[0].values"),
        "{error}"
    );
}

// === failing closed ===

#[test]
fn a_policy_that_runs_too_long_is_stopped_and_named() {
    let policy = r#"
        package slow

        deny contains msg if {
            n := input.request.object.spec.n
            xs := numbers.range(1, n)
            hits := [a | some a in xs; some b in xs; some c in xs; a + b + c == -1]
            msg := sprintf("%d", [count(hits)])
        }
    "#;
    let set = compile(vec![rego("slow.rego", policy)]).with_time_limit(Duration::from_millis(20));
    let object = json!({"metadata": {"name": "x"}, "spec": {"n": 5000}});
    let error = set
        .evaluate(&request("Pod", "apps", object), &Value::Null)
        .unwrap_err();
    assert_eq!(
        error,
        RegoError::TimeLimit {
            policy: "slow".to_owned(),
            limit: Duration::from_millis(20)
        }
    );
}

#[test]
fn a_policy_that_errors_fails_the_evaluation_naming_it() {
    let policy = r#"
        package quotas

        deny contains msg if {
            per_replica := 100 / input.request.object.spec.replicas
            per_replica < 10
            msg := "too many replicas"
        }

        warn := input.request.object.spec.replicas
    "#;
    let set = compile(vec![rego("quotas.rego", policy)]);
    let zero = request(
        "Pod",
        "apps",
        json!({"metadata": {"name": "x"}, "spec": {"replicas": 0}}),
    );
    let error = set.evaluate(&zero, &Value::Null).unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("policy `quotas` failed: quotas.rego:5:"),
        "{error}"
    );

    let five = request(
        "Pod",
        "apps",
        json!({"metadata": {"name": "x"}, "spec": {"replicas": 5}}),
    );
    let error = set.evaluate(&five, &Value::Null).unwrap_err();
    assert_eq!(
        error.to_string(),
        "policy `quotas` rule `warn` returned a number, not a set of strings or of objects with a `msg` string, or a boolean"
    );
}

#[test]
fn deeply_nested_input_is_refused_without_panicking() {
    let set = compile(vec![rego("namespace.rego", NO_DEFAULT_NAMESPACE)]);
    let mut nested = json!("bottom");
    for _ in 0..300 {
        nested = json!({"a": [nested]});
    }
    let object = json!({"metadata": {"name": "x", "annotations": {"deep": nested}}});
    let error = set
        .evaluate(&request("Pod", "apps", object), &Value::Null)
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "admission request cannot be evaluated: it nests deeper than 256 levels"
    );
}

#[test]
fn nested_input_within_the_bound_can_be_walked() {
    let policy = r#"
        package walker

        deny contains msg if {
            depth := max([count(path) | walk(input.request.object, [path, _])])
            depth > 100
            msg := sprintf("object nests %d levels deep", [depth])
        }
    "#;
    let set = compile(vec![rego("walker.rego", policy)]);
    let mut nested = json!(1);
    for _ in 0..250 {
        nested = json!({"n": nested});
    }
    let verdict = set
        .evaluate(&request("Pod", "apps", nested), &Value::Null)
        .unwrap();
    assert_eq!(
        messages(&verdict.denials),
        ["[walker] object nests 250 levels deep"]
    );
}

#[test]
fn one_compiled_set_judges_a_thousand_requests() {
    let set = compile(vec![
        rego("namespace.rego", NO_DEFAULT_NAMESPACE),
        gatekeeper(
            REQUIRED_LABELS,
            vec![constraint(
                "PortcullisRequiredLabels",
                "must-have-owner",
                json!({"parameters": {"labels": ["owner"]}}),
            )],
        ),
    ]);
    for i in 0..1_000 {
        let labels = if i % 2 == 0 {
            json!({"owner": "a", "team": "b"})
        } else {
            json!({})
        };
        let namespace = if i % 3 == 0 { "default" } else { "apps" };
        let verdict = set
            .evaluate(&request("Pod", namespace, nginx_pod(labels)), &Value::Null)
            .unwrap();
        let expected = usize::from(i % 2 == 1) + usize::from(i % 3 == 0);
        assert_eq!(verdict.denials.len(), expected, "request {i}");
        assert_eq!(
            verdict.warnings.len(),
            usize::from(i % 2 == 1),
            "request {i}"
        );
    }
}

#[test]
fn a_policy_set_can_be_shared_between_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<PolicySet>();
}

#[test]
fn an_empty_set_allows_everything() {
    let set = compile(vec![]);
    let verdict = set.evaluate(&request("Pod", "apps", nginx_pod(json!({}))), &Value::Null);
    assert_eq!(verdict.unwrap(), Verdict::default());
}

#[test]
fn referential_templates_read_the_inventory() {
    const UNIQUE_HOST: &str = include_str!("../../tests/rego/uniquehost.yaml");
    let ingress = |ns: &str, name: &str, host: &str| {
        json!({
            "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"rules": [{"host": host}]},
        })
    };
    let set = compile(vec![gatekeeper(
        UNIQUE_HOST,
        vec![constraint("PcUniqueIngressHost", "unique-host", json!({}))],
    )]);
    let new = request("Ingress", "web", ingress("web", "shop", "shop.example.com"));
    // Nothing replicated yet: nothing to collide with.
    assert!(denials(&set, &new, &Value::Null).is_empty());

    let inventory = json!({"namespace": {"other": {"networking.k8s.io/v1": {"Ingress": {
        "old-shop": ingress("other", "old-shop", "shop.example.com"),
        "blog": ingress("other", "blog", "blog.example.com"),
    }}}}});
    let set = set.with_inventory(&inventory).unwrap();
    assert_eq!(
        denials(&set, &new, &Value::Null),
        ["[unique-host] host shop.example.com is already used by ingress other/old-shop"]
    );
    // The object itself, already in the inventory (an update), does not collide with itself.
    let own = json!({"namespace": {"web": {"networking.k8s.io/v1": {"Ingress": {
        "shop": ingress("web", "shop", "shop.example.com"),
    }}}}});
    let set = set.with_inventory(&own).unwrap();
    assert!(denials(&set, &new, &Value::Null).is_empty());
}

// === one evaluation for every conftest rule ===

/// A lib read by two packages: the shape that makes conftest evaluate with the gathering rule.
const SHARED_LIB: &str = r#"
    package shared.lib

    replicas := input.request.object.spec.replicas
"#;

fn shared_lib_set(quotas: &str) -> PolicySet {
    let names = r#"
        package names

        import data.shared.lib

        warn contains msg if {
            lib.replicas > 3
            msg := sprintf("%s has %d replicas", [input.request.object.metadata.name, lib.replicas])
        }
    "#;
    let set = compile(vec![
        rego("lib.rego", SHARED_LIB),
        rego("names.rego", names),
        rego("quotas.rego", quotas),
    ]);
    assert!(set.conftest.as_ref().unwrap().gathers());
    set
}

fn replicas(n: i64) -> Value {
    request(
        "Pod",
        "apps",
        json!({"metadata": {"name": "x"}, "spec": {"replicas": n}}),
    )
}

#[test]
fn an_error_in_one_package_of_the_gathered_evaluation_names_that_package() {
    let set = shared_lib_set(
        r#"
        package quotas

        import data.shared.lib

        deny contains msg if {
            100 / lib.replicas < 10
            msg := "too many replicas"
        }
        "#,
    );
    let error = set.evaluate(&replicas(0), &Value::Null).unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("policy `quotas` failed: quotas.rego:7:"),
        "{error}"
    );
    let verdict = set.evaluate(&replicas(20), &Value::Null).unwrap();
    assert_eq!(messages(&verdict.denials), ["[quotas] too many replicas"]);
    assert_eq!(messages(&verdict.warnings), ["[names] x has 20 replicas"]);
}

#[test]
fn a_package_past_the_time_limit_in_the_gathered_evaluation_is_named() {
    let set = shared_lib_set(
        r#"
        package quotas

        import data.shared.lib

        deny contains msg if {
            xs := numbers.range(1, lib.replicas)
            hits := [a | some a in xs; some b in xs; some c in xs; a + b + c == -1]
            msg := sprintf("%d", [count(hits)])
        }
        "#,
    )
    .with_time_limit(Duration::from_millis(20));
    let error = set.evaluate(&replicas(5000), &Value::Null).unwrap_err();
    assert_eq!(
        error,
        RegoError::TimeLimit {
            policy: "quotas".to_owned(),
            limit: Duration::from_millis(20)
        }
    );
}

#[test]
fn a_wrong_result_in_the_gathered_evaluation_names_the_package_and_rule() {
    let set = shared_lib_set(
        r#"
        package quotas

        import data.shared.lib

        warn := lib.replicas
        "#,
    );
    let error = set.evaluate(&replicas(5), &Value::Null).unwrap_err();
    assert_eq!(
        error.to_string(),
        "policy `quotas` rule `warn` returned a number, not a set of strings or of objects with a `msg` string, or a boolean"
    );
    // Undefined (the rule's body does not hold) is no message, as rule by rule.
    let set = shared_lib_set(
        r#"
        package quotas

        import data.shared.lib

        deny := true if lib.replicas > 10
        "#,
    );
    let verdict = set.evaluate(&replicas(5), &Value::Null).unwrap();
    assert!(verdict.is_allowed());
    let verdict = set.evaluate(&replicas(50), &Value::Null).unwrap();
    assert_eq!(messages(&verdict.denials), ["[quotas] deny"]);
}

#[test]
fn policies_that_read_data_as_a_whole_are_evaluated_rule_by_rule() {
    let whole = r#"
        package quotas

        import data.shared.lib

        deny contains name if {
            some name, _ in data
            lib.replicas > 100
        }
    "#;
    let set = compile(vec![
        rego("lib.rego", SHARED_LIB),
        rego("quotas.rego", whole),
    ]);
    assert!(!set.conftest.as_ref().unwrap().gathers());
    assert!(set.evaluate(&replicas(500), &Value::Null).is_ok());
    let bracket =
        "package quotas\n\nimport data.shared.lib\n\ndeny contains \"x\" if data[\"shared\"]";
    let set = compile(vec![
        rego("lib.rego", SHARED_LIB),
        rego("quotas.rego", bracket),
    ]);
    assert!(!set.conftest.as_ref().unwrap().gathers());
    // A mention in a comment or a string is no reference.
    let mention = "package quotas\n\nimport data.shared.lib\n\n# reads data\nwarn contains \"data\" if lib.replicas > 1";
    let set = compile(vec![
        rego("lib.rego", SHARED_LIB),
        rego("quotas.rego", mention),
    ]);
    assert!(set.conftest.as_ref().unwrap().gathers());
}

/// Differential: the shipped library, on every object of its test cases and on the benchmark
/// pod, says the same with one gathered evaluation as rule by rule.
#[test]
fn the_gathered_evaluation_agrees_with_rule_by_rule_on_the_policy_library() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../policies");
    let mut sources = Vec::new();
    let mut names: Vec<String> = std::fs::read_dir(root)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.ends_with(".rego"))
        .collect();
    names.sort();
    names.insert(0, "lib/pods.rego".to_owned());
    for name in names {
        let path = format!("{root}/{name}");
        let text = std::fs::read_to_string(&path).unwrap();
        sources.push(PolicySource::Rego(RegoFile::new(path, text)));
    }
    let set = compile(sources);
    let conftest = set.conftest.as_ref().unwrap();
    assert!(conftest.gathers());

    let cases: Vec<Value> = serde_saphyr::from_str(
        &std::fs::read_to_string(format!("{root}/tests/cases.yaml")).unwrap(),
    )
    .unwrap();
    assert!(cases.len() >= 5);
    for case in &cases {
        let object = &case["object"];
        let kind = object["kind"].as_str().unwrap();
        let request = request(kind, "default", object.clone());
        let review = runtime::to_rego(&request).unwrap();
        let mut gathered = Verdict::default();
        conftest.evaluate(&review, &mut gathered).unwrap();
        let mut each = Verdict::default();
        conftest.evaluate_rule_by_rule(&review, &mut each).unwrap();
        assert_eq!(gathered, each, "{}", case["name"]);
    }
}

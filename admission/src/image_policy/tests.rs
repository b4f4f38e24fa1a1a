use serde_json::{Value, json};

use super::*;

/// A policy document with the given rules.
fn policy(rules: Value) -> ImagePolicy {
    ImagePolicy::from_value(&json!({
        "apiVersion": "portcullis.dev/v1",
        "kind": "ImagePolicy",
        "rules": rules,
    }))
    .unwrap()
}

/// The error for a policy document with the given rules.
fn config_error(rules: Value) -> String {
    ImagePolicy::from_value(&json!({
        "apiVersion": "portcullis.dev/v1",
        "kind": "ImagePolicy",
        "rules": rules,
    }))
    .unwrap_err()
    .to_string()
}

/// A one-rule policy named `r` with the given settings.
fn rule(settings: Value) -> ImagePolicy {
    let mut rule = json!({"name": "r"});
    for (key, value) in settings.as_object().unwrap() {
        rule[key] = value.clone();
    }
    policy(json!([rule]))
}

fn pod_with(containers: Value) -> Value {
    json!({"metadata": {"name": "web"}, "spec": {"containers": containers}})
}

/// The messages for a pod with one container `app` running `image`, in a namespace without labels.
fn messages_for_image(policy: &ImagePolicy, image: &str) -> Vec<String> {
    let pod = pod_with(json!([{"name": "app", "image": image}]));
    messages(policy, &Value::Null, "Pod", &pod)
}

fn messages(policy: &ImagePolicy, labels: &Value, kind: &str, object: &Value) -> Vec<String> {
    check(policy, labels, kind, object)
        .into_iter()
        .map(|v| v.message)
        .collect()
}

// === image references ===

/// Input, then the expected domain, path, tag and digest.
type NormalisationRow<'a> = (&'a str, &'a str, &'a str, Option<&'a str>, Option<&'a str>);

#[test]
fn references_normalise_as_docker_does() {
    let sha = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    let digested = format!("nginx@{sha}");
    let tagged_and_digested = format!("ghcr.io/acme/app:v1@{sha}");
    let table: &[NormalisationRow<'_>] = &[
        ("nginx", "docker.io", "library/nginx", None, None),
        (
            "nginx:1.27",
            "docker.io",
            "library/nginx",
            Some("1.27"),
            None,
        ),
        ("library/nginx", "docker.io", "library/nginx", None, None),
        ("user/app", "docker.io", "user/app", None, None),
        ("docker.io/nginx", "docker.io", "library/nginx", None, None),
        (
            "index.docker.io/nginx",
            "docker.io",
            "library/nginx",
            None,
            None,
        ),
        (
            "docker.io/user/app:v2",
            "docker.io",
            "user/app",
            Some("v2"),
            None,
        ),
        ("localhost/app", "localhost", "app", None, None),
        ("localhost:5000/app", "localhost:5000", "app", None, None),
        (
            "localhost:5000/team/app:1",
            "localhost:5000",
            "team/app",
            Some("1"),
            None,
        ),
        (
            "registry.example.com/a/b/c",
            "registry.example.com",
            "a/b/c",
            None,
            None,
        ),
        (
            "REGISTRY.Example.COM/app",
            "registry.example.com",
            "app",
            None,
            None,
        ),
        ("Registry/app", "registry", "app", None, None),
        ("[::1]:5000/app:x", "[::1]:5000", "app", Some("x"), None),
        (
            "10.0.0.1:5000/my_app__x.y-z",
            "10.0.0.1:5000",
            "my_app__x.y-z",
            None,
            None,
        ),
        (&digested, "docker.io", "library/nginx", None, Some(sha)),
        (
            &tagged_and_digested,
            "ghcr.io",
            "acme/app",
            Some("v1"),
            Some(sha),
        ),
    ];
    for (input, domain, path, tag, digest) in table {
        let reference = ImageReference::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
        assert_eq!(
            (
                reference.domain(),
                reference.path(),
                reference.tag(),
                reference.digest()
            ),
            (*domain, *path, *tag, *digest),
            "{input}"
        );
    }
    assert_eq!(
        ImageReference::parse("nginx").unwrap().to_string(),
        "docker.io/library/nginx"
    );
}

#[test]
fn references_docker_refuses_are_refused() {
    use ReferenceError::*;
    let table: &[(&str, ReferenceError)] = &[
        ("", Empty),
        ("nginx latest", ForbiddenCharacter),
        (" nginx", ForbiddenCharacter),
        ("nginx\n", ForbiddenCharacter),
        ("ngi\u{7}nx", ForbiddenCharacter),
        ("Nginx", UppercaseRepository),
        ("docker.io/Library/nginx", UppercaseRepository),
        ("nginx:", InvalidTag),
        ("nginx:-x", InvalidTag),
        ("nginx:a/b", InvalidHost),
        ("nginx@sha256:abc", InvalidDigest),
        ("nginx@md5:0123456789abcdef0123456789abcdef", InvalidDigest),
        (
            "nginx@sha256:0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef",
            InvalidDigest,
        ),
        ("registry.example.com./app", InvalidHost),
        ("-bad.example.com/app", InvalidHost),
        ("host:port/app", InvalidHost),
        ("a//b", InvalidRepository),
        ("app/", InvalidRepository),
        (":latest", InvalidRepository),
        ("a..b", InvalidRepository),
        ("a___b", InvalidRepository),
        ("ɡcr.io/app", InvalidHost),
        (
            "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            ImageId,
        ),
    ];
    for (input, expected) in table {
        assert_eq!(ImageReference::parse(input), Err(*expected), "{input:?}");
    }
    let long_name = format!("registry.example.com/{}", "a".repeat(240));
    assert_eq!(ImageReference::parse(&long_name), Err(NameTooLong));
    assert_eq!(ImageReference::parse(&"a".repeat(5000)), Err(TooLong));
}

// === registries ===

#[test]
fn allowed_registries_accept_hosts_and_path_prefixes() {
    let policy = rule(json!({"allowedRegistries": ["registry.example.com", "ghcr.io/acme/"]}));
    for image in [
        "registry.example.com/app:1",
        "registry.example.com/team/app:1",
        "REGISTRY.EXAMPLE.COM/app:1",
        "ghcr.io/acme/app:1",
        "GHCR.io/acme/team/app:1",
    ] {
        assert_eq!(
            messages_for_image(&policy, image),
            Vec::<String>::new(),
            "{image}"
        );
    }
}

#[test]
fn allowed_registries_are_not_fooled_by_lookalike_hosts_or_paths() {
    let policy = rule(json!({"allowedRegistries": ["registry.example.com", "ghcr.io/acme/"]}));
    for image in [
        "registry.example.com.evil.io/x",
        "evil.io/registry.example.com/x",
        "registry.example.com:5000/x",
        "evilregistry.example.com/x",
        "ghcr.io/acme-evil/x",
        "ghcr.io/acmex",
        "ghcr.io/acme",
        "ghcr.io/other/acme/x",
        "registry.example.com",
        "acme/x",
    ] {
        assert_eq!(
            messages_for_image(&policy, image),
            [format!(
                "container \"app\" image {image:?} is not from an allowed registry \
                 (allowed: registry.example.com, ghcr.io/acme/) (rule \"r\")"
            )],
            "{image}"
        );
    }
}

#[test]
fn a_path_prefix_without_a_trailing_slash_also_matches_the_repository_itself() {
    let policy = rule(json!({"allowedRegistries": ["ghcr.io/acme/app"]}));
    assert!(messages_for_image(&policy, "ghcr.io/acme/app:1").is_empty());
    assert!(messages_for_image(&policy, "ghcr.io/acme/app/sub:1").is_empty());
    assert_eq!(messages_for_image(&policy, "ghcr.io/acme/app2:1").len(), 1);
}

#[test]
fn blocked_registries_catch_every_spelling_of_a_docker_hub_image() {
    let policy = rule(json!({"blockedRegistries": ["docker.io/library/", "quay.io"]}));
    for image in [
        "nginx",
        "nginx:1.27",
        "library/nginx",
        "docker.io/nginx",
        "docker.io/library/nginx",
        "index.docker.io/library/nginx",
        "DOCKER.IO/library/nginx",
    ] {
        assert_eq!(
            messages_for_image(&policy, image),
            [format!(
                "container \"app\" image {image:?} is from a blocked registry (docker.io/library/) (rule \"r\")"
            )],
            "{image}"
        );
    }
    assert_eq!(messages_for_image(&policy, "quay.io/x/y:1").len(), 1);
    assert!(messages_for_image(&policy, "bitnami/nginx:1").is_empty());
    assert!(messages_for_image(&policy, "quay.io.example.com/x:1").is_empty());
}

// === tags, digests, pull policy ===

#[test]
fn disallow_latest_tag_refuses_latest_and_untagged_images() {
    let policy = rule(json!({"disallowLatestTag": true}));
    assert_eq!(
        messages_for_image(&policy, "nginx:latest"),
        [r#"container "app" image "nginx:latest" uses the :latest tag (rule "r")"#]
    );
    assert_eq!(
        messages_for_image(&policy, "nginx"),
        [r#"container "app" image "nginx" has no tag or digest, so it means :latest (rule "r")"#]
    );
    assert!(messages_for_image(&policy, "nginx:1.27").is_empty());
    assert!(messages_for_image(&policy, "nginx:Latest").is_empty());
    assert!(messages_for_image(&policy, &format!("nginx@{SHA}")).is_empty());
    assert_eq!(
        messages_for_image(&policy, &format!("nginx:latest@{SHA}")).len(),
        1,
        "an explicit :latest is refused even with a digest"
    );
}

#[test]
fn require_digest_refuses_images_without_a_digest() {
    let policy = rule(json!({"requireDigest": true}));
    assert_eq!(
        messages_for_image(&policy, "ghcr.io/acme/app:v1"),
        [r#"container "app" image "ghcr.io/acme/app:v1" must be pinned by digest (rule "r")"#]
    );
    assert!(messages_for_image(&policy, &format!("ghcr.io/acme/app@{SHA}")).is_empty());
    assert!(messages_for_image(&policy, &format!("ghcr.io/acme/app:v1@{SHA}")).is_empty());
}

#[test]
fn required_pull_policy_compares_the_explicit_or_defaulted_value() {
    let policy = rule(json!({"requiredImagePullPolicy": "Always"}));
    let pod = |image: &str, pull: Value| {
        pod_with(json!([{"name": "app", "image": image, "imagePullPolicy": pull}]))
    };
    let run = |pod: Value| messages(&policy, &Value::Null, "Pod", &pod);
    assert!(run(pod("nginx:1", json!("Always"))).is_empty());
    assert_eq!(
        run(pod("nginx:1", json!("IfNotPresent"))),
        [r#"container "app" image "nginx:1" must set imagePullPolicy: Always (rule "r")"#]
    );
    // Unset defaults to Always for :latest and untagged images, IfNotPresent otherwise.
    assert!(run(pod("nginx", Value::Null)).is_empty());
    assert!(run(pod("nginx:latest", json!(""))).is_empty());
    assert_eq!(run(pod("nginx:1", Value::Null)).len(), 1);
    assert_eq!(run(pod(&format!("nginx@{SHA}"), Value::Null)).len(), 1);

    let never = rule(json!({"requiredImagePullPolicy": "Never"}));
    assert!(messages(&never, &Value::Null, "Pod", &pod("nginx:1", json!("Never"))).is_empty());
}

#[test]
fn one_image_can_break_several_checks_of_one_rule() {
    let policy = rule(json!({
        "allowedRegistries": ["registry.example.com"],
        "disallowLatestTag": true,
        "requireDigest": true,
    }));
    assert_eq!(
        messages_for_image(&policy, "nginx:latest"),
        [
            r#"container "app" image "nginx:latest" is not from an allowed registry (allowed: registry.example.com) (rule "r")"#,
            r#"container "app" image "nginx:latest" uses the :latest tag (rule "r")"#,
            r#"container "app" image "nginx:latest" must be pinned by digest (rule "r")"#,
        ]
    );
}

#[test]
fn invalid_references_are_violations_naming_the_reason() {
    let policy = rule(json!({}));
    assert_eq!(
        messages_for_image(&policy, "Nginx"),
        [
            r#"container "app" image "Nginx" is not a valid image reference: repository name must be lowercase (rule "r")"#
        ]
    );
    assert_eq!(
        messages_for_image(&policy, ""),
        [r#"container "app" has an empty image (rule "r")"#]
    );
    assert_eq!(
        messages_for_image(&policy, "nginx\t:1"),
        [
            r#"container "app" image "nginx\t:1" is not a valid image reference: the image reference contains whitespace or control characters (rule "r")"#
        ]
    );
    assert_eq!(
        messages_for_image(&policy, &"a".repeat(2000)),
        [
            r#"container "app" image is not a valid image reference: it is 2000 bytes long (rule "r")"#
        ]
    );
}

// === which containers ===

#[test]
fn init_and_ephemeral_containers_are_checked_in_kubernetes_order() {
    let policy = rule(json!({"disallowLatestTag": true}));
    let pod = json!({"spec": {
        "containers": [{"name": "app", "image": "app:latest"}],
        "initContainers": [{"name": "init", "image": "init:latest"}],
        "ephemeralContainers": [{"name": "debug", "image": "busybox"}],
    }});
    let violations = check(&policy, &Value::Null, "Pod", &pod);
    let containers: Vec<&str> = violations.iter().map(|v| v.container.as_str()).collect();
    assert_eq!(containers, ["init", "app", "debug"]);
    assert!(violations.iter().all(|v| v.rule == "r"));
}

#[test]
fn deployment_templates_are_checked() {
    let policy = rule(json!({"requireDigest": true}));
    let deployment = json!({"kind": "Deployment", "spec": {"template": {"spec": {
        "containers": [{"name": "web", "image": "ghcr.io/acme/web:1"}]
    }}}});
    assert_eq!(
        messages(&policy, &Value::Null, "Deployment", &deployment),
        [r#"container "web" image "ghcr.io/acme/web:1" must be pinned by digest (rule "r")"#]
    );
}

#[test]
fn cronjob_templates_are_checked() {
    let policy = rule(json!({"blockedRegistries": ["docker.io"]}));
    let cronjob = json!({"spec": {"jobTemplate": {"spec": {"template": {"spec": {
        "initContainers": [{"name": "fetch", "image": "curlimages/curl:8"}],
        "containers": [{"name": "job", "image": "registry.example.com/job:1"}]
    }}}}}});
    assert_eq!(
        messages(&policy, &Value::Null, "CronJob", &cronjob),
        [
            r#"container "fetch" image "curlimages/curl:8" is from a blocked registry (docker.io) (rule "r")"#
        ]
    );
}

#[test]
fn kinds_without_a_pod_have_no_violations() {
    let policy = rule(json!({"requireDigest": true}));
    let config_map = json!({"data": {"containers": [{"image": "nginx"}]}});
    assert!(check(&policy, &Value::Null, "ConfigMap", &config_map).is_empty());
}

#[test]
fn a_pod_without_containers_has_no_violations() {
    let policy = rule(json!({"requireDigest": true}));
    assert!(check(&policy, &Value::Null, "Pod", &json!({"metadata": {}})).is_empty());
}

// === namespace selector ===

#[test]
fn rules_apply_only_to_namespaces_their_selector_selects() {
    let policy = policy(json!([
        {"name": "prod", "namespaceSelector": {"matchLabels": {"env": "prod"}}, "requireDigest": true},
        {"name": "everyone", "disallowLatestTag": true},
    ]));
    let pod = pod_with(json!([{"name": "app", "image": "nginx:latest"}]));
    let rules = |labels: Value| -> Vec<String> {
        check(&policy, &labels, "Pod", &pod)
            .into_iter()
            .map(|v| v.rule)
            .collect()
    };
    assert_eq!(
        rules(json!({"env": "prod", "team": "a"})),
        ["prod", "everyone"]
    );
    assert_eq!(rules(json!({"env": "dev"})), ["everyone"]);
    assert_eq!(rules(json!({})), ["everyone"]);
    assert_eq!(rules(Value::Null), ["everyone"]);
}

#[test]
fn match_expressions_follow_kubernetes_operators() {
    let policy = rule(json!({
        "requireDigest": true,
        "namespaceSelector": {"matchExpressions": [
            {"key": "env", "operator": "In", "values": ["prod", "staging"]},
            {"key": "tier", "operator": "NotIn", "values": ["sandbox"]},
            {"key": "team", "operator": "Exists"},
            {"key": "exempt", "operator": "DoesNotExist"},
        ]},
    }));
    let pod = pod_with(json!([{"name": "app", "image": "nginx:1"}]));
    let selected = |labels: Value| !check(&policy, &labels, "Pod", &pod).is_empty();
    assert!(selected(json!({"env": "prod", "team": "a"})));
    assert!(selected(
        json!({"env": "staging", "team": "a", "tier": "web"})
    ));
    assert!(!selected(json!({"env": "dev", "team": "a"})));
    assert!(!selected(json!({"team": "a"})));
    assert!(!selected(
        json!({"env": "prod", "team": "a", "tier": "sandbox"})
    ));
    assert!(!selected(json!({"env": "prod"})));
    assert!(!selected(json!({"env": "prod", "team": "a", "exempt": ""})));
}

#[test]
fn unreadable_namespace_labels_fail_closed_for_rules_with_a_selector() {
    let policy = policy(json!([
        {"name": "prod", "namespaceSelector": {"matchLabels": {"env": "prod"}}},
        {"name": "everyone"},
    ]));
    let pod = pod_with(json!([{"name": "app", "image": "nginx:1"}]));
    for labels in [json!(["env", "prod"]), json!({"env": 1}), json!("env=prod")] {
        let violations = check(&policy, &labels, "Pod", &pod);
        assert_eq!(
            violations,
            [Violation {
                rule: "prod".to_owned(),
                container: String::new(),
                message: r#"namespace labels must be an object of strings to evaluate the namespaceSelector (rule "prod")"#.to_owned(),
            }],
            "{labels}"
        );
    }
}

// === hostile JSON ===

#[test]
fn pod_specs_of_the_wrong_shape_are_violations_not_panics() {
    let policy = rule(json!({}));
    let cases = [
        (json!("a pod"), "pod spec must be an object"),
        (json!({"spec": 7}), "pod spec must be an object"),
        (
            json!({"spec": {"containers": {"name": "app"}}}),
            "containers must be an array",
        ),
        (
            json!({"spec": {"initContainers": "x"}}),
            "initContainers must be an array",
        ),
        (
            json!({"spec": {"ephemeralContainers": [3]}}),
            "ephemeralContainers[0] must be an object",
        ),
        (
            json!({"spec": {"containers": [{"name": 5, "image": "a"}]}}),
            "containers[0].name must be a string",
        ),
        (
            json!({"spec": {"containers": [{"name": "app", "image": ["nginx"]}]}}),
            r#"container "app" image must be a string"#,
        ),
        (
            json!({"spec": {"containers": [{"name": "app"}]}}),
            r#"container "app" has no image"#,
        ),
        (
            json!({"spec": {"containers": [{"image": null}]}}),
            "containers[0] has no image",
        ),
        (
            json!({"spec": {"containers": [{"name": "app", "image": "a", "imagePullPolicy": "Sometimes"}]}}),
            r#"container "app" imagePullPolicy "Sometimes" is not one of "Always", "IfNotPresent", "Never""#,
        ),
        (
            json!({"spec": {"containers": [{"name": "app", "image": "a", "imagePullPolicy": true}]}}),
            r#"container "app" imagePullPolicy must be a string"#,
        ),
    ];
    for (pod, expected) in cases {
        assert_eq!(
            messages(&policy, &Value::Null, "Pod", &pod),
            [format!("{expected} (rule \"r\")")],
            "{pod}"
        );
    }
    let deployment = json!({"spec": {"template": []}});
    assert_eq!(
        messages(&policy, &Value::Null, "Deployment", &deployment),
        [r#"pod spec must be an object (rule "r")"#]
    );
}

#[test]
fn unnamed_containers_are_named_by_their_field_path() {
    let policy = rule(json!({"disallowLatestTag": true}));
    let pod = pod_with(json!([{"name": "ok", "image": "a:1"}, {"image": "b"}]));
    let violations = check(&policy, &Value::Null, "Pod", &pod);
    assert_eq!(violations.len(), 1);
    assert_eq!(violations[0].container, "containers[1]");
    assert_eq!(
        violations[0].message,
        r#"containers[1] image "b" has no tag or digest, so it means :latest (rule "r")"#
    );
}

#[test]
fn hostile_container_names_are_quoted_in_messages() {
    let policy = rule(json!({"requireDigest": true}));
    let pod = pod_with(json!([{"name": "a\"b\nc", "image": "x:1"}]));
    assert_eq!(
        messages(&policy, &Value::Null, "Pod", &pod),
        [r#"container "a\"b\nc" image "x:1" must be pinned by digest (rule "r")"#]
    );
}

// === the 403 message ===

#[test]
fn message_joins_every_violation_for_the_response_body() {
    let policy = rule(json!({"disallowLatestTag": true}));
    let pod = pod_with(json!([
        {"name": "a", "image": "a:latest"},
        {"name": "b", "image": "b"},
    ]));
    assert_eq!(
        message(&check(&policy, &Value::Null, "Pod", &pod)),
        r#"violates ImagePolicy: container "a" image "a:latest" uses the :latest tag (rule "r"); container "b" image "b" has no tag or digest, so it means :latest (rule "r")"#
    );
    assert_eq!(message(&[]), "");
}

// === configuration ===

#[test]
fn a_full_policy_reads_back_its_settings() {
    let policy = policy(json!([{
        "name": "prod-registries",
        "namespaceSelector": {"matchLabels": {"env": "prod"}},
        "allowedRegistries": ["registry.example.com", "ghcr.io/acme/"],
        "blockedRegistries": ["docker.io/library/"],
        "disallowLatestTag": true,
        "requireDigest": true,
        "requiredImagePullPolicy": "Always",
    }]));
    let [rule] = policy.rules() else {
        panic!("one rule expected");
    };
    assert_eq!(rule.name(), "prod-registries");
    assert_eq!(
        rule.allowed_registries().collect::<Vec<_>>(),
        ["registry.example.com", "ghcr.io/acme/"]
    );
    assert_eq!(
        rule.blocked_registries().collect::<Vec<_>>(),
        ["docker.io/library/"]
    );
    assert!(rule.disallow_latest_tag() && rule.require_digest());
    assert_eq!(rule.required_image_pull_policy(), Some(PullPolicy::Always));
}

#[test]
fn null_and_absent_optional_fields_mean_no_restriction() {
    let policy = policy(json!([{
        "name": "r",
        "namespaceSelector": null,
        "allowedRegistries": null,
        "disallowLatestTag": null,
    }]));
    assert!(messages_for_image(&policy, "anything.example.com/x").is_empty());
    let empty =
        ImagePolicy::from_value(&json!({"apiVersion": "portcullis.dev/v1", "kind": "ImagePolicy"}))
            .unwrap();
    assert!(empty.rules().is_empty());
}

#[test]
fn config_errors_name_the_rule_index_and_field() {
    let cases = [
        (
            json!([{"name": "a"}, {"name": "b", "requiredImagePullPolicy": "Sometimes"}]),
            r#"rules[1].requiredImagePullPolicy: unsupported value "Sometimes": supported values: "Always", "IfNotPresent", "Never""#,
        ),
        (
            json!([{"name": "a", "allowedRegistry": ["x.io"]}]),
            r#"unknown field "rules[0].allowedRegistry""#,
        ),
        (json!([{}]), "rules[0].name: required value"),
        (
            json!([{"name": "a"}, {"name": "a"}]),
            r#"rules[1].name: duplicate value "a""#,
        ),
        (
            json!([{"name": "has space"}]),
            r#"rules[0].name: invalid value "has space": must be at most 253 letters, digits, '-', '_' or '.'"#,
        ),
        (
            json!([{"name": "a", "requireDigest": "yes"}]),
            "rules[0].requireDigest: must be a boolean",
        ),
        (
            json!([{"name": "a", "allowedRegistries": "x.io"}]),
            "rules[0].allowedRegistries: must be an array of strings",
        ),
        (
            json!([{"name": "a", "blockedRegistries": ["x.io", 3]}]),
            "rules[0].blockedRegistries[1]: must be a string",
        ),
        (
            json!([{"name": "a", "allowedRegistries": ["library/"]}]),
            r#"rules[0].allowedRegistries[0]: invalid value "library/": must start with a registry host: a name with a "." or ":", or "localhost""#,
        ),
        (
            json!([{"name": "a", "allowedRegistries": ["https://ghcr.io"]}]),
            r#"rules[0].allowedRegistries[0]: invalid value "https://ghcr.io": must be a registry host or host/path prefix, without a scheme"#,
        ),
        (
            json!([{"name": "a", "allowedRegistries": ["ghcr.io/acme/*"]}]),
            r#"rules[0].allowedRegistries[0]: invalid value "ghcr.io/acme/*": the path after the host must be lower-case repository path components separated by "/", without a tag"#,
        ),
        (
            json!([{"name": "a", "blockedRegistries": ["docker.io/nginx"]}]),
            r#"rules[0].blockedRegistries[0]: invalid value "docker.io/nginx": is ambiguous on Docker Hub: write "docker.io/library/<name>" for an official image or "docker.io/<namespace>/" for a namespace"#,
        ),
        (
            json!([{"name": "a", "allowedRegistries": [""]}]),
            r#"rules[0].allowedRegistries[0]: invalid value "": must not be empty"#,
        ),
        (
            json!([{"name": "a", "namespaceSelector": {"matchLabel": {}}}]),
            r#"unknown field "rules[0].namespaceSelector.matchLabel""#,
        ),
        (
            json!([{"name": "a", "namespaceSelector": {"matchLabels": {"env": 1}}}]),
            "rules[0].namespaceSelector.matchLabels.env: must be a string",
        ),
        (
            json!([{"name": "a", "namespaceSelector": {"matchLabels": {"env": "not valid"}}}]),
            r#"rules[0].namespaceSelector.matchLabels.env: invalid value "not valid": a label value must be empty or at most 63 alphanumeric characters, '-', '_' or '.', starting and ending with an alphanumeric character"#,
        ),
        (
            json!([{"name": "a", "namespaceSelector": {"matchExpressions": [{"key": "env", "operator": "Equals", "values": ["x"]}]}}]),
            r#"rules[0].namespaceSelector.matchExpressions[0].operator: unsupported value "Equals": supported values: "In", "NotIn", "Exists", "DoesNotExist""#,
        ),
        (
            json!([{"name": "a", "namespaceSelector": {"matchExpressions": [{"key": "env", "operator": "In"}]}}]),
            r#"rules[0].namespaceSelector.matchExpressions[0].values: invalid value "": must be specified when `operator` is 'In' or 'NotIn'"#,
        ),
        (
            json!([{"name": "a", "namespaceSelector": {"matchExpressions": [{"key": "env", "operator": "Exists", "values": ["x"]}]}}]),
            r#"rules[0].namespaceSelector.matchExpressions[0].values: invalid value "x": may not be specified when `operator` is 'Exists' or 'DoesNotExist'"#,
        ),
        (
            json!([{"name": "a", "namespaceSelector": {"matchExpressions": [{"key": "Bad Key!", "operator": "Exists"}]}}]),
            r#"rules[0].namespaceSelector.matchExpressions[0].key: invalid value "Bad Key!": name part must be at most 63 alphanumeric characters, '-', '_' or '.', starting and ending with an alphanumeric character"#,
        ),
        (json!({"name": "a"}), "rules: must be an array"),
        (json!(["a"]), "rules[0]: must be an object"),
    ];
    for (rules, expected) in cases {
        assert_eq!(config_error(rules.clone()), expected, "{rules}");
    }
}

#[test]
fn config_documents_must_declare_their_api_version_and_kind() {
    let error = |document: Value| ImagePolicy::from_value(&document).unwrap_err().to_string();
    assert_eq!(error(json!([])), "image policy must be an object");
    assert_eq!(
        error(json!({"kind": "ImagePolicy"})),
        "apiVersion: required value"
    );
    assert_eq!(
        error(json!({"apiVersion": "portcullis.dev/v2", "kind": "ImagePolicy"})),
        r#"apiVersion: unsupported value "portcullis.dev/v2": supported values: "portcullis.dev/v1""#
    );
    assert_eq!(
        error(json!({"apiVersion": "portcullis.dev/v1", "kind": "Policy"})),
        r#"kind: unsupported value "Policy": supported values: "ImagePolicy""#
    );
    assert_eq!(
        error(json!({"apiVersion": "portcullis.dev/v1", "kind": "ImagePolicy", "metadata": {}})),
        r#"unknown field "metadata""#
    );
}

#[test]
fn registry_entries_accept_ports_ipv6_and_legacy_docker_hub_names() {
    let policy = rule(json!({"allowedRegistries": [
        "localhost:5000", "[::1]:5000/team/", "index.docker.io/library/", "Registry.Example.com/"
    ]}));
    for image in [
        "localhost:5000/app",
        "[::1]:5000/team/app",
        "nginx",
        "registry.example.com/x",
    ] {
        assert!(messages_for_image(&policy, image).is_empty(), "{image}");
    }
    assert_eq!(messages_for_image(&policy, "localhost/app").len(), 1);
    assert_eq!(messages_for_image(&policy, "localhost:5001/app").len(), 1);
}

const SHA: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

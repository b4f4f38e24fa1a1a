//! Ported from kubernetes/apiserver `pkg/audit/policy/checker_test.go`, `reader_test.go` and
//! `pkg/apis/audit/validation/validation_test.go`, plus hostile inputs.

use portcullis_api::UserInfo;

use super::*;

fn tim() -> UserInfo {
    UserInfo {
        username: "tim@k8s.io".into(),
        groups: vec!["humans".into(), "developers".into()],
        ..UserInfo::default()
    }
}

/// The request fixtures of `checker_test.go`.
fn attrs<'a>(name: &str, user: &'a UserInfo) -> RequestAttributes<'a> {
    let namespaced = RequestAttributes {
        user: Some(user),
        verb: "get",
        resource_request: true,
        api_group: "",
        api_version: "v1",
        resource: "pods",
        subresource: "",
        namespace: "default",
        name: "busybox",
        path: "/api/v1/namespaces/default/pods/busybox",
    };
    match name {
        "namespaced" => namespaced,
        "cluster" => RequestAttributes {
            api_group: "rbac.authorization.k8s.io",
            api_version: "v1beta1",
            resource: "clusterroles",
            namespace: "",
            name: "edit",
            path: "/apis/rbac.authorization.k8s.io/v1beta1/clusterroles/edit",
            ..namespaced
        },
        "nonResource" => RequestAttributes {
            user: Some(user),
            verb: "get",
            resource_request: false,
            path: "/logs/kubelet.log",
            ..RequestAttributes::default()
        },
        "subresource" => RequestAttributes {
            subresource: "log",
            ..namespaced
        },
        "Unauthorized" => RequestAttributes {
            user: None,
            ..namespaced
        },
        "ClusterRoleUpdate" => RequestAttributes {
            verb: "update",
            api_group: "rbac.authorization.k8s.io",
            api_version: "v1beta1",
            resource: "clusterroles",
            subresource: "status",
            namespace: "",
            name: "somerole",
            path: "/apis/rbac.authorization.k8s.io/v1beta1/clusterroles/somerole",
            ..namespaced
        },
        other => panic!("no request fixture {other}"),
    }
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

fn group_resources(group: &str, resources: &[&str], names: &[&str]) -> GroupResources {
    GroupResources {
        group: group.into(),
        resources: strings(resources),
        resource_names: strings(names),
    }
}

/// The rule fixtures of `checker_test.go`.
fn rule(name: &str) -> PolicyRule {
    let base = |level| PolicyRule::new(level);
    match name {
        "default" => base(Level::Metadata),
        "create" => PolicyRule {
            verbs: strings(&["create"]),
            ..base(Level::Request)
        },
        "tims" => PolicyRule {
            users: strings(&["tim@k8s.io"]),
            ..base(Level::Metadata)
        },
        "humans" => PolicyRule {
            user_groups: strings(&["humans"]),
            ..base(Level::Metadata)
        },
        "serviceAccounts" => PolicyRule {
            user_groups: strings(&["system:serviceaccounts"]),
            ..base(Level::Request)
        },
        "getPods" => PolicyRule {
            verbs: strings(&["get"]),
            resources: vec![group_resources("", &["pods"], &[])],
            ..base(Level::RequestResponse)
        },
        "getPodLogs" => PolicyRule {
            verbs: strings(&["get"]),
            resources: vec![group_resources("", &["pods/log"], &[])],
            ..base(Level::Request)
        },
        "getPodWildcardMatching" => PolicyRule {
            verbs: strings(&["get"]),
            resources: vec![group_resources("", &["*"], &[])],
            ..base(Level::Request)
        },
        "getPodResourceWildcardMatching" => PolicyRule {
            verbs: strings(&["get"]),
            resources: vec![group_resources("", &["*/log"], &[])],
            ..base(Level::Request)
        },
        "getPodSubResourceWildcardMatching" => PolicyRule {
            verbs: strings(&["get"]),
            resources: vec![group_resources("", &["pods/*"], &[])],
            ..base(Level::Request)
        },
        "getClusterRoles" => PolicyRule {
            verbs: strings(&["get"]),
            resources: vec![group_resources(
                "rbac.authorization.k8s.io",
                &["clusterroles"],
                &[],
            )],
            namespaces: strings(&[""]),
            ..base(Level::RequestResponse)
        },
        "getGroupWildCardMatchingWithSubresourceWildcardMatching" => PolicyRule {
            verbs: strings(&["update"]),
            resources: vec![group_resources("*", &["*/status"], &[])],
            ..base(Level::RequestResponse)
        },
        "getLogs" => PolicyRule {
            verbs: strings(&["get"]),
            non_resource_urls: strings(&["/logs*"]),
            ..base(Level::RequestResponse)
        },
        "getMetrics" => PolicyRule {
            verbs: strings(&["get"]),
            non_resource_urls: strings(&["/metrics"]),
            ..base(Level::Request)
        },
        "clusterRoleEdit" => PolicyRule {
            resources: vec![group_resources(
                "rbac.authorization.k8s.io",
                &["clusterroles"],
                &["edit"],
            )],
            ..base(Level::Request)
        },
        "omit RequestReceived" => PolicyRule {
            omit_stages: vec![Stage::RequestReceived],
            ..base(Level::Request)
        },
        "only audit panic" => PolicyRule {
            omit_stages: vec![
                Stage::RequestReceived,
                Stage::ResponseStarted,
                Stage::ResponseComplete,
            ],
            ..base(Level::Request)
        },
        other => panic!("no rule fixture {other}"),
    }
}

fn check(req: &str, want: Level, policy_stages: &[Stage], want_omit: &[Stage], rules: &[&str]) {
    let policy = Policy {
        rules: rules.iter().map(|r| rule(r)).collect(),
        omit_stages: policy_stages.to_vec(),
        omit_managed_fields: false,
    };
    let user = tim();
    let got = PolicyEvaluator::new(policy).evaluate(&attrs(req, &user));
    assert_eq!(
        (got.level, got.omit_stages),
        (want, want_omit.iter().copied().collect::<StageSet>()),
        "request {req}, rules {rules:?}"
    );
}

/// `testAuditLevel` of checker_test.go: (request, expected level, rules).
const LEVEL_CASES: &[(&str, Level, &[&str])] = &[
    ("namespaced", Level::Metadata, &["default"]),
    ("namespaced", Level::None, &["create"]),
    ("namespaced", Level::Metadata, &["tims"]),
    ("namespaced", Level::Metadata, &["humans"]),
    ("namespaced", Level::None, &["serviceAccounts"]),
    ("namespaced", Level::RequestResponse, &["getPods"]),
    ("namespaced", Level::None, &["getClusterRoles"]),
    ("namespaced", Level::None, &["getLogs"]),
    ("namespaced", Level::None, &["getMetrics"]),
    (
        "namespaced",
        Level::Metadata,
        &["getMetrics", "serviceAccounts", "default"],
    ),
    (
        "namespaced",
        Level::RequestResponse,
        &["getMetrics", "getPods", "default"],
    ),
    (
        "namespaced",
        Level::RequestResponse,
        &["getPodLogs", "getPods"],
    ),
    ("cluster", Level::Metadata, &["default"]),
    ("cluster", Level::None, &["create"]),
    ("cluster", Level::Metadata, &["tims"]),
    ("cluster", Level::Metadata, &["humans"]),
    ("cluster", Level::None, &["serviceAccounts"]),
    ("cluster", Level::None, &["getPods"]),
    ("cluster", Level::RequestResponse, &["getClusterRoles"]),
    (
        "cluster",
        Level::Request,
        &["clusterRoleEdit", "getClusterRoles"],
    ),
    ("cluster", Level::None, &["getLogs"]),
    ("cluster", Level::None, &["getMetrics"]),
    (
        "cluster",
        Level::Metadata,
        &["getMetrics", "serviceAccounts", "default"],
    ),
    (
        "cluster",
        Level::RequestResponse,
        &["getMetrics", "getClusterRoles", "default"],
    ),
    ("cluster", Level::None, &["getPodLogs", "getPods"]),
    ("nonResource", Level::Metadata, &["default"]),
    ("nonResource", Level::None, &["create"]),
    ("nonResource", Level::Metadata, &["tims"]),
    ("nonResource", Level::Metadata, &["humans"]),
    ("nonResource", Level::None, &["serviceAccounts"]),
    ("nonResource", Level::None, &["getPods"]),
    ("nonResource", Level::None, &["getClusterRoles"]),
    ("nonResource", Level::RequestResponse, &["getLogs"]),
    ("nonResource", Level::None, &["getMetrics"]),
    (
        "nonResource",
        Level::Metadata,
        &["getMetrics", "serviceAccounts", "default"],
    ),
    (
        "nonResource",
        Level::RequestResponse,
        &["getLogs", "getClusterRoles", "default"],
    ),
    ("nonResource", Level::None, &["getPodLogs", "getPods"]),
    ("subresource", Level::Request, &["getPodLogs", "getPods"]),
    ("subresource", Level::Request, &["getPodWildcardMatching"]),
    (
        "subresource",
        Level::Request,
        &["getPodResourceWildcardMatching"],
    ),
    (
        "subresource",
        Level::Request,
        &["getPodSubResourceWildcardMatching"],
    ),
    ("Unauthorized", Level::None, &["tims"]),
    ("Unauthorized", Level::Metadata, &["tims", "default"]),
    ("Unauthorized", Level::None, &["humans"]),
    ("Unauthorized", Level::Metadata, &["humans", "default"]),
    (
        "ClusterRoleUpdate",
        Level::RequestResponse,
        &["getGroupWildCardMatchingWithSubresourceWildcardMatching"],
    ),
];

fn audit_levels(stages: &[Stage]) {
    for (req, level, rules) in LEVEL_CASES {
        check(req, *level, stages, stages, rules);
    }
}

use Stage::{Panic, RequestReceived, ResponseComplete, ResponseStarted};

#[test]
fn checker_matches_upstream_table() {
    audit_levels(&[]);
    for req in ["namespaced", "cluster", "nonResource"] {
        check(
            req,
            Level::Request,
            &[],
            &[RequestReceived],
            &["omit RequestReceived", "getPods", "default"],
        );
        check(
            req,
            Level::Request,
            &[],
            &[RequestReceived, ResponseStarted, ResponseComplete],
            &["only audit panic", "getPods", "default"],
        );
    }
}

#[test]
fn checker_unions_policy_omit_stages_with_rule_omit_stages() {
    let policy_stages = [RequestReceived, ResponseStarted];
    audit_levels(&policy_stages);
    for req in ["namespaced", "cluster"] {
        check(
            req,
            Level::Request,
            &policy_stages,
            &[RequestReceived, ResponseStarted],
            &["omit RequestReceived", "getPods", "default"],
        );
        check(
            req,
            Level::Request,
            &policy_stages,
            &[RequestReceived, ResponseStarted, ResponseComplete],
            &["only audit panic", "getPods", "default"],
        );
    }
    check(
        "nonResource",
        Level::Metadata,
        &policy_stages,
        &[RequestReceived, ResponseStarted],
        &["default", "omit RequestReceived", "getPods"],
    );
    check(
        "nonResource",
        Level::Request,
        &policy_stages,
        &[RequestReceived, ResponseStarted, ResponseComplete],
        &["only audit panic", "getPods", "default"],
    );
}

#[test]
fn stage_union_matches_upstream_table() {
    let cases: &[(&[Stage], &[Stage], &[Stage])] = &[
        (&[], &[], &[]),
        (&[RequestReceived], &[], &[RequestReceived]),
        (&[RequestReceived], &[RequestReceived], &[RequestReceived]),
        (
            &[RequestReceived],
            &[ResponseStarted],
            &[RequestReceived, ResponseStarted],
        ),
        (
            &[RequestReceived, RequestReceived],
            &[RequestReceived, RequestReceived],
            &[RequestReceived],
        ),
        (
            &[RequestReceived, ResponseStarted],
            &[Panic, RequestReceived],
            &[RequestReceived, ResponseStarted, Panic],
        ),
    ];
    for (a, b, want) in cases {
        let a: StageSet = a.iter().copied().collect();
        let b: StageSet = b.iter().copied().collect();
        let got: Vec<Stage> = a.union(b).iter().collect();
        let mut want = want.to_vec();
        want.sort();
        assert_eq!(got, want);
    }
}

#[test]
fn rule_omit_managed_fields_overrides_policy_default() {
    let cases = [
        (false, None, false),
        (true, None, true),
        (true, Some(false), false),
        (false, Some(true), true),
    ];
    let attrs = RequestAttributes {
        verb: "get",
        ..RequestAttributes::default()
    };
    for (global, per_rule, want) in cases {
        let policy = Policy {
            rules: vec![PolicyRule {
                verbs: strings(&["get"]),
                omit_managed_fields: per_rule,
                ..PolicyRule::new(Level::RequestResponse)
            }],
            omit_stages: vec![],
            omit_managed_fields: global,
        };
        let got = PolicyEvaluator::new(policy).evaluate(&attrs);
        assert_eq!(got.omit_managed_fields, want, "{global} {per_rule:?}");
    }
}

#[test]
fn no_matching_rule_gives_level_none_with_policy_settings() {
    let policy = Policy {
        rules: vec![rule("create")],
        omit_stages: vec![Panic],
        omit_managed_fields: true,
    };
    let user = tim();
    let got = PolicyEvaluator::new(policy).evaluate(&attrs("namespaced", &user));
    assert_eq!(got.level, Level::None);
    assert_eq!(got.omit_stages, StageSet::EMPTY.with(Panic));
    assert!(got.omit_managed_fields);
    assert!(!got.emits(ResponseComplete));
}

#[test]
fn resource_forms_match_like_upstream() {
    // (spec, resource, subresource, matches)
    let cases = [
        ("pods", "pods", "", true),
        ("pods", "pods", "log", false),
        ("pods/log", "pods", "log", true),
        ("pods/log", "pods", "exec", false),
        ("pods/log", "pods", "", false),
        ("pods/*", "pods", "exec", true),
        ("pods/*", "pods", "", true),
        ("pods/*", "podsx", "exec", false),
        ("*/scale", "deployments", "scale", true),
        ("*/scale", "deployments", "", false),
        ("*", "anything", "sub", true),
        ("podsx/log", "pods", "log", false),
        ("pod/log", "pods", "log", false),
    ];
    for (spec, resource, sub, want) in cases {
        assert_eq!(
            evaluate::resource_matches(spec, resource, sub),
            want,
            "{spec} vs {resource}/{sub}"
        );
    }
}

#[test]
fn non_resource_url_star_is_a_plain_prefix() {
    let user = tim();
    let policy = |url: &str| Policy {
        rules: vec![PolicyRule {
            non_resource_urls: strings(&[url]),
            ..PolicyRule::new(Level::Metadata)
        }],
        ..Policy::default()
    };
    let at = |path| RequestAttributes {
        user: Some(&user),
        verb: "get",
        path,
        ..RequestAttributes::default()
    };
    let level = |url: &str, path| PolicyEvaluator::new(policy(url)).evaluate(&at(path)).level;
    assert_eq!(level("/healthz*", "/healthzfoo"), Level::Metadata);
    assert_eq!(level("/healthz*", "/healthz/etcd"), Level::Metadata);
    assert_eq!(level("/healthz", "/healthz/etcd"), Level::None);
    assert_eq!(level("*", "/anything"), Level::Metadata);
    assert_eq!(level("/version", "/version"), Level::Metadata);
}

#[test]
fn nonresource_rule_never_matches_resource_request() {
    let user = tim();
    let policy = Policy {
        rules: vec![PolicyRule {
            non_resource_urls: strings(&["*"]),
            ..PolicyRule::new(Level::Metadata)
        }],
        ..Policy::default()
    };
    let got = PolicyEvaluator::new(policy).evaluate(&attrs("namespaced", &user));
    assert_eq!(got.level, Level::None);
}

#[test]
fn namespace_empty_string_means_cluster_scoped() {
    let user = tim();
    let policy = Policy {
        rules: vec![PolicyRule {
            namespaces: strings(&[""]),
            ..PolicyRule::new(Level::Metadata)
        }],
        ..Policy::default()
    };
    let ev = PolicyEvaluator::new(policy);
    assert_eq!(ev.evaluate(&attrs("cluster", &user)).level, Level::Metadata);
    assert_eq!(ev.evaluate(&attrs("namespaced", &user)).level, Level::None);
    assert_eq!(ev.evaluate(&attrs("nonResource", &user)).level, Level::None);
}

#[test]
fn resource_names_narrow_to_object_names() {
    let user = tim();
    let ev = PolicyEvaluator::new(Policy {
        rules: vec![rule("clusterRoleEdit")],
        ..Policy::default()
    });
    assert_eq!(ev.evaluate(&attrs("cluster", &user)).level, Level::Request);
    assert_eq!(
        ev.evaluate(&attrs("ClusterRoleUpdate", &user)).level,
        Level::None
    );
}

#[test]
fn attributes_from_request_info() {
    let user = tim();
    let info = portcullis_api::RequestInfo::parse(
        "GET",
        "/api/v1/namespaces/default/pods/busybox/log",
        None,
    )
    .unwrap();
    let a = RequestAttributes::from_request_info(&info, Some(&user), "/x");
    assert_eq!(
        (a.verb, a.resource, a.subresource, a.namespace, a.name),
        ("get", "pods", "log", "default", "busybox")
    );
    assert!(a.resource_request);
    let info = portcullis_api::RequestInfo::parse("GET", "/healthz", None).unwrap();
    let a = RequestAttributes::from_request_info(&info, None, "/ignored");
    assert!(!a.resource_request);
    assert_eq!(a.path, "/healthz");
}

#[test]
fn default_policy_records_everything_at_metadata() {
    let ev = PolicyEvaluator::new(Policy::default_metadata());
    for req in [
        "namespaced",
        "cluster",
        "nonResource",
        "Unauthorized",
        "subresource",
    ] {
        let user = tim();
        let got = ev.evaluate(&attrs(req, &user));
        assert_eq!(got.level, Level::Metadata, "{req}");
        assert!(Stage::ALL.iter().all(|s| got.emits(*s)));
    }
    assert!(Policy::default_metadata().validate().is_ok());
}

// === reader_test.go ===

const POLICY_DEF: &str = r#"
apiVersion: audit.k8s.io/v1
kind: Policy
rules:
  - level: None
    nonResourceURLs:
      - /healthz*
      - /version
  - level: RequestResponse
    users: ["tim"]
    userGroups: ["testers", "developers"]
    verbs: ["patch", "delete", "create"]
    resources:
      - group: ""
      - group: "rbac.authorization.k8s.io"
        resources: ["clusterroles", "clusterrolebindings"]
    namespaces: ["default", "kube-system"]
  - level: Metadata
"#;

fn expected_policy() -> Policy {
    Policy {
        rules: vec![
            PolicyRule {
                non_resource_urls: strings(&["/healthz*", "/version"]),
                ..PolicyRule::new(Level::None)
            },
            PolicyRule {
                users: strings(&["tim"]),
                user_groups: strings(&["testers", "developers"]),
                verbs: strings(&["patch", "delete", "create"]),
                resources: vec![
                    GroupResources::default(),
                    group_resources(
                        "rbac.authorization.k8s.io",
                        &["clusterroles", "clusterrolebindings"],
                        &[],
                    ),
                ],
                namespaces: strings(&["default", "kube-system"]),
                ..PolicyRule::new(Level::RequestResponse)
            },
            PolicyRule::new(Level::Metadata),
        ],
        omit_stages: vec![],
        omit_managed_fields: false,
    }
}

#[test]
fn parses_upstream_yaml_policy() {
    assert_eq!(
        Policy::from_slice(POLICY_DEF.as_bytes()).unwrap(),
        expected_policy()
    );
}

#[test]
fn parses_the_same_policy_as_json() {
    let json = r#"{"apiVersion":"audit.k8s.io/v1","kind":"Policy","rules":[
        {"level":"None","nonResourceURLs":["/healthz*","/version"]},
        {"level":"RequestResponse","users":["tim"],"userGroups":["testers","developers"],
         "verbs":["patch","delete","create"],
         "resources":[{"group":""},{"group":"rbac.authorization.k8s.io","resources":["clusterroles","clusterrolebindings"]}],
         "namespaces":["default","kube-system"]},
        {"level":"Metadata"}]}"#;
    assert_eq!(
        Policy::from_slice(json.as_bytes()).unwrap(),
        expected_policy()
    );
}

#[test]
fn parses_from_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.yaml");
    std::fs::write(&path, POLICY_DEF).unwrap();
    assert_eq!(Policy::from_file(&path).unwrap(), expected_policy());
    let err = Policy::from_file(&dir.path().join("missing.yaml")).unwrap_err();
    assert!(matches!(err, PolicyError::Read { .. }), "{err}");
}

#[test]
fn refuses_policy_without_version_or_kind() {
    let no_version = POLICY_DEF.replace("apiVersion: audit.k8s.io/v1\n", "");
    let err = Policy::from_slice(no_version.as_bytes()).unwrap_err();
    assert!(err.to_string().contains("unknown group version"), "{err}");
    let no_kind = POLICY_DEF.replace("kind: Policy\n", "");
    assert!(matches!(
        Policy::from_slice(no_kind.as_bytes()),
        Err(PolicyError::Kind(_))
    ));
    for other in ["audit.k8s.io/v1beta1", "audit.k8s.io/v2", "v1"] {
        let doc = POLICY_DEF.replace("audit.k8s.io/v1", other);
        assert!(
            matches!(
                Policy::from_slice(doc.as_bytes()),
                Err(PolicyError::GroupVersion(v)) if v == other
            ),
            "{other}"
        );
    }
}

const POLICY_WITH_UNKNOWN_FIELD: &str = r#"
apiVersion: audit.k8s.io/v1
kind: Policy
rules:
- level: None
  resources:
  - group: coordination.k8s.io
    resources:
    - "leases"
    verbs: ["watch", "get", "list"] # invalid indentation on verbs
"#;

#[test]
fn unknown_field_is_an_error_naming_it() {
    let err = Policy::from_slice(POLICY_WITH_UNKNOWN_FIELD.as_bytes()).unwrap_err();
    assert!(
        matches!(&err, PolicyError::UnknownField(f) if f == "rules[0].resources[0].verbs"),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "unknown field `rules[0].resources[0].verbs` in audit policy"
    );
    let top = POLICY_DEF.replace("kind: Policy\n", "kind: Policy\nruels: []\n");
    assert!(matches!(
        Policy::from_slice(top.as_bytes()),
        Err(PolicyError::UnknownField(f)) if f == "ruels"
    ));
}

#[test]
fn lenient_decoding_ignores_unknown_fields_with_warnings() {
    let (policy, warnings) =
        Policy::from_slice_lenient(POLICY_WITH_UNKNOWN_FIELD.as_bytes()).unwrap();
    assert_eq!(warnings, vec!["rules[0].resources[0].verbs".to_owned()]);
    assert_eq!(policy.rules.len(), 1);
    assert!(policy.rules[0].verbs.is_empty());
}

#[test]
fn refuses_policy_with_zero_rules() {
    for doc in [
        "apiVersion: audit.k8s.io/v1\nkind: Policy",
        "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: []\n",
    ] {
        assert!(
            matches!(
                Policy::from_slice(doc.as_bytes()),
                Err(PolicyError::NoRules)
            ),
            "{doc}"
        );
    }
    assert!(Policy::from_slice(b"").is_err());
    assert!(Policy::from_slice(b"   \n").is_err());
}

#[test]
fn metadata_field_is_accepted() {
    let doc = POLICY_DEF.replace("kind: Policy\n", "kind: Policy\nmetadata:\n  name: x\n");
    assert!(Policy::from_slice(doc.as_bytes()).is_ok());
}

#[test]
fn type_errors_name_the_field_path() {
    let doc =
        "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Metadata\n  verbs: get\n";
    let err = Policy::from_slice(doc.as_bytes()).unwrap_err();
    assert!(
        matches!(&err, PolicyError::Decode { path, .. } if path == "rules[0].verbs"),
        "{err}"
    );
}

// === hostile input ===

#[test]
fn hostile_documents_are_errors_not_panics() {
    let huge = vec![b' '; MAX_POLICY_BYTES + 1];
    assert!(matches!(
        Policy::from_slice(&huge),
        Err(PolicyError::TooLarge { .. })
    ));
    let bombs = [
        // a billion laughs
        "a: &a [x,x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e,*e]\ng: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f,*f]\n",
        "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
        "- just\n- a list\n",
        "apiVersion: [1]\n",
        "kind: Policy\napiVersion: audit.k8s.io/v1\nrules: {level: None}\n",
        "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Metadata\n- level: Metadata\n  level: None\n",
    ];
    for doc in bombs {
        assert!(Policy::from_slice(doc.as_bytes()).is_err(), "{doc}");
    }
    let deep = "[".repeat(100_000);
    assert!(Policy::from_slice(deep.as_bytes()).is_err());
    assert!(Policy::from_slice(&[0xff, 0xfe, 0x00, b'a']).is_err());
}

// === validation_test.go ===

fn valid_rules() -> Vec<PolicyRule> {
    vec![
        PolicyRule::new(Level::Metadata),
        PolicyRule {
            user_groups: strings(&["system:serviceaccounts", "system:nodes"]),
            ..PolicyRule::new(Level::None)
        },
        PolicyRule {
            verbs: strings(&["get"]),
            resources: vec![group_resources(
                "rbac.authorization.k8s.io",
                &["roles", "rolebindings"],
                &[],
            )],
            namespaces: strings(&["kube-system"]),
            ..PolicyRule::new(Level::RequestResponse)
        },
        PolicyRule {
            user_groups: strings(&["developers"]),
            non_resource_urls: strings(&["/logs*", "/healthz*", "/metrics", "*"]),
            ..PolicyRule::new(Level::Metadata)
        },
        PolicyRule {
            omit_stages: vec![RequestReceived],
            ..PolicyRule::new(Level::Metadata)
        },
    ]
}

#[test]
fn validation_accepts_upstream_success_cases() {
    let mut cases: Vec<Policy> = valid_rules()
        .into_iter()
        .map(|r| Policy {
            rules: vec![r],
            ..Policy::default()
        })
        .collect();
    cases.push(Policy::default());
    cases.push(Policy {
        omit_stages: vec![RequestReceived],
        ..Policy::default()
    });
    cases.push(Policy {
        rules: valid_rules(),
        ..Policy::default()
    });
    for (i, p) in cases.iter().enumerate() {
        assert_eq!(p.validate(), Ok(()), "case {i}");
    }
}

/// The invalid rules of `validation_test.go`, as YAML (levels and stages are typed in
/// [`PolicyRule`], so their bad values can only come from a document).
const INVALID_RULES: &[(&str, &str)] = &[
    ("{}", "rules[0].level"),
    (
        "{verbs: [get], resources: [{resources: [secrets]}], namespaces: [kube-system]}",
        "rules[0].level",
    ),
    ("{level: FooBar}", "rules[0].level"),
    (
        "{level: Metadata, namespaces: [default], nonResourceURLs: ['/logs*']}",
        "rules[0].nonResourceURLs",
    ),
    (
        "{level: Metadata, resources: [{resources: [secrets]}], nonResourceURLs: ['/logs*']}",
        "rules[0].nonResourceURLs",
    ),
    (
        "{level: Metadata, resources: [{group: rbac.authorization.k8s.io/v1beta1, resources: [roles]}]}",
        "rules[0].resources.group",
    ),
    (
        "{level: Metadata, nonResourceURLs: [logs, '/healthz*']}",
        "rules[0].nonResourceURLs[0]",
    ),
    (
        "{level: Metadata, nonResourceURLs: ['', '/healthz*']}",
        "rules[0].nonResourceURLs[0]",
    ),
    (
        "{level: Metadata, nonResourceURLs: ['/logs/*/*', /metrics]}",
        "rules[0].nonResourceURLs[0]",
    ),
    (
        "{level: Metadata, nonResourceURLs: ['/logs/*.log', /metrics]}",
        "rules[0].nonResourceURLs[0]",
    ),
    (
        "{level: Metadata, verbs: [get], resources: [{resourceNames: [leader]}], namespaces: [kube-system]}",
        "rules[0].resources.resourceNames",
    ),
    (
        "{level: Metadata, omitStages: [foo]}",
        "rules[0].omitStages[0]",
    ),
    ("{level: metadata}", "rules[0].level"),
    (
        "{level: Metadata, resources: [{group: Apps}]}",
        "rules[0].resources.group",
    ),
];

fn policy_doc(rules: &str, extra: &str) -> String {
    format!("apiVersion: audit.k8s.io/v1\nkind: Policy\n{extra}rules: [{rules}]\n")
}

#[test]
fn validation_refuses_upstream_error_cases_naming_the_field() {
    for (rule, path) in INVALID_RULES {
        let err = Policy::from_slice(policy_doc(rule, "").as_bytes()).unwrap_err();
        let PolicyError::Invalid(errs) = &err else {
            panic!("{rule}: want a validation error, got {err}");
        };
        assert!(
            errs.0.iter().any(|e| e.path == *path),
            "{rule}: want an error at {path}, got {errs}"
        );
    }
    // Multiple rules, the last one invalid.
    let err = Policy::from_slice(policy_doc("{level: Metadata}, {}", "").as_bytes()).unwrap_err();
    assert!(
        err.to_string().contains("rules[1].level: Required value"),
        "{err}"
    );
    // Invalid policy-wide omitStages.
    let err = Policy::from_slice(policy_doc("{level: Metadata}", "omitStages: [foo]\n").as_bytes())
        .unwrap_err();
    assert!(err.to_string().contains("omitStages[0]"), "{err}");
}

#[test]
fn validation_of_typed_policy_catches_structural_errors() {
    let bad = Policy {
        rules: vec![PolicyRule {
            non_resource_urls: strings(&["/logs*"]),
            namespaces: strings(&["default"]),
            ..PolicyRule::new(Level::Metadata)
        }],
        ..Policy::default()
    };
    let errs = bad.validate().unwrap_err();
    assert_eq!(errs.0.len(), 1);
    assert_eq!(errs.0[0].path, "rules[0].nonResourceURLs");
}

#[test]
fn dns_subdomain_check() {
    for ok in ["apps", "rbac.authorization.k8s.io", "a-b.c1", "0"] {
        assert!(validate::is_dns_subdomain(ok), "{ok}");
    }
    let long = "a".repeat(254);
    for bad in [
        "", "Apps", "a..b", "-a", "a-", "a_b", "rbac/v1", ".a", &long,
    ] {
        assert!(!validate::is_dns_subdomain(bad), "{bad}");
    }
}

#[test]
fn a_policy_without_user_rules_gives_every_user_the_verdict_of_no_user() {
    let user = tim();
    for (req, _, rules) in LEVEL_CASES {
        let evaluator = PolicyEvaluator::new(Policy {
            rules: rules.iter().map(|r| rule(r)).collect(),
            omit_stages: Vec::new(),
            omit_managed_fields: false,
        });
        let names_users = rules.iter().any(|r| {
            let r = rule(r);
            !r.users.is_empty() || !r.user_groups.is_empty()
        });
        assert_eq!(evaluator.depends_on_user(), names_users, "rules {rules:?}");
        if !names_users {
            let with_user = evaluator.evaluate(&attrs(req, &user));
            let without = evaluator.evaluate(&RequestAttributes {
                user: None,
                ..attrs(req, &user)
            });
            assert_eq!(with_user, without, "request {req}, rules {rules:?}");
        }
    }
}

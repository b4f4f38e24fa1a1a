//! RBAC semantics: a table of edge cases run against the index and the linear oracle alike, and a
//! property test that the two agree on random clusters.

use portcullis_api::{RequestInfo, ResourceRequest, UserInfo};
use proptest::prelude::*;
use serde_json::{Value, json};

use super::*;

fn role(kind: &str, ns: &str, name: &str, rules: Value) -> Value {
    json!({"kind": kind, "metadata": {"name": name, "namespace": ns}, "rules": rules})
}

fn binding(ns: &str, name: &str, role_kind: &str, role: &str, subjects: Value) -> Value {
    json!({"metadata": {"name": name, "namespace": ns},
           "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": role},
           "subjects": subjects})
}

fn user_subject(name: &str) -> Value {
    json!({"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": name})
}

fn group_subject(name: &str) -> Value {
    json!({"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": name})
}

fn sa_subject(ns: &str, name: &str) -> Value {
    json!({"kind": "ServiceAccount", "name": name, "namespace": ns})
}

fn fixture() -> Policy {
    let cr = |name: &str, rules: Value| role("ClusterRole", "", name, rules);
    let cluster_roles = vec![
        cr(
            "admin-all",
            json!([{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}, {"verbs": ["*"], "nonResourceURLs": ["*"]}]),
        ),
        cr(
            "pod-reader",
            json!([{"verbs": ["get", "list", "watch"], "apiGroups": [""], "resources": ["pods"]}]),
        ),
        cr(
            "pod-logs",
            json!([{"verbs": ["get"], "apiGroups": [""], "resources": ["pods/log"]}]),
        ),
        cr(
            "any-scale",
            json!([{"verbs": ["get", "update"], "apiGroups": ["*"], "resources": ["*/scale"]}]),
        ),
        cr(
            "named-cm",
            json!([{"verbs": ["get", "update", "list", "watch"], "apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["app-config"]}]),
        ),
        cr(
            "health",
            json!([{"verbs": ["get"], "nonResourceURLs": ["/healthz", "/api*", "/logs/*"]}]),
        ),
        cr(
            "deploy-edit",
            json!([{"verbs": ["*"], "apiGroups": ["apps"], "resources": ["deployments"]}]),
        ),
        cr(
            "upper-verb",
            json!([{"verbs": ["GET"], "apiGroups": [""], "resources": ["pods"]}]),
        ),
        cr(
            "star-sub",
            json!([{"verbs": ["get"], "apiGroups": [""], "resources": ["pods/*"]}]),
        ),
        cr(
            "nodes-reader",
            json!([{"verbs": ["get", "list"], "apiGroups": [""], "resources": ["nodes"]}]),
        ),
        cr(
            "impersonator",
            json!([{"verbs": ["impersonate"], "apiGroups": [""], "resources": ["users", "groups", "serviceaccounts"]},
                                  {"verbs": ["impersonate"], "apiGroups": ["authentication.k8s.io"], "resources": ["userextras/scopes", "uids"]}]),
        ),
        cr(
            "secrets-reader",
            json!([{"verbs": ["get"], "apiGroups": [""], "resources": ["secrets"]}]),
        ),
        cr(
            "ns-get",
            json!([{"verbs": ["get"], "apiGroups": [""], "resources": ["namespaces"]}]),
        ),
        cr(
            "no-verbs",
            json!([{"verbs": [], "apiGroups": ["*"], "resources": ["*"]}]),
        ),
        cr("null-rules", Value::Null),
    ];
    let roles = vec![
        role(
            "Role",
            "team",
            "team-cm",
            json!([{"verbs": ["get"], "apiGroups": [""], "resources": ["configmaps"]}]),
        ),
        role(
            "Role",
            "other",
            "other-role",
            json!([{"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods"]}]),
        ),
    ];
    let crb =
        |name: &str, role: &str, subjects: Value| binding("", name, "ClusterRole", role, subjects);
    let cluster_role_bindings = vec![
        crb("admins", "admin-all", json!([group_subject("ops")])),
        crb(
            "readers",
            "pod-reader",
            json!([user_subject("alice"), group_subject("viewers")]),
        ),
        crb(
            "health-all",
            "health",
            json!([group_subject("system:authenticated")]),
        ),
        crb("nodes", "nodes-reader", json!([user_subject("nora")])),
        crb(
            "sa-no-ns",
            "pod-reader",
            json!([{"kind": "ServiceAccount", "name": "robot"}]),
        ),
        crb(
            "sa-cluster",
            "secrets-reader",
            json!([sa_subject("kube-system", "bot")]),
        ),
        crb("broken", "ghost", json!([user_subject("gus")])),
        binding(
            "",
            "wrong-kind",
            "Role",
            "team-cm",
            json!([user_subject("wendy")]),
        ),
        crb("case", "upper-verb", json!([user_subject("carl")])),
        crb(
            "multi",
            "pod-reader",
            json!([group_subject("devs"), user_subject("dev1")]),
        ),
        crb("imp", "impersonator", json!([user_subject("imp")])),
        crb("empty", "no-verbs", json!([user_subject("eve")])),
        crb("nulls", "null-rules", json!([user_subject("eve")])),
        crb(
            "odd-kind",
            "pod-reader",
            json!([{"kind": "Robot", "name": "r2"}]),
        ),
    ];
    let rb = |ns: &str, name: &str, kind: &str, role: &str, subjects: Value| {
        binding(ns, name, kind, role, subjects)
    };
    let role_bindings = vec![
        rb(
            "team",
            "team-logs",
            "ClusterRole",
            "pod-logs",
            json!([user_subject("bob")]),
        ),
        rb(
            "team",
            "team-cm",
            "Role",
            "team-cm",
            json!([user_subject("bob"), {"kind": "ServiceAccount", "name": "builder"}]),
        ),
        rb(
            "team",
            "team-scale",
            "ClusterRole",
            "any-scale",
            json!([group_subject("scalers")]),
        ),
        rb(
            "team",
            "team-named",
            "ClusterRole",
            "named-cm",
            json!([user_subject("nina")]),
        ),
        rb(
            "team",
            "team-missing",
            "Role",
            "nope",
            json!([user_subject("gus")]),
        ),
        rb(
            "team",
            "team-nodes",
            "ClusterRole",
            "nodes-reader",
            json!([user_subject("bob")]),
        ),
        rb(
            "team",
            "team-deploy",
            "ClusterRole",
            "deploy-edit",
            json!([sa_subject("ci", "deployer")]),
        ),
        rb(
            "team",
            "team-other-role",
            "Role",
            "other-role",
            json!([user_subject("olga")]),
        ),
        rb(
            "other",
            "other-pods",
            "Role",
            "other-role",
            json!([user_subject("bob")]),
        ),
        rb(
            "team",
            "team-star-sub",
            "ClusterRole",
            "star-sub",
            json!([user_subject("sam")]),
        ),
        rb(
            "team",
            "zz-second",
            "ClusterRole",
            "pod-reader",
            json!([user_subject("dana")]),
        ),
        rb(
            "team",
            "aa-first",
            "ClusterRole",
            "pod-reader",
            json!([user_subject("dana")]),
        ),
        rb(
            "team",
            "team-ns",
            "ClusterRole",
            "ns-get",
            json!([user_subject("tom")]),
        ),
    ];
    fn parse<T: serde::de::DeserializeOwned>(v: Vec<Value>) -> Vec<T> {
        v.into_iter()
            .map(|o| serde_json::from_value(o).unwrap())
            .collect()
    }
    Policy {
        cluster_roles: parse(cluster_roles),
        roles: parse(roles),
        cluster_role_bindings: parse(cluster_role_bindings),
        role_bindings: parse(role_bindings),
    }
}

fn user(name: &str, groups: &[&str]) -> UserInfo {
    UserInfo {
        username: name.into(),
        groups: groups.iter().map(|g| (*g).to_owned()).collect(),
        ..UserInfo::default()
    }
}

fn http(method: &str, path: &str) -> RequestInfo {
    let (path, query) = match path.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path, None),
    };
    RequestInfo::parse(method, path, query).unwrap()
}

/// A resource request as a SubjectAccessReview states it.
fn attrs(verb: &str, group: &str, resource: &str, sub: &str, ns: &str, name: &str) -> RequestInfo {
    RequestInfo::Resource(ResourceRequest {
        verb: verb.into(),
        group: group.into(),
        resource: resource.into(),
        subresource: sub.into(),
        namespace: ns.into(),
        name: name.into(),
        version: "v1".into(),
        ..ResourceRequest::default()
    })
}

const SA: &str = "system:serviceaccount:";
const AUTH: &str = "system:authenticated";

/// (case, user, groups, request, expected reason; `None` = not allowed with an empty reason,
/// a reason starting with "RBAC: allowed" = allowed).
fn cases() -> Vec<(
    &'static str,
    String,
    Vec<&'static str>,
    RequestInfo,
    &'static str,
)> {
    let u = |s: &str| s.to_owned();
    vec![
        (
            "user subject allows list",
            u("alice"),
            vec![],
            http("GET", "/api/v1/namespaces/default/pods"),
            r#"RBAC: allowed by ClusterRoleBinding "readers" of ClusterRole "pod-reader" to User "alice""#,
        ),
        (
            "resource does not cover its subresource",
            u("alice"),
            vec![],
            http("GET", "/api/v1/namespaces/default/pods/p/log"),
            "",
        ),
        (
            "group subject allows watch across namespaces",
            u("v"),
            vec!["viewers"],
            http("GET", "/api/v1/pods?watch=true"),
            r#"RBAC: allowed by ClusterRoleBinding "readers" of ClusterRole "pod-reader" to Group "viewers""#,
        ),
        (
            "verb not in rule",
            u("alice"),
            vec![],
            http("POST", "/api/v1/namespaces/default/pods"),
            "",
        ),
        (
            "wildcards allow cluster-scoped delete",
            u("o"),
            vec!["ops"],
            http("DELETE", "/api/v1/nodes/n1"),
            r#"RBAC: allowed by ClusterRoleBinding "admins" of ClusterRole "admin-all" to Group "ops""#,
        ),
        (
            "wildcard non-resource url",
            u("o"),
            vec!["ops"],
            http("POST", "/metrics"),
            r#"RBAC: allowed by ClusterRoleBinding "admins" of ClusterRole "admin-all" to Group "ops""#,
        ),
        (
            "rolebinding to clusterrole grants in its namespace",
            u("bob"),
            vec![],
            http("GET", "/api/v1/namespaces/team/pods/p/log"),
            r#"RBAC: allowed by RoleBinding "team-logs/team" of ClusterRole "pod-logs" to User "bob""#,
        ),
        (
            "rolebinding grants nothing elsewhere",
            u("bob"),
            vec![],
            http("GET", "/api/v1/namespaces/default/pods/p/log"),
            "",
        ),
        (
            "subresource rule does not cover the resource",
            u("bob"),
            vec![],
            http("GET", "/api/v1/namespaces/team/pods/p"),
            "",
        ),
        (
            "rolebinding to role",
            u("bob"),
            vec![],
            http("GET", "/api/v1/namespaces/team/configmaps/c"),
            r#"RBAC: allowed by RoleBinding "team-cm/team" of Role "team-cm" to User "bob""#,
        ),
        (
            "service account defaults to the binding namespace",
            format!("{SA}team:builder"),
            vec![],
            http("GET", "/api/v1/namespaces/team/configmaps/c"),
            r#"RBAC: allowed by RoleBinding "team-cm/team" of Role "team-cm" to ServiceAccount "builder/team""#,
        ),
        (
            "service account of another namespace",
            format!("{SA}default:builder"),
            vec![],
            http("GET", "/api/v1/namespaces/team/configmaps/c"),
            "",
        ),
        (
            "a user named like a service account is not one",
            u("builder"),
            vec![],
            http("GET", "/api/v1/namespaces/team/configmaps/c"),
            "",
        ),
        (
            "star slash subresource allows scale",
            u("s"),
            vec!["scalers"],
            http("PUT", "/apis/apps/v1/namespaces/team/deployments/d/scale"),
            r#"RBAC: allowed by RoleBinding "team-scale/team" of ClusterRole "any-scale" to Group "scalers""#,
        ),
        (
            "star slash subresource does not cover the resource",
            u("s"),
            vec!["scalers"],
            http("GET", "/apis/apps/v1/namespaces/team/deployments/d"),
            "",
        ),
        (
            "star slash subresource covers any group",
            u("s"),
            vec!["scalers"],
            http("GET", "/apis/apps/v1/namespaces/team/statefulsets/x/scale"),
            r#"RBAC: allowed by RoleBinding "team-scale/team" of ClusterRole "any-scale" to Group "scalers""#,
        ),
        (
            "star slash scale is not status",
            u("s"),
            vec!["scalers"],
            http("GET", "/apis/apps/v1/namespaces/team/replicasets/x/status"),
            "",
        ),
        (
            "resource name allows get",
            u("nina"),
            vec![],
            http("GET", "/api/v1/namespaces/team/configmaps/app-config"),
            r#"RBAC: allowed by RoleBinding "team-named/team" of ClusterRole "named-cm" to User "nina""#,
        ),
        (
            "resource name denies other names",
            u("nina"),
            vec![],
            http("GET", "/api/v1/namespaces/team/configmaps/other"),
            "",
        ),
        (
            "resource name denies plain list",
            u("nina"),
            vec![],
            http("GET", "/api/v1/namespaces/team/configmaps"),
            "",
        ),
        (
            "field selector on name allows list",
            u("nina"),
            vec![],
            http(
                "GET",
                "/api/v1/namespaces/team/configmaps?fieldSelector=metadata.name%3Dapp-config",
            ),
            r#"RBAC: allowed by RoleBinding "team-named/team" of ClusterRole "named-cm" to User "nina""#,
        ),
        (
            "field selector on name allows watch",
            u("nina"),
            vec![],
            http(
                "GET",
                "/api/v1/namespaces/team/configmaps?watch=1&fieldSelector=metadata.name%3D%3Dapp-config",
            ),
            r#"RBAC: allowed by RoleBinding "team-named/team" of ClusterRole "named-cm" to User "nina""#,
        ),
        (
            "resource name never allows create by post",
            u("nina"),
            vec![],
            http("POST", "/api/v1/namespaces/team/configmaps"),
            "",
        ),
        (
            "a compound field selector names nothing",
            u("nina"),
            vec![],
            http(
                "GET",
                "/api/v1/namespaces/team/configmaps?fieldSelector=metadata.name%3Dapp-config,metadata.namespace%3Dteam",
            ),
            "",
        ),
        (
            "exact non-resource url",
            u("x"),
            vec![AUTH],
            http("GET", "/healthz"),
            r#"RBAC: allowed by ClusterRoleBinding "health-all" of ClusterRole "health" to Group "system:authenticated""#,
        ),
        (
            "exact url is not a prefix",
            u("x"),
            vec![AUTH],
            http("GET", "/healthz/etcd"),
            "",
        ),
        (
            "prefix url covers a longer word",
            u("x"),
            vec![AUTH],
            http("GET", "/apis"),
            r#"RBAC: allowed by ClusterRoleBinding "health-all" of ClusterRole "health" to Group "system:authenticated""#,
        ),
        (
            "prefix url covers sub paths",
            u("x"),
            vec![AUTH],
            http("GET", "/api/v1"),
            r#"RBAC: allowed by ClusterRoleBinding "health-all" of ClusterRole "health" to Group "system:authenticated""#,
        ),
        (
            "slash star prefix does not cover the bare path",
            u("x"),
            vec![AUTH],
            http("GET", "/logs"),
            "",
        ),
        (
            "slash star prefix covers below",
            u("x"),
            vec![AUTH],
            http("GET", "/logs/kubelet.log"),
            r#"RBAC: allowed by ClusterRoleBinding "health-all" of ClusterRole "health" to Group "system:authenticated""#,
        ),
        (
            "non-resource verb is the method",
            u("x"),
            vec![AUTH],
            http("POST", "/healthz"),
            "",
        ),
        (
            "head is not get for non-resource paths",
            u("x"),
            vec![AUTH],
            http("HEAD", "/healthz"),
            "",
        ),
        (
            "cluster-scoped resource by clusterrolebinding",
            u("nora"),
            vec![],
            http("GET", "/api/v1/nodes/n1"),
            r#"RBAC: allowed by ClusterRoleBinding "nodes" of ClusterRole "nodes-reader" to User "nora""#,
        ),
        (
            "rolebinding never grants cluster-scoped requests",
            u("bob"),
            vec![],
            http("GET", "/api/v1/nodes/n1"),
            "",
        ),
        (
            "role of another namespace through its own binding",
            u("bob"),
            vec![],
            http("GET", "/api/v1/namespaces/other/pods"),
            r#"RBAC: allowed by RoleBinding "other-pods/other" of Role "other-role" to User "bob""#,
        ),
        (
            "service account subject without namespace in a clusterrolebinding never applies",
            format!("{SA}default:robot"),
            vec![],
            http("GET", "/api/v1/namespaces/default/pods"),
            "",
        ),
        (
            "service account subject with namespace in a clusterrolebinding",
            format!("{SA}kube-system:bot"),
            vec![],
            http("GET", "/api/v1/namespaces/default/secrets/s"),
            r#"RBAC: allowed by ClusterRoleBinding "sa-cluster" of ClusterRole "secrets-reader" to ServiceAccount "bot/kube-system""#,
        ),
        (
            "service account match needs the namespace",
            format!("{SA}default:bot"),
            vec![],
            http("GET", "/api/v1/namespaces/default/secrets/s"),
            "",
        ),
        (
            "missing clusterrole is reported",
            u("gus"),
            vec![],
            http("GET", "/api/v1/namespaces/default/pods"),
            r#"RBAC: clusterrole.rbac.authorization.k8s.io "ghost" not found"#,
        ),
        (
            "several errors are aggregated",
            u("gus"),
            vec![],
            http("GET", "/api/v1/namespaces/team/pods"),
            r#"RBAC: [clusterrole.rbac.authorization.k8s.io "ghost" not found, role.rbac.authorization.k8s.io "nope" not found]"#,
        ),
        (
            "clusterrolebinding to a role is unsupported",
            u("wendy"),
            vec![],
            http("GET", "/api/v1/namespaces/team/configmaps/c"),
            r#"RBAC: unsupported role reference kind: "Role""#,
        ),
        (
            "verbs are case sensitive",
            u("carl"),
            vec![],
            http("GET", "/api/v1/namespaces/default/pods/p"),
            "",
        ),
        (
            "role of another namespace is not found",
            u("olga"),
            vec![],
            http("GET", "/api/v1/namespaces/team/pods"),
            r#"RBAC: role.rbac.authorization.k8s.io "other-role" not found"#,
        ),
        (
            "service account from another namespace named in the subject",
            format!("{SA}ci:deployer"),
            vec![],
            http("PATCH", "/apis/apps/v1/namespaces/team/deployments/d"),
            r#"RBAC: allowed by RoleBinding "team-deploy/team" of ClusterRole "deploy-edit" to ServiceAccount "deployer/ci""#,
        ),
        (
            "that service account gets nothing in its own namespace",
            format!("{SA}ci:deployer"),
            vec![],
            http("GET", "/apis/apps/v1/namespaces/ci/deployments/d"),
            "",
        ),
        (
            "pods slash star is literal",
            u("sam"),
            vec![],
            http("GET", "/api/v1/namespaces/team/pods/p/log"),
            "",
        ),
        (
            "bindings are visited by name",
            u("dana"),
            vec![],
            http("GET", "/api/v1/namespaces/team/pods"),
            r#"RBAC: allowed by RoleBinding "aa-first/team" of ClusterRole "pod-reader" to User "dana""#,
        ),
        (
            "the first applicable subject is named",
            u("dev1"),
            vec!["devs"],
            http("GET", "/api/v1/namespaces/x/pods"),
            r#"RBAC: allowed by ClusterRoleBinding "multi" of ClusterRole "pod-reader" to Group "devs""#,
        ),
        (
            "a later subject applies alone",
            u("dev1"),
            vec![],
            http("GET", "/api/v1/namespaces/x/pods"),
            r#"RBAC: allowed by ClusterRoleBinding "multi" of ClusterRole "pod-reader" to User "dev1""#,
        ),
        (
            "no bindings no reason",
            u("nobody"),
            vec![AUTH],
            http("GET", "/api/v1/namespaces/default/pods"),
            "",
        ),
        (
            "unauthenticated gets nothing",
            u("system:anonymous"),
            vec!["system:unauthenticated"],
            http("GET", "/api/v1/namespaces/default/pods"),
            "",
        ),
        (
            "wildcards allow creating namespaces",
            u("o"),
            vec!["ops"],
            http("POST", "/api/v1/namespaces"),
            r#"RBAC: allowed by ClusterRoleBinding "admins" of ClusterRole "admin-all" to Group "ops""#,
        ),
        (
            "groups are case sensitive",
            u("o"),
            vec!["Ops"],
            http("POST", "/api/v1/namespaces"),
            "",
        ),
        (
            "api group must match",
            u("alice"),
            vec![],
            http("GET", "/apis/apps/v1/namespaces/default/deployments"),
            "",
        ),
        (
            "clusterrolebinding applies in every namespace",
            u("alice"),
            vec![],
            http("GET", "/api/v1/namespaces/kube-system/pods"),
            r#"RBAC: allowed by ClusterRoleBinding "readers" of ClusterRole "pod-reader" to User "alice""#,
        ),
        (
            "star resources cover subresources",
            u("o"),
            vec!["ops"],
            http("GET", "/api/v1/namespaces/default/pods/p/exec"),
            r#"RBAC: allowed by ClusterRoleBinding "admins" of ClusterRole "admin-all" to Group "ops""#,
        ),
        (
            "a namespace is readable through a rolebinding inside it",
            u("tom"),
            vec![],
            http("GET", "/api/v1/namespaces/team"),
            r#"RBAC: allowed by RoleBinding "team-ns/team" of ClusterRole "ns-get" to User "tom""#,
        ),
        (
            "but not another namespace",
            u("tom"),
            vec![],
            http("GET", "/api/v1/namespaces/other"),
            "",
        ),
        (
            "nor the list of namespaces",
            u("tom"),
            vec![],
            http("GET", "/api/v1/namespaces"),
            "",
        ),
        (
            "impersonate users",
            u("imp"),
            vec![],
            attrs("impersonate", "", "users", "", "", "alice"),
            r#"RBAC: allowed by ClusterRoleBinding "imp" of ClusterRole "impersonator" to User "imp""#,
        ),
        (
            "impersonate a service account in its namespace",
            u("imp"),
            vec![],
            attrs("impersonate", "", "serviceaccounts", "", "team", "builder"),
            r#"RBAC: allowed by ClusterRoleBinding "imp" of ClusterRole "impersonator" to User "imp""#,
        ),
        (
            "impersonate extras by subresource",
            u("imp"),
            vec![],
            attrs(
                "impersonate",
                "authentication.k8s.io",
                "userextras",
                "scopes",
                "",
                "view",
            ),
            r#"RBAC: allowed by ClusterRoleBinding "imp" of ClusterRole "impersonator" to User "imp""#,
        ),
        (
            "impersonate other extras is not granted",
            u("imp"),
            vec![],
            attrs(
                "impersonate",
                "authentication.k8s.io",
                "userextras",
                "other",
                "",
                "v",
            ),
            "",
        ),
        (
            "impersonate uids",
            u("imp"),
            vec![],
            attrs(
                "impersonate",
                "authentication.k8s.io",
                "uids",
                "",
                "",
                "1234",
            ),
            r#"RBAC: allowed by ClusterRoleBinding "imp" of ClusterRole "impersonator" to User "imp""#,
        ),
        (
            "impersonate needs the verb",
            u("alice"),
            vec![],
            attrs("impersonate", "", "users", "", "", "bob"),
            "",
        ),
        (
            "impersonate groups in the wrong api group",
            u("imp"),
            vec![],
            attrs(
                "impersonate",
                "authentication.k8s.io",
                "groups",
                "",
                "",
                "g",
            ),
            "",
        ),
        (
            "a rule without verbs allows nothing",
            u("eve"),
            vec![],
            http("GET", "/api/v1/namespaces/default/pods"),
            "",
        ),
        (
            "escalate is a verb like any other",
            u("o"),
            vec!["ops"],
            attrs(
                "escalate",
                "rbac.authorization.k8s.io",
                "roles",
                "",
                "team",
                "r",
            ),
            r#"RBAC: allowed by ClusterRoleBinding "admins" of ClusterRole "admin-all" to Group "ops""#,
        ),
        (
            "star groups cover unknown groups",
            u("o"),
            vec!["ops"],
            attrs("list", "widgets.example.com", "widgets", "", "default", ""),
            r#"RBAC: allowed by ClusterRoleBinding "admins" of ClusterRole "admin-all" to Group "ops""#,
        ),
        (
            "unknown subject kinds never apply",
            u("r2"),
            vec![],
            http("GET", "/api/v1/namespaces/default/pods"),
            "",
        ),
    ]
}

#[test]
fn index_and_linear_walk_agree_on_every_edge_case() {
    let policy = fixture();
    let snapshot = Snapshot::build(&policy);
    let cases = cases();
    assert!(cases.len() >= 60, "{} cases", cases.len());
    let mut failures = Vec::new();
    for (name, username, groups, request, want) in cases {
        let u = user(&username, &groups);
        let indexed = snapshot.authorize(&u, &request);
        let linear = reference::authorize(&policy, &u, &request);
        let want_allowed = want.starts_with("RBAC: allowed");
        if indexed.is_allowed() != want_allowed || indexed.reason() != want {
            failures.push(format!(
                "{name}\n    expected: {} {want:?}\n    index:    {} {:?}",
                if want_allowed { "allow" } else { "deny" },
                if indexed.is_allowed() {
                    "allow"
                } else {
                    "deny"
                },
                indexed.reason()
            ));
        }
        if indexed != linear {
            failures.push(format!(
                "{name}\n    index:  {indexed:?}\n    linear: {linear:?}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn rules_for_lists_every_applicable_rule_and_the_errors() {
    let snapshot = Snapshot::build(&fixture());
    let (rules, errors) = snapshot.rules_for(&user("bob", &[AUTH]), "team");
    assert!(rules.iter().any(|r| r.resources == ["pods/log"]));
    assert!(rules.iter().any(|r| r.resources == ["configmaps"]));
    assert!(
        rules
            .iter()
            .any(|r| r.non_resource_urls.contains(&"/healthz".to_owned()))
    );
    assert!(
        !rules
            .iter()
            .any(|r| r.resources == ["pods"] && r.verbs.contains(&"list".to_owned())),
        "other-pods lives in `other`"
    );
    assert!(errors.is_empty());
    let (_, errors) = snapshot.rules_for(&user("gus", &[]), "team");
    assert_eq!(errors.len(), 2);
}

// === differential property test ===

const NAMES: &[&str] = &["a", "b", "c"];
const VERBS: &[&str] = &["get", "list", "*", "GET", "create"];
const GROUPS: &[&str] = &["", "apps", "*"];
const RESOURCES: &[&str] = &[
    "pods",
    "pods/log",
    "*",
    "*/scale",
    "deployments",
    "deployments/scale",
    "pods/*",
];
const URLS: &[&str] = &["/healthz", "/api*", "*", "/logs/*"];
const NAMESPACES: &[&str] = &["", "n1", "n2"];

fn pick(options: &'static [&'static str]) -> impl Strategy<Value = String> {
    prop::sample::select(options).prop_map(str::to_owned)
}

fn rule() -> impl Strategy<Value = PolicyRule> {
    prop_oneof![
        (
            prop::collection::vec(pick(VERBS), 0..3),
            prop::collection::vec(pick(GROUPS), 1..2),
            prop::collection::vec(pick(RESOURCES), 1..3),
            prop::collection::vec(pick(NAMES), 0..2)
        )
            .prop_map(
                |(verbs, api_groups, resources, resource_names)| PolicyRule {
                    verbs,
                    api_groups,
                    resources,
                    resource_names,
                    ..PolicyRule::default()
                }
            ),
        (
            prop::collection::vec(pick(VERBS), 1..3),
            prop::collection::vec(pick(URLS), 1..3)
        )
            .prop_map(|(verbs, non_resource_urls)| PolicyRule {
                verbs,
                non_resource_urls,
                ..PolicyRule::default()
            }),
    ]
}

fn subject() -> impl Strategy<Value = Subject> {
    (
        pick(&["User", "Group", "ServiceAccount", "Other"]),
        pick(NAMES),
        pick(NAMESPACES),
    )
        .prop_map(|(kind, name, namespace)| Subject {
            kind,
            name,
            namespace,
            ..Subject::default()
        })
}

fn policy() -> impl Strategy<Value = Policy> {
    let roles = prop::collection::vec(
        (
            pick(NAMES),
            pick(NAMESPACES),
            prop::collection::vec(rule(), 0..3),
        ),
        0..6,
    );
    let bindings = prop::collection::vec(
        (
            pick(NAMES),
            pick(NAMESPACES),
            pick(&["Role", "ClusterRole", "Bogus"]),
            pick(NAMES),
            prop::collection::vec(subject(), 0..3),
        ),
        0..10,
    );
    (roles, bindings).prop_map(|(roles, bindings)| {
        let mut p = Policy::default();
        let mut seen = std::collections::HashSet::new();
        for (name, ns, rules) in roles {
            // Names are unique per namespace in a real cluster.
            if !seen.insert((name.clone(), ns.clone())) {
                continue;
            }
            let r = Role {
                metadata: types::Meta {
                    name,
                    namespace: ns.clone(),
                },
                rules,
            };
            if ns.is_empty() {
                p.cluster_roles.push(r)
            } else {
                p.roles.push(r)
            }
        }
        for (i, (name, ns, kind, role, subjects)) in bindings.into_iter().enumerate() {
            // Unique binding names keep the visiting order total.
            let b = RoleBinding {
                metadata: types::Meta {
                    name: format!("{name}{i}"),
                    namespace: ns.clone(),
                },
                subjects,
                role_ref: RoleRef {
                    api_group: "rbac.authorization.k8s.io".into(),
                    kind,
                    name: role,
                },
            };
            if ns.is_empty() {
                p.cluster_role_bindings.push(b)
            } else {
                p.role_bindings.push(b)
            }
        }
        p
    })
}

fn request() -> impl Strategy<Value = RequestInfo> {
    prop_oneof![
        (
            pick(&["get", "list", "create", "GET"]),
            pick(&["", "apps"]),
            pick(&["pods", "deployments"]),
            pick(&["", "log", "scale"]),
            pick(NAMESPACES),
            pick(&["", "a", "b"])
        )
            .prop_map(|(verb, group, resource, sub, ns, name)| attrs(
                &verb, &group, &resource, &sub, &ns, &name
            )),
        (
            pick(&["get", "post"]),
            pick(&["/healthz", "/apis", "/logs", "/logs/x", "/other"])
        )
            .prop_map(|(verb, path)| RequestInfo::NonResource { verb, path }),
    ]
}

fn any_user() -> impl Strategy<Value = UserInfo> {
    (
        pick(&[
            "a",
            "b",
            "system:serviceaccount:n1:a",
            "system:serviceaccount:n2:b",
        ]),
        prop::collection::vec(pick(NAMES), 0..3),
    )
        .prop_map(|(username, groups)| UserInfo {
            username,
            groups,
            ..UserInfo::default()
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]
    #[test]
    fn index_decides_exactly_like_the_linear_walk(p in policy(), u in any_user(), r in request()) {
        let snapshot = Snapshot::build(&p);
        prop_assert_eq!(snapshot.authorize(&u, &r), reference::authorize(&p, &u, &r));
    }
}

//! The bootstrap RBAC policy: the ClusterRoles and ClusterRoleBindings that
//! kube-apiserver creates on first start, kept here as data.
//!
//! # What is in it
//!
//! `bootstrap-policy.json`, compiled into the binary, holds complete
//! `rbac.authorization.k8s.io/v1` objects for the user-facing part of the
//! upstream policy: `cluster-admin`, `admin`, `edit`, `view`, the three
//! `system:aggregate-to-*` roles, `system:discovery`,
//! `system:public-info-viewer`, `system:basic-user`, `system:monitoring`,
//! `system:service-account-issuer-discovery` and `system:auth-delegator`,
//! plus the ClusterRoleBindings upstream creates for them. Each list is
//! sorted by name; the rules of each role are in upstream order, and the
//! strings inside a rule are sorted, as the API server stores them.
//!
//! The control-plane roles (the `system:controller:*` roles, `system:node`,
//! `system:kube-scheduler`, `system:kube-controller-manager`, the certificate
//! approvers and the like) are deliberately not included.
//!
//! # Which upstream release
//!
//! The data mirrors Kubernetes v1.36 with its default feature gates, i.e. the
//! objects in `plugin/pkg/auth/authorizer/rbac/bootstrappolicy/testdata/` of
//! that release. Release-specific rules: `events.k8s.io` events in
//! `system:aggregate-to-view`/`-edit`, `resource.k8s.io` claims (DRA is GA),
//! `/statusz` (the `ComponentStatusz` gate is on by default since v1.36) and
//! `nodes/metrics` in `system:monitoring`. When moving to another release,
//! regenerate the JSON from that release's testdata and update this paragraph.
//!
//! # Aggregated roles
//!
//! `admin`, `edit` and `view` carry an `aggregationRule` and an empty `rules`
//! list. Upstream's fixture shows them with `rules: null`; an empty list is
//! the same thing on the wire and keeps typed deserialisers happy. The
//! aggregation controller owns their rules: it fills them with the union of
//! the rules of every ClusterRole whose labels match a selector (`view`
//! itself aggregates into `edit`, and `edit` into `admin`).
//!
//! # Reconciliation and `rbac.authorization.kubernetes.io/autoupdate`
//!
//! Every object carries the label `kubernetes.io/bootstrapping: rbac-defaults`
//! and the annotation `rbac.authorization.kubernetes.io/autoupdate: "true"`.
//! At every start-up, kube-apiserver reconciles the stored objects against
//! this policy, and ours should do the same:
//!
//! * an object that does not exist is created as given here;
//! * an existing object whose annotation is `"false"` belongs to the cluster
//!   administrator and is left exactly as it is;
//! * otherwise the stored object is only ever widened, never narrowed:
//!   missing labels and annotations are added (values already stored win),
//!   rules the stored role does not cover are appended, missing
//!   `aggregationRule` selectors are added, missing subjects are added to a
//!   binding. Extra rules and subjects someone added are kept, and the
//!   `rules` of an aggregated role are left to the aggregation controller;
//! * a binding whose `roleRef` differs cannot be updated in place (the field
//!   is immutable), so it is deleted and created again.

use serde_json::Value;

/// The policy document, as shipped next to this file.
const POLICY_JSON: &str = include_str!("bootstrap-policy.json");

/// The bootstrap ClusterRoles and ClusterRoleBindings, each a complete
/// `rbac.authorization.k8s.io/v1` object as JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct BootstrapPolicy {
    /// The ClusterRoles, sorted by name.
    pub cluster_roles: Vec<Value>,
    /// The ClusterRoleBindings, sorted by name.
    pub cluster_role_bindings: Vec<Value>,
}

/// The bootstrap ClusterRoles and ClusterRoleBindings kube-apiserver creates, as JSON objects.
///
/// # Errors
///
/// Returns an error if the embedded document is not valid JSON or lacks the
/// `clusterRoles` or `clusterRoleBindings` array. The document is compiled
/// in and covered by this module's tests, so that is a build defect rather
/// than a runtime condition.
pub fn policy() -> Result<BootstrapPolicy, serde_json::Error> {
    parse(POLICY_JSON)
}

/// Splits a policy document into its two lists.
fn parse(json: &str) -> Result<BootstrapPolicy, serde_json::Error> {
    let mut document: serde_json::Map<String, Value> = serde_json::from_str(json)?;
    // A missing key becomes `null`, which fails to convert with a clear error.
    let mut list = |key: &str| serde_json::from_value(document.remove(key).unwrap_or(Value::Null));
    Ok(BootstrapPolicy {
        cluster_roles: list("clusterRoles")?,
        cluster_role_bindings: list("clusterRoleBindings")?,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde_json::{Value, json};

    use super::{BootstrapPolicy, parse, policy};

    const BOOTSTRAP_LABEL: &str = "kubernetes.io/bootstrapping";
    const AUTOUPDATE: &str = "rbac.authorization.kubernetes.io/autoupdate";
    const GROUP: &str = "rbac.authorization.k8s.io";

    fn load() -> BootstrapPolicy {
        policy().expect("the embedded bootstrap policy parses")
    }

    fn name(object: &Value) -> &str {
        object["metadata"]["name"]
            .as_str()
            .expect("every object has a name")
    }

    fn find<'a>(objects: &'a [Value], wanted: &str) -> &'a Value {
        objects
            .iter()
            .find(|o| name(o) == wanted)
            .unwrap_or_else(|| panic!("{wanted} is in the policy"))
    }

    fn strings(value: &Value) -> Vec<&str> {
        value
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .map(|s| s.as_str().expect("a string"))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn rules(role: &Value) -> &[Value] {
        role["rules"].as_array().expect("rules is an array")
    }

    fn all_objects(policy: &BootstrapPolicy) -> impl Iterator<Item = &Value> {
        policy
            .cluster_roles
            .iter()
            .chain(&policy.cluster_role_bindings)
    }

    #[test]
    fn parses_with_the_expected_counts() {
        let policy = load();
        assert_eq!(policy.cluster_roles.len(), 13);
        assert_eq!(policy.cluster_role_bindings.len(), 6);
    }

    #[test]
    fn a_document_missing_a_list_is_an_error() {
        assert!(parse(r#"{"clusterRoles": []}"#).is_err());
        assert!(parse(r#"{"clusterRoleBindings": []}"#).is_err());
        assert!(parse(r#"{"clusterRoles": {}, "clusterRoleBindings": []}"#).is_err());
        assert!(parse("not json").is_err());
        let empty = parse(r#"{"clusterRoles": [], "clusterRoleBindings": []}"#).expect("valid");
        assert!(empty.cluster_roles.is_empty() && empty.cluster_role_bindings.is_empty());
    }

    #[test]
    fn objects_are_complete_rbac_v1_objects() {
        let policy = load();
        for role in &policy.cluster_roles {
            assert_eq!(
                role["apiVersion"],
                "rbac.authorization.k8s.io/v1",
                "{}",
                name(role)
            );
            assert_eq!(role["kind"], "ClusterRole", "{}", name(role));
            assert!(role["rules"].is_array(), "{} has a rules array", name(role));
        }
        for binding in &policy.cluster_role_bindings {
            assert_eq!(binding["apiVersion"], "rbac.authorization.k8s.io/v1");
            assert_eq!(binding["kind"], "ClusterRoleBinding");
            assert!(
                !subjects(binding).is_empty(),
                "{} has subjects",
                name(binding)
            );
        }
    }

    fn subjects(binding: &Value) -> Vec<(&str, &str, &str)> {
        binding["subjects"]
            .as_array()
            .expect("subjects is an array")
            .iter()
            .map(|s| {
                (
                    s["apiGroup"].as_str().expect("apiGroup"),
                    s["kind"].as_str().expect("kind"),
                    s["name"].as_str().expect("name"),
                )
            })
            .collect()
    }

    #[test]
    fn every_object_has_the_bootstrap_label_and_autoupdate_annotation() {
        let policy = load();
        for object in all_objects(&policy) {
            assert_eq!(
                object["metadata"]["labels"][BOOTSTRAP_LABEL],
                "rbac-defaults",
                "{}",
                name(object)
            );
            assert_eq!(
                object["metadata"]["annotations"][AUTOUPDATE],
                "true",
                "{}",
                name(object)
            );
        }
    }

    #[test]
    fn names_are_unique_and_sorted() {
        let policy = load();
        for list in [&policy.cluster_roles, &policy.cluster_role_bindings] {
            let names: Vec<&str> = list.iter().map(name).collect();
            let mut sorted = names.clone();
            sorted.sort_unstable();
            sorted.dedup();
            assert_eq!(names, sorted, "names are strictly increasing");
        }
    }

    #[test]
    fn every_binding_refers_to_a_cluster_role_in_the_policy() {
        let policy = load();
        let roles: BTreeSet<&str> = policy.cluster_roles.iter().map(name).collect();
        for binding in &policy.cluster_role_bindings {
            let role_ref = &binding["roleRef"];
            assert_eq!(role_ref["apiGroup"], GROUP, "{}", name(binding));
            assert_eq!(role_ref["kind"], "ClusterRole", "{}", name(binding));
            let target = role_ref["name"].as_str().expect("roleRef.name");
            assert!(
                roles.contains(target),
                "{} refers to unknown role {target}",
                name(binding)
            );
        }
    }

    #[test]
    fn bindings_grant_the_upstream_groups() {
        let policy = load();
        let expected: [(&str, &[&str]); 6] = [
            ("cluster-admin", &["system:masters"]),
            ("system:basic-user", &["system:authenticated"]),
            ("system:discovery", &["system:authenticated"]),
            ("system:monitoring", &["system:monitoring"]),
            (
                "system:public-info-viewer",
                &["system:authenticated", "system:unauthenticated"],
            ),
            (
                "system:service-account-issuer-discovery",
                &["system:serviceaccounts"],
            ),
        ];
        for (binding_name, groups) in expected {
            let binding = find(&policy.cluster_role_bindings, binding_name);
            assert_eq!(binding["roleRef"]["name"], binding_name);
            let subjects = subjects(binding);
            let wanted: Vec<(&str, &str, &str)> =
                groups.iter().map(|g| (GROUP, "Group", *g)).collect();
            assert_eq!(subjects, wanted, "{binding_name}");
        }
    }

    #[test]
    fn rules_are_well_formed() {
        let policy = load();
        for role in &policy.cluster_roles {
            for rule in rules(role) {
                assert!(
                    !strings(&rule["verbs"]).is_empty(),
                    "{}: a rule without verbs",
                    name(role)
                );
                let resource_rule = rule.get("resources").is_some();
                let url_rule = rule.get("nonResourceURLs").is_some();
                assert!(
                    resource_rule != url_rule,
                    "{}: {rule} mixes or lacks rule kinds",
                    name(role)
                );
                if resource_rule {
                    assert!(
                        rule.get("apiGroups").is_some(),
                        "{}: {rule} lacks apiGroups",
                        name(role)
                    );
                }
            }
        }
    }

    #[test]
    fn cluster_admin_can_do_everything() {
        let policy = load();
        let role = find(&policy.cluster_roles, "cluster-admin");
        assert_eq!(
            rules(role),
            [
                json!({"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}),
                json!({"nonResourceURLs": ["*"], "verbs": ["*"]}),
            ]
        );
    }

    #[test]
    fn public_info_viewer_grants_get_on_exactly_the_public_paths() {
        let policy = load();
        let role = find(&policy.cluster_roles, "system:public-info-viewer");
        assert_eq!(
            rules(role),
            [json!({
                "nonResourceURLs": ["/healthz", "/livez", "/readyz", "/version", "/version/"],
                "verbs": ["get"],
            })]
        );
    }

    #[test]
    fn aggregated_roles_carry_selectors_and_empty_rules() {
        let policy = load();
        for (role_name, selector) in [
            ("admin", "aggregate-to-admin"),
            ("edit", "aggregate-to-edit"),
            ("view", "aggregate-to-view"),
        ] {
            let role = find(&policy.cluster_roles, role_name);
            let key = format!("{GROUP}/{selector}");
            assert_eq!(
                role["aggregationRule"],
                json!({"clusterRoleSelectors": [{"matchLabels": {key.as_str(): "true"}}]}),
                "{role_name}"
            );
            assert!(
                rules(role).is_empty(),
                "{role_name} leaves its rules to the controller"
            );
            // Each selector has a bootstrap role feeding it.
            let feeder = find(&policy.cluster_roles, &format!("system:{selector}"));
            assert_eq!(feeder["metadata"]["labels"][key.as_str()], "true");
            assert!(feeder.get("aggregationRule").is_none());
        }
    }

    #[test]
    fn view_aggregates_into_edit_and_edit_into_admin() {
        let policy = load();
        let labels = |role: &str| find(&policy.cluster_roles, role)["metadata"]["labels"].clone();
        assert_eq!(
            labels("view")["rbac.authorization.k8s.io/aggregate-to-edit"],
            "true"
        );
        assert_eq!(
            labels("edit")["rbac.authorization.k8s.io/aggregate-to-admin"],
            "true"
        );
        assert!(
            labels("admin")
                .get("rbac.authorization.k8s.io/aggregate-to-admin")
                .is_none()
        );
    }

    #[test]
    fn aggregate_to_view_does_not_grant_secrets() {
        let policy = load();
        let role = find(&policy.cluster_roles, "system:aggregate-to-view");
        assert!(!rules(role).is_empty());
        for rule in rules(role) {
            let resources = strings(&rule["resources"]);
            assert!(
                !resources.contains(&"secrets"),
                "view must not read secrets: {rule}"
            );
            assert!(
                !resources.contains(&"*"),
                "view must not use wildcards: {rule}"
            );
            assert_eq!(
                strings(&rule["verbs"]),
                ["get", "list", "watch"],
                "view is read-only: {rule}"
            );
        }
    }

    #[test]
    fn strings_within_a_rule_are_sorted_as_stored() {
        let policy = load();
        for role in &policy.cluster_roles {
            for rule in rules(role) {
                for field in [
                    "apiGroups",
                    "resources",
                    "verbs",
                    "nonResourceURLs",
                    "resourceNames",
                ] {
                    let values = strings(&rule[field]);
                    let mut sorted = values.clone();
                    sorted.sort_unstable();
                    assert_eq!(values, sorted, "{}: {field} of {rule}", name(role));
                }
            }
        }
    }
}

//! Tests: objects built and encoded with k8s-pb's prost types (an independent encoder), wrapped
//! in the magic and `runtime.Unknown`, decoded, and compared with the JSON kube-apiserver gives.

use std::collections::BTreeMap;

use k8s_pb::api::authentication::v1 as authn;
use k8s_pb::api::authorization::v1 as authz;
use k8s_pb::api::core::v1 as core;
use k8s_pb::api::rbac::v1 as rbac;
use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_pb::apimachinery::pkg::runtime::{TypeMeta, Unknown};
use prost::Message as _;
use serde_json::json;

use super::*;

fn s(text: &str) -> Option<String> {
    Some(text.to_owned())
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|&item| item.to_owned()).collect()
}

fn string_map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|&(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// The body a client sends: magic, then `runtime.Unknown` holding `raw`.
fn body(api_version: &str, kind: &str, raw: Vec<u8>) -> Vec<u8> {
    let unknown = Unknown {
        type_meta: Some(TypeMeta {
            api_version: s(api_version),
            kind: s(kind),
        }),
        raw: Some(raw),
        content_encoding: s(""),
        content_type: s(""),
    };
    let mut body = b"k8s\0".to_vec();
    body.extend(unknown.encode_to_vec());
    body
}

fn decode_ok(api_version: &str, kind: &str, raw: Vec<u8>) -> Decoded {
    match decode(&body(api_version, kind, raw)) {
        Ok(decoded) => decoded,
        Err(e) => panic!("decoding {api_version} {kind}: {e}"),
    }
}

fn decode_err(body: &[u8]) -> String {
    match decode(body) {
        Ok(decoded) => panic!("expected an error, got {decoded:?}"),
        Err(e) => e.to_string(),
    }
}

/// ObjectMeta as a Go client (kubectl) encodes it: every non-pointer field present, zero or
/// not, and an empty creationTimestamp message.
fn go_meta(name: &str, namespace: &str) -> meta::ObjectMeta {
    meta::ObjectMeta {
        name: s(name),
        generate_name: s(""),
        namespace: s(namespace),
        self_link: s(""),
        uid: s(""),
        resource_version: s(""),
        generation: Some(0),
        creation_timestamp: Some(meta::Time::default()),
        ..Default::default()
    }
}

#[test]
fn namespace_as_kubectl_sends_it() {
    let namespace = core::Namespace {
        metadata: Some(go_meta("demo", "")),
        spec: Some(core::NamespaceSpec::default()),
        status: Some(core::NamespaceStatus {
            phase: s(""),
            conditions: vec![],
        }),
    };
    let decoded = decode_ok("v1", "Namespace", namespace.encode_to_vec());
    assert_eq!(decoded.api_version, "v1");
    assert_eq!(decoded.kind, "Namespace");
    assert!(decoded.unknown_fields.is_empty());
    assert_eq!(
        decoded.object,
        json!({
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": "demo"},
            "spec": {},
            "status": {},
        })
    );
}

#[test]
fn namespace_with_everything() {
    let namespace = core::Namespace {
        metadata: Some(meta::ObjectMeta {
            generate_name: s("demo-"),
            self_link: s("/api/v1/namespaces/demo"),
            uid: s("0b5f"),
            resource_version: s("42"),
            generation: Some(3),
            creation_timestamp: Some(meta::Time {
                seconds: Some(1_704_164_645),
                nanos: Some(7),
            }),
            deletion_timestamp: Some(meta::Time {
                seconds: Some(0),
                nanos: None,
            }),
            deletion_grace_period_seconds: Some(0),
            labels: string_map(&[("team", "a"), ("env", "prod")]),
            annotations: string_map(&[("note", "héllo"), ("empty", "")]),
            owner_references: vec![meta::OwnerReference {
                api_version: s("v1"),
                kind: s("ConfigMap"),
                name: s("owner"),
                uid: s("u1"),
                controller: Some(false),
                block_owner_deletion: Some(true),
            }],
            finalizers: strings(&["a/b", "c/d"]),
            managed_fields: vec![meta::ManagedFieldsEntry {
                manager: s("kubectl-create"),
                operation: s("Update"),
                api_version: s("v1"),
                time: Some(meta::Time {
                    seconds: Some(1_700_000_000),
                    nanos: None,
                }),
                fields_type: s("FieldsV1"),
                fields_v1: Some(meta::FieldsV1 {
                    raw: Some(br#"{"f:metadata":{}}"#.to_vec()),
                }),
                subresource: s(""),
            }],
            ..Default::default()
        }),
        spec: Some(core::NamespaceSpec {
            finalizers: strings(&["kubernetes"]),
        }),
        status: Some(core::NamespaceStatus {
            phase: s("Active"),
            conditions: vec![core::NamespaceCondition {
                r#type: s("NamespaceDeletionDiscoveryFailure"),
                status: s("False"),
                last_transition_time: Some(meta::Time::default()),
                reason: s(""),
                message: s("ok"),
            }],
        }),
    };
    let decoded = decode_ok("v1", "Namespace", namespace.encode_to_vec());
    assert_eq!(
        decoded.object,
        json!({
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {
                "generateName": "demo-",
                "selfLink": "/api/v1/namespaces/demo",
                "uid": "0b5f",
                "resourceVersion": "42",
                "generation": 3,
                "creationTimestamp": "2024-01-02T03:04:05Z",
                "deletionTimestamp": "1970-01-01T00:00:00Z",
                "deletionGracePeriodSeconds": 0,
                "labels": {"team": "a", "env": "prod"},
                "annotations": {"note": "héllo", "empty": ""},
                "ownerReferences": [{
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "name": "owner",
                    "uid": "u1",
                    "controller": false,
                    "blockOwnerDeletion": true,
                }],
                "finalizers": ["a/b", "c/d"],
                "managedFields": [{
                    "manager": "kubectl-create",
                    "operation": "Update",
                    "apiVersion": "v1",
                    "time": "2023-11-14T22:13:20Z",
                    "fieldsType": "FieldsV1",
                    "fieldsV1": {"f:metadata": {}},
                }],
            },
            "spec": {"finalizers": ["kubernetes"]},
            "status": {
                "phase": "Active",
                "conditions": [{
                    "type": "NamespaceDeletionDiscoveryFailure",
                    "status": "False",
                    "lastTransitionTime": null,
                    "message": "ok",
                }],
            },
        })
    );
}

#[test]
fn configmap() {
    let config_map = core::ConfigMap {
        metadata: Some(meta::ObjectMeta {
            labels: string_map(&[("app", "web")]),
            ..go_meta("settings", "default")
        }),
        immutable: Some(false),
        data: string_map(&[("a.conf", "x = 1\n"), ("empty", "")]),
        binary_data: [("blob".to_owned(), vec![0u8, 159, 146, 150])].into(),
    };
    let decoded = decode_ok("v1", "ConfigMap", config_map.encode_to_vec());
    assert_eq!(
        decoded.object,
        json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "settings", "namespace": "default", "labels": {"app": "web"}},
            "immutable": false,
            "data": {"a.conf": "x = 1\n", "empty": ""},
            "binaryData": {"blob": "AJ+Slg=="},
        })
    );
}

#[test]
fn secret_with_binary_data() {
    let secret = core::Secret {
        metadata: Some(go_meta("creds", "")),
        immutable: Some(true),
        data: [
            ("key".to_owned(), vec![0u8, 255, 1, 2, 3]),
            ("text".to_owned(), b"hunter2".to_vec()),
            ("none".to_owned(), vec![]),
        ]
        .into(),
        string_data: string_map(&[("plain", "value")]),
        r#type: s("Opaque"),
    };
    let decoded = decode_ok("v1", "Secret", secret.encode_to_vec());
    assert_eq!(
        decoded.object,
        json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "creds"},
            "immutable": true,
            "data": {"key": "AP8BAgM=", "text": "aHVudGVyMg==", "none": ""},
            "stringData": {"plain": "value"},
            "type": "Opaque",
        })
    );
}

#[test]
fn service_account() {
    let account = core::ServiceAccount {
        metadata: Some(go_meta("robot", "ns1")),
        secrets: vec![
            core::ObjectReference {
                name: s("robot-token"),
                ..Default::default()
            },
            core::ObjectReference {
                kind: s("Secret"),
                namespace: s("ns1"),
                name: s("other"),
                uid: s(""),
                api_version: s("v1"),
                resource_version: s("7"),
                field_path: s(""),
            },
        ],
        image_pull_secrets: vec![core::LocalObjectReference {
            name: s("registry"),
        }],
        automount_service_account_token: Some(false),
    };
    let decoded = decode_ok("v1", "ServiceAccount", account.encode_to_vec());
    assert_eq!(
        decoded.object,
        json!({
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": "robot", "namespace": "ns1"},
            "secrets": [
                {"name": "robot-token"},
                {"kind": "Secret", "namespace": "ns1", "name": "other", "apiVersion": "v1",
                 "resourceVersion": "7"},
            ],
            "imagePullSecrets": [{"name": "registry"}],
            "automountServiceAccountToken": false,
        })
    );
}

fn rule(verbs: &[&str], groups: &[&str], resources: &[&str]) -> rbac::PolicyRule {
    rbac::PolicyRule {
        verbs: strings(verbs),
        api_groups: strings(groups),
        resources: strings(resources),
        ..Default::default()
    }
}

#[test]
fn role() {
    let role = rbac::Role {
        metadata: Some(go_meta("reader", "ns1")),
        rules: vec![
            rule(&["get", "list"], &[""], &["pods"]),
            rbac::PolicyRule {
                resource_names: strings(&["one"]),
                ..rule(&["get"], &["apps"], &["deployments"])
            },
        ],
    };
    let decoded = decode_ok("rbac.authorization.k8s.io/v1", "Role", role.encode_to_vec());
    assert_eq!(
        decoded.object,
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": "reader", "namespace": "ns1"},
            "rules": [
                {"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods"]},
                {"verbs": ["get"], "apiGroups": ["apps"], "resources": ["deployments"],
                 "resourceNames": ["one"]},
            ],
        })
    );
}

#[test]
fn cluster_role_with_aggregation_rule() {
    let role = rbac::ClusterRole {
        metadata: Some(go_meta("monitoring", "")),
        rules: vec![rbac::PolicyRule {
            verbs: strings(&["get"]),
            non_resource_ur_ls: strings(&["/metrics", "/healthz/*"]),
            ..Default::default()
        }],
        aggregation_rule: Some(rbac::AggregationRule {
            cluster_role_selectors: vec![
                meta::LabelSelector {
                    match_labels: string_map(&[("rbac.example.com/aggregate", "true")]),
                    match_expressions: vec![],
                },
                meta::LabelSelector {
                    match_labels: BTreeMap::new(),
                    match_expressions: vec![
                        meta::LabelSelectorRequirement {
                            key: s("tier"),
                            operator: s("In"),
                            values: strings(&["a", "b"]),
                        },
                        meta::LabelSelectorRequirement {
                            key: s("legacy"),
                            operator: s("DoesNotExist"),
                            values: vec![],
                        },
                    ],
                },
            ],
        }),
    };
    let decoded = decode_ok(
        "rbac.authorization.k8s.io/v1",
        "ClusterRole",
        role.encode_to_vec(),
    );
    assert_eq!(
        decoded.object,
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": "monitoring"},
            "rules": [{"verbs": ["get"], "nonResourceURLs": ["/metrics", "/healthz/*"]}],
            "aggregationRule": {"clusterRoleSelectors": [
                {"matchLabels": {"rbac.example.com/aggregate": "true"}},
                {"matchExpressions": [
                    {"key": "tier", "operator": "In", "values": ["a", "b"]},
                    {"key": "legacy", "operator": "DoesNotExist"},
                ]},
            ]},
        })
    );
}

fn subjects() -> Vec<rbac::Subject> {
    vec![
        rbac::Subject {
            kind: s("User"),
            api_group: s("rbac.authorization.k8s.io"),
            name: s("alice"),
            namespace: s(""),
        },
        rbac::Subject {
            kind: s("ServiceAccount"),
            api_group: s(""),
            name: s("robot"),
            namespace: s("ns1"),
        },
    ]
}

fn expected_subjects() -> Value {
    json!([
        {"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "alice"},
        {"kind": "ServiceAccount", "name": "robot", "namespace": "ns1"},
    ])
}

#[test]
fn role_binding() {
    let binding = rbac::RoleBinding {
        metadata: Some(go_meta("read-it", "ns1")),
        subjects: subjects(),
        role_ref: Some(rbac::RoleRef {
            api_group: s("rbac.authorization.k8s.io"),
            kind: s("Role"),
            name: s("reader"),
        }),
    };
    let decoded = decode_ok(
        "rbac.authorization.k8s.io/v1",
        "RoleBinding",
        binding.encode_to_vec(),
    );
    assert_eq!(
        decoded.object,
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "read-it", "namespace": "ns1"},
            "subjects": expected_subjects(),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "reader"},
        })
    );
}

#[test]
fn cluster_role_binding() {
    let binding = rbac::ClusterRoleBinding {
        metadata: Some(go_meta("admins", "")),
        subjects: subjects(),
        // A Go client sends the non-omitempty apiGroup even when empty; it stays.
        role_ref: Some(rbac::RoleRef {
            api_group: s(""),
            kind: s("ClusterRole"),
            name: s("x"),
        }),
    };
    let decoded = decode_ok(
        "rbac.authorization.k8s.io/v1",
        "ClusterRoleBinding",
        binding.encode_to_vec(),
    );
    assert_eq!(
        decoded.object,
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "admins"},
            "subjects": expected_subjects(),
            "roleRef": {"apiGroup": "", "kind": "ClusterRole", "name": "x"},
        })
    );
}

#[test]
fn delete_options() {
    let options = meta::DeleteOptions {
        grace_period_seconds: Some(0),
        preconditions: Some(meta::Preconditions {
            uid: s("u1"),
            resource_version: s(""),
        }),
        orphan_dependents: Some(false),
        propagation_policy: s("Foreground"),
        dry_run: strings(&["All"]),
        ignore_store_read_error_with_cluster_breaking_potential: None,
    };
    for api_version in ["meta.k8s.io/v1", "v1", "apps/v1"] {
        let decoded = decode_ok(api_version, "DeleteOptions", options.encode_to_vec());
        assert_eq!(
            decoded.object,
            json!({
                "apiVersion": api_version,
                "kind": "DeleteOptions",
                "gracePeriodSeconds": 0,
                "preconditions": {"uid": "u1", "resourceVersion": ""},
                "orphanDependents": false,
                "propagationPolicy": "Foreground",
                "dryRun": ["All"],
            })
        );
    }
}

fn resource_attributes() -> authz::ResourceAttributes {
    authz::ResourceAttributes {
        namespace: s("ns1"),
        verb: s("list"),
        group: s(""),
        version: s(""),
        resource: s("pods"),
        subresource: s(""),
        name: s(""),
        field_selector: Some(authz::FieldSelectorAttributes {
            raw_selector: s("spec.nodeName=n1"),
            requirements: vec![meta::FieldSelectorRequirement {
                key: s("spec.nodeName"),
                operator: s("In"),
                values: strings(&["n1"]),
            }],
        }),
        label_selector: Some(authz::LabelSelectorAttributes {
            raw_selector: s(""),
            requirements: vec![meta::LabelSelectorRequirement {
                key: s("app"),
                operator: s("Exists"),
                values: vec![],
            }],
        }),
    }
}

fn expected_resource_attributes() -> Value {
    json!({
        "namespace": "ns1",
        "verb": "list",
        "resource": "pods",
        "fieldSelector": {
            "rawSelector": "spec.nodeName=n1",
            "requirements": [{"key": "spec.nodeName", "operator": "In", "values": ["n1"]}],
        },
        "labelSelector": {"requirements": [{"key": "app", "operator": "Exists"}]},
    })
}

fn empty_sar_status() -> authz::SubjectAccessReviewStatus {
    authz::SubjectAccessReviewStatus {
        allowed: Some(false),
        denied: Some(false),
        reason: s(""),
        evaluation_error: s(""),
    }
}

#[test]
fn self_subject_access_review() {
    let review = authz::SelfSubjectAccessReview {
        metadata: Some(go_meta("", "")),
        spec: Some(authz::SelfSubjectAccessReviewSpec {
            resource_attributes: Some(resource_attributes()),
            non_resource_attributes: None,
        }),
        status: Some(empty_sar_status()),
    };
    let decoded = decode_ok(
        "authorization.k8s.io/v1",
        "SelfSubjectAccessReview",
        review.encode_to_vec(),
    );
    assert_eq!(
        decoded.object,
        json!({
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectAccessReview",
            "metadata": {},
            "spec": {"resourceAttributes": expected_resource_attributes()},
            "status": {"allowed": false},
        })
    );
}

fn sar_spec() -> authz::SubjectAccessReviewSpec {
    authz::SubjectAccessReviewSpec {
        resource_attributes: None,
        non_resource_attributes: Some(authz::NonResourceAttributes {
            path: s("/healthz"),
            verb: s("get"),
        }),
        user: s("alice"),
        groups: strings(&["dev", "system:authenticated"]),
        extra: [
            (
                "scopes".to_owned(),
                authz::ExtraValue {
                    items: strings(&["a", "b"]),
                },
            ),
            ("empty".to_owned(), authz::ExtraValue { items: vec![] }),
        ]
        .into(),
        uid: s("1234"),
    }
}

fn expected_sar_spec() -> Value {
    json!({
        "nonResourceAttributes": {"path": "/healthz", "verb": "get"},
        "user": "alice",
        "groups": ["dev", "system:authenticated"],
        "extra": {"scopes": ["a", "b"], "empty": null},
        "uid": "1234",
    })
}

#[test]
fn subject_access_reviews() {
    let review = authz::SubjectAccessReview {
        metadata: Some(go_meta("", "")),
        spec: Some(sar_spec()),
        status: Some(authz::SubjectAccessReviewStatus {
            allowed: Some(true),
            reason: s("because"),
            ..empty_sar_status()
        }),
    };
    let decoded = decode_ok(
        "authorization.k8s.io/v1",
        "SubjectAccessReview",
        review.encode_to_vec(),
    );
    assert_eq!(
        decoded.object,
        json!({
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SubjectAccessReview",
            "metadata": {},
            "spec": expected_sar_spec(),
            "status": {"allowed": true, "reason": "because"},
        })
    );

    let local = authz::LocalSubjectAccessReview {
        metadata: Some(go_meta("", "ns1")),
        spec: Some(authz::SubjectAccessReviewSpec {
            resource_attributes: Some(resource_attributes()),
            ..sar_spec()
        }),
        status: None,
    };
    let decoded = decode_ok(
        "authorization.k8s.io/v1",
        "LocalSubjectAccessReview",
        local.encode_to_vec(),
    );
    let mut spec = expected_sar_spec();
    if let Value::Object(map) = &mut spec {
        map.insert(
            "resourceAttributes".to_owned(),
            expected_resource_attributes(),
        );
    }
    assert_eq!(
        decoded.object,
        json!({
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "LocalSubjectAccessReview",
            "metadata": {"namespace": "ns1"},
            "spec": spec,
        })
    );
}

#[test]
fn self_subject_rules_review() {
    let review = authz::SelfSubjectRulesReview {
        metadata: Some(go_meta("", "")),
        spec: Some(authz::SelfSubjectRulesReviewSpec {
            namespace: s("ns1"),
        }),
        status: Some(authz::SubjectRulesReviewStatus {
            resource_rules: vec![authz::ResourceRule {
                verbs: strings(&["*"]),
                ..Default::default()
            }],
            non_resource_rules: vec![authz::NonResourceRule {
                verbs: strings(&["get"]),
                non_resource_ur_ls: strings(&["/api"]),
            }],
            incomplete: Some(false),
            evaluation_error: s(""),
        }),
    };
    let decoded = decode_ok(
        "authorization.k8s.io/v1",
        "SelfSubjectRulesReview",
        review.encode_to_vec(),
    );
    assert_eq!(
        decoded.object,
        json!({
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectRulesReview",
            "metadata": {},
            "spec": {"namespace": "ns1"},
            "status": {
                "resourceRules": [{"verbs": ["*"]}],
                "nonResourceRules": [{"verbs": ["get"], "nonResourceURLs": ["/api"]}],
                "incomplete": false,
            },
        })
    );
}

#[test]
fn token_review() {
    let review = authn::TokenReview {
        metadata: Some(go_meta("", "")),
        spec: Some(authn::TokenReviewSpec {
            token: s("abc.def"),
            audiences: strings(&["https://kubernetes.default.svc"]),
        }),
        status: Some(authn::TokenReviewStatus {
            authenticated: Some(false),
            user: Some(authn::UserInfo {
                username: s(""),
                uid: s(""),
                groups: vec![],
                extra: BTreeMap::new(),
            }),
            audiences: vec![],
            error: s(""),
        }),
    };
    let decoded = decode_ok(
        "authentication.k8s.io/v1",
        "TokenReview",
        review.encode_to_vec(),
    );
    assert_eq!(
        decoded.object,
        json!({
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenReview",
            "metadata": {},
            "spec": {"token": "abc.def", "audiences": ["https://kubernetes.default.svc"]},
            "status": {"user": {}},
        })
    );
}

#[test]
fn self_subject_review() {
    let review = authn::SelfSubjectReview {
        metadata: Some(go_meta("", "")),
        status: Some(authn::SelfSubjectReviewStatus {
            user_info: Some(authn::UserInfo {
                username: s("alice"),
                uid: s("u"),
                groups: strings(&["g"]),
                extra: [(
                    "k".to_owned(),
                    authn::ExtraValue {
                        items: strings(&["v"]),
                    },
                )]
                .into(),
            }),
        }),
    };
    let decoded = decode_ok(
        "authentication.k8s.io/v1",
        "SelfSubjectReview",
        review.encode_to_vec(),
    );
    assert_eq!(
        decoded.object,
        json!({
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "SelfSubjectReview",
            "metadata": {},
            "status": {"userInfo": {
                "username": "alice", "uid": "u", "groups": ["g"], "extra": {"k": ["v"]},
            }},
        })
    );
}

#[test]
fn token_request() {
    let request = authn::TokenRequest {
        metadata: Some(go_meta("robot", "ns1")),
        spec: Some(authn::TokenRequestSpec {
            audiences: strings(&["api", "vault"]),
            expiration_seconds: Some(600),
            bound_object_ref: Some(authn::BoundObjectReference {
                kind: s("Pod"),
                api_version: s("v1"),
                name: s("web-0"),
                u_id: s("pod-uid"),
            }),
        }),
        status: Some(authn::TokenRequestStatus {
            token: s(""),
            expiration_timestamp: Some(meta::Time::default()),
        }),
    };
    let decoded = decode_ok(
        "authentication.k8s.io/v1",
        "TokenRequest",
        request.encode_to_vec(),
    );
    assert_eq!(
        decoded.object,
        json!({
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "metadata": {"name": "robot", "namespace": "ns1"},
            "spec": {
                "audiences": ["api", "vault"],
                "expirationSeconds": 600,
                "boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": "web-0",
                                   "uid": "pod-uid"},
            },
            "status": {"token": "", "expirationTimestamp": null},
        })
    );
}

/// Appends a field to an encoded message.
fn with_field(mut encoded: Vec<u8>, field: &[u8]) -> Vec<u8> {
    encoded.extend_from_slice(field);
    encoded
}

#[test]
fn unknown_fields_are_reported_with_their_paths() {
    // ObjectMeta field 16 (the removed clusterName) as a string, and a field 99 varint.
    let meta_bytes = with_field(go_meta("x", "").encode_to_vec(), &[0x82, 0x01, 1, b'c']);
    let mut raw = Vec::new();
    raw.push(0x0a);
    raw.push(u8::try_from(meta_bytes.len()).unwrap());
    raw.extend(&meta_bytes);
    // A PolicyRule with an unknown fixed64 field 9 and an unknown fixed32 field 10.
    let rule_bytes = with_field(
        rule(&["get"], &[], &["pods"]).encode_to_vec(),
        &[0x49, 1, 2, 3, 4, 5, 6, 7, 8, 0x55, 1, 2, 3, 4],
    );
    let ok_rule = rule(&["list"], &[], &["pods"]).encode_to_vec();
    for bytes in [&ok_rule, &rule_bytes] {
        raw.push(0x12);
        raw.push(u8::try_from(bytes.len()).unwrap());
        raw.extend(bytes);
    }
    raw.extend([0x98, 0x06, 0x01]); // field 99, varint 1
    raw.extend([0x98, 0x06, 0x02]); // again: reported once
    let decoded = decode_ok("rbac.authorization.k8s.io/v1", "Role", raw);
    assert_eq!(
        decoded.unknown_fields,
        ["metadata.#16", "rules[1].#9", "rules[1].#10", "#99"]
    );
    assert_eq!(
        decoded.object,
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": "x"},
            "rules": [
                {"verbs": ["list"], "resources": ["pods"]},
                {"verbs": ["get"], "resources": ["pods"]},
            ],
        })
    );
}

#[test]
fn repeated_message_fields_merge_and_scalars_take_the_last_value() {
    let first = meta::ObjectMeta {
        name: s("a"),
        ..Default::default()
    };
    let second = meta::ObjectMeta {
        name: s("b"),
        labels: string_map(&[("k", "v")]),
        ..Default::default()
    };
    let raw = [
        core::ConfigMap {
            metadata: Some(first),
            ..Default::default()
        }
        .encode_to_vec(),
        core::ConfigMap {
            metadata: Some(second),
            ..Default::default()
        }
        .encode_to_vec(),
        // A map entry with no value, and one whose key is repeated later.
        vec![0x12, 0x03, 0x0a, 0x01, b'z'],
        vec![0x12, 0x06, 0x0a, 0x01, b'y', 0x12, 0x01, b'1'],
        vec![0x12, 0x06, 0x0a, 0x01, b'y', 0x12, 0x01, b'2'],
    ]
    .concat();
    let decoded = decode_ok("v1", "ConfigMap", raw);
    assert_eq!(
        decoded.object,
        json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "b", "labels": {"k": "v"}},
            "data": {"z": "", "y": "2"},
        })
    );
}

#[test]
fn special_types() {
    let mut decoder = Decoder {
        unknown: Vec::new(),
    };
    let root = Path::Root("");
    let mut value = |ty: Ty, bytes: Vec<u8>| {
        decoder
            .value(ty, Raw::Len(&bytes), &root, 1)
            .map_err(|e| e.to_string())
    };
    use k8s_pb::apimachinery::pkg::api::resource::Quantity;
    use k8s_pb::apimachinery::pkg::util::intstr::IntOrString;
    let int = IntOrString {
        r#type: Some(0),
        int_val: Some(-8080),
        str_val: None,
    };
    assert_eq!(
        value(Ty::IntOrString, int.encode_to_vec()),
        Ok(json!(-8080))
    );
    let text = IntOrString {
        r#type: Some(1),
        int_val: None,
        str_val: s("http"),
    };
    assert_eq!(
        value(Ty::IntOrString, text.encode_to_vec()),
        Ok(json!("http"))
    );
    let bad = IntOrString {
        r#type: Some(2),
        ..Default::default()
    };
    assert!(value(Ty::IntOrString, bad.encode_to_vec()).is_err());
    let quantity = Quantity { string: s("500m") };
    assert_eq!(
        value(Ty::Quantity, quantity.encode_to_vec()),
        Ok(json!("500m"))
    );
    let micro = meta::MicroTime {
        seconds: Some(1_704_164_645),
        nanos: Some(123_456_789),
    };
    assert_eq!(
        value(Ty::MicroTime, micro.encode_to_vec()),
        Ok(json!("2024-01-02T03:04:05.123456Z"))
    );
    let whole = meta::MicroTime {
        seconds: Some(1_704_164_645),
        nanos: None,
    };
    assert_eq!(
        value(Ty::MicroTime, whole.encode_to_vec()),
        Ok(json!("2024-01-02T03:04:05.000000Z"))
    );
    assert_eq!(value(Ty::MicroTime, vec![]), Ok(Value::Null));
    let time = meta::Time {
        seconds: Some(951_782_400),
        nanos: Some(999_999_999),
    };
    assert_eq!(
        value(Ty::Time, time.encode_to_vec()),
        Ok(json!("2000-02-29T00:00:00Z"))
    );
    let early = meta::Time {
        seconds: Some(-1),
        nanos: None,
    };
    assert_eq!(
        value(Ty::Time, early.encode_to_vec()),
        Ok(json!("1969-12-31T23:59:59Z"))
    );
    let far = meta::Time {
        seconds: Some(253_402_300_800),
        nanos: None,
    };
    assert!(value(Ty::Time, far.encode_to_vec()).is_err());
    let huge = meta::Time {
        seconds: Some(i64::MAX),
        nanos: None,
    };
    assert!(value(Ty::Time, huge.encode_to_vec()).is_err());
    let not_json = meta::FieldsV1 {
        raw: Some(b"{".to_vec()),
    };
    assert!(value(Ty::FieldsV1, not_json.encode_to_vec()).is_err());
    // int32 travels as a sign-extended 64-bit varint.
    let negative = (-5i64).cast_unsigned().to_le_bytes();
    assert_eq!(u64::from_le_bytes(negative), (-5i64).cast_unsigned());
    assert_eq!(
        decoder
            .value(Ty::I32, Raw::Varint((-5i64).cast_unsigned()), &root, 1)
            .ok(),
        Some(json!(-5))
    );
    assert!(decoder.unknown.is_empty());
}

#[test]
fn unsupported_kinds_and_envelope_problems() {
    let deployment = body("apps/v1", "Deployment", vec![]);
    assert_eq!(
        decode_err(&deployment),
        "protobuf decoding of `apps/v1` `Deployment` is not supported; send JSON"
    );
    // A known kind under another version is not decoded either.
    assert!(decode_err(&body("v2", "Namespace", vec![])).contains("is not supported"));

    let mut no_type = b"k8s\0".to_vec();
    no_type.extend(
        Unknown {
            raw: Some(vec![]),
            ..Default::default()
        }
        .encode_to_vec(),
    );
    assert_eq!(
        decode_err(&no_type),
        "protobuf envelope names no apiVersion and kind"
    );

    let mut gzip = b"k8s\0".to_vec();
    gzip.extend(
        Unknown {
            type_meta: Some(TypeMeta {
                api_version: s("v1"),
                kind: s("Namespace"),
            }),
            raw: Some(vec![]),
            content_encoding: s("gzip"),
            content_type: None,
        }
        .encode_to_vec(),
    );
    assert_eq!(
        decode_err(&gzip),
        "protobuf content encoding `gzip` is not supported; send JSON"
    );

    // An empty raw object is fine: only apiVersion and kind.
    let empty = decode_ok("v1", "Namespace", vec![]);
    assert_eq!(
        empty.object,
        json!({"apiVersion": "v1", "kind": "Namespace"})
    );
}

#[test]
fn hostile_input_is_an_error() {
    let cases: &[(&[u8], &str)] = &[
        (b"", "magic"),
        (b"k8s", "magic"),
        (b"k8s\x01\x0a\x00", "magic"),
        (b"{\"kind\":\"Namespace\"}", "magic"),
        // Envelope: truncated varint key, length past the end, a group.
        (b"k8s\0\x80", "truncated varint"),
        (b"k8s\0\x12\x05ab", "past the end"),
        (b"k8s\0\x0b", "groups are not supported"),
        (b"k8s\0\x0c", "groups are not supported"),
        (b"k8s\0\x0e", "invalid wire type"),
        (b"k8s\0\x00\x00", "invalid field number"),
        (
            b"k8s\0\x08\xff\xff\xff\xff\xff\xff\xff\xff\xff\x02",
            "overflows 64 bits",
        ),
        (b"k8s\0\x0a\x02\x0a\x05", "past the end"),
    ];
    for (body, expected) in cases {
        let error = decode_err(body);
        assert!(error.contains(expected), "{body:?}: {error}");
    }

    let object_cases: &[(&[u8], &str)] = &[
        // Truncated varint inside metadata.generation.
        (
            b"\x0a\x02\x38\x80",
            "malformed protobuf at `metadata`: truncated varint",
        ),
        // Length past the end of the object, and of the enclosing message.
        (b"\x0a\x05\x0a\x01a", "malformed protobuf at the top level"),
        (b"\x0a\x03\x0a\x05a", "malformed protobuf at `metadata`"),
        // metadata sent as a varint; name sent as a varint.
        (
            b"\x08\x01",
            "field `metadata` is a varint, expected length-delimited",
        ),
        (
            b"\x0a\x02\x08\x01",
            "field `metadata.name` is a varint, expected length-delimited",
        ),
        // immutable (bool) sent length-delimited; a fixed64 where a string belongs.
        (
            b"\x22\x00",
            "field `immutable` is length-delimited, expected a varint",
        ),
        (
            b"\x0a\x09\x09\x01\x02\x03\x04\x05\x06\x07\x08",
            "is a 64-bit value",
        ),
        // Invalid UTF-8 in a string and in a map key.
        (
            b"\x0a\x03\x0a\x01\xff",
            "`metadata.name`: string is not valid UTF-8",
        ),
        (b"\x12\x03\x0a\x01\xc3", "`data`: string is not valid UTF-8"),
        // A group inside a map entry.
        (b"\x12\x01\x0b", "groups are not supported"),
    ];
    for (raw, expected) in object_cases {
        let error = decode_err(&body("v1", "ConfigMap", raw.to_vec()));
        assert!(error.contains(expected), "{raw:?}: {error}");
    }
}

#[test]
fn nesting_is_bounded() {
    // The schema has no recursive message, so depth is checked directly at the limit.
    let mut decoder = Decoder {
        unknown: Vec::new(),
    };
    let mut out = Map::new();
    let meta = meta::ObjectMeta {
        name: s("x"),
        ..Default::default()
    }
    .encode_to_vec();
    let root = Path::Root("");
    assert!(
        decoder
            .message(&meta, &schema::OBJECT_META, &mut out, &root, MAX_DEPTH)
            .is_ok()
    );
    let nested = go_meta("x", "").encode_to_vec(); // creationTimestamp is one level deeper
    assert!(
        decoder
            .message(&nested, &schema::OBJECT_META, &mut out, &root, MAX_DEPTH)
            .is_err()
    );
    let error = decoder
        .message(&meta, &schema::OBJECT_META, &mut out, &root, MAX_DEPTH + 1)
        .map_err(|e| e.to_string());
    assert_eq!(
        error,
        Err("protobuf messages nest deeper than 64 levels at the top level".into())
    );
    let time = meta::Time {
        seconds: Some(1),
        nanos: None,
    }
    .encode_to_vec();
    assert!(
        decoder
            .value(Ty::Time, Raw::Len(&time), &root, MAX_DEPTH)
            .is_err()
    );
    assert!(
        decoder
            .value(Ty::StrList, Raw::Len(&[]), &root, MAX_DEPTH)
            .is_err()
    );
    assert!(decoder.map_entry(&[], Ty::Str, &root, MAX_DEPTH).is_err());

    // Deeply nested unknown data is skipped without recursion.
    let mut nested = Vec::new();
    for _ in 0..10_000 {
        let mut outer = vec![0xfa, 0x01]; // field 31, length-delimited
        let mut len = nested.len();
        while len >= 0x80 {
            outer.push(u8::try_from(len & 0x7f).unwrap() | 0x80);
            len >>= 7;
        }
        outer.push(u8::try_from(len).unwrap());
        outer.extend(&nested);
        nested = outer;
        if nested.len() > 1 << 20 {
            break;
        }
    }
    let decoded = decode_ok("v1", "Namespace", nested);
    assert_eq!(decoded.unknown_fields, ["#31"]);
}

#[test]
fn unknown_field_list_is_capped() {
    let mut raw = Vec::new();
    for number in 100u64..400 {
        let key = number << 3;
        raw.extend([
            u8::try_from(key & 0x7f).unwrap() | 0x80,
            u8::try_from(key >> 7).unwrap(),
            0,
        ]);
    }
    let decoded = decode_ok("v1", "Secret", raw);
    assert_eq!(decoded.unknown_fields.len(), MAX_UNKNOWN);
    assert_eq!(
        decoded.unknown_fields.first().map(String::as_str),
        Some("#100")
    );
}

/// Every prefix and many byte flips of valid bodies decode or fail, never panic.
#[test]
fn mutated_bodies_never_panic() {
    let role = rbac::ClusterRole {
        metadata: Some(meta::ObjectMeta {
            labels: string_map(&[("a", "b")]),
            creation_timestamp: Some(meta::Time {
                seconds: Some(5),
                nanos: None,
            }),
            ..go_meta("r", "")
        }),
        rules: vec![rule(&["get"], &[""], &["pods"])],
        aggregation_rule: Some(rbac::AggregationRule {
            cluster_role_selectors: vec![meta::LabelSelector::default()],
        }),
    };
    let secret = core::Secret {
        metadata: Some(go_meta("s", "n")),
        data: [("k".to_owned(), vec![1, 2, 3])].into(),
        ..Default::default()
    };
    let bodies = [
        body(
            "rbac.authorization.k8s.io/v1",
            "ClusterRole",
            role.encode_to_vec(),
        ),
        body("v1", "Secret", secret.encode_to_vec()),
    ];
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for valid in &bodies {
        assert!(decode(valid).is_ok());
        for len in 0..valid.len() {
            let _ = decode(valid.get(..len).unwrap_or_default());
        }
        for _ in 0..5_000 {
            let mut mutated = valid.clone();
            for _ in 0..=(next() % 3) {
                let index = usize::try_from(next() % mutated.len() as u64).unwrap();
                if let Some(byte) = mutated.get_mut(index) {
                    *byte = u8::try_from(next() & 0xff).unwrap();
                }
            }
            let _ = decode(&mutated);
        }
    }
}

#[test]
fn error_messages_are_lowercase_without_a_final_period() {
    let errors = [
        ProtobufError::Magic,
        ProtobufError::NoTypeMeta,
        ProtobufError::ContentEncoding("gzip".into()),
        ProtobufError::Unsupported {
            api_version: "v1".into(),
            kind: "Pod".into(),
        },
        ProtobufError::Malformed {
            path: String::new(),
            reason: PAST_END,
        },
        ProtobufError::WireType {
            path: "a".into(),
            found: "a varint",
            expected: "x",
        },
        ProtobufError::TooDeep { path: "a.b".into() },
        ProtobufError::Invalid {
            path: "a".into(),
            reason: "bad".into(),
        },
    ];
    for error in errors {
        let text = error.to_string();
        assert!(text.starts_with(|c: char| c.is_ascii_lowercase()), "{text}");
        assert!(!text.ends_with('.'), "{text}");
    }
    assert_eq!(MEDIA_TYPE, "application/vnd.kubernetes.protobuf");
}

#[test]
fn schema_is_consistent() {
    let mut stack: Vec<&'static Message> = schema::KINDS.iter().map(|(_, _, m)| *m).collect();
    stack.push(&schema::DELETE_OPTIONS);
    let mut visited = 0;
    while let Some(message) = stack.pop() {
        visited += 1;
        assert!(visited < 10_000, "the schema must not be recursive");
        for (i, field) in message.fields.iter().enumerate() {
            assert!((1..=MAX_FIELD_NUMBER).contains(&field.number));
            for other in &message.fields[i + 1..] {
                assert_ne!(field.number, other.number, "{}", field.json);
                assert_ne!(field.json, other.json);
            }
            if let Ty::Msg(inner) = field.ty {
                assert_ne!(field.label, Label::OmitZero, "{}", field.json);
                stack.push(inner);
            }
        }
    }
    for (api_version, kind, _) in schema::KINDS {
        assert!(schema::lookup(api_version, kind).is_some());
    }
}

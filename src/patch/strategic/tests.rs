#![allow(clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use serde_json::{Value, json};

use super::super::merge_keys::Schema;
use super::lists::go_stable_sort;
use super::{MAX_DEPTH, PatchError, apply};

fn schema(api_version: &str, kind: &str) -> &'static Schema {
    Schema::for_kind(api_version, kind).expect("kind is covered")
}

fn patched(api_version: &str, kind: &str, original: Value, patch: Value) -> Value {
    apply(&original, &patch, schema(api_version, kind)).expect("patch applies")
}

fn rejected(api_version: &str, kind: &str, original: Value, patch: Value) -> PatchError {
    match apply(&original, &patch, schema(api_version, kind)) {
        Ok(result) => panic!("patch should fail, got {result}"),
        Err(error) => error,
    }
}

fn deployment(containers: Value) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"app": "web", "tier": "front"}},
        "spec": {
            "replicas": 2,
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}
            },
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": containers}
            }
        }
    })
}

fn app_container() -> Value {
    json!({
        "name": "app",
        "image": "nginx:1.26",
        "ports": [{"containerPort": 80, "protocol": "TCP"}],
        "env": [{"name": "MODE", "value": "prod"}],
        "resources": {"limits": {"cpu": "500m"}}
    })
}

fn sidecar_container() -> Value {
    json!({"name": "sidecar", "image": "envoy:1.30"})
}

#[test]
fn three_way_apply_patch_changes_an_image_and_keeps_the_other_container_fields() {
    let original = deployment(json!([app_container(), sidecar_container()]));
    // What `kubectl apply` sends after the image changes in the manifest.
    let patch = json!({
        "metadata": {"annotations": {
            "kubectl.kubernetes.io/last-applied-configuration": "{\"kind\":\"Deployment\"}"
        }},
        "spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "app"}, {"name": "sidecar"}],
            "containers": [{"image": "nginx:1.27", "name": "app"}]
        }}}
    });
    let mut app = app_container();
    app["image"] = json!("nginx:1.27");
    let mut expected = deployment(json!([app, sidecar_container()]));
    expected["metadata"]["annotations"] = json!({
        "kubectl.kubernetes.io/last-applied-configuration": "{\"kind\":\"Deployment\"}"
    });
    assert_eq!(patched("apps/v1", "Deployment", original, patch), expected);
}

#[test]
fn adds_an_env_var_and_keeps_the_existing_ones_in_order() {
    let original = deployment(json!([app_container()]));
    let patch = json!({"spec": {"template": {"spec": {
        "$setElementOrder/containers": [{"name": "app"}],
        "containers": [{
            "name": "app",
            "$setElementOrder/env": [{"name": "MODE"}, {"name": "DEBUG"}],
            "env": [{"name": "DEBUG", "value": "1"}]
        }]
    }}}});
    let result = patched("apps/v1", "Deployment", original, patch);
    assert_eq!(
        result["spec"]["template"]["spec"]["containers"][0]["env"],
        json!([{"name": "MODE", "value": "prod"}, {"name": "DEBUG", "value": "1"}])
    );
    assert_eq!(
        result["spec"]["template"]["spec"]["containers"][0]["ports"],
        app_container()["ports"]
    );
}

#[test]
fn deletes_a_container_with_the_patch_delete_directive() {
    let original = deployment(json!([app_container(), sidecar_container()]));
    let patch = json!({"spec": {"template": {"spec": {
        "$setElementOrder/containers": [{"name": "app"}],
        "containers": [{"$patch": "delete", "name": "sidecar"}]
    }}}});
    let result = patched("apps/v1", "Deployment", original, patch);
    assert_eq!(
        result["spec"]["template"]["spec"]["containers"],
        json!([app_container()])
    );
}

#[test]
fn merges_container_ports_by_container_port_and_env_by_name() {
    let original = json!({"spec": {"containers": [app_container()]}});
    let patch = json!({"spec": {"containers": [{
        "name": "app",
        "ports": [{"containerPort": 80, "name": "http"}, {"containerPort": 443}],
        "env": [{"name": "MODE", "value": "staging"}]
    }]}});
    let result = patched("v1", "Pod", original, patch);
    assert_eq!(
        result["spec"]["containers"][0]["ports"],
        json!([
            {"containerPort": 80, "protocol": "TCP", "name": "http"},
            {"containerPort": 443}
        ])
    );
    assert_eq!(
        result["spec"]["containers"][0]["env"],
        json!([{"name": "MODE", "value": "staging"}])
    );
}

#[test]
fn merges_cron_job_template_containers_through_the_job_template() {
    let original = json!({"spec": {"jobTemplate": {"spec": {"template": {"spec": {
        "containers": [app_container(), sidecar_container()]
    }}}}}});
    let patch = json!({"spec": {"jobTemplate": {"spec": {"template": {"spec": {
        "containers": [{"name": "sidecar", "image": "envoy:1.31"}]
    }}}}}});
    let result = patched("batch/v1", "CronJob", original, patch);
    let containers = &result["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"];
    assert_eq!(
        *containers,
        json!([app_container(), {"name": "sidecar", "image": "envoy:1.31"}])
    );
}

#[test]
fn merges_finalizers_as_a_set_and_deletes_listed_ones() {
    let original = json!({"metadata": {"name": "ns", "finalizers": ["a", "b", "c"]}});
    let patch = json!({"metadata": {
        "$setElementOrder/finalizers": ["a", "c", "d"],
        "$deleteFromPrimitiveList/finalizers": ["b"],
        "finalizers": ["c", "d"]
    }});
    let result = patched("v1", "Namespace", original, patch);
    assert_eq!(result["metadata"]["finalizers"], json!(["a", "c", "d"]));
    assert!(result["metadata"].as_object().expect("object").len() == 2);
}

#[test]
fn merges_primitive_lists_without_duplicates() {
    let original = json!({"metadata": {"finalizers": ["a", "b"]}});
    let patch = json!({"metadata": {"finalizers": ["b", "c"]}});
    let result = patched("v1", "ConfigMap", original, patch);
    assert_eq!(result["metadata"]["finalizers"], json!(["a", "b", "c"]));
}

#[test]
fn merges_owner_references_by_uid() {
    let original = json!({"metadata": {"ownerReferences": [
        {"uid": "1", "kind": "ReplicaSet", "name": "a"}
    ]}});
    let patch = json!({"metadata": {"ownerReferences": [
        {"uid": "2", "kind": "ReplicaSet", "name": "b"},
        {"uid": "1", "controller": true}
    ]}});
    let result = patched("v1", "Pod", original, patch);
    assert_eq!(
        result["metadata"]["ownerReferences"],
        json!([
            {"uid": "2", "kind": "ReplicaSet", "name": "b"},
            {"uid": "1", "kind": "ReplicaSet", "name": "a", "controller": true}
        ])
    );
}

#[test]
fn null_deletes_a_label_and_keeps_the_others() {
    let original = deployment(json!([]));
    let patch = json!({"metadata": {"labels": {"tier": null, "team": "core"}}});
    let result = patched("apps/v1", "Deployment", original, patch);
    assert_eq!(
        result["metadata"]["labels"],
        json!({"app": "web", "team": "core"})
    );
}

#[test]
fn retain_keys_drops_rolling_update_when_switching_to_recreate() {
    let original = deployment(json!([]));
    let patch = json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}});
    let result = patched("apps/v1", "Deployment", original, patch);
    assert_eq!(result["spec"]["strategy"], json!({"type": "Recreate"}));
    assert_eq!(result["spec"]["replicas"], json!(2));
}

#[test]
fn retain_keys_in_a_volume_switches_its_source() {
    let original = json!({"spec": {"volumes": [
        {"name": "cfg", "configMap": {"name": "old"}},
        {"name": "tmp", "emptyDir": {}}
    ]}});
    let patch = json!({"spec": {"volumes": [
        {"name": "cfg", "$retainKeys": ["name", "secret"], "secret": {"secretName": "new"}}
    ]}});
    let result = patched("v1", "Pod", original, patch);
    assert_eq!(
        result["spec"]["volumes"],
        json!([
            {"name": "cfg", "secret": {"secretName": "new"}},
            {"name": "tmp", "emptyDir": {}}
        ])
    );
}

#[test]
fn retain_keys_rejects_a_patch_that_sets_an_unlisted_field() {
    let error = rejected(
        "apps/v1",
        "Deployment",
        deployment(json!([])),
        json!({"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": {}}}}),
    );
    assert!(
        matches!(error, PatchError::MalformedDirective { .. }),
        "{error}"
    );
}

#[test]
fn replaces_atomic_tolerations_wholesale() {
    let original = json!({"spec": {"tolerations": [
        {"key": "a", "operator": "Exists"},
        {"key": "b", "operator": "Exists"}
    ]}});
    let patch = json!({"spec": {"tolerations": [{"key": "c", "operator": "Exists"}]}});
    let result = patched("v1", "Pod", original, patch);
    assert_eq!(
        result["spec"]["tolerations"],
        json!([{"key": "c", "operator": "Exists"}])
    );
}

#[test]
fn replaces_rbac_rules_wholesale() {
    let original = json!({"rules": [
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]},
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["list"]}
    ]});
    let patch = json!({"rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["watch"]}]});
    let result = patched(
        "rbac.authorization.k8s.io/v1",
        "ClusterRole",
        original,
        patch,
    );
    assert_eq!(
        result["rules"],
        json!([{"apiGroups": [""], "resources": ["pods"], "verbs": ["watch"]}])
    );
}

#[test]
fn merges_service_ports_by_port() {
    let original = json!({"spec": {"ports": [
        {"port": 80, "targetPort": 8080, "protocol": "TCP"},
        {"port": 443, "targetPort": 8443, "protocol": "TCP"}
    ]}});
    let patch = json!({"spec": {"ports": [{"port": 443, "targetPort": 9443}]}});
    let result = patched("v1", "Service", original, patch);
    assert_eq!(
        result["spec"]["ports"],
        json!([
            {"port": 80, "targetPort": 8080, "protocol": "TCP"},
            {"port": 443, "targetPort": 9443, "protocol": "TCP"}
        ])
    );
}

#[test]
fn patch_replace_on_a_map_replaces_it() {
    let original = deployment(json!([]));
    let patch = json!({"metadata": {"labels": {"$patch": "replace", "only": "this"}}});
    let result = patched("apps/v1", "Deployment", original, patch);
    assert_eq!(result["metadata"]["labels"], json!({"only": "this"}));
}

#[test]
fn patch_delete_on_a_map_empties_it_like_upstream() {
    let original = deployment(json!([]));
    let patch = json!({"spec": {"strategy": {"$patch": "delete"}}});
    let result = patched("apps/v1", "Deployment", original, patch);
    assert_eq!(result["spec"]["strategy"], json!({}));
}

#[test]
fn patch_replace_in_a_list_replaces_the_whole_list() {
    let original = json!({"spec": {"containers": [app_container(), sidecar_container()]}});
    let patch = json!({"spec": {"containers": [
        {"$patch": "replace"},
        {"name": "only", "image": "busybox"}
    ]}});
    let result = patched("v1", "Pod", original, patch);
    assert_eq!(
        result["spec"]["containers"],
        json!([{"name": "only", "image": "busybox"}])
    );
}

#[test]
fn new_patch_elements_come_first_when_the_patch_names_them_first() {
    let original = json!({"spec": {"containers": [
        {"name": "a", "image": "1"},
        {"name": "b", "image": "1"}
    ]}});
    let patch = json!({"spec": {"containers": [
        {"name": "c", "image": "1"},
        {"name": "a", "image": "2"}
    ]}});
    let result = patched("v1", "Pod", original, patch);
    let names: Vec<&Value> = result["spec"]["containers"]
        .as_array()
        .expect("list")
        .iter()
        .map(|container| &container["name"])
        .collect();
    assert_eq!(names, [&json!("c"), &json!("a"), &json!("b")]);
}

#[test]
fn set_element_order_keeps_server_only_elements_in_place() {
    let original = json!({"spec": {"containers": [
        {"name": "a"},
        {"name": "injected"},
        {"name": "b"}
    ]}});
    let patch = json!({"spec": {
        "$setElementOrder/containers": [{"name": "a"}, {"name": "b"}, {"name": "c"}],
        "containers": [{"name": "c", "image": "new"}]
    }});
    let result = patched("v1", "Pod", original, patch);
    assert_eq!(
        result["spec"]["containers"],
        json!([
            {"name": "a"},
            {"name": "injected"},
            {"name": "b"},
            {"name": "c", "image": "new"}
        ])
    );
}

#[test]
fn set_element_order_alone_reorders_the_live_list() {
    let original = json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}]}});
    let patch = json!({"spec": {"$setElementOrder/containers": [{"name": "b"}, {"name": "a"}]}});
    let result = patched("v1", "Pod", original, patch);
    assert_eq!(
        result["spec"]["containers"],
        json!([{"name": "b"}, {"name": "a"}])
    );
}

#[test]
fn set_element_order_rejects_a_patch_list_in_another_order() {
    let original = json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}]}});
    let patch = json!({"spec": {
        "$setElementOrder/containers": [{"name": "a"}, {"name": "b"}],
        "containers": [{"name": "b", "image": "x"}, {"name": "a", "image": "y"}]
    }});
    let error = rejected("v1", "Pod", original, patch);
    assert!(matches!(error, PatchError::OrderMismatch { .. }), "{error}");
}

#[test]
fn mismatched_types_let_the_patch_value_win() {
    let original = json!({"spec": {"nodeSelector": {"disk": "ssd"}, "priority": 5}});
    let patch = json!({"spec": {"nodeSelector": ["not", "a", "map"], "priority": "high"}});
    let result = patched("v1", "Pod", original, patch);
    assert_eq!(
        result["spec"],
        json!({"nodeSelector": ["not", "a", "map"], "priority": "high"})
    );
}

#[test]
fn inserted_values_lose_nulls_and_directives() {
    let original = json!({"spec": {"containers": [{"name": "a"}]}});
    let patch = json!({"spec": {
        "containers": [{
            "name": "b",
            "image": null,
            "$setElementOrder/env": [{"name": "X"}],
            "env": [{"name": "X", "value": "1"}, {"$patch": "delete", "name": "Y"}]
        }],
        "nodeSelector": {"zone": "a", "rack": null}
    }});
    let result = patched("v1", "Pod", original, patch);
    assert_eq!(
        result["spec"],
        json!({
            // Upstream puts elements new to the live list first when the
            // patch has no `$setElementOrder`.
            "containers": [
                {"name": "b", "env": [{"name": "X", "value": "1"}]},
                {"name": "a"}
            ],
            "nodeSelector": {"zone": "a"}
        })
    );
}

#[test]
fn a_missing_merge_key_is_an_error() {
    let original = json!({"spec": {"containers": [{"name": "a"}]}});
    let patch = json!({"spec": {"containers": [{"image": "x"}]}});
    let error = rejected("v1", "Pod", original, patch);
    assert!(
        matches!(error, PatchError::MissingMergeKey { key: "name", .. }),
        "{error}"
    );
}

#[test]
fn an_empty_patch_leaves_the_original_unchanged() {
    let original = deployment(json!([app_container()]));
    assert_eq!(
        patched("apps/v1", "Deployment", original.clone(), json!({})),
        original
    );
}

#[test]
fn a_null_original_is_treated_as_empty() {
    let patch = json!({"metadata": {"name": "x", "labels": {"a": null}}});
    let result = apply(&Value::Null, &patch, schema("v1", "ConfigMap")).expect("applies");
    assert_eq!(result, json!({"metadata": {"name": "x", "labels": {}}}));
}

#[test]
fn rejects_a_patch_that_is_not_an_object() {
    for patch in [json!([]), json!("x"), json!(1), Value::Null] {
        let error = rejected("v1", "Pod", json!({}), patch);
        assert!(matches!(error, PatchError::PatchNotAnObject), "{error}");
    }
    let error = rejected("v1", "Pod", json!([1]), json!({}));
    assert!(matches!(error, PatchError::OriginalNotAnObject), "{error}");
}

#[test]
fn rejects_unknown_directives() {
    let cases = [
        json!({"$bogus": 1}),
        json!({"metadata": {"labels": {"$weird": "x"}}}),
        json!({"spec": {"newField": {"$nope": 1}}}),
        json!({"spec": {"$setElementOrders/containers": []}}),
    ];
    for patch in cases {
        let error = rejected(
            "v1",
            "Pod",
            json!({"metadata": {"labels": {}}, "spec": {}}),
            patch,
        );
        assert!(
            matches!(error, PatchError::UnknownDirective { .. }),
            "{error}"
        );
    }
}

#[test]
fn rejects_unknown_patch_directive_values() {
    let original = json!({"metadata": {"labels": {}}, "spec": {"containers": [{"name": "a"}]}});
    let on_map = json!({"metadata": {"labels": {"$patch": "merge"}}});
    let error = rejected("v1", "Pod", original.clone(), on_map);
    assert!(
        matches!(error, PatchError::InvalidPatchValue { .. }),
        "{error}"
    );
    let in_list = json!({"spec": {"containers": [{"$patch": "explode", "name": "a"}]}});
    let error = rejected("v1", "Pod", original, in_list);
    assert!(
        matches!(error, PatchError::InvalidPatchValue { .. }),
        "{error}"
    );
}

fn nested(depth: usize) -> Value {
    let mut value = json!("leaf");
    for level in 0..depth {
        value = if level % 2 == 0 {
            json!({ "a": value })
        } else {
            json!([value])
        };
    }
    value
}

#[test]
fn rejects_documents_nested_deeper_than_the_limit() {
    let deep = nested(MAX_DEPTH * 3);
    let error = rejected("v1", "ConfigMap", json!({}), json!({"data": deep.clone()}));
    assert!(matches!(error, PatchError::TooDeep { .. }), "{error}");
    let error = rejected("v1", "ConfigMap", json!({"data": deep}), json!({}));
    assert!(matches!(error, PatchError::TooDeep { .. }), "{error}");
    // Exactly at the limit is fine: the patch object itself is level one.
    let limit = nested(MAX_DEPTH - 1);
    let result = patched("v1", "ConfigMap", json!({}), json!({"data": limit.clone()}));
    assert_eq!(result, json!({"data": limit}));
    let error = rejected(
        "v1",
        "ConfigMap",
        json!({}),
        json!({"data": nested(MAX_DEPTH)}),
    );
    assert!(matches!(error, PatchError::TooDeep { .. }), "{error}");
}

#[test]
fn go_stable_sort_agrees_with_a_stable_sort_for_consistent_orders() {
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    for round in 0..300 {
        let len = round % 97;
        let items: Vec<(u64, usize)> = (0..len)
            .map(|index| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                (seed % 8, index)
            })
            .collect();
        let mut ours = items.clone();
        go_stable_sort(&mut ours, &|left: &(u64, usize), right: &(u64, usize)| {
            left.0 < right.0
        });
        let mut reference = items;
        reference.sort_by_key(|item| item.0);
        assert_eq!(ours, reference, "length {len}");
    }
}

#[test]
fn go_stable_sort_moves_unranked_elements_like_go_insertion_sort() {
    // Upstream's comparison says "less" whenever either side is unranked;
    // with Go's insertion sort an unranked element bubbles to the front and
    // ranked ones then pass it again.
    let mut items = [Some(1), None, Some(0)];
    go_stable_sort(
        &mut items,
        &|left: &Option<u8>, right: &Option<u8>| match (left, right) {
            (Some(left), Some(right)) => left < right,
            _ => true,
        },
    );
    assert_eq!(items, [Some(0), None, Some(1)]);
}

#[test]
fn replacing_a_container_next_to_an_injected_sidecar_orders_like_upstream() {
    // Live pod spec: a webhook injected `istio-proxy`; the manifest renames
    // `app-v1` to `app-v2`. Upstream orders against the live list as its
    // in-place deletion and append left it, so the sidecar stays before the
    // new container.
    let original = json!({"spec": {"containers": [
        {"name": "app-v1", "image": "app:1"},
        {"name": "web", "image": "web:1"},
        {"name": "istio-proxy", "image": "proxy:1"}
    ]}});
    let patch = json!({"spec": {
        "$setElementOrder/containers": [{"name": "web"}, {"name": "app-v2"}],
        "containers": [
            {"name": "app-v2", "image": "app:2"},
            {"$patch": "delete", "name": "app-v1"}
        ]
    }});
    let result = patched("v1", "Pod", original, patch);
    assert_eq!(
        result["spec"]["containers"],
        json!([
            {"name": "web", "image": "web:1"},
            {"name": "istio-proxy", "image": "proxy:1"},
            {"name": "app-v2", "image": "app:2"}
        ])
    );
}

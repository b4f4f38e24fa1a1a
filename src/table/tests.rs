use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};

use super::util::human_duration;
use super::{IncludeObject, cells, columns, table, watch_table};

fn now() -> Timestamp {
    "2025-06-01T12:00:00Z".parse().unwrap()
}

/// RFC 3339 text for the moment `secs` seconds before [`now`].
fn ago(secs: i64) -> String {
    (now() - SignedDuration::from_secs(secs)).to_string()
}

fn names(group: &str, plural: &str) -> Vec<&'static str> {
    columns(group, plural).iter().map(|c| c.name).collect()
}

#[test]
fn an_unscheduled_pod_is_pending_with_no_ip_or_node() {
    let pod = json!({
        "metadata": {"name": "web-0", "creationTimestamp": ago(30)},
        "spec": {"containers": [{"name": "a"}, {"name": "b"}]},
        "status": {"phase": "Pending", "conditions": [
            {"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}
        ]}
    });
    assert_eq!(
        cells("", "pods", &pod, now()),
        vec![
            json!("web-0"),
            json!("0/2"),
            json!("Pending"),
            json!("0"),
            json!("30s"),
            json!("<none>"),
            json!("<none>"),
            json!("<none>"),
            json!("<none>"),
        ]
    );
}

#[test]
fn a_crash_looping_pod_shows_the_waiting_reason_and_when_it_last_restarted() {
    let pod = json!({
        "metadata": {"name": "api", "creationTimestamp": ago(3600)},
        "spec": {"nodeName": "node-1", "containers": [{"name": "app"}, {"name": "side"}]},
        "status": {
            "phase": "Running",
            "podIPs": [{"ip": "10.0.0.7"}],
            "containerStatuses": [
                {"name": "app", "ready": false, "restartCount": 5,
                 "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                 "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(300)}}},
                {"name": "side", "ready": true, "restartCount": 0,
                 "state": {"running": {"startedAt": ago(3000)}}}
            ]
        }
    });
    let row = cells("", "pods", &pod, now());
    assert_eq!(row[1], json!("1/2"));
    assert_eq!(row[2], json!("CrashLoopBackOff"));
    assert_eq!(row[3], json!("5 (5m ago)"));
    assert_eq!(row[4], json!("60m"));
    assert_eq!(row[5], json!("10.0.0.7"));
    assert_eq!(row[6], json!("node-1"));
}

#[test]
fn pod_status_follows_init_containers_and_deletion() {
    let mut pod = json!({
        "metadata": {"name": "p"},
        "spec": {"initContainers": [{"name": "i1"}, {"name": "i2"}], "containers": [{"name": "c"}]},
        "status": {"phase": "Pending", "initContainerStatuses": [
            {"name": "i1", "state": {"terminated": {"exitCode": 0}}},
            {"name": "i2", "state": {"running": {}}}
        ]}
    });
    assert_eq!(cells("", "pods", &pod, now())[2], json!("Init:1/2"));
    assert_eq!(cells("", "pods", &pod, now())[4], json!("<unknown>"));
    pod["status"]["initContainerStatuses"][1]["state"] =
        json!({"terminated": {"exitCode": 2, "reason": ""}});
    assert_eq!(cells("", "pods", &pod, now())[2], json!("Init:ExitCode:2"));
    pod["metadata"]["deletionTimestamp"] = json!(ago(1));
    assert_eq!(cells("", "pods", &pod, now())[2], json!("Terminating"));
}

#[test]
fn a_completed_pod_gets_a_completed_row_condition() {
    let pod = json!({
        "metadata": {"name": "done", "creationTimestamp": ago(10)},
        "spec": {"containers": [{"name": "c"}]},
        "status": {"phase": "Succeeded", "containerStatuses": [
            {"name": "c", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}
        ]}
    });
    let t = table(
        "",
        "pods",
        &[pod],
        json!({}),
        IncludeObject::Metadata,
        now(),
    );
    assert_eq!(t["rows"][0]["cells"][2], json!("Completed"));
    assert_eq!(t["rows"][0]["conditions"][0]["type"], json!("Completed"));
}

#[test]
fn a_deployment_with_three_replicas_and_empty_status_is_zero_of_three() {
    let d = json!({
        "metadata": {"name": "web", "creationTimestamp": ago(8 * 86400)},
        "spec": {"replicas": 3},
        "status": {}
    });
    let row = cells("apps", "deployments", &d, now());
    assert_eq!(
        &row[..5],
        &[json!("web"), json!("0/3"), json!(0), json!(0), json!("8d")]
    );
}

#[test]
fn deployment_wide_columns_join_containers_and_render_the_selector() {
    let d = json!({
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"spec": {"containers": [
                {"name": "nginx", "image": "nginx:1.27"},
                {"name": "sidecar", "image": "busybox"}
            ]}}
        },
        "status": {"readyReplicas": 2, "updatedReplicas": 2, "availableReplicas": 1}
    });
    assert_eq!(
        names("apps", "deployments"),
        [
            "Name",
            "Ready",
            "Up-to-date",
            "Available",
            "Age",
            "Containers",
            "Images",
            "Selector"
        ]
    );
    let priorities: Vec<i32> = columns("apps", "deployments")
        .iter()
        .map(|c| c.priority)
        .collect();
    assert_eq!(priorities, [0, 0, 0, 0, 0, 1, 1, 1]);
    let row = cells("apps", "deployments", &d, now());
    assert_eq!(row[1], json!("2/2"));
    assert_eq!(row[5], json!("nginx,sidecar"));
    assert_eq!(row[6], json!("nginx:1.27,busybox"));
    assert_eq!(row[7], json!("app=web"));
}

#[test]
fn selectors_render_like_upstream_label_selectors() {
    let rs = json!({"spec": {"selector": {
        "matchLabels": {"tier": "front", "app": "web"},
        "matchExpressions": [
            {"key": "env", "operator": "In", "values": ["prod", "dev"]},
            {"key": "canary", "operator": "DoesNotExist"}
        ]
    }}});
    assert_eq!(
        cells("apps", "replicasets", &rs, now())[7],
        json!("app=web,!canary,env in (dev,prod),tier=front")
    );
    let empty = json!({"spec": {"selector": {}}});
    assert_eq!(
        cells("apps", "replicasets", &empty, now())[7],
        json!("<none>")
    );
    assert_eq!(cells("apps", "deployments", &empty, now())[7], json!(""));
    let bad =
        json!({"spec": {"selector": {"matchExpressions": [{"key": "a", "operator": "Nope"}]}}});
    assert_eq!(
        cells("apps", "replicasets", &bad, now())[7],
        json!("<error>")
    );
    assert_eq!(
        cells("apps", "deployments", &bad, now())[7],
        json!("<invalid>")
    );
}

#[test]
fn ages_format_like_human_duration_at_its_boundaries() {
    let s = |secs: i64| human_duration(secs * 1_000_000_000);
    assert_eq!(s(-5), "<invalid>");
    assert_eq!(s(-1), "0s");
    assert_eq!(s(0), "0s");
    assert_eq!(s(59), "59s");
    assert_eq!(s(119), "119s");
    assert_eq!(s(120), "2m");
    assert_eq!(s(130), "2m10s");
    assert_eq!(s(10 * 60), "10m");
    assert_eq!(s(179 * 60 + 59), "179m");
    assert_eq!(s(3 * 3600 + 5 * 60), "3h5m");
    assert_eq!(s(7 * 3600), "7h");
    assert_eq!(s(8 * 3600 + 59 * 60), "8h");
    assert_eq!(s(47 * 3600), "47h");
    assert_eq!(s(3 * 86400 + 4 * 3600), "3d4h");
    assert_eq!(s(2 * 86400), "2d");
    assert_eq!(s(8 * 86400), "8d");
    assert_eq!(s(729 * 86400), "729d");
    assert_eq!(s(2 * 365 * 86400), "2y");
    assert_eq!(s(2 * 365 * 86400 + 15 * 86400), "2y15d");
    assert_eq!(s(9 * 365 * 86400 + 15 * 86400), "9y");
    assert_eq!(human_duration(i64::MAX), "292y");
}

#[test]
fn a_secret_counts_its_data_keys() {
    let secret = json!({
        "metadata": {"name": "creds", "creationTimestamp": ago(59)},
        "type": "Opaque",
        "data": {"user": "YQ==", "pass": "Yg==", "token": "Yw=="}
    });
    assert_eq!(
        cells("", "secrets", &secret, now()),
        vec![json!("creds"), json!("Opaque"), json!(3), json!("59s")]
    );
}

#[test]
fn a_binding_names_its_role_and_subjects() {
    let rb = json!({
        "metadata": {"name": "viewers", "creationTimestamp": ago(130)},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
        "subjects": [
            {"kind": "User", "name": "alice"},
            {"kind": "Group", "name": "devs"},
            {"kind": "User", "name": "bob"},
            {"kind": "ServiceAccount", "name": "ci", "namespace": "build"}
        ]
    });
    assert_eq!(
        cells("rbac.authorization.k8s.io", "rolebindings", &rb, now()),
        vec![
            json!("viewers"),
            json!("ClusterRole/view"),
            json!("2m10s"),
            json!("alice, bob"),
            json!("devs"),
            json!("build/ci"),
        ]
    );
}

#[test]
fn roles_and_unknown_resources_use_the_default_convertor() {
    for (group, plural) in [
        ("rbac.authorization.k8s.io", "roles"),
        ("example.com", "widgets"),
    ] {
        let cols = columns(group, plural);
        assert_eq!(cols.len(), 2);
        assert_eq!((cols[0].name, cols[0].format), ("Name", "name"));
        assert_eq!((cols[1].name, cols[1].type_), ("Created At", "date"));
    }
    let w = json!({"metadata": {"name": "w1", "creationTimestamp": "2024-03-04T05:06:07.5+02:00"}});
    assert_eq!(
        cells("example.com", "widgets", &w, now()),
        vec![json!("w1"), json!("2024-03-04T03:06:07Z")]
    );
    assert_eq!(
        cells("example.com", "widgets", &json!({}), now()),
        vec![json!(""), json!("0001-01-01T00:00:00Z")]
    );
}

#[test]
fn services_show_ports_and_external_addresses() {
    let svc = json!({
        "metadata": {"name": "lb"},
        "spec": {"type": "LoadBalancer", "clusterIP": "10.96.0.10",
                 "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"},
                           {"port": 53, "protocol": "UDP"}],
                 "selector": {"app": "web"}},
        "status": {"loadBalancer": {}}
    });
    let row = cells("", "services", &svc, now());
    assert_eq!(
        row[1..5],
        [
            json!("LoadBalancer"),
            json!("10.96.0.10"),
            json!("<pending>"),
            json!("80:30080/TCP,53/UDP")
        ]
    );
    assert_eq!(row[6], json!("app=web"));
}

#[test]
fn events_show_last_seen_object_and_count() {
    let ev = json!({
        "metadata": {"name": "web.17f"},
        "involvedObject": {"kind": "Pod", "name": "web", "fieldPath": "spec.containers{app}"},
        "reason": "BackOff", "type": "Warning", "message": " Back-off restarting \n",
        "source": {"component": "kubelet", "host": "node-1"},
        "firstTimestamp": ago(600), "lastTimestamp": ago(30), "count": 7
    });
    assert_eq!(
        names("", "events").len(),
        cells("", "events", &ev, now()).len()
    );
    assert_eq!(
        cells("", "events", &ev, now()),
        vec![
            json!("30s"),
            json!("Warning"),
            json!("BackOff"),
            json!("pod/web"),
            json!("spec.containers{app}"),
            json!("kubelet, node-1"),
            json!("Back-off restarting"),
            json!("10m"),
            json!(7),
            json!("web.17f"),
        ]
    );
}

#[test]
fn jobs_and_cronjobs_render_status_and_schedule() {
    let job = json!({
        "metadata": {"name": "j"},
        "spec": {"completions": 3},
        "status": {"succeeded": 3, "startTime": ago(200), "completionTime": ago(70),
                   "conditions": [{"type": "Complete", "status": "True"}]}
    });
    assert_eq!(
        cells("batch", "jobs", &job, now())[1..4],
        [json!("Complete"), json!("3/3"), json!("2m10s")]
    );
    let cj =
        json!({"metadata": {"name": "c"}, "spec": {"schedule": "*/5 * * * *", "suspend": false}});
    assert_eq!(
        cells("batch", "cronjobs", &cj, now())[1..6],
        [
            json!("*/5 * * * *"),
            json!("<none>"),
            json!("False"),
            json!(0),
            json!("<none>")
        ]
    );
}

#[test]
fn every_printer_fills_exactly_its_columns() {
    let resources = [
        ("", "pods"),
        ("", "namespaces"),
        ("", "configmaps"),
        ("", "secrets"),
        ("", "services"),
        ("", "serviceaccounts"),
        ("", "events"),
        ("events.k8s.io", "events"),
        ("apps", "deployments"),
        ("apps", "replicasets"),
        ("apps", "statefulsets"),
        ("apps", "daemonsets"),
        ("batch", "jobs"),
        ("batch", "cronjobs"),
        ("rbac.authorization.k8s.io", "rolebindings"),
        ("rbac.authorization.k8s.io", "clusterrolebindings"),
        ("x", "y"),
    ];
    for (group, plural) in resources {
        let n = cells(group, plural, &json!({}), now()).len();
        assert_eq!(n, columns(group, plural).len(), "{group}/{plural}");
    }
}

#[test]
fn a_hostile_object_with_wrong_types_does_not_panic() {
    let hostile = [
        json!(null),
        json!([1, 2, 3]),
        json!("pod"),
        json!({
            "metadata": {"name": 7, "creationTimestamp": {"a": 1}, "deletionTimestamp": 5},
            "spec": {"containers": "nope", "initContainers": [1, null, {"name": []}],
                     "replicas": "three", "selector": [], "template": 4, "readinessGates": [3],
                     "ports": [{"port": "x", "nodePort": 1e300}], "type": ["LoadBalancer"],
                     "completions": -1, "parallelism": {}, "schedule": false},
            "status": {"phase": 1, "conditions": {"x": 1}, "podIPs": [null],
                       "initContainerStatuses": [{"state": {"terminated": "yes"}, "restartCount": i64::MAX},
                                                 {"restartCount": i64::MAX, "lastState": {"terminated": {"finishedAt": "garbage"}}}],
                       "containerStatuses": [{"restartCount": i64::MAX}, {"restartCount": i64::MAX}],
                       "loadBalancer": {"ingress": [7]}, "startTime": "9999-12-31T23:59:59Z"},
            "data": [1, 2], "subjects": [{"kind": 1}], "roleRef": null,
            "involvedObject": "pod", "series": {"count": "many"}, "count": 1.5,
            "regarding": {"kind": {}}
        }),
    ];
    let resources = [
        ("", "pods"),
        ("", "namespaces"),
        ("", "configmaps"),
        ("", "secrets"),
        ("", "services"),
        ("", "serviceaccounts"),
        ("", "events"),
        ("events.k8s.io", "events"),
        ("apps", "deployments"),
        ("apps", "replicasets"),
        ("apps", "statefulsets"),
        ("apps", "daemonsets"),
        ("batch", "jobs"),
        ("batch", "cronjobs"),
        ("rbac.authorization.k8s.io", "clusterrolebindings"),
        ("x", "y"),
    ];
    for obj in &hostile {
        for (group, plural) in resources {
            let row = cells(group, plural, obj, now());
            assert_eq!(row.len(), columns(group, plural).len());
            let t = table(
                group,
                plural,
                std::slice::from_ref(obj),
                json!(42),
                IncludeObject::Metadata,
                now(),
            );
            assert!(t["rows"][0]["object"]["metadata"].is_object());
        }
    }
}

#[test]
fn a_table_carries_list_metadata_columns_and_partial_metadata() {
    let cm = json!({"metadata": {"name": "cfg", "namespace": "ns", "creationTimestamp": ago(5)},
                    "data": {"a": "1"}, "binaryData": {"b": "Ag=="}});
    let t = table(
        "",
        "configmaps",
        std::slice::from_ref(&cm),
        json!({"resourceVersion": "42", "continue": "", "remainingItemCount": 3}),
        IncludeObject::Metadata,
        now(),
    );
    assert_eq!(t["kind"], json!("Table"));
    assert_eq!(t["apiVersion"], json!("meta.k8s.io/v1"));
    assert_eq!(
        t["metadata"],
        json!({"resourceVersion": "42", "remainingItemCount": 3})
    );
    assert_eq!(
        t["columnDefinitions"][1],
        json!({
            "name": "Data", "type": "string", "format": "",
            "description": columns("", "configmaps")[1].description, "priority": 0
        })
    );
    assert_eq!(t["rows"][0]["cells"], json!(["cfg", 2, "5s"]));
    assert_eq!(
        t["rows"][0]["object"],
        json!({
            "kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": cm["metadata"]
        })
    );
    let full = table(
        "",
        "configmaps",
        std::slice::from_ref(&cm),
        Value::Null,
        IncludeObject::Object,
        now(),
    );
    assert_eq!(full["rows"][0]["object"], cm);
    assert_eq!(full["metadata"], json!({}));
    let none = table(
        "",
        "configmaps",
        &[cm],
        Value::Null,
        IncludeObject::None,
        now(),
    );
    assert_eq!(none["rows"][0]["object"], Value::Null);
}

#[test]
fn watch_tables_send_columns_only_on_the_first_event() {
    let ns =
        json!({"metadata": {"name": "dev", "resourceVersion": "9"}, "status": {"phase": "Active"}});
    let first = watch_table("", "namespaces", &ns, IncludeObject::Metadata, now(), true);
    let later = watch_table("", "namespaces", &ns, IncludeObject::Metadata, now(), false);
    assert_eq!(first["columnDefinitions"].as_array().map(Vec::len), Some(3));
    assert_eq!(later["columnDefinitions"], Value::Null);
    assert_eq!(later["metadata"], json!({"resourceVersion": "9"}));
    assert_eq!(
        later["rows"][0]["cells"],
        json!(["dev", "Active", "<unknown>"])
    );
}

#[test]
fn include_object_parses_the_query_parameter() {
    assert_eq!(IncludeObject::from_param(""), Some(IncludeObject::Metadata));
    assert_eq!(
        IncludeObject::from_param("Object"),
        Some(IncludeObject::Object)
    );
    assert_eq!(IncludeObject::from_param("None"), Some(IncludeObject::None));
    assert_eq!(IncludeObject::from_param("all"), None);
}

#[test]
fn a_hostile_pod_renders_placeholders() {
    let pod = json!({
        "metadata": {"name": 7, "creationTimestamp": {"a": 1}},
        "spec": {"containers": "nope", "nodeName": 3},
        "status": {"phase": 1, "podIPs": [null], "containerStatuses": [{"restartCount": "9"}]}
    });
    assert_eq!(
        cells("", "pods", &pod, now()),
        vec![
            json!(""),
            json!("0/0"),
            json!(""),
            json!("0"),
            json!("<unknown>"),
            json!("<none>"),
            json!("<none>"),
            json!("<none>"),
            json!("<none>"),
        ]
    );
}

#[test]
fn events_k8s_io_events_use_their_own_field_names() {
    let ev = json!({
        "metadata": {"name": "e1"},
        "regarding": {"kind": "Deployment", "name": "web"},
        "note": "Scaled up", "reason": "ScalingReplicaSet", "type": "Normal",
        "reportingController": "deployment-controller",
        "eventTime": ago(90)
    });
    let row = cells("events.k8s.io", "events", &ev, now());
    assert_eq!(row[0], json!("90s"));
    assert_eq!(row[3], json!("deployment/web"));
    assert_eq!(row[5], json!("deployment-controller"));
    assert_eq!(row[6], json!("Scaled up"));
    assert_eq!(row[8], json!(1));
}

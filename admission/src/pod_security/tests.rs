use serde_json::{Value, json};

use super::checks::CHECKS;
use super::*;

fn policy(level: &str, version: &str) -> LevelVersion {
    parse_level_version(level, version).unwrap()
}

fn message(level: &str, version: &str, pod: &Value) -> Option<String> {
    check_pod(policy(level, version), pod)
        .err()
        .map(|v| v.message())
}

/// A pod that meets `restricted:latest`, with one container named `app`.
fn restricted_pod() -> Value {
    json!({
        "metadata": {"name": "web"},
        "spec": {
            "securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{
                "name": "app",
                "image": "app",
                "securityContext": {
                    "allowPrivilegeEscalation": false,
                    "capabilities": {"drop": ["ALL"]}
                }
            }]
        }
    })
}

fn failed_ids(level: &str, version: &str, pod: &Value) -> Vec<&'static str> {
    match check_pod(policy(level, version), pod) {
        Ok(()) => Vec::new(),
        Err(v) => v.failures().iter().map(|f| f.id).collect(),
    }
}

// === message format ===

#[test]
fn a_pod_with_two_violations_gets_upstreams_combined_message() {
    let mut pod = restricted_pod();
    pod["spec"]["containers"][0]["securityContext"] =
        json!({"capabilities": {"add": ["SYS_ADMIN"]}});
    assert_eq!(
        message("restricted", "latest", &pod).unwrap(),
        "violates PodSecurity \"restricted:latest\": \
         allowPrivilegeEscalation != false (container \"app\" must set securityContext.allowPrivilegeEscalation=false), \
         unrestricted capabilities (container \"app\" must set securityContext.capabilities.drop=[\"ALL\"]; \
         container \"app\" must not include \"SYS_ADMIN\" in securityContext.capabilities.add)"
    );
}

#[test]
fn baseline_failures_come_before_restricted_ones_each_sorted_by_id() {
    let pod = json!({"spec": {
        "hostNetwork": true,
        "hostPID": true,
        "containers": [{"name": "a", "securityContext": {"privileged": true}}]
    }});
    assert_eq!(
        failed_ids("restricted", "latest", &pod),
        [
            "hostNamespaces",
            "privileged",
            "allowPrivilegeEscalation",
            "capabilities_restricted",
            "runAsNonRoot",
            "seccompProfile_restricted"
        ]
    );
    let violation = check_pod(policy("baseline", "v1.30"), &pod).unwrap_err();
    assert_eq!(violation.forbidden_reason(), "host namespaces, privileged");
    assert_eq!(
        violation.would_violate_message(),
        "would violate PodSecurity \"baseline:v1.30\": host namespaces (hostNetwork=true, hostPID=true), \
         privileged (container \"a\" must not set securityContext.privileged=true)"
    );
}

#[test]
fn check_table_is_in_upstream_order() {
    let baseline: Vec<&str> = CHECKS
        .iter()
        .filter(|c| c.level == Level::Baseline)
        .map(|c| c.id)
        .collect();
    let restricted: Vec<&str> = CHECKS
        .iter()
        .filter(|c| c.level == Level::Restricted)
        .map(|c| c.id)
        .collect();
    let mut sorted = baseline.clone();
    sorted.sort_unstable();
    assert_eq!(baseline, sorted);
    let mut sorted = restricted.clone();
    sorted.sort_unstable();
    assert_eq!(restricted, sorted);
    let first_restricted = CHECKS
        .iter()
        .position(|c| c.level == Level::Restricted)
        .unwrap();
    assert!(
        CHECKS[first_restricted..]
            .iter()
            .all(|c| c.level == Level::Restricted)
    );
    for check in CHECKS {
        assert!(
            check.versions.windows(2).all(|w| w[0].since < w[1].since),
            "{}",
            check.id
        );
    }
}

#[test]
fn host_ports_detail_matches_upstream() {
    let pod = json!({"spec": {"containers": [
        {"name": "a", "ports": [{"hostPort": 0}]},
        {"name": "b", "ports": [{"hostPort": 0}, {"hostPort": 10}, {"hostPort": 20}]},
        {"name": "c", "ports": [{"hostPort": 0}, {"hostPort": 10}, {"hostPort": 30}]}
    ]}});
    assert_eq!(
        message("baseline", "latest", &pod).unwrap(),
        "violates PodSecurity \"baseline:latest\": hostPort (containers \"b\", \"c\" use hostPorts 10, 20, 30)"
    );
}

#[test]
fn se_linux_detail_matches_upstream() {
    let pod = json!({"spec": {
        "securityContext": {"seLinuxOptions": {"type": "foo", "user": "u", "role": "r"}},
        "containers": [
            {"name": "a", "securityContext": {"seLinuxOptions": {"type": "container_t"}}},
            {"name": "e", "securityContext": {"seLinuxOptions": {"type": "bar"}}},
            {"name": "f", "securityContext": {"seLinuxOptions": {"user": "x"}}}
        ]
    }});
    let violation = check_pod(policy("baseline", "latest"), &pod).unwrap_err();
    assert_eq!(
        violation.forbidden_detail(),
        "seLinuxOptions (pod and containers \"e\", \"f\" set forbidden securityContext.seLinuxOptions: \
         types \"bar\", \"foo\"; user may not be set; role may not be set)"
    );
}

#[test]
fn probe_hosts_are_deduplicated_and_sorted() {
    let pod = json!({"spec": {"containers": [
        {"name": "valid"},
        {"name": "invalid2", "livenessProbe": {"httpGet": {"host": "b.com"}}},
        {"name": "invalid1", "lifecycle": {"preStop": {"tcpSocket": {"host": "a.com"}}},
         "readinessProbe": {"tcpSocket": {"host": "b.com"}}}
    ]}});
    assert_eq!(
        check_pod(policy("baseline", "v1.34"), &pod)
            .unwrap_err()
            .forbidden_detail(),
        "probe or lifecycle host (containers \"invalid1\", \"invalid2\" use probe or lifecycle hosts \"a.com\", \"b.com\")"
    );
}

#[test]
fn annotation_values_are_quoted_as_go_does() {
    let pod = json!({
        "metadata": {"annotations": {
            "container.apparmor.security.beta.kubernetes.io/b": "unconfined",
            "container.apparmor.security.beta.kubernetes.io/a": "weird \"v\"\n\u{7}é\u{200b}"
        }},
        "spec": {"securityContext": {"appArmorProfile": {"type": "Unconfined"}}, "containers": []}
    });
    assert_eq!(
        check_pod(policy("baseline", "latest"), &pod)
            .unwrap_err()
            .forbidden_detail(),
        "forbidden AppArmor profiles (pod and annotations must not set AppArmor profile type to \
         \"Unconfined\", \"container.apparmor.security.beta.kubernetes.io/a=\"weird \\\"v\\\"\\n\\aé\\u200b\"\", \
         \"container.apparmor.security.beta.kubernetes.io/b=\"unconfined\"\")"
    );
}

#[test]
fn seccomp_annotations_are_checked_before_v1_19_only() {
    let pod = json!({
        "metadata": {"annotations": {
            "seccomp.security.alpha.kubernetes.io/pod": "unconfined",
            "container.seccomp.security.alpha.kubernetes.io/b": "unknown",
            "container.seccomp.security.alpha.kubernetes.io/a": "unconfined"
        }},
        "spec": {"containers": [{"name": "a"}, {"name": "b"}, {"name": "c"}]}
    });
    assert_eq!(
        message("baseline", "v1.18", &pod).unwrap(),
        "violates PodSecurity \"baseline:v1.18\": seccompProfile (forbidden annotations \
         container.seccomp.security.alpha.kubernetes.io/a=\"unconfined\", \
         container.seccomp.security.alpha.kubernetes.io/b=\"unknown\", \
         seccomp.security.alpha.kubernetes.io/pod=\"unconfined\")"
    );
    assert_eq!(message("baseline", "v1.19", &pod), None);
}

// === versioning ===

#[test]
fn run_as_user_zero_is_allowed_before_v1_23() {
    let mut pod = restricted_pod();
    pod["spec"]["securityContext"]["runAsUser"] = json!(0);
    assert_eq!(message("restricted", "v1.22", &pod), None);
    assert_eq!(
        message("restricted", "v1.23", &pod).unwrap(),
        "violates PodSecurity \"restricted:v1.23\": runAsUser=0 (pod must not set runAsUser=0)"
    );
}

#[test]
fn restricted_checks_that_did_not_exist_at_v1_0_do_not_fire_there() {
    let pod = json!({"spec": {
        "securityContext": {"runAsNonRoot": true},
        "containers": [{"name": "app"}]
    }});
    assert_eq!(message("restricted", "v1.0", &pod), None);
    assert_eq!(
        failed_ids("restricted", "v1.8", &pod),
        ["allowPrivilegeEscalation"]
    );
    assert_eq!(
        failed_ids("restricted", "v1.19", &pod),
        ["allowPrivilegeEscalation", "seccompProfile_restricted"]
    );
    assert_eq!(
        failed_ids("restricted", "v1.22", &pod),
        [
            "allowPrivilegeEscalation",
            "capabilities_restricted",
            "seccompProfile_restricted"
        ]
    );
}

#[test]
fn capabilities_restricted_replaces_capabilities_baseline_from_v1_22() {
    let mut pod = restricted_pod();
    pod["spec"]["containers"][0]["securityContext"]["capabilities"]["add"] = json!(["SYS_ADMIN"]);
    assert_eq!(
        failed_ids("restricted", "v1.21", &pod),
        ["capabilities_baseline"]
    );
    assert_eq!(
        failed_ids("restricted", "v1.22", &pod),
        ["capabilities_restricted"]
    );
}

#[test]
fn host_probes_are_checked_from_v1_34() {
    let pod = json!({"spec": {"containers": [
        {"name": "a", "startupProbe": {"httpGet": {"host": "10.0.0.1"}}}
    ]}});
    assert_eq!(message("baseline", "v1.33", &pod), None);
    assert_eq!(
        failed_ids("baseline", "v1.34", &pod),
        ["hostProbesAndHostLifecycle"]
    );
}

#[test]
fn allowed_sysctls_grow_with_versions() {
    let pod = |name: &str| json!({"spec": {"securityContext": {"sysctls": [{"name": name, "value": "1"}]}}});
    let cases = [
        ("net.ipv4.ip_local_reserved_ports", 27),
        ("net.ipv4.tcp_keepalive_time", 29),
        ("net.ipv4.tcp_wmem", 32),
        ("net.ipv4.tcp_notsent_lowat", 37),
    ];
    for (name, since) in cases {
        let before = format!("v1.{}", since - 1);
        let at = format!("v1.{since}");
        assert_eq!(
            message("baseline", &before, &pod(name)).unwrap(),
            format!("violates PodSecurity \"baseline:{before}\": forbidden sysctls ({name})")
        );
        assert_eq!(message("baseline", &at, &pod(name)), None, "{name} at {at}");
        assert_eq!(
            message("baseline", "latest", &pod(name)),
            None,
            "{name} at latest"
        );
    }
}

#[test]
fn selinux_container_engine_type_is_allowed_from_v1_31() {
    let pod =
        json!({"spec": {"securityContext": {"seLinuxOptions": {"type": "container_engine_t"}}}});
    assert_eq!(failed_ids("baseline", "v1.30", &pod), ["seLinuxOptions"]);
    assert_eq!(message("baseline", "v1.31", &pod), None);
}

#[test]
fn windows_pods_are_exempt_from_linux_only_restricted_checks_from_v1_25() {
    let pod = json!({"spec": {
        "os": {"name": "windows"},
        "securityContext": {"runAsNonRoot": true},
        "containers": [{"name": "app"}]
    }});
    assert_eq!(
        failed_ids("restricted", "v1.24", &pod),
        [
            "allowPrivilegeEscalation",
            "capabilities_restricted",
            "seccompProfile_restricted"
        ]
    );
    assert_eq!(message("restricted", "v1.25", &pod), None);
}

#[test]
fn user_namespace_pods_are_relaxed_from_v1_35_except_restricted_proc_mount() {
    let mut pod = restricted_pod();
    pod["spec"]["hostUsers"] = json!(false);
    pod["spec"]["securityContext"] =
        json!({"runAsUser": 0, "seccompProfile": {"type": "RuntimeDefault"}});
    pod["spec"]["containers"][0]["securityContext"]["procMount"] = json!("Unmasked");
    assert_eq!(failed_ids("baseline", "v1.34", &pod), ["procMount"]);
    assert_eq!(failed_ids("baseline", "v1.35", &pod), Vec::<&str>::new());
    assert_eq!(
        failed_ids("restricted", "v1.34", &pod),
        ["procMount", "runAsNonRoot", "runAsUser"]
    );
    assert_eq!(
        failed_ids("restricted", "v1.35", &pod),
        ["procMount_restricted"]
    );
}

#[test]
fn latest_and_future_versions_evaluate_as_the_newest_known_version() {
    let pod =
        json!({"spec": {"securityContext": {"sysctls": [{"name": "net.ipv4.tcp_notsent_lowat"}]}}});
    assert_eq!(message("baseline", "v1.99", &pod), None);
    let denied = json!({"spec": {"securityContext": {"sysctls": [{"name": "kernel.msgmax"}]}}});
    assert_eq!(
        message("baseline", "v1.99", &denied).unwrap(),
        "violates PodSecurity \"baseline:v1.99\": forbidden sysctls (kernel.msgmax)"
    );
    for version in ["latest", "v1.99"] {
        assert_eq!(
            evaluate(
                Level::Restricted,
                version.parse().unwrap(),
                &Value::Null,
                &denied["spec"]
            ),
            evaluate(
                Level::Restricted,
                Version::NEWEST_KNOWN,
                &Value::Null,
                &denied["spec"]
            )
        );
    }
}

#[test]
fn privileged_runs_no_checks() {
    let pod = json!({"spec": {"hostNetwork": "yes", "containers": 7}});
    assert!(
        evaluate(
            Level::Privileged,
            Version::LATEST,
            &Value::Null,
            &pod["spec"]
        )
        .is_empty()
    );
    assert!(check_pod(policy("privileged", "v1.0"), &json!("not a pod")).is_ok());
}

#[test]
fn evaluate_reports_every_check_in_force() {
    let results = evaluate(
        Level::Restricted,
        Version::LATEST,
        &Value::Null,
        &restricted_pod()["spec"],
    );
    assert!(
        results
            .iter()
            .all(|r| r.allowed && r.forbidden_detail.is_empty())
    );
    let ids: Vec<&str> = results.iter().map(|r| r.id).collect();
    assert_eq!(
        ids,
        [
            "appArmorProfile",
            "hostNamespaces",
            "hostPorts",
            "hostProbesAndHostLifecycle",
            "privileged",
            "seLinuxOptions",
            "sysctls",
            "windowsHostProcess",
            "allowPrivilegeEscalation",
            "capabilities_restricted",
            "procMount_restricted",
            "restrictedVolumes",
            "runAsNonRoot",
            "runAsUser",
            "seccompProfile_restricted"
        ]
    );
}

// === hostile input ===

#[test]
fn wrong_json_types_fail_closed_and_name_the_field() {
    let cases = [
        (
            json!({"hostNetwork": "true"}),
            "host namespaces (spec.hostNetwork must be a boolean)",
        ),
        (
            json!({"containers": {"name": "a"}}),
            "spec.containers must be a list",
        ),
        (
            json!({"containers": ["a"]}),
            "spec.containers[0] must be an object",
        ),
        (
            json!({"containers": [{"name": 1}]}),
            "spec.containers[0].name must be a string",
        ),
        (
            json!({"containers": [{"name": "a", "securityContext": {"privileged": 1}}]}),
            "privileged (spec.containers[0].securityContext.privileged must be a boolean)",
        ),
        (
            json!({"initContainers": [{"name": "a", "securityContext": {"capabilities": {"add": [1]}}}]}),
            "non-default capabilities (spec.initContainers[0].securityContext.capabilities.add[0] must be a string)",
        ),
        (
            json!({"containers": [{"name": "a", "ports": [{"hostPort": "80"}]}]}),
            "hostPort (spec.containers[0].ports[0].hostPort must be an integer)",
        ),
        (
            json!({"containers": [{"name": "a", "ports": [{"hostPort": 80.5}]}]}),
            "hostPort (spec.containers[0].ports[0].hostPort must be an integer)",
        ),
        (
            json!({"volumes": "x"}),
            "hostPath volumes (spec.volumes must be a list)",
        ),
        (
            json!({"securityContext": []}),
            "spec.securityContext must be an object",
        ),
        (
            json!({"securityContext": {"sysctls": [{"name": ["x"]}]}}),
            "forbidden sysctls (spec.securityContext.sysctls[0].name must be a string)",
        ),
        (
            json!({"ephemeralContainers": [{"name": "e", "securityContext": "x"}]}),
            "spec.ephemeralContainers[0].securityContext must be an object",
        ),
    ];
    for (spec, expected) in cases {
        let pod = json!({"spec": spec});
        let violation = check_pod(policy("baseline", "latest"), &pod)
            .expect_err(&format!("{pod} must be denied"));
        assert!(
            violation.forbidden_detail().contains(expected),
            "{pod}\n  expected to contain: {expected}\n  actual: {}",
            violation.forbidden_detail()
        );
    }
}

#[test]
fn wrong_types_in_restricted_fields_are_denied_at_restricted() {
    let mut pod = restricted_pod();
    pod["spec"]["securityContext"]["runAsNonRoot"] = json!("true");
    assert_eq!(failed_ids("restricted", "latest", &pod), ["runAsNonRoot"]);
    let mut pod = restricted_pod();
    pod["spec"]["containers"][0]["securityContext"]["allowPrivilegeEscalation"] = json!(0);
    assert_eq!(
        failed_ids("restricted", "latest", &pod),
        ["allowPrivilegeEscalation"]
    );
    let mut pod = restricted_pod();
    pod["spec"]["securityContext"]["runAsUser"] = json!(0.0);
    assert_eq!(failed_ids("restricted", "latest", &pod), ["runAsUser"]);
    let mut pod = restricted_pod();
    pod["spec"]["os"] = json!("windows");
    assert!(!failed_ids("restricted", "latest", &pod).is_empty());
    let mut pod = restricted_pod();
    pod["metadata"]["annotations"] =
        json!({"container.apparmor.security.beta.kubernetes.io/app": 1});
    assert_eq!(
        check_pod(policy("restricted", "latest"), &pod)
            .unwrap_err()
            .forbidden_detail(),
        "forbidden AppArmor profile (metadata.annotations[container.apparmor.security.beta.kubernetes.io/app] must be a string)"
    );
}

#[test]
fn a_pod_that_is_not_an_object_is_denied() {
    for pod in [
        json!("pod"),
        json!([]),
        json!(1),
        json!({"spec": "x"}),
        json!({"metadata": 3, "spec": {}}),
    ] {
        let violation = check_pod(policy("baseline", "v1.0"), &pod).unwrap_err();
        assert_eq!(violation.failures().len(), 1, "{pod}");
        assert_eq!(violation.failures()[0].id, MALFORMED_POD);
    }
    assert_eq!(
        message("restricted", "latest", &json!({"spec": 1})).unwrap(),
        "violates PodSecurity \"restricted:latest\": malformed pod (spec must be an object)"
    );
}

#[test]
fn null_reads_as_absent_like_go_nil() {
    let pod = json!({"metadata": null, "spec": {
        "hostNetwork": null,
        "securityContext": null,
        "volumes": null,
        "containers": [{"name": "a", "securityContext": {"privileged": null, "capabilities": null}}]
    }});
    assert_eq!(message("baseline", "latest", &pod), None);
}

#[test]
fn unknown_volume_sources_and_hidden_second_sources_are_denied() {
    let mut pod = restricted_pod();
    pod["spec"]["volumes"] = json!([
        {"name": "defaulted"},
        {"name": "future", "someNewSource": {}},
        {"name": "sneaky", "configMap": {"name": "c"}, "hostPath": {"path": "/"}}
    ]);
    assert_eq!(
        check_pod(policy("restricted", "latest"), &pod)
            .unwrap_err()
            .forbidden_detail(),
        "restricted volume types (volumes \"future\", \"sneaky\" use restricted volume types \"hostPath\", \"unknown\")"
    );
}

#[test]
fn ephemeral_containers_are_checked() {
    let pod = json!({"spec": {"ephemeralContainers": [{"name": "debug", "securityContext": {"privileged": true}}]}});
    assert_eq!(failed_ids("baseline", "latest", &pod), ["privileged"]);
}

// === parsing and templates ===

#[test]
fn levels_and_versions_parse_as_namespace_labels_do() {
    assert_eq!(
        policy("restricted", "latest").to_string(),
        "restricted:latest"
    );
    assert_eq!(policy("baseline", "v1.0").version, Version::v1(0));
    assert_eq!(policy("privileged", "v1.123").version.minor(), Some(123));
    for bad in [
        "",
        "1.25",
        "v1",
        "v1.",
        "v1.05",
        "v2.0",
        "v1.x",
        "v1.-1",
        "Latest",
        "v1.99999999999",
    ] {
        assert_eq!(
            parse_level_version("baseline", bad),
            Err(PodSecurityError::InvalidVersion(bad.to_owned())),
            "{bad}"
        );
    }
    assert_eq!(
        parse_level_version("Restricted", "latest")
            .unwrap_err()
            .to_string(),
        "invalid pod security level `Restricted`: must be one of privileged, baseline, restricted"
    );
    assert!(Version::LATEST > Version::v1(1000));
    assert!(Level::Restricted > Level::Baseline && Level::Baseline > Level::Privileged);
}

#[test]
fn pod_templates_are_found_in_every_workload_kind() {
    let template = json!({"metadata": {"name": "t"}, "spec": {"containers": []}});
    let cases = [
        ("Pod", template.clone()),
        ("PodTemplate", json!({"template": template})),
        (
            "ReplicationController",
            json!({"spec": {"template": template}}),
        ),
        ("ReplicaSet", json!({"spec": {"template": template}})),
        ("Deployment", json!({"spec": {"template": template}})),
        ("StatefulSet", json!({"spec": {"template": template}})),
        ("DaemonSet", json!({"spec": {"template": template}})),
        ("Job", json!({"spec": {"template": template}})),
        (
            "CronJob",
            json!({"spec": {"jobTemplate": {"spec": {"template": template}}}}),
        ),
    ];
    for (kind, object) in cases {
        let (metadata, spec) = pod_template_spec(kind, &object).unwrap();
        assert_eq!(metadata, &template["metadata"], "{kind}");
        assert_eq!(spec, &template["spec"], "{kind}");
    }
    assert!(pod_template_spec("Service", &json!({})).is_none());
}

#[test]
fn a_broken_workload_template_is_denied_not_skipped() {
    let deployment = json!({"spec": {"template": "nope"}});
    let (metadata, spec) = pod_template_spec("Deployment", &deployment).unwrap();
    assert!(check_pod_spec(policy("baseline", "latest"), metadata, spec).is_err());
    let empty = json!({});
    let (metadata, spec) = pod_template_spec("Deployment", &empty).unwrap();
    assert!(metadata.is_null() && spec.is_null());
}

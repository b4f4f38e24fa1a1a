//! Rows for core/v1 resources: pods, namespaces, configmaps, secrets, services,
//! serviceaccounts and events (core/v1 and events.k8s.io/v1).

use std::collections::{BTreeSet, HashMap};

use jiff::Timestamp;
use serde_json::{Value, json};

use super::util::{
    NONE, UNKNOWN, array, at, boolean, count, format_labels, int, map_len, object, opt_int,
    or_none, present, since, string, time,
};

/// Whether the pod condition of `type_` exists with status `True` (first match wins).
fn condition_true(pod: &Value, type_: &str) -> bool {
    array(pod, "/status/conditions")
        .iter()
        .find(|c| string(c, "/type") == type_)
        .is_some_and(|c| string(c, "/status") == "True")
}

/// Keeps the later of `current` and the `finishedAt` of a container's last termination.
fn later_restart(current: Option<Timestamp>, status: &Value) -> Option<Timestamp> {
    if !present(status, "/lastState/terminated") {
        return current;
    }
    match (current, time(status, "/lastState/terminated/finishedAt")) {
        (Some(c), Some(t)) => Some(c.max(t)),
        (c, t) => c.or(t),
    }
}

/// `Signal:N` when a signal is set, otherwise `ExitCode:N`, for a terminated state.
fn exit_reason(terminated: &Value) -> String {
    let signal = int(terminated, "/signal");
    if signal != 0 {
        format!("Signal:{signal}")
    } else {
        format!("ExitCode:{}", int(terminated, "/exitCode"))
    }
}

/// Cells of a pod: Name, Ready, Status, Restarts, Age, IP, Node, Nominated Node,
/// Readiness Gates.
pub(crate) fn pod(pod: &Value, now: Timestamp) -> Vec<Value> {
    let init_specs = array(pod, "/spec/initContainers");
    let restartable: HashMap<&str, bool> = init_specs
        .iter()
        .map(|c| (string(c, "/name"), string(c, "/restartPolicy") == "Always"))
        .collect();
    let is_restartable = |status: &Value| {
        restartable
            .get(string(status, "/name"))
            .copied()
            .unwrap_or(false)
    };

    let sidecars = init_specs
        .iter()
        .filter(|c| string(c, "/restartPolicy") == "Always")
        .count();
    let total = array(pod, "/spec/containers")
        .len()
        .saturating_add(sidecars);
    let mut ready: i64 = 0;
    let mut restarts: i64 = 0;
    let mut sidecar_restarts: i64 = 0;
    let mut last_restart: Option<Timestamp> = None;
    let mut last_sidecar_restart: Option<Timestamp> = None;

    let phase = string(pod, "/status/phase");
    let status_reason = string(pod, "/status/reason");
    let mut reason = if status_reason.is_empty() {
        phase.to_owned()
    } else {
        status_reason.to_owned()
    };
    if array(pod, "/status/conditions")
        .iter()
        .any(|c| string(c, "/type") == "PodScheduled" && string(c, "/reason") == "SchedulingGated")
    {
        reason = "SchedulingGated".to_owned();
    }

    let mut initializing = false;
    for (i, status) in array(pod, "/status/initContainerStatuses")
        .iter()
        .enumerate()
    {
        let restart_count = int(status, "/restartCount");
        restarts = restarts.saturating_add(restart_count);
        last_restart = later_restart(last_restart, status);
        let sidecar = is_restartable(status);
        if sidecar {
            sidecar_restarts = sidecar_restarts.saturating_add(restart_count);
            last_sidecar_restart = later_restart(last_sidecar_restart, status);
        }
        let terminated = present(status, "/state/terminated");
        let waiting_reason = if present(status, "/state/waiting") {
            string(status, "/state/waiting/reason")
        } else {
            ""
        };
        if terminated && int(status, "/state/terminated/exitCode") == 0 {
            continue;
        }
        if sidecar && boolean(status, "/started") {
            if boolean(status, "/ready") {
                ready = ready.saturating_add(1);
            }
            continue;
        }
        reason = if terminated {
            let term_reason = string(status, "/state/terminated/reason");
            if term_reason.is_empty() {
                let terminated_state = status.pointer("/state/terminated").unwrap_or(&Value::Null);
                format!("Init:{}", exit_reason(terminated_state))
            } else {
                format!("Init:{term_reason}")
            }
        } else if !waiting_reason.is_empty() && waiting_reason != "PodInitializing" {
            format!("Init:{waiting_reason}")
        } else {
            format!("Init:{i}/{}", init_specs.len())
        };
        initializing = true;
        break;
    }

    if !initializing || condition_true(pod, "Initialized") {
        restarts = sidecar_restarts;
        last_restart = last_sidecar_restart;
        let mut has_running = false;
        for status in array(pod, "/status/containerStatuses").iter().rev() {
            restarts = restarts.saturating_add(int(status, "/restartCount"));
            last_restart = later_restart(last_restart, status);
            let waiting_reason = if present(status, "/state/waiting") {
                string(status, "/state/waiting/reason")
            } else {
                ""
            };
            let terminated = status
                .pointer("/state/terminated")
                .filter(|t| t.is_object());
            if !waiting_reason.is_empty() {
                reason = waiting_reason.to_owned();
            } else if let Some(term) = terminated {
                let term_reason = string(term, "/reason");
                reason = if term_reason.is_empty() {
                    exit_reason(term)
                } else {
                    term_reason.to_owned()
                };
            } else if boolean(status, "/ready") && present(status, "/state/running") {
                has_running = true;
                ready = ready.saturating_add(1);
            }
        }
        if reason == "Completed" && has_running {
            reason = if condition_true(pod, "Ready") {
                "Running".to_owned()
            } else {
                "NotReady".to_owned()
            };
        }
    }

    let deleting = at(pod, "/metadata/deletionTimestamp").is_some_and(|d| !d.is_null());
    if deleting && status_reason == "NodeLost" {
        reason = "Unknown".to_owned();
    } else if deleting && phase != "Succeeded" && phase != "Failed" {
        reason = "Terminating".to_owned();
    }

    let restarts_cell = match last_restart {
        Some(ts) if restarts != 0 => format!("{restarts} ({} ago)", since(Some(ts), now)),
        _ => restarts.to_string(),
    };

    let ip = array(pod, "/status/podIPs")
        .first()
        .map(|ip| string(ip, "/ip"))
        .unwrap_or_else(|| string(pod, "/status/podIP"));

    let gates = array(pod, "/spec/readinessGates");
    let readiness_gates = if gates.is_empty() {
        NONE.to_owned()
    } else {
        let conditions = array(pod, "/status/conditions");
        let true_gates = gates
            .iter()
            .filter(|gate| {
                let wanted = string(gate, "/conditionType");
                conditions
                    .iter()
                    .find(|c| string(c, "/type") == wanted)
                    .is_some_and(|c| string(c, "/status") == "True")
            })
            .count();
        format!("{true_gates}/{}", gates.len())
    };

    vec![
        json!(string(pod, "/metadata/name")),
        json!(format!("{ready}/{total}")),
        json!(reason),
        json!(restarts_cell),
        json!(since(time(pod, "/metadata/creationTimestamp"), now)),
        json!(or_none(ip)),
        json!(or_none(string(pod, "/spec/nodeName"))),
        json!(or_none(string(pod, "/status/nominatedNodeName"))),
        json!(readiness_gates),
    ]
}

/// The row conditions upstream attaches to pods that have finished.
pub(crate) fn pod_conditions(pod: &Value) -> Option<Value> {
    let (reason, message) = match string(pod, "/status/phase") {
        "Succeeded" => ("Succeeded", "The pod has completed successfully."),
        "Failed" => ("Failed", "The pod failed."),
        _ => return None,
    };
    Some(json!([{
        "type": "Completed",
        "status": "True",
        "reason": reason,
        "message": message,
    }]))
}

fn name_and_age(obj: &Value, now: Timestamp) -> (Value, Value) {
    (
        json!(string(obj, "/metadata/name")),
        json!(since(time(obj, "/metadata/creationTimestamp"), now)),
    )
}

/// Cells of a namespace: Name, Status, Age.
pub(crate) fn namespace(ns: &Value, now: Timestamp) -> Vec<Value> {
    let (name, age) = name_and_age(ns, now);
    vec![name, json!(string(ns, "/status/phase")), age]
}

/// Cells of a configmap: Name, Data (data plus binaryData entries), Age.
pub(crate) fn config_map(cm: &Value, now: Timestamp) -> Vec<Value> {
    let (name, age) = name_and_age(cm, now);
    let entries = map_len(cm, "/data").saturating_add(map_len(cm, "/binaryData"));
    vec![name, json!(entries), age]
}

/// Cells of a secret: Name, Type, Data, Age. Keys of the write-only `stringData` count
/// too, as they would once merged into `data`.
pub(crate) fn secret(secret: &Value, now: Timestamp) -> Vec<Value> {
    let (name, age) = name_and_age(secret, now);
    let keys: BTreeSet<&str> = ["/data", "/stringData"]
        .iter()
        .filter_map(|path| object(secret, path))
        .flat_map(|m| m.keys().map(String::as_str))
        .collect();
    vec![name, json!(string(secret, "/type")), json!(keys.len()), age]
}

/// Cells of a serviceaccount: Name, Secrets, Age.
pub(crate) fn service_account(sa: &Value, now: Timestamp) -> Vec<Value> {
    let (name, age) = name_and_age(sa, now);
    vec![name, json!(count(array(sa, "/secrets"))), age]
}

/// Load balancer ingress points (IP, else hostname), de-duplicated and sorted.
fn load_balancer_ingress(svc: &Value) -> Vec<&str> {
    let set: BTreeSet<&str> = array(svc, "/status/loadBalancer/ingress")
        .iter()
        .filter_map(|ing| {
            let ip = string(ing, "/ip");
            let host = string(ing, "/hostname");
            if !ip.is_empty() {
                Some(ip)
            } else if !host.is_empty() {
                Some(host)
            } else {
                None
            }
        })
        .collect();
    set.into_iter().collect()
}

fn service_external_ip(svc: &Value) -> String {
    let external: Vec<&str> = array(svc, "/spec/externalIPs")
        .iter()
        .map(|ip| ip.as_str().unwrap_or(""))
        .collect();
    match string(svc, "/spec/type") {
        "ClusterIP" | "NodePort" => {
            if external.is_empty() {
                NONE.to_owned()
            } else {
                external.join(",")
            }
        }
        "LoadBalancer" => {
            let mut all = load_balancer_ingress(svc);
            if all.is_empty() && external.is_empty() {
                return "<pending>".to_owned();
            }
            all.extend(external);
            all.join(",")
        }
        "ExternalName" => string(svc, "/spec/externalName").to_owned(),
        _ => UNKNOWN.to_owned(),
    }
}

fn service_ports(svc: &Value) -> String {
    let ports: Vec<String> = array(svc, "/spec/ports")
        .iter()
        .map(|p| {
            let port = int(p, "/port");
            let protocol = string(p, "/protocol");
            match opt_int(p, "/nodePort").filter(|n| *n > 0) {
                Some(node_port) => format!("{port}:{node_port}/{protocol}"),
                None => format!("{port}/{protocol}"),
            }
        })
        .collect();
    if ports.is_empty() {
        NONE.to_owned()
    } else {
        ports.join(",")
    }
}

/// Cells of a service: Name, Type, Cluster-IP, External-IP, Port(s), Age, Selector.
pub(crate) fn service(svc: &Value, now: Timestamp) -> Vec<Value> {
    let (name, age) = name_and_age(svc, now);
    let cluster_ip = array(svc, "/spec/clusterIPs")
        .first()
        .and_then(Value::as_str)
        .unwrap_or_else(|| string(svc, "/spec/clusterIP"));
    vec![
        name,
        json!(string(svc, "/spec/type")),
        json!(or_none(cluster_ip)),
        json!(service_external_ip(svc)),
        json!(service_ports(svc)),
        age,
        json!(format_labels(svc, "/spec/selector")),
    ]
}

/// Field names of an event in core/v1 and in events.k8s.io/v1.
struct EventFields {
    involved: &'static str,
    message: &'static str,
    source: &'static str,
    first: &'static str,
    last: &'static str,
    count: &'static str,
    controller: &'static str,
}

const CORE_EVENT: EventFields = EventFields {
    involved: "/involvedObject",
    message: "/message",
    source: "/source",
    first: "/firstTimestamp",
    last: "/lastTimestamp",
    count: "/count",
    controller: "/reportingComponent",
};

const EVENTS_V1_EVENT: EventFields = EventFields {
    involved: "/regarding",
    message: "/note",
    source: "/deprecatedSource",
    first: "/deprecatedFirstTimestamp",
    last: "/deprecatedLastTimestamp",
    count: "/deprecatedCount",
    controller: "/reportingController",
};

/// Cells of an event: Last Seen, Type, Reason, Object, Subobject, Source, Message,
/// First Seen, Count, Name. `events_v1` selects the events.k8s.io/v1 field names.
pub(crate) fn event(ev: &Value, now: Timestamp, events_v1: bool) -> Vec<Value> {
    let f = if events_v1 {
        &EVENTS_V1_EVENT
    } else {
        &CORE_EVENT
    };
    let field = |suffix: &str| format!("{}{suffix}", f.involved);
    let source = |suffix: &str| format!("{}{suffix}", f.source);

    let first = match time(ev, f.first) {
        Some(ts) => since(Some(ts), now),
        None => since(time(ev, "/eventTime"), now),
    };
    let mut last = match time(ev, f.last) {
        Some(ts) => since(Some(ts), now),
        None => first.clone(),
    };
    let mut occurrences = int(ev, f.count);
    if present(ev, "/series") {
        last = since(time(ev, "/series/lastObservedTime"), now);
        occurrences = int(ev, "/series/count");
    } else if occurrences == 0 {
        occurrences = 1;
    }

    let kind = string(ev, &field("/kind")).to_lowercase();
    let involved_name = string(ev, &field("/name"));
    let target = if involved_name.is_empty() {
        kind
    } else {
        format!("{kind}/{involved_name}")
    };

    let component = first_non_empty(string(ev, &source("/component")), string(ev, f.controller));
    let host = first_non_empty(
        string(ev, &source("/host")),
        string(ev, "/reportingInstance"),
    );
    let source_cell = if host.is_empty() {
        component.to_owned()
    } else {
        format!("{component}, {host}")
    };

    vec![
        json!(last),
        json!(string(ev, "/type")),
        json!(string(ev, "/reason")),
        json!(target),
        json!(string(ev, &field("/fieldPath"))),
        json!(source_cell),
        json!(string(ev, f.message).trim()),
        json!(first),
        json!(occurrences),
        json!(string(ev, "/metadata/name")),
    ]
}

fn first_non_empty<'a>(a: &'a str, b: &'a str) -> &'a str {
    if a.is_empty() { b } else { a }
}

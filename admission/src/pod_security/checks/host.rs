//! Checks on what a pod shares with its node: host namespaces, host ports, probe and lifecycle
//! hosts, Windows host processes.

use std::collections::BTreeSet;

use serde_json::Value;

use super::{Forbidden, Outcome, containers_phrase};
use crate::pod_security::json::{
    Malformed, Pod, join_quote, lookup, lookup_array, lookup_int, lookup_str, pluralize,
};

/// `hostNamespaces` (baseline, v1.0+): `spec.hostNetwork`, `hostPID`, `hostIPC` must not be true.
pub(super) fn host_namespaces_1_0(pod: &Pod<'_>) -> Outcome {
    let mut shared = Vec::new();
    for (field, text) in [
        ("hostNetwork", "hostNetwork=true"),
        ("hostPID", "hostPID=true"),
        ("hostIPC", "hostIPC=true"),
    ] {
        if pod.spec_bool(&[field])? == Some(true) {
            shared.push(text);
        }
    }
    if shared.is_empty() {
        return Ok(None);
    }
    Ok(Forbidden::new("host namespaces", shared.join(", ")))
}

/// `hostPorts` (baseline, v1.0+): `ports[*].hostPort` must be absent or 0 in every container.
pub(super) fn host_ports_1_0(pod: &Pod<'_>) -> Outcome {
    let mut bad_containers = Vec::new();
    let mut ports = BTreeSet::new();
    pod.visit_containers(|container| {
        let mut valid = true;
        let entries = lookup_array(container.value, &["ports"])?;
        for (index, entry) in entries.iter().enumerate() {
            let in_ports = |e: Malformed| e.at_index(index).within("ports");
            if !entry.is_object() {
                return Err(in_ports(Malformed::not_an_object()));
            }
            if let Some(port) = lookup_int(entry, &["hostPort"]).map_err(in_ports)?
                && port != 0
            {
                valid = false;
                ports.insert(port.to_string());
            }
        }
        if !valid {
            bad_containers.push(container.name);
        }
        Ok(())
    })?;
    if bad_containers.is_empty() {
        return Ok(None);
    }
    let n = bad_containers.len();
    Ok(Forbidden::new(
        "hostPort",
        format!(
            "{} {} {} {}",
            containers_phrase(&bad_containers),
            pluralize("uses", "use", n),
            pluralize("hostPort", "hostPorts", ports.len()),
            ports.into_iter().collect::<Vec<_>>().join(", "),
        ),
    ))
}

/// `hostProbesAndHostLifecycle` (baseline, v1.34+): probes and lifecycle handlers must not set
/// `httpGet.host` or `tcpSocket.host`.
pub(super) fn host_probes_and_lifecycle_1_34(pod: &Pod<'_>) -> Outcome {
    let mut bad_containers = BTreeSet::new();
    let mut hosts = BTreeSet::new();
    pod.visit_containers(|container| {
        for handler in PROBES {
            let found = handler_hosts(container.value, &[handler])?;
            if !found.is_empty() {
                bad_containers.insert(container.name);
                hosts.extend(found);
            }
        }
        for handler in LIFECYCLE_HANDLERS {
            let found = handler_hosts(container.value, &["lifecycle", handler])?;
            if !found.is_empty() {
                bad_containers.insert(container.name);
                hosts.extend(found);
            }
        }
        Ok(())
    })?;
    if bad_containers.is_empty() {
        return Ok(None);
    }
    let n = bad_containers.len();
    Ok(Forbidden::new(
        "probe or lifecycle host",
        format!(
            "{} {} {} {}",
            containers_phrase(&bad_containers.into_iter().collect::<Vec<_>>()),
            pluralize("uses", "use", n),
            pluralize(
                "probe or lifecycle host",
                "probe or lifecycle hosts",
                hosts.len()
            ),
            join_quote(hosts),
        ),
    ))
}

/// `windowsHostProcess` (baseline, v1.0+): no `securityContext.windowsOptions.hostProcess=true`
/// at pod or container level.
pub(super) fn windows_host_process_1_0(pod: &Pod<'_>) -> Outcome {
    let mut bad_containers = Vec::new();
    pod.visit_containers(|container| {
        if container.security_bool(&["windowsOptions", "hostProcess"])? == Some(true) {
            bad_containers.push(container.name);
        }
        Ok(())
    })?;
    let pod_forbidden =
        pod.spec_bool(&["securityContext", "windowsOptions", "hostProcess"])? == Some(true);
    let mut setters = Vec::new();
    if pod_forbidden {
        setters.push("pod".to_owned());
    }
    if !bad_containers.is_empty() {
        setters.push(containers_phrase(&bad_containers));
    }
    if setters.is_empty() {
        return Ok(None);
    }
    Ok(Forbidden::new(
        "hostProcess",
        format!(
            "{} must not set securityContext.windowsOptions.hostProcess=true",
            setters.join(" and ")
        ),
    ))
}

/// The non-empty `httpGet.host` and `tcpSocket.host` of the handler at `path`.
fn handler_hosts<'a>(
    container: &'a Value,
    path: &[&'static str],
) -> Result<Vec<&'a str>, Malformed> {
    let mut hosts = Vec::new();
    let Some(handler) = lookup(container, path)? else {
        return Ok(hosts);
    };
    let within = |e: Malformed| path.iter().rev().fold(e, |e, key| e.within(key));
    for action in ["httpGet", "tcpSocket"] {
        if let Some(host) = lookup_str(handler, &[action, "host"]).map_err(within)?
            && !host.is_empty()
        {
            hosts.push(host);
        }
    }
    Ok(hosts)
}

const PROBES: [&str; 3] = ["livenessProbe", "readinessProbe", "startupProbe"];
const LIFECYCLE_HANDLERS: [&str; 2] = ["postStart", "preStop"];

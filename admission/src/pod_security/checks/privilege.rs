//! Checks on process privilege: privileged containers, privilege escalation, capabilities,
//! `/proc` masking, and running as root.

use std::collections::BTreeSet;

use super::{Forbidden, Outcome, containers_phrase};
use crate::pod_security::json::{Pod, join_quote, lookup_bool, lookup_int, lookup_strings};

/// `privileged` (baseline, v1.0+): no container may set `securityContext.privileged=true`.
pub(super) fn privileged_1_0(pod: &Pod<'_>) -> Outcome {
    let mut bad = Vec::new();
    pod.visit_containers(|container| {
        if container.security_bool(&["privileged"])? == Some(true) {
            bad.push(container.name);
        }
        Ok(())
    })?;
    if bad.is_empty() {
        return Ok(None);
    }
    Ok(Forbidden::new(
        "privileged",
        format!(
            "{} must not set securityContext.privileged=true",
            containers_phrase(&bad)
        ),
    ))
}

/// `allowPrivilegeEscalation` (restricted, v1.8+): every container must set
/// `securityContext.allowPrivilegeEscalation=false`.
pub(super) fn allow_privilege_escalation_1_8(pod: &Pod<'_>) -> Outcome {
    let mut bad = Vec::new();
    pod.visit_containers(|container| {
        if container.security_bool(&["allowPrivilegeEscalation"])? != Some(false) {
            bad.push(container.name);
        }
        Ok(())
    })?;
    if bad.is_empty() {
        return Ok(None);
    }
    Ok(Forbidden::new(
        "allowPrivilegeEscalation != false",
        format!(
            "{} must set securityContext.allowPrivilegeEscalation=false",
            containers_phrase(&bad)
        ),
    ))
}

/// `allowPrivilegeEscalation` from v1.25: as v1.8, but Windows pods (`spec.os.name: windows`)
/// are exempt.
pub(super) fn allow_privilege_escalation_1_25(pod: &Pod<'_>) -> Outcome {
    if pod.is_windows()? {
        return Ok(None);
    }
    allow_privilege_escalation_1_8(pod)
}

/// `capabilities_baseline` (baseline, v1.0+): `capabilities.add` may only hold the default set.
pub(super) fn capabilities_baseline_1_0(pod: &Pod<'_>) -> Outcome {
    let mut bad = Vec::new();
    let mut forbidden = BTreeSet::new();
    pod.visit_containers(|container| {
        let Some(capabilities) = container.security(&["capabilities"])? else {
            return Ok(());
        };
        let mut valid = true;
        let added = lookup_strings(capabilities, &["add"])
            .map_err(|e| e.within("capabilities").within("securityContext"))?;
        for capability in added {
            let capability =
                capability.map_err(|e| e.within("capabilities").within("securityContext"))?;
            if !DEFAULT_CAPABILITIES.contains(&capability) {
                valid = false;
                forbidden.insert(capability);
            }
        }
        if !valid {
            bad.push(container.name);
        }
        Ok(())
    })?;
    if bad.is_empty() {
        return Ok(None);
    }
    Ok(Forbidden::new(
        "non-default capabilities",
        format!(
            "{} must not include {} in securityContext.capabilities.add",
            containers_phrase(&bad),
            join_quote(forbidden)
        ),
    ))
}

/// `capabilities_restricted` (restricted, v1.22+, replaces `capabilities_baseline`): every
/// container must drop `ALL` and may add only `NET_BIND_SERVICE`.
pub(super) fn capabilities_restricted_1_22(pod: &Pod<'_>) -> Outcome {
    let mut missing_drop_all = Vec::new();
    let mut adding_forbidden = Vec::new();
    let mut forbidden = BTreeSet::new();
    pod.visit_containers(|container| {
        let Some(capabilities) = container.security(&["capabilities"])? else {
            missing_drop_all.push(container.name);
            return Ok(());
        };
        let in_caps = |e: crate::pod_security::json::Malformed| {
            e.within("capabilities").within("securityContext")
        };
        let mut dropped_all = false;
        for capability in lookup_strings(capabilities, &["drop"]).map_err(in_caps)? {
            if capability.map_err(in_caps)? == CAPABILITY_ALL {
                dropped_all = true;
            }
        }
        if !dropped_all {
            missing_drop_all.push(container.name);
        }
        let mut added_forbidden = false;
        for capability in lookup_strings(capabilities, &["add"]).map_err(in_caps)? {
            let capability = capability.map_err(in_caps)?;
            if capability != CAPABILITY_NET_BIND_SERVICE {
                added_forbidden = true;
                forbidden.insert(capability);
            }
        }
        if added_forbidden {
            adding_forbidden.push(container.name);
        }
        Ok(())
    })?;
    let mut details = Vec::new();
    if !missing_drop_all.is_empty() {
        details.push(format!(
            "{} must set securityContext.capabilities.drop=[\"ALL\"]",
            containers_phrase(&missing_drop_all)
        ));
    }
    if !adding_forbidden.is_empty() {
        details.push(format!(
            "{} must not include {} in securityContext.capabilities.add",
            containers_phrase(&adding_forbidden),
            join_quote(forbidden)
        ));
    }
    if details.is_empty() {
        return Ok(None);
    }
    Ok(Forbidden::new(
        "unrestricted capabilities",
        details.join("; "),
    ))
}

/// `capabilities_restricted` from v1.25: as v1.22, but Windows pods are exempt.
pub(super) fn capabilities_restricted_1_25(pod: &Pod<'_>) -> Outcome {
    if pod.is_windows()? {
        return Ok(None);
    }
    capabilities_restricted_1_22(pod)
}

/// `procMount` (baseline, v1.0+) and `procMount_restricted` (restricted, v1.35+):
/// `securityContext.procMount` must be absent or `Default`.
pub(super) fn proc_mount_1_0(pod: &Pod<'_>) -> Outcome {
    let mut bad = Vec::new();
    let mut types = BTreeSet::new();
    pod.visit_containers(|container| {
        let Some(proc_mount) = container.security_str(&["procMount"])? else {
            return Ok(());
        };
        if proc_mount != "Default" {
            bad.push(container.name);
            types.insert(proc_mount.to_owned());
        }
        Ok(())
    })?;
    if bad.is_empty() {
        return Ok(None);
    }
    Ok(Forbidden::new(
        "procMount",
        format!(
            "{} must not set securityContext.procMount to {}",
            containers_phrase(&bad),
            join_quote(types)
        ),
    ))
}

/// `procMount` from v1.35: any value is allowed in a user namespace (`hostUsers: false`).
pub(super) fn proc_mount_baseline_1_35(pod: &Pod<'_>) -> Outcome {
    if pod.in_user_namespace()? {
        return Ok(None);
    }
    proc_mount_1_0(pod)
}

/// `runAsNonRoot` (restricted, v1.0+): the pod, or else every container, must set
/// `runAsNonRoot=true`, and nothing may set it to false.
pub(super) fn run_as_non_root_1_0(pod: &Pod<'_>) -> Outcome {
    let mut setters = Vec::new();
    let mut pod_non_root = false;
    if let Some(sc) = pod.security_context()? {
        match lookup_bool(sc, &["runAsNonRoot"])
            .map_err(|e| e.within("securityContext").within("spec"))?
        {
            Some(false) => setters.push("pod".to_owned()),
            Some(true) => pod_non_root = true,
            None => {}
        }
    }
    let mut explicitly_bad = Vec::new();
    let mut implicitly_bad = Vec::new();
    pod.visit_containers(|container| {
        match container.security_bool(&["runAsNonRoot"])? {
            Some(false) => explicitly_bad.push(container.name),
            Some(true) => {}
            None if !pod_non_root => implicitly_bad.push(container.name),
            None => {}
        }
        Ok(())
    })?;
    if !explicitly_bad.is_empty() {
        setters.push(containers_phrase(&explicitly_bad));
    }
    if !setters.is_empty() {
        return Ok(Forbidden::new(
            "runAsNonRoot != true",
            format!(
                "{} must not set securityContext.runAsNonRoot=false",
                setters.join(" and ")
            ),
        ));
    }
    if !implicitly_bad.is_empty() {
        return Ok(Forbidden::new(
            "runAsNonRoot != true",
            format!(
                "pod or {} must set securityContext.runAsNonRoot=true",
                containers_phrase(&implicitly_bad)
            ),
        ));
    }
    Ok(None)
}

/// `runAsNonRoot` from v1.35: pods in a user namespace (`hostUsers: false`) are exempt.
pub(super) fn run_as_non_root_1_35(pod: &Pod<'_>) -> Outcome {
    if pod.in_user_namespace()? {
        return Ok(None);
    }
    run_as_non_root_1_0(pod)
}

/// `runAsUser` (restricted, v1.23+): neither the pod nor any container may set `runAsUser=0`.
pub(super) fn run_as_user_1_23(pod: &Pod<'_>) -> Outcome {
    let mut setters = Vec::new();
    if let Some(sc) = pod.security_context()?
        && lookup_int(sc, &["runAsUser"]).map_err(|e| e.within("securityContext").within("spec"))?
            == Some(0)
    {
        setters.push("pod".to_owned());
    }
    let mut bad = Vec::new();
    pod.visit_containers(|container| {
        if let Some(sc) = container.security(&[])?
            && lookup_int(sc, &["runAsUser"]).map_err(|e| e.within("securityContext"))? == Some(0)
        {
            bad.push(container.name);
        }
        Ok(())
    })?;
    if !bad.is_empty() {
        setters.push(containers_phrase(&bad));
    }
    if setters.is_empty() {
        return Ok(None);
    }
    Ok(Forbidden::new(
        "runAsUser=0",
        format!("{} must not set runAsUser=0", setters.join(" and ")),
    ))
}

/// `runAsUser` from v1.35: pods in a user namespace (`hostUsers: false`) are exempt.
pub(super) fn run_as_user_1_35(pod: &Pod<'_>) -> Outcome {
    if pod.in_user_namespace()? {
        return Ok(None);
    }
    run_as_user_1_23(pod)
}

const CAPABILITY_ALL: &str = "ALL";
const CAPABILITY_NET_BIND_SERVICE: &str = "NET_BIND_SERVICE";

/// The capabilities a container runtime grants by default, which baseline lets a pod add.
const DEFAULT_CAPABILITIES: [&str; 13] = [
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "NET_BIND_SERVICE",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
];

//! Checks on kernel security profiles and settings: AppArmor, seccomp, SELinux, sysctls.

use std::collections::BTreeSet;

use serde_json::Value;

use super::{Forbidden, Outcome, containers_phrase};
use crate::pod_security::json::{
    Malformed, Pod, join_quote, key_go_quoted, lookup_array, lookup_string, pluralize,
};

/// `appArmorProfile` (baseline, v1.0+): `appArmorProfile.type` must be `RuntimeDefault` or
/// `Localhost` (pod and containers), and the beta annotations
/// `container.apparmor.security.beta.kubernetes.io/*` must be empty, `runtime/default` or
/// `localhost/*`.
pub(super) fn app_armor_1_0(pod: &Pod<'_>) -> Outcome {
    let mut setters = Vec::new();
    let mut bad_values = BTreeSet::new();
    if let Some(profile) = pod.spec(&["securityContext", "appArmorProfile"])? {
        let kind = lookup_string(profile, &["type"]).map_err(|e| {
            e.within("appArmorProfile")
                .within("securityContext")
                .within("spec")
        })?;
        if !matches!(kind, "RuntimeDefault" | "Localhost") {
            setters.push("pod".to_owned());
            bad_values.insert(kind);
        }
    }
    let mut bad_containers = Vec::new();
    pod.visit_containers(|container| {
        if let Some(profile) = container.security(&["appArmorProfile"])? {
            let kind = lookup_string(profile, &["type"])
                .map_err(|e| e.within("appArmorProfile").within("securityContext"))?;
            if !matches!(kind, "RuntimeDefault" | "Localhost") {
                bad_containers.push(container.name);
                bad_values.insert(kind);
            }
        }
        Ok(())
    })?;
    if !bad_containers.is_empty() {
        setters.push(containers_phrase(&bad_containers));
    }
    let mut annotations: Vec<String> = pod
        .annotations_with_prefix(APPARMOR_ANNOTATION_PREFIX)?
        .into_iter()
        .filter(|(_, value)| {
            !(value.is_empty() || *value == "runtime/default" || value.starts_with("localhost/"))
        })
        .map(|(key, value)| key_go_quoted(key, value))
        .collect();
    let mut bad_list: Vec<String> = bad_values.into_iter().map(str::to_owned).collect();
    if !annotations.is_empty() {
        annotations.sort();
        setters.push(pluralize("annotation", "annotations", annotations.len()).to_owned());
        bad_list.append(&mut annotations);
    }
    if setters.is_empty() {
        return Ok(None);
    }
    Ok(Forbidden::new(
        pluralize(
            "forbidden AppArmor profile",
            "forbidden AppArmor profiles",
            bad_list.len(),
        ),
        format!(
            "{} must not set AppArmor profile type to {}",
            setters.join(" and "),
            join_quote(bad_list)
        ),
    ))
}

/// `seccompProfile_baseline` before v1.19: the alpha annotations
/// `seccomp.security.alpha.kubernetes.io/pod` and `container.seccomp.security.alpha.kubernetes.io/<name>`
/// must be `runtime/default`, `docker/default` or `localhost/*`.
pub(super) fn seccomp_baseline_1_0(pod: &Pod<'_>) -> Outcome {
    let mut forbidden = BTreeSet::new();
    if let Some(value) = pod.annotation(SECCOMP_POD_ANNOTATION)?
        && !valid_seccomp_annotation(value)
    {
        forbidden.insert(key_go_quoted(SECCOMP_POD_ANNOTATION, value));
    }
    let mut keys = Vec::new();
    pod.visit_containers(|container| {
        keys.push(format!(
            "{SECCOMP_CONTAINER_ANNOTATION_PREFIX}{}",
            container.name
        ));
        Ok(())
    })?;
    for key in keys {
        if let Some(value) = pod.annotation(&key)?
            && !valid_seccomp_annotation(value)
        {
            forbidden.insert(key_go_quoted(&key, value));
        }
    }
    if forbidden.is_empty() {
        return Ok(None);
    }
    Ok(Forbidden::new(
        "seccompProfile",
        format!(
            "forbidden {} {}",
            pluralize("annotation", "annotations", forbidden.len()),
            forbidden.into_iter().collect::<Vec<_>>().join(", ")
        ),
    ))
}

/// `seccompProfile_baseline` from v1.19: `seccompProfile.type`, where set on the pod or a
/// container, must be `RuntimeDefault` or `Localhost`.
pub(super) fn seccomp_baseline_1_19(pod: &Pod<'_>) -> Outcome {
    seccomp_fields(pod, false)
}

/// `seccompProfile_restricted` (restricted, v1.19+, replaces `seccompProfile_baseline`): as
/// baseline, and every container must be covered by a valid pod or container profile.
pub(super) fn seccomp_restricted_1_19(pod: &Pod<'_>) -> Outcome {
    seccomp_fields(pod, true)
}

/// `seccompProfile_restricted` from v1.25: Windows pods are exempt.
pub(super) fn seccomp_restricted_1_25(pod: &Pod<'_>) -> Outcome {
    if pod.is_windows()? {
        return Ok(None);
    }
    seccomp_restricted_1_19(pod)
}

/// `seLinuxOptions` (baseline, v1.0+): no custom user or role, and a type among the container
/// types.
pub(super) fn se_linux_options_1_0(pod: &Pod<'_>) -> Outcome {
    se_linux_options(pod, &SELINUX_TYPES_1_0)
}

/// `seLinuxOptions` from v1.31: `container_engine_t` joins the allowed types.
pub(super) fn se_linux_options_1_31(pod: &Pod<'_>) -> Outcome {
    se_linux_options(pod, &SELINUX_TYPES_1_31)
}

/// `sysctls` (baseline, v1.0+): only the namespaced, isolated sysctls.
pub(super) fn sysctls_1_0(pod: &Pod<'_>) -> Outcome {
    sysctls(pod, SYSCTLS_1_0)
}

/// `sysctls` from v1.27: adds `net.ipv4.ip_local_reserved_ports`.
pub(super) fn sysctls_1_27(pod: &Pod<'_>) -> Outcome {
    sysctls(pod, SYSCTLS_1_27)
}

/// `sysctls` from v1.29: adds the TCP keepalive and FIN timeout sysctls.
pub(super) fn sysctls_1_29(pod: &Pod<'_>) -> Outcome {
    sysctls(pod, SYSCTLS_1_29)
}

/// `sysctls` from v1.32: adds `net.ipv4.tcp_rmem` and `net.ipv4.tcp_wmem`.
pub(super) fn sysctls_1_32(pod: &Pod<'_>) -> Outcome {
    sysctls(pod, SYSCTLS_1_32)
}

/// `sysctls` from v1.37: adds `net.ipv4.tcp_slow_start_after_idle` and
/// `net.ipv4.tcp_notsent_lowat`.
pub(super) fn sysctls_1_37(pod: &Pod<'_>) -> Outcome {
    sysctls(pod, SYSCTLS_1_37)
}

fn seccomp_fields(pod: &Pod<'_>, restricted: bool) -> Outcome {
    let mut setters = Vec::new();
    let mut bad_values = BTreeSet::new();
    let mut pod_valid = false;
    if let Some(profile) = pod.spec(&["securityContext", "seccompProfile"])? {
        let kind = lookup_string(profile, &["type"]).map_err(|e| {
            e.within("seccompProfile")
                .within("securityContext")
                .within("spec")
        })?;
        if valid_seccomp(kind) {
            pod_valid = true;
        } else {
            setters.push("pod".to_owned());
            bad_values.insert(kind);
        }
    }
    let mut explicitly_bad = Vec::new();
    let mut implicitly_bad = Vec::new();
    pod.visit_containers(|container| {
        match container.security(&["seccompProfile"])? {
            Some(profile) => {
                let kind = lookup_string(profile, &["type"])
                    .map_err(|e| e.within("seccompProfile").within("securityContext"))?;
                if !valid_seccomp(kind) {
                    explicitly_bad.push(container.name);
                    bad_values.insert(kind);
                }
            }
            None if !pod_valid => implicitly_bad.push(container.name),
            None => {}
        }
        Ok(())
    })?;
    if !explicitly_bad.is_empty() {
        setters.push(containers_phrase(&explicitly_bad));
    }
    if !setters.is_empty() {
        return Ok(Forbidden::new(
            "seccompProfile",
            format!(
                "{} must not set securityContext.seccompProfile.type to {}",
                setters.join(" and "),
                join_quote(bad_values)
            ),
        ));
    }
    if restricted && !implicitly_bad.is_empty() {
        return Ok(Forbidden::new(
            "seccompProfile",
            format!(
                "pod or {} must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\"",
                containers_phrase(&implicitly_bad)
            ),
        ));
    }
    Ok(None)
}

fn se_linux_options<'a>(pod: &Pod<'a>, allowed_types: &[&str]) -> Outcome {
    let mut bad_types = BTreeSet::new();
    let mut set_user = false;
    let mut set_role = false;
    let mut valid = |options: &'a Value| -> Result<bool, Malformed> {
        let kind = lookup_string(options, &["type"])?;
        let user = lookup_string(options, &["user"])?;
        let role = lookup_string(options, &["role"])?;
        let mut ok = true;
        if !allowed_types.contains(&kind) {
            ok = false;
            bad_types.insert(kind);
        }
        if !user.is_empty() {
            ok = false;
            set_user = true;
        }
        if !role.is_empty() {
            ok = false;
            set_role = true;
        }
        Ok(ok)
    };
    let mut setters = Vec::new();
    if let Some(options) = pod.spec(&["securityContext", "seLinuxOptions"])?
        && !valid(options).map_err(|e| {
            e.within("seLinuxOptions")
                .within("securityContext")
                .within("spec")
        })?
    {
        setters.push("pod".to_owned());
    }
    let mut bad_containers = Vec::new();
    pod.visit_containers(|container| {
        if let Some(options) = container.security(&["seLinuxOptions"])?
            && !valid(options).map_err(|e| e.within("seLinuxOptions").within("securityContext"))?
        {
            bad_containers.push(container.name);
        }
        Ok(())
    })?;
    if !bad_containers.is_empty() {
        setters.push(containers_phrase(&bad_containers));
    }
    if setters.is_empty() {
        return Ok(None);
    }
    let mut bad_data = Vec::new();
    if !bad_types.is_empty() {
        bad_data.push(format!(
            "{} {}",
            pluralize("type", "types", bad_types.len()),
            join_quote(&bad_types)
        ));
    }
    if set_user {
        bad_data.push("user may not be set".to_owned());
    }
    if set_role {
        bad_data.push("role may not be set".to_owned());
    }
    Ok(Forbidden::new(
        "seLinuxOptions",
        format!(
            "{} set forbidden securityContext.seLinuxOptions: {}",
            setters.join(" and "),
            bad_data.join("; ")
        ),
    ))
}

/// `allowed` is how many names of [`SYSCTLS`] (a list that only grows) the version allows.
fn sysctls(pod: &Pod<'_>, allowed: usize) -> Outcome {
    let allowed = SYSCTLS.get(..allowed).unwrap_or(&SYSCTLS);
    let mut forbidden = Vec::new();
    let entries = match pod.security_context()? {
        Some(sc) => lookup_array(sc, &["sysctls"])
            .map_err(|e| e.within("securityContext").within("spec"))?,
        None => &[],
    };
    for (index, entry) in entries.iter().enumerate() {
        let in_list = |e: Malformed| {
            e.at_index(index)
                .within("sysctls")
                .within("securityContext")
                .within("spec")
        };
        if !entry.is_object() {
            return Err(in_list(Malformed::not_an_object()));
        }
        let name = lookup_string(entry, &["name"]).map_err(in_list)?;
        if !allowed.contains(&name) {
            forbidden.push(name);
        }
    }
    if forbidden.is_empty() {
        return Ok(None);
    }
    Ok(Forbidden::new("forbidden sysctls", forbidden.join(", ")))
}

fn valid_seccomp(kind: &str) -> bool {
    matches!(kind, "RuntimeDefault" | "Localhost")
}

fn valid_seccomp_annotation(value: &str) -> bool {
    value == "runtime/default" || value == "docker/default" || value.starts_with("localhost/")
}

const APPARMOR_ANNOTATION_PREFIX: &str = "container.apparmor.security.beta.kubernetes.io/";
const SECCOMP_POD_ANNOTATION: &str = "seccomp.security.alpha.kubernetes.io/pod";
const SECCOMP_CONTAINER_ANNOTATION_PREFIX: &str = "container.seccomp.security.alpha.kubernetes.io/";

const SELINUX_TYPES_1_0: [&str; 4] = ["", "container_t", "container_init_t", "container_kvm_t"];
const SELINUX_TYPES_1_31: [&str; 5] = [
    "",
    "container_t",
    "container_init_t",
    "container_kvm_t",
    "container_engine_t",
];

/// The allowed sysctls; each version allows a prefix of this list, which only grows.
const SYSCTLS: [&str; 14] = [
    // v1.0
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_unprivileged_port_start",
    // v1.27
    "net.ipv4.ip_local_reserved_ports",
    // v1.29
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
    // v1.32
    "net.ipv4.tcp_rmem",
    "net.ipv4.tcp_wmem",
    // v1.37
    "net.ipv4.tcp_slow_start_after_idle",
    "net.ipv4.tcp_notsent_lowat",
];
const SYSCTLS_1_0: usize = 5;
const SYSCTLS_1_27: usize = 6;
const SYSCTLS_1_29: usize = 10;
const SYSCTLS_1_32: usize = 12;
const SYSCTLS_1_37: usize = 14;

//! Every check of the baseline and restricted levels, with its versions.
//!
//! Each check has an upstream ID and one definition per version range: a definition applies
//! from its `since` minor version until the next definition's. A restricted definition may
//! override baseline checks (e.g. `restrictedVolumes` replaces `hostPathVolumes`), which then do
//! not run at the restricted level. The table is in upstream's evaluation order: baseline IDs
//! sorted bytewise, then restricted IDs sorted bytewise; a unit test keeps it so.

mod host;
mod privilege;
mod profiles;
mod volumes;

use super::Level::{self, Baseline, Restricted};
use super::json::{Malformed, Pod, join_quote, pluralize};

/// What a failing check reports: upstream's reason and detail.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Forbidden {
    /// Short reason, e.g. `privileged`.
    pub(crate) reason: &'static str,
    /// Which fields of which containers, e.g. `container "app" must not set ...`.
    pub(crate) detail: String,
}

impl Forbidden {
    fn new(reason: &'static str, detail: String) -> Option<Forbidden> {
        Some(Forbidden { reason, detail })
    }
}

/// The result of one check: allowed (`Ok(None)`), forbidden, or unreadable input.
pub(crate) type Outcome = Result<Option<Forbidden>, Malformed>;

/// One version of one check.
pub(crate) type CheckFn = fn(&Pod<'_>) -> Outcome;

/// A check: its upstream ID, its level and its definitions by version.
pub(crate) struct Check {
    /// Upstream's check ID, e.g. `allowPrivilegeEscalation`.
    pub(crate) id: &'static str,
    /// `Baseline` or `Restricted`; baseline checks also run at restricted unless overridden.
    pub(crate) level: Level,
    /// The reason reported when the check cannot read the pod.
    pub(crate) malformed_reason: &'static str,
    /// Definitions, by strictly increasing `since`.
    pub(crate) versions: &'static [Versioned],
}

/// The definition of a check from one minor version on.
pub(crate) struct Versioned {
    /// The first minor version (of `v1.x`) this definition applies to.
    pub(crate) since: u32,
    /// The check itself.
    pub(crate) check: CheckFn,
    /// Baseline check IDs this restricted definition replaces at the restricted level.
    pub(crate) overrides: &'static [&'static str],
}

impl Check {
    /// The definition in force at `minor`, if the check exists there.
    pub(crate) fn at(&self, minor: u32) -> Option<&Versioned> {
        self.versions.iter().rev().find(|v| v.since <= minor)
    }
}

const fn v(since: u32, check: CheckFn) -> Versioned {
    Versioned {
        since,
        check,
        overrides: &[],
    }
}

const fn v_over(since: u32, check: CheckFn, overrides: &'static [&'static str]) -> Versioned {
    Versioned {
        since,
        check,
        overrides,
    }
}

const fn check(
    id: &'static str,
    level: Level,
    malformed_reason: &'static str,
    versions: &'static [Versioned],
) -> Check {
    Check {
        id,
        level,
        malformed_reason,
        versions,
    }
}

/// `container "a"` or `containers "a", "b"`.
fn containers_phrase(names: &[&str]) -> String {
    format!(
        "{} {}",
        pluralize("container", "containers", names.len()),
        join_quote(names)
    )
}

const CAPABILITIES_BASELINE: &str = "capabilities_baseline";
const HOST_PATH_VOLUMES: &str = "hostPathVolumes";
const PROC_MOUNT: &str = "procMount";
const SECCOMP_BASELINE: &str = "seccompProfile_baseline";

/// Every check, in upstream's evaluation order.
pub(crate) static CHECKS: &[Check] = &[
    // --- baseline, sorted by ID ---
    check(
        "appArmorProfile",
        Baseline,
        "forbidden AppArmor profile",
        &[v(0, profiles::app_armor_1_0)],
    ),
    check(
        CAPABILITIES_BASELINE,
        Baseline,
        "non-default capabilities",
        &[v(0, privilege::capabilities_baseline_1_0)],
    ),
    check(
        "hostNamespaces",
        Baseline,
        "host namespaces",
        &[v(0, host::host_namespaces_1_0)],
    ),
    check(
        HOST_PATH_VOLUMES,
        Baseline,
        "hostPath volumes",
        &[v(0, volumes::host_path_volumes_1_0)],
    ),
    check(
        "hostPorts",
        Baseline,
        "hostPort",
        &[v(0, host::host_ports_1_0)],
    ),
    check(
        "hostProbesAndHostLifecycle",
        Baseline,
        "probe or lifecycle host",
        &[v(34, host::host_probes_and_lifecycle_1_34)],
    ),
    check(
        "privileged",
        Baseline,
        "privileged",
        &[v(0, privilege::privileged_1_0)],
    ),
    check(
        PROC_MOUNT,
        Baseline,
        "procMount",
        &[
            v(0, privilege::proc_mount_1_0),
            v(35, privilege::proc_mount_baseline_1_35),
        ],
    ),
    check(
        "seLinuxOptions",
        Baseline,
        "seLinuxOptions",
        &[
            v(0, profiles::se_linux_options_1_0),
            v(31, profiles::se_linux_options_1_31),
        ],
    ),
    check(
        SECCOMP_BASELINE,
        Baseline,
        "seccompProfile",
        &[
            v(0, profiles::seccomp_baseline_1_0),
            v(19, profiles::seccomp_baseline_1_19),
        ],
    ),
    check(
        "sysctls",
        Baseline,
        "forbidden sysctls",
        &[
            v(0, profiles::sysctls_1_0),
            v(27, profiles::sysctls_1_27),
            v(29, profiles::sysctls_1_29),
            v(32, profiles::sysctls_1_32),
            v(37, profiles::sysctls_1_37),
        ],
    ),
    check(
        "windowsHostProcess",
        Baseline,
        "hostProcess",
        &[v(0, host::windows_host_process_1_0)],
    ),
    // --- restricted, sorted by ID ---
    check(
        "allowPrivilegeEscalation",
        Restricted,
        "allowPrivilegeEscalation != false",
        &[
            v(8, privilege::allow_privilege_escalation_1_8),
            v(25, privilege::allow_privilege_escalation_1_25),
        ],
    ),
    check(
        "capabilities_restricted",
        Restricted,
        "unrestricted capabilities",
        &[
            v_over(
                22,
                privilege::capabilities_restricted_1_22,
                &[CAPABILITIES_BASELINE],
            ),
            v_over(
                25,
                privilege::capabilities_restricted_1_25,
                &[CAPABILITIES_BASELINE],
            ),
        ],
    ),
    check(
        "procMount_restricted",
        Restricted,
        "procMount",
        &[v_over(35, privilege::proc_mount_1_0, &[PROC_MOUNT])],
    ),
    check(
        "restrictedVolumes",
        Restricted,
        "restricted volume types",
        &[v_over(
            0,
            volumes::restricted_volumes_1_0,
            &[HOST_PATH_VOLUMES],
        )],
    ),
    check(
        "runAsNonRoot",
        Restricted,
        "runAsNonRoot != true",
        &[
            v(0, privilege::run_as_non_root_1_0),
            v(35, privilege::run_as_non_root_1_35),
        ],
    ),
    check(
        "runAsUser",
        Restricted,
        "runAsUser=0",
        &[
            v(23, privilege::run_as_user_1_23),
            v(35, privilege::run_as_user_1_35),
        ],
    ),
    check(
        "seccompProfile_restricted",
        Restricted,
        "seccompProfile",
        &[
            v_over(19, profiles::seccomp_restricted_1_19, &[SECCOMP_BASELINE]),
            v_over(25, profiles::seccomp_restricted_1_25, &[SECCOMP_BASELINE]),
        ],
    ),
];

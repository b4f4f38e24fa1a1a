//! Checks on volume sources: no hostPath (baseline), only the safe inline sources (restricted).

use std::collections::BTreeSet;

use serde_json::Value;

use super::{Forbidden, Outcome};
use crate::pod_security::json::{Pod, join_quote, pluralize};

/// `hostPathVolumes` (baseline, v1.0+): no volume may set `hostPath`.
pub(super) fn host_path_volumes_1_0(pod: &Pod<'_>) -> Outcome {
    let mut bad = Vec::new();
    pod.visit_volumes(|name, volume| {
        if is_set(volume.get("hostPath")) {
            bad.push(name);
        }
        Ok(())
    })?;
    if bad.is_empty() {
        return Ok(None);
    }
    Ok(Forbidden::new(
        "hostPath volumes",
        format!(
            "{} {}",
            pluralize("volume", "volumes", bad.len()),
            join_quote(&bad)
        ),
    ))
}

/// `restrictedVolumes` (restricted, v1.0+): volumes may only use configMap, csi, downwardAPI,
/// emptyDir, ephemeral, image, persistentVolumeClaim, projected or secret.
///
/// A volume with no source at all is allowed: kube-apiserver defaults it to `emptyDir` before
/// admission sees it.
///
/// Stricter than upstream on purpose: upstream reads a typed volume and allows it when any
/// allowed source is set, and never sees fields its typed model drops. Reading raw JSON, a
/// volume is allowed only when every field it sets (besides `name`) is an allowed source, so a
/// second source hidden next to an allowed one, or a source a typed model does not know, is
/// denied (as type `unknown` when no known restricted source is set). Valid Kubernetes volumes
/// set at most one source, so both rules agree on them.
pub(super) fn restricted_volumes_1_0(pod: &Pod<'_>) -> Outcome {
    let mut bad = Vec::new();
    let mut types = BTreeSet::new();
    pod.visit_volumes(|name, volume| {
        let only_allowed = volume.iter().all(|(key, value)| {
            key == "name" || value.is_null() || ALLOWED_SOURCES.contains(&key.as_str())
        });
        if only_allowed {
            return Ok(());
        }
        bad.push(name);
        // Name the source as upstream does: the first restricted type in its order.
        let kind = RESTRICTED_SOURCES
            .iter()
            .find(|source| is_set(volume.get(**source)))
            .copied()
            .unwrap_or("unknown");
        types.insert(kind);
        Ok(())
    })?;
    if bad.is_empty() {
        return Ok(None);
    }
    Ok(Forbidden::new(
        "restricted volume types",
        format!(
            "{} {} {} {} {}",
            pluralize("volume", "volumes", bad.len()),
            join_quote(&bad),
            pluralize("uses", "use", bad.len()),
            pluralize(
                "restricted volume type",
                "restricted volume types",
                types.len()
            ),
            join_quote(types),
        ),
    ))
}

fn is_set(value: Option<&Value>) -> bool {
    value.is_some_and(|v| !v.is_null())
}

/// Inline volume sources the restricted level allows.
const ALLOWED_SOURCES: [&str; 9] = [
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "image",
    "persistentVolumeClaim",
    "projected",
    "secret",
];

/// Restricted volume sources, in the order upstream names them.
const RESTRICTED_SOURCES: [&str; 21] = [
    "hostPath",
    "gcePersistentDisk",
    "awsElasticBlockStore",
    "gitRepo",
    "nfs",
    "iscsi",
    "glusterfs",
    "rbd",
    "flexVolume",
    "cinder",
    "cephfs",
    "flocker",
    "fc",
    "azureFile",
    "vsphereVolume",
    "quobyte",
    "azureDisk",
    "photonPersistentDisk",
    "portworxVolume",
    "scaleIO",
    "storageos",
];

//! RBAC at the gateway's edge: loading RBAC objects from the store into an authorizer snapshot,
//! swapping it atomically after every RBAC write, creating the bootstrap policy, and running the
//! ClusterRole aggregation controller.
//!
//! The decision logic is `portcullis-authz`'s; this module only does the I/O around it. Every
//! RBAC write through the API rebuilds the snapshot before the write is answered, so the very next
//! request sees it.

pub mod bootstrap;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use arc_swap::ArcSwap;
use portcullis_api::registry;
use portcullis_authz::Authorizer;
use portcullis_authz::rbac::{Policy, PolicyRule, Snapshot};
use serde_json::{Value, json};

use crate::storage::{KeyValue, Store, StoreError, TxnOp};

/// The group of kube-apiservers calling portcullis as a webhook, bound to
/// `system:auth-delegator` by the bootstrap policy.
pub const WEBHOOK_CALLERS: &str = "portcullis:webhook-callers";

/// The annotation that opts a bootstrap object into reconciliation on restart.
const AUTOUPDATE: &str = "rbac.authorization.kubernetes.io/autoupdate";

/// The live authorizer and the lock that orders rebuilds.
#[derive(Debug)]
pub struct Rbac {
    current: ArcSwap<Authorizer>,
    rebuild: tokio::sync::Mutex<()>,
    manifests: Option<PathBuf>,
    /// The store revision the snapshot in force was read at: every RBAC write at or below it
    /// is in the snapshot.
    built_at: std::sync::atomic::AtomicU64,
}

impl Rbac {
    /// Loads the RBAC objects of `store` into a first snapshot.
    pub async fn load(store: &dyn Store) -> Result<Rbac> {
        Self::load_from(store, None).await
    }

    /// Loads RBAC from `manifests` (a file or directory of YAML/JSON) when given, else from the
    /// store. A manifest directory is re-read when it changes ([`Rbac::watch_manifests`]).
    pub async fn load_from(store: &dyn Store, manifests: Option<PathBuf>) -> Result<Rbac> {
        let rbac = Rbac {
            current: ArcSwap::from_pointee(Authorizer::new()),
            rebuild: tokio::sync::Mutex::new(()),
            manifests,
            built_at: std::sync::atomic::AtomicU64::new(0),
        };
        rbac.refresh(store).await?;
        Ok(rbac)
    }

    /// Polls the manifest directory (if any) once a second and rebuilds the snapshot when a file
    /// was added, removed or changed. A bad file keeps the old snapshot and logs why.
    pub fn watch_manifests(self: &Arc<Self>, store: Arc<dyn Store>) {
        let Some(path) = self.manifests.clone() else {
            return;
        };
        let rbac = self.clone();
        tokio::spawn(async move {
            let mut seen = crate::reload::fingerprint(&path);
            loop {
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                let now = crate::reload::fingerprint(&path);
                if now == seen {
                    continue;
                }
                seen = now;
                match rbac.refresh(store.as_ref()).await {
                    Ok(()) => tracing::info!(path = %path.display(), "RBAC manifests reloaded"),
                    Err(e) => tracing::error!(
                        path = %path.display(),
                        error = %format!("{e:#}"),
                        "RBAC manifests rejected; the previous snapshot stays in force"
                    ),
                }
            }
        });
    }

    /// The authorizer in force; a request holds on to it from start to end.
    pub fn authorizer(&self) -> Arc<Authorizer> {
        self.current.load_full()
    }

    /// Re-reads every RBAC object and swaps in a new snapshot. On failure the old snapshot stays.
    pub async fn refresh(&self, store: &dyn Store) -> Result<()> {
        let _guard = self.rebuild.lock().await;
        let (policy, at) = match &self.manifests {
            Some(path) => (
                crate::offline::load(&crate::offline::Manifests {
                    files: vec![path.clone()],
                    no_bootstrap: false,
                })?,
                0,
            ),
            None => {
                // All four kinds read at one revision, so the snapshot is one moment's policy.
                let at = store
                    .revision()
                    .await
                    .context("reading the store revision")?;
                (read_policy(store, at).await?, at)
            }
        };
        let snapshot = Snapshot::build(&policy);
        tracing::debug!(
            bindings = snapshot.binding_count(),
            revision = at,
            "RBAC snapshot rebuilt"
        );
        self.current
            .store(Arc::new(Authorizer::with_rbac(Arc::new(snapshot))));
        self.built_at
            .fetch_max(at, std::sync::atomic::Ordering::AcqRel);
        Ok(())
    }

    /// Rebuilds the snapshot unless it already includes the store's change at `revision` (a
    /// change this replica made and rebuilt for, or one an earlier rebuild picked up).
    pub async fn refresh_for(&self, store: &dyn Store, revision: u64) -> Result<()> {
        if self.manifests.is_some() || self.built_at() >= revision {
            return Ok(());
        }
        self.refresh(store).await
    }

    /// The store revision the snapshot in force was read at (0 for manifests).
    pub fn built_at(&self) -> u64 {
        self.built_at.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Whether RBAC comes from `--rbac-manifests` rather than the store.
    pub fn from_manifests(&self) -> bool {
        self.manifests.is_some()
    }

    /// Called after a write to an RBAC object (or a namespace): aggregates ClusterRoles when a
    /// ClusterRole changed, then rebuilds the snapshot.
    pub async fn changed(&self, store: &dyn Store, cluster_roles_changed: bool) {
        if cluster_roles_changed && let Err(e) = aggregate(store).await {
            tracing::error!(error = %format!("{e:#}"), "ClusterRole aggregation failed");
        }
        if let Err(e) = self.refresh(store).await {
            tracing::error!(error = %format!("{e:#}"), "RBAC snapshot rebuild failed; the previous one stays in force");
        }
    }
}

/// Every stored object of an RBAC kind, as of revision `at` (0: the latest).
async fn list_all(store: &dyn Store, plural: &str, at: u64) -> Result<Vec<KeyValue>> {
    let resource = registry::lookup("rbac.authorization.k8s.io", "v1", plural)
        .with_context(|| format!("{plural} are not registered"))?;
    let all = |_: &KeyValue| true;
    Ok(store
        .list(&resource.key_prefix(None), None, 0, at, &all)
        .await
        .with_context(|| format!("listing {plural}"))?
        .items)
}

fn parse_all<T: serde::de::DeserializeOwned>(items: &[KeyValue]) -> Vec<T> {
    items
        .iter()
        .filter_map(|kv| match serde_json::from_slice(&kv.value) {
            Ok(v) => Some(v),
            Err(e) => {
                // Stored objects were validated on write; an unreadable one grants nothing.
                tracing::error!(key = %kv.key, error = %e, "unreadable RBAC object ignored");
                None
            }
        })
        .collect()
}

/// Reads every RBAC object of the store as of revision `at` (0: the latest).
pub async fn read_policy(store: &dyn Store, at: u64) -> Result<Policy> {
    Ok(Policy {
        cluster_roles: parse_all(&list_all(store, "clusterroles", at).await?),
        roles: parse_all(&list_all(store, "roles", at).await?),
        cluster_role_bindings: parse_all(&list_all(store, "clusterrolebindings", at).await?),
        role_bindings: parse_all(&list_all(store, "rolebindings", at).await?),
    })
}

/// Creates the bootstrap ClusterRoles and ClusterRoleBindings that are missing, and reconciles the
/// others unless they are annotated `autoupdate: "false"`: missing rules, subjects, labels and
/// annotations are added back, as kube-apiserver does on every start.
pub async fn bootstrap(store: &dyn Store) -> Result<()> {
    let mut policy = bootstrap::policy().context("reading the built-in bootstrap policy")?;
    // portcullis' own: kube-apiservers call the admission webhooks, with or without credentials;
    // every authenticated user may exchange LDAP credentials for a token; kube-apiservers using
    // portcullis as a webhook present certificates of WEBHOOK_CALLERS (see `portcullis
    // webhook-config`), which may ask reviews and nothing else.
    let admission = "portcullis:admission-review";
    policy.cluster_roles.push(own_cluster_role(
        admission,
        &["/admission/validate", "/admission/mutate"],
    ));
    policy.cluster_role_bindings.push(own_binding(
        admission,
        admission,
        &["system:authenticated", "system:unauthenticated"],
    ));
    policy
        .cluster_roles
        .push(own_cluster_role("portcullis:login", &["/login"]));
    policy.cluster_role_bindings.push(own_binding(
        "portcullis:login",
        "portcullis:login",
        &["system:authenticated"],
    ));
    policy.cluster_role_bindings.push(own_binding(
        WEBHOOK_CALLERS,
        "system:auth-delegator",
        &[WEBHOOK_CALLERS],
    ));
    let now = jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    for (plural, objects) in [
        ("clusterroles", &policy.cluster_roles),
        ("clusterrolebindings", &policy.cluster_role_bindings),
    ] {
        let resource = registry::lookup("rbac.authorization.k8s.io", "v1", plural)
            .with_context(|| format!("{plural} are not registered"))?;
        for wanted in objects {
            let name = wanted["metadata"]["name"].as_str().unwrap_or_default();
            ensure(store, &resource.key(None, name), wanted, &now)
                .await
                .with_context(|| format!("bootstrapping {plural} `{name}`"))?;
        }
    }
    aggregate(store).await
}

/// Creates one bootstrap object, or adds what it lacks. Safe with several replicas starting at
/// once: every write is guarded (create if absent, update at the revision read), and a write
/// that lost a race starts over from what is stored now, so nothing is duplicated or lost.
async fn ensure(store: &dyn Store, key: &str, wanted: &Value, now: &str) -> Result<()> {
    for _attempt in 0..8 {
        let Some(kv) = store.get(key).await? else {
            let mut obj = wanted.clone();
            obj["metadata"]["uid"] = uuid::Uuid::new_v4().to_string().into();
            obj["metadata"]["creationTimestamp"] = now.into();
            let op = TxnOp::Create {
                key: key.to_owned(),
                value: serde_json::to_vec(&obj)?,
            };
            match store.txn(vec![op]).await {
                Ok(_) => return Ok(()),
                // Another replica created it first: reconcile what it wrote.
                Err(StoreError::AlreadyExists(_)) => continue,
                Err(e) => return Err(e.into()),
            }
        };
        let current: Value = serde_json::from_slice(&kv.value)?;
        // Only an explicit "false" opts out, as upstream.
        if current["metadata"]["annotations"][AUTOUPDATE] == "false" {
            return Ok(());
        }
        let Some(updated) = reconcile(&current, wanted) else {
            return Ok(());
        };
        let op = TxnOp::Update {
            key: key.to_owned(),
            value: serde_json::to_vec(&updated)?,
            expect: Some(kv.mod_revision),
        };
        match store.txn(vec![op]).await {
            Ok(_) => return Ok(()),
            Err(StoreError::Conflict { .. } | StoreError::NotFound(_)) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    anyhow::bail!("kept meeting concurrent writes")
}

/// A ClusterRole of portcullis' own bootstrap policy granting `post` on `paths`.
fn own_cluster_role(name: &str, paths: &[&str]) -> Value {
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": own_metadata(name),
        "rules": [{"verbs": ["post"], "nonResourceURLs": paths}],
    })
}

/// A ClusterRoleBinding of portcullis' own bootstrap policy from `groups` to `role`.
fn own_binding(name: &str, role: &str, groups: &[&str]) -> Value {
    let subjects: Vec<Value> = groups
        .iter()
        .map(|g| json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": g}))
        .collect();
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": own_metadata(name),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": subjects,
    })
}

fn own_metadata(name: &str) -> Value {
    json!({
        "name": name,
        "labels": {"app.kubernetes.io/managed-by": "portcullis"},
        "annotations": {AUTOUPDATE: "true"},
    })
}

/// Adds the bootstrap object's missing rules, subjects, labels and annotations to `current`;
/// `None` when nothing is missing.
fn reconcile(current: &Value, wanted: &Value) -> Option<Value> {
    let mut out = current.clone();
    let mut changed = false;
    for field in ["rules", "subjects"] {
        let Some(want) = wanted.get(field).and_then(Value::as_array) else {
            continue;
        };
        let mut have = current
            .get(field)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for item in want {
            if !have.contains(item) {
                have.push(item.clone());
                changed = true;
            }
        }
        out[field] = Value::Array(have);
    }
    for meta in ["labels", "annotations"] {
        if let Some(want) = wanted["metadata"][meta].as_object() {
            for (k, v) in want {
                // Values already on the object win; only missing keys are added.
                if out["metadata"][meta].get(k).is_none() {
                    if !out["metadata"][meta].is_object() {
                        out["metadata"][meta] = json!({});
                    }
                    out["metadata"][meta][k] = v.clone();
                    changed = true;
                }
            }
        }
    }
    if wanted.get("aggregationRule").is_some()
        && current.get("aggregationRule") != wanted.get("aggregationRule")
    {
        out["aggregationRule"] = wanted["aggregationRule"].clone();
        changed = true;
    }
    changed.then_some(out)
}

/// The aggregation controller over the stored ClusterRoles (see [`aggregate_in_place`]); writes
/// back the roles whose rules changed.
pub async fn aggregate(store: &dyn Store) -> Result<()> {
    let resource = registry::lookup("rbac.authorization.k8s.io", "v1", "clusterroles")
        .context("clusterroles are not registered")?;
    for _round in 0..4 {
        let items = list_all(store, "clusterroles", 0).await?;
        let (kvs, mut roles): (Vec<KeyValue>, Vec<Value>) = items
            .into_iter()
            .filter_map(|kv| serde_json::from_slice(&kv.value).ok().map(|v| (kv, v)))
            .unzip();
        let changed = aggregate_in_place(&mut roles);
        if changed.is_empty() {
            return Ok(());
        }
        let mut ops = Vec::new();
        for i in changed {
            if let (Some(kv), Some(role)) = (kvs.get(i), roles.get(i)) {
                ops.push(TxnOp::Update {
                    key: resource.key(None, role["metadata"]["name"].as_str().unwrap_or_default()),
                    value: serde_json::to_vec(role)?,
                    expect: Some(kv.mod_revision),
                });
            }
        }
        match store.txn(ops).await {
            Ok(_) => return Ok(()),
            // Someone wrote a ClusterRole meanwhile: start over from what is stored now.
            Err(StoreError::Conflict { .. }) => continue,
            Err(e) => return Err(e).context("writing aggregated ClusterRoles"),
        }
    }
    tracing::warn!(
        "ClusterRole aggregation kept meeting concurrent writes; it runs again on the next change"
    );
    Ok(())
}

/// Sets the rules of every ClusterRole in `roles` that has an `aggregationRule` to the union of
/// the rules of the ClusterRoles its selectors match (itself excluded), visited by name, exact
/// duplicates removed, repeating until nothing changes so chains (`admin` ⊇ `edit` ⊇ `view`)
/// converge. Returns the positions of the roles it changed.
pub fn aggregate_in_place(roles: &mut [Value]) -> Vec<usize> {
    let mut changed = Vec::new();
    for _round in 0..16 {
        let mut order: Vec<usize> = (0..roles.len()).collect();
        order.sort_by(|a, b| {
            let name = |i: &usize| {
                roles
                    .get(*i)
                    .and_then(|r| r["metadata"]["name"].as_str())
                    .unwrap_or("")
                    .to_owned()
            };
            name(a).cmp(&name(b))
        });
        let mut updates = Vec::new();
        for (i, role) in roles.iter().enumerate() {
            let Some(selectors) = role
                .pointer("/aggregationRule/clusterRoleSelectors")
                .and_then(Value::as_array)
            else {
                continue;
            };
            let name = role["metadata"]["name"].as_str().unwrap_or_default();
            let mut rules: Vec<Value> = Vec::new();
            for j in &order {
                let Some(other) = roles.get(*j) else { continue };
                if other["metadata"]["name"].as_str() == Some(name)
                    || !selectors
                        .iter()
                        .any(|s| selector_matches(s, other.pointer("/metadata/labels")))
                {
                    continue;
                }
                for rule in other
                    .get("rules")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    if !rules.contains(rule) {
                        rules.push(rule.clone());
                    }
                }
            }
            let current = role
                .get("rules")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            if current != rules {
                updates.push((i, rules));
            }
        }
        if updates.is_empty() {
            break;
        }
        for (i, rules) in updates {
            if let Some(role) = roles.get_mut(i) {
                role["rules"] = Value::Array(rules);
            }
            if !changed.contains(&i) {
                changed.push(i);
            }
        }
    }
    changed
}

/// Whether a `LabelSelector` (matchLabels and matchExpressions) matches `labels`. An empty
/// selector matches everything, as upstream's.
pub fn selector_matches(selector: &Value, labels: Option<&Value>) -> bool {
    let get = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
    let labels_ok = selector
        .get("matchLabels")
        .and_then(Value::as_object)
        .is_none_or(|m| m.iter().all(|(k, v)| get(k) == v.as_str()));
    let exprs_ok = selector
        .get("matchExpressions")
        .and_then(Value::as_array)
        .is_none_or(|exprs| {
            exprs.iter().all(|e| {
                let key = e["key"].as_str().unwrap_or_default();
                let values: Vec<&str> = e["values"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .collect();
                match e["operator"].as_str() {
                    Some("In") => get(key).is_some_and(|v| values.contains(&v)),
                    Some("NotIn") => get(key).is_none_or(|v| !values.contains(&v)),
                    Some("Exists") => get(key).is_some(),
                    Some("DoesNotExist") => get(key).is_none(),
                    // An unknown operator matches nothing: fail closed.
                    _ => false,
                }
            })
        });
    labels_ok && exprs_ok
}

/// The rules of a stored role as the engine reads them (for escalation checks).
pub fn rules_of(object: &Value) -> Vec<PolicyRule> {
    object
        .get("rules")
        .cloned()
        .and_then(|r| serde_json::from_value(r).ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_match_labels_and_expressions() {
        let labels = json!({"rbac.authorization.k8s.io/aggregate-to-view": "true", "tier": "a"});
        assert!(selector_matches(
            &json!({"matchLabels": {"rbac.authorization.k8s.io/aggregate-to-view": "true"}}),
            Some(&labels)
        ));
        assert!(!selector_matches(
            &json!({"matchLabels": {"tier": "b"}}),
            Some(&labels)
        ));
        assert!(selector_matches(
            &json!({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["a", "b"]}]}),
            Some(&labels)
        ));
        assert!(!selector_matches(
            &json!({"matchExpressions": [{"key": "tier", "operator": "Bogus"}]}),
            Some(&labels)
        ));
        assert!(selector_matches(&json!({}), None));
    }

    #[test]
    fn aggregation_chains_converge() {
        let label =
            |k: &str| json!({format!("rbac.authorization.k8s.io/aggregate-to-{k}"): "true"});
        let sel = |k: &str| json!({"clusterRoleSelectors": [{"matchLabels": label(k)}]});
        let mut roles = vec![
            json!({"metadata": {"name": "admin"}, "aggregationRule": sel("admin"), "rules": []}),
            json!({"metadata": {"name": "edit", "labels": label("admin")}, "aggregationRule": sel("edit"), "rules": []}),
            json!({"metadata": {"name": "extra-view", "labels": label("view")}, "rules": [{"verbs": ["get"], "resources": ["widgets"]}]}),
            json!({"metadata": {"name": "view", "labels": label("edit")}, "aggregationRule": sel("view"), "rules": []}),
        ];
        let changed = aggregate_in_place(&mut roles);
        assert_eq!(changed.len(), 3);
        for i in [0, 1, 3] {
            assert_eq!(
                roles[i]["rules"],
                json!([{"verbs": ["get"], "resources": ["widgets"]}]),
                "{}",
                roles[i]["metadata"]["name"]
            );
        }
        assert!(aggregate_in_place(&mut roles).is_empty());
    }

    #[test]
    fn reconcile_adds_missing_rules_and_keeps_extra_ones() {
        let current = json!({"metadata": {"name": "x", "annotations": {AUTOUPDATE: "true"}}, "rules": [{"verbs": ["get"]}, {"verbs": ["extra"]}]});
        let wanted = json!({"metadata": {"name": "x", "annotations": {AUTOUPDATE: "true"}}, "rules": [{"verbs": ["get"]}, {"verbs": ["list"]}]});
        let out = reconcile(&current, &wanted).unwrap();
        assert_eq!(
            out["rules"],
            json!([{"verbs": ["get"]}, {"verbs": ["extra"]}, {"verbs": ["list"]}])
        );
        assert!(reconcile(&out, &wanted).is_none());
    }
}

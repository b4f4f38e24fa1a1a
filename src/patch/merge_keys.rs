//! Strategic-merge-patch facts for the built-in kinds portcullis serves.
//!
//! kube-apiserver learns how each list merges from the `patchStrategy` and
//! `patchMergeKey` Go struct tags of `k8s.io/api`. This module records those
//! tags for the kinds we cover (core/v1, apps/v1, batch/v1, rbac/v1 as of
//! Kubernetes 1.33–1.36) as a static tree of field facts. Shared structures
//! (`ObjectMeta`, `PodSpec`, `Container`, `PodTemplateSpec`) are written once
//! and referenced from every place they are embedded, so the `PodSpec` facts
//! under a `Pod`'s `spec` are the same table as those under a Deployment's
//! `spec.template.spec` or a CronJob's `spec.jobTemplate.spec.template.spec`.
//!
//! Fields that are not listed behave like untagged Go fields: objects merge
//! recursively, lists are atomic (replaced wholesale). Lists below an atomic
//! list are never consulted, so their facts are not recorded.

/// How a list field merges under a strategic merge patch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListStrategy {
    /// Atomic list, replaced wholesale by the patch; the default for lists.
    Replace,
    /// `patchStrategy:"merge"` with `patchMergeKey`: elements are objects
    /// matched by the value of this key.
    MergeByKey(&'static str),
    /// `patchStrategy:"merge"` without a merge key: a set of scalars, such as
    /// `metadata.finalizers`.
    MergePrimitives,
}

/// Patch-strategy facts for one field within a kind.
#[derive(Debug)]
struct Field {
    /// JSON name of the field.
    name: &'static str,
    /// How the field merges when it holds a list.
    list: ListStrategy,
    /// Whether the field carries the `retainKeys` strategy.
    retain_keys: bool,
    /// Facts for the fields of the object (or of each list element) it holds.
    children: &'static [Field],
}

/// A field with nested facts and no strategy of its own.
const fn object(name: &'static str, children: &'static [Field]) -> Field {
    Field {
        name,
        list: ListStrategy::Replace,
        retain_keys: false,
        children,
    }
}

/// A list of objects merged by `key`.
const fn keyed(name: &'static str, key: &'static str) -> Field {
    keyed_with(name, key, &[])
}

/// A list of objects merged by `key`, whose elements have nested facts.
const fn keyed_with(name: &'static str, key: &'static str, children: &'static [Field]) -> Field {
    Field {
        name,
        list: ListStrategy::MergeByKey(key),
        retain_keys: false,
        children,
    }
}

/// A list of objects merged by `key` whose elements use `retainKeys`.
const fn keyed_retain(name: &'static str, key: &'static str) -> Field {
    Field {
        name,
        list: ListStrategy::MergeByKey(key),
        retain_keys: true,
        children: &[],
    }
}

/// A list of scalars merged as a set.
const fn primitives(name: &'static str) -> Field {
    Field {
        name,
        list: ListStrategy::MergePrimitives,
        retain_keys: false,
        children: &[],
    }
}

/// An object using the `retainKeys` strategy.
const fn retain(name: &'static str) -> Field {
    Field {
        name,
        list: ListStrategy::Replace,
        retain_keys: true,
        children: &[],
    }
}

/// `metav1.ObjectMeta`.
static OBJECT_META: [Field; 2] = [keyed("ownerReferences", "uid"), primitives("finalizers")];

/// `core/v1.Container` and `core/v1.EphemeralContainerCommon` (same tags).
static CONTAINER: [Field; 4] = [
    keyed("ports", "containerPort"),
    keyed("env", "name"),
    keyed("volumeMounts", "mountPath"),
    keyed("volumeDevices", "devicePath"),
];

/// `core/v1.PodSpec`.
static POD_SPEC: [Field; 9] = [
    keyed_retain("volumes", "name"),
    keyed_with("initContainers", "name", &CONTAINER),
    keyed_with("containers", "name", &CONTAINER),
    keyed_with("ephemeralContainers", "name", &CONTAINER),
    keyed("imagePullSecrets", "name"),
    keyed("hostAliases", "ip"),
    keyed("topologySpreadConstraints", "topologyKey"),
    keyed("schedulingGates", "name"),
    // tolerations, readinessGates, resizePolicy etc. are atomic.
    keyed_retain("resourceClaims", "name"),
];

/// `core/v1.PodStatus`.
static POD_STATUS: [Field; 4] = [
    keyed("conditions", "type"),
    keyed("hostIPs", "ip"),
    keyed("podIPs", "ip"),
    keyed_retain("resourceClaimStatuses", "name"),
];

/// `core/v1.PodTemplateSpec`.
static POD_TEMPLATE: [Field; 2] = [object("metadata", &OBJECT_META), object("spec", &POD_SPEC)];

/// A workload status whose only merge list is `conditions`, keyed by type.
static CONDITIONS_STATUS: [Field; 1] = [keyed("conditions", "type")];

/// `apps/v1.DeploymentSpec`.
static DEPLOYMENT_SPEC: [Field; 2] = [object("template", &POD_TEMPLATE), retain("strategy")];

/// Specs whose only facts are in the pod template: ReplicaSet, StatefulSet,
/// DaemonSet, Job.
static TEMPLATED_SPEC: [Field; 1] = [object("template", &POD_TEMPLATE)];

/// `batch/v1.JobTemplateSpec`.
static JOB_TEMPLATE: [Field; 2] = [
    object("metadata", &OBJECT_META),
    object("spec", &TEMPLATED_SPEC),
];

/// `batch/v1.CronJobSpec`.
static CRON_JOB_SPEC: [Field; 1] = [object("jobTemplate", &JOB_TEMPLATE)];

/// `core/v1.ServiceSpec`.
static SERVICE_SPEC: [Field; 1] = [keyed("ports", "port")];

/// Root facts for each covered kind.
static POD: [Field; 3] = [
    object("metadata", &OBJECT_META),
    object("spec", &POD_SPEC),
    object("status", &POD_STATUS),
];
static DEPLOYMENT: [Field; 3] = [
    object("metadata", &OBJECT_META),
    object("spec", &DEPLOYMENT_SPEC),
    object("status", &CONDITIONS_STATUS),
];
static TEMPLATED: [Field; 3] = [
    object("metadata", &OBJECT_META),
    object("spec", &TEMPLATED_SPEC),
    object("status", &CONDITIONS_STATUS),
];
static CRON_JOB: [Field; 2] = [
    object("metadata", &OBJECT_META),
    object("spec", &CRON_JOB_SPEC),
];
static SERVICE: [Field; 3] = [
    object("metadata", &OBJECT_META),
    object("spec", &SERVICE_SPEC),
    object("status", &CONDITIONS_STATUS),
];
static SERVICE_ACCOUNT: [Field; 2] = [object("metadata", &OBJECT_META), keyed("secrets", "name")];
static NAMESPACE: [Field; 2] = [
    object("metadata", &OBJECT_META),
    object("status", &CONDITIONS_STATUS),
];
/// Kinds whose only merge facts are in `metadata` (ConfigMap, Secret, Event,
/// and the rbac/v1 kinds, whose `rules` and `subjects` are atomic).
static METADATA_ONLY: [Field; 1] = [object("metadata", &OBJECT_META)];

/// Describes, for one kind, how each list field merges.
#[derive(Debug)]
pub struct Schema {
    /// Facts for the top-level fields of the kind.
    root: &'static [Field],
}

static POD_SCHEMA: Schema = Schema { root: &POD };
static DEPLOYMENT_SCHEMA: Schema = Schema { root: &DEPLOYMENT };
static TEMPLATED_SCHEMA: Schema = Schema { root: &TEMPLATED };
static CRON_JOB_SCHEMA: Schema = Schema { root: &CRON_JOB };
static SERVICE_SCHEMA: Schema = Schema { root: &SERVICE };
static SERVICE_ACCOUNT_SCHEMA: Schema = Schema {
    root: &SERVICE_ACCOUNT,
};
static NAMESPACE_SCHEMA: Schema = Schema { root: &NAMESPACE };
static METADATA_ONLY_SCHEMA: Schema = Schema {
    root: &METADATA_ONLY,
};

impl Schema {
    /// The schema of a kind, by apiVersion and kind (e.g. `"apps/v1"`,
    /// `"Deployment"`); `None` for kinds we do not know (callers then reject
    /// strategic merge patches with 415, as kube-apiserver does for custom
    /// resources).
    pub fn for_kind(api_version: &str, kind: &str) -> Option<&'static Schema> {
        let schema = match (api_version, kind) {
            ("v1", "Pod") => &POD_SCHEMA,
            ("v1", "Service") => &SERVICE_SCHEMA,
            ("v1", "ServiceAccount") => &SERVICE_ACCOUNT_SCHEMA,
            ("v1", "Namespace") => &NAMESPACE_SCHEMA,
            ("v1", "ConfigMap" | "Secret" | "Event") => &METADATA_ONLY_SCHEMA,
            ("apps/v1", "Deployment") => &DEPLOYMENT_SCHEMA,
            ("apps/v1", "ReplicaSet" | "StatefulSet" | "DaemonSet") => &TEMPLATED_SCHEMA,
            ("batch/v1", "Job") => &TEMPLATED_SCHEMA,
            ("batch/v1", "CronJob") => &CRON_JOB_SCHEMA,
            (
                "rbac.authorization.k8s.io/v1",
                "Role" | "ClusterRole" | "RoleBinding" | "ClusterRoleBinding",
            ) => &METADATA_ONLY_SCHEMA,
            _ => return None,
        };
        Some(schema)
    }

    /// How the list at `path` merges (`path` = object field names from the
    /// root, list indexes skipped, e.g. `["spec","template","spec","containers"]`).
    pub fn list_strategy(&self, path: &[&str]) -> ListStrategy {
        self.field(path)
            .map_or(ListStrategy::Replace, |field| field.list)
    }

    /// Whether the object at `path` (or each element of the list at `path`)
    /// uses the `retainKeys` strategy, e.g. `["spec","strategy"]` of a
    /// Deployment or `["spec","volumes"]` of a Pod.
    ///
    /// This is what kubectl consults to emit `$retainKeys`; kube-apiserver,
    /// and so [`super::strategic::apply`], honours a `$retainKeys` directive
    /// wherever a patch carries one.
    pub fn retains_keys(&self, path: &[&str]) -> bool {
        self.field(path).is_some_and(|field| field.retain_keys)
    }

    /// The facts recorded for the field at `path`, if any.
    fn field(&self, path: &[&str]) -> Option<&'static Field> {
        let mut fields = self.root;
        let mut found = None;
        for name in path {
            let field = fields.iter().find(|field| field.name == *name)?;
            fields = field.children;
            found = Some(field);
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::{ListStrategy, Schema};

    fn schema(api_version: &str, kind: &str) -> &'static Schema {
        match Schema::for_kind(api_version, kind) {
            Some(schema) => schema,
            None => unreachable!("{api_version} {kind} is covered"),
        }
    }

    #[test]
    fn pod_spec_facts_are_shared_by_pods_and_every_pod_template() {
        let cases: [(&str, &str, &[&str]); 7] = [
            ("v1", "Pod", &["spec"]),
            ("apps/v1", "Deployment", &["spec", "template", "spec"]),
            ("apps/v1", "ReplicaSet", &["spec", "template", "spec"]),
            ("apps/v1", "StatefulSet", &["spec", "template", "spec"]),
            ("apps/v1", "DaemonSet", &["spec", "template", "spec"]),
            ("batch/v1", "Job", &["spec", "template", "spec"]),
            (
                "batch/v1",
                "CronJob",
                &["spec", "jobTemplate", "spec", "template", "spec"],
            ),
        ];
        for (api_version, kind, prefix) in cases {
            let schema = schema(api_version, kind);
            let at = |tail: &[&'static str]| {
                let mut path = prefix.to_vec();
                path.extend_from_slice(tail);
                schema.list_strategy(&path)
            };
            assert_eq!(at(&["containers"]), ListStrategy::MergeByKey("name"));
            assert_eq!(
                at(&["initContainers", "env"]),
                ListStrategy::MergeByKey("name")
            );
            assert_eq!(
                at(&["containers", "ports"]),
                ListStrategy::MergeByKey("containerPort")
            );
            assert_eq!(
                at(&["ephemeralContainers", "volumeMounts"]),
                ListStrategy::MergeByKey("mountPath")
            );
            assert_eq!(at(&["volumes"]), ListStrategy::MergeByKey("name"));
            assert_eq!(at(&["hostAliases"]), ListStrategy::MergeByKey("ip"));
            assert_eq!(at(&["tolerations"]), ListStrategy::Replace);
            assert_eq!(at(&["containers", "resizePolicy"]), ListStrategy::Replace);
            let mut volumes = prefix.to_vec();
            volumes.push("volumes");
            assert!(schema.retains_keys(&volumes), "{kind}");
        }
    }

    #[test]
    fn object_meta_facts_apply_to_every_kind_and_to_templates() {
        let deployment = schema("apps/v1", "Deployment");
        for prefix in [&["metadata"][..], &["spec", "template", "metadata"][..]] {
            let mut finalizers = prefix.to_vec();
            finalizers.push("finalizers");
            assert_eq!(
                deployment.list_strategy(&finalizers),
                ListStrategy::MergePrimitives
            );
        }
        let role = schema("rbac.authorization.k8s.io/v1", "Role");
        assert_eq!(
            role.list_strategy(&["metadata", "ownerReferences"]),
            ListStrategy::MergeByKey("uid")
        );
        assert_eq!(role.list_strategy(&["rules"]), ListStrategy::Replace);
    }

    #[test]
    fn kind_specific_lists_use_their_upstream_keys() {
        assert_eq!(
            schema("v1", "Service").list_strategy(&["spec", "ports"]),
            ListStrategy::MergeByKey("port")
        );
        let account = schema("v1", "ServiceAccount");
        assert_eq!(
            account.list_strategy(&["secrets"]),
            ListStrategy::MergeByKey("name")
        );
        assert_eq!(
            account.list_strategy(&["imagePullSecrets"]),
            ListStrategy::Replace
        );
        let deployment = schema("apps/v1", "Deployment");
        assert!(deployment.retains_keys(&["spec", "strategy"]));
        assert!(!deployment.retains_keys(&["spec", "template"]));
        assert!(!schema("apps/v1", "DaemonSet").retains_keys(&["spec", "updateStrategy"]));
    }

    #[test]
    fn unknown_kinds_and_versions_have_no_schema() {
        assert!(Schema::for_kind("apps/v1", "Pod").is_none());
        assert!(Schema::for_kind("example.com/v1", "Widget").is_none());
        assert!(Schema::for_kind("batch/v1beta1", "CronJob").is_none());
    }
}

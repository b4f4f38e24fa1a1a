//! The resource registry: every resource portcullis serves, in one table.
//!
//! Discovery (`/api`, `/apis`, `/apis/<group>/<version>`), the OpenAPI documents, request path
//! parsing and the storage key layout are all derived from [`RESOURCES`], so a resource added here
//! appears everywhere at once and nowhere else.

use serde::Serialize;

/// An API group and version, e.g. `apps/v1`; the core group is the empty string.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupVersion {
    /// API group; `""` for the core (legacy) group.
    pub group: &'static str,
    /// API version, e.g. `v1`.
    pub version: &'static str,
}

impl GroupVersion {
    /// The `apiVersion` string objects of this group-version carry: `v1` or `apps/v1`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_owned()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The URL prefix of this group-version: `/api/v1` or `/apis/apps/v1`.
    pub fn path_prefix(&self) -> String {
        if self.group.is_empty() {
            format!("/api/{}", self.version)
        } else {
            format!("/apis/{}/{}", self.group, self.version)
        }
    }
}

/// A subresource served under a resource, e.g. `pods/status` or `deployments/scale`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Subresource {
    /// The path segment after the object name, e.g. `status`.
    pub name: &'static str,
    /// The kind the subresource reads and writes; the parent kind for `status`.
    pub kind: &'static str,
    /// The group of that kind, when it is not the parent's (`autoscaling` for `scale`).
    pub group: Option<&'static str>,
    /// The version of that kind, when it is not the parent's.
    pub version: Option<&'static str>,
    /// Verbs the subresource supports.
    pub verbs: &'static [&'static str],
}

/// One served resource: everything discovery, OpenAPI, routing and storage need to know about it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Resource {
    /// Group and version the resource is served at.
    pub gv: GroupVersion,
    /// The kind of a single object, e.g. `Deployment`.
    pub kind: &'static str,
    /// The plural, lower-case resource name used in paths, e.g. `deployments`.
    pub plural: &'static str,
    /// The singular, lower-case name, e.g. `deployment`.
    pub singular: &'static str,
    /// Short names kubectl accepts, e.g. `deploy`.
    pub short_names: &'static [&'static str],
    /// Categories the resource belongs to (`all` makes `kubectl get all` include it).
    pub categories: &'static [&'static str],
    /// Whether objects live in a namespace.
    pub namespaced: bool,
    /// Verbs the resource supports.
    pub verbs: &'static [&'static str],
    /// Subresources served under each object.
    pub subresources: &'static [Subresource],
    /// The first segment of the storage key after `/registry/`, as kube-apiserver lays it out;
    /// empty for resources that are computed, never stored (the review APIs).
    pub storage_prefix: &'static str,
}

impl Resource {
    /// The `apiVersion` of this resource's objects.
    pub fn api_version(&self) -> String {
        self.gv.api_version()
    }

    /// The kind of a list of these objects, e.g. `DeploymentList`.
    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }

    /// Whether objects of this resource are stored (the review APIs are answered, not stored).
    pub fn is_stored(&self) -> bool {
        !self.storage_prefix.is_empty()
    }

    /// Whether the resource supports `verb`.
    pub fn supports(&self, verb: &str) -> bool {
        self.verbs.contains(&verb)
    }

    /// The subresource called `name`, if served.
    pub fn subresource(&self, name: &str) -> Option<&'static Subresource> {
        self.subresources.iter().find(|s| s.name == name)
    }

    /// The "group resource" string kube-apiserver uses in messages: `pods` or `deployments.apps`.
    pub fn group_resource(&self) -> String {
        if self.gv.group.is_empty() {
            self.plural.to_owned()
        } else {
            format!("{}.{}", self.plural, self.gv.group)
        }
    }

    /// The storage key prefix of objects of this resource in `namespace` (cluster-scoped
    /// resources ignore it), ending in `/`.
    pub fn key_prefix(&self, namespace: Option<&str>) -> String {
        match namespace {
            Some(ns) if self.namespaced => format!("/registry/{}/{}/", self.storage_prefix, ns),
            _ => format!("/registry/{}/", self.storage_prefix),
        }
    }

    /// The storage key of one object.
    pub fn key(&self, namespace: Option<&str>, name: &str) -> String {
        let mut key = self.key_prefix(namespace);
        key.push_str(name);
        key
    }
}

/// The group-versions served, in the order discovery lists them.
pub const GROUP_VERSIONS: &[GroupVersion] = &[
    CORE_V1,
    APPS_V1,
    AUTHENTICATION_V1,
    AUTHORIZATION_V1,
    BATCH_V1,
    RBAC_V1,
];

/// The core (legacy) group, `v1`.
pub const CORE_V1: GroupVersion = GroupVersion {
    group: "",
    version: "v1",
};
/// `apps/v1`.
pub const APPS_V1: GroupVersion = GroupVersion {
    group: "apps",
    version: "v1",
};
/// `authentication.k8s.io/v1`.
pub const AUTHENTICATION_V1: GroupVersion = GroupVersion {
    group: "authentication.k8s.io",
    version: "v1",
};
/// `authorization.k8s.io/v1`.
pub const AUTHORIZATION_V1: GroupVersion = GroupVersion {
    group: "authorization.k8s.io",
    version: "v1",
};
/// `batch/v1`.
pub const BATCH_V1: GroupVersion = GroupVersion {
    group: "batch",
    version: "v1",
};
/// `rbac.authorization.k8s.io/v1`.
pub const RBAC_V1: GroupVersion = GroupVersion {
    group: "rbac.authorization.k8s.io",
    version: "v1",
};

/// Finds a served resource by group, version and plural name.
pub fn lookup(group: &str, version: &str, plural: &str) -> Option<&'static Resource> {
    RESOURCES
        .iter()
        .find(|r| r.plural == plural && r.gv.group == group && r.gv.version == version)
}

/// Finds a served resource by its `apiVersion` and `kind`.
pub fn lookup_kind(api_version: &str, kind: &str) -> Option<&'static Resource> {
    RESOURCES
        .iter()
        .find(|r| r.kind == kind && r.gv.api_version() == api_version)
}

/// The resources served at one group-version, in table order.
pub fn resources_of(gv: GroupVersion) -> impl Iterator<Item = &'static Resource> {
    RESOURCES.iter().filter(move |r| r.gv == gv)
}

/// Whether any resource is served at `group`/`version`.
pub fn serves(group: &str, version: &str) -> bool {
    GROUP_VERSIONS
        .iter()
        .any(|gv| gv.group == group && gv.version == version)
}

/// Discovery `APIResource` entry, as served in `APIResourceList`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiResource {
    /// `pods` or `pods/status`.
    pub name: String,
    /// Singular name; empty for subresources, as upstream.
    pub singular_name: String,
    /// Whether the resource is namespaced.
    pub namespaced: bool,
    /// Group of the kind, when it differs from the group-version being listed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Version of the kind, when it differs from the group-version being listed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The kind.
    pub kind: String,
    /// Supported verbs.
    pub verbs: Vec<String>,
    /// Short names.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub short_names: Vec<String>,
    /// Categories.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub categories: Vec<String>,
}

/// The discovery entries of one group-version: each resource followed by its subresources.
pub fn api_resources(gv: GroupVersion) -> Vec<ApiResource> {
    let strings = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    let mut out = Vec::new();
    for r in resources_of(gv) {
        out.push(ApiResource {
            name: r.plural.to_owned(),
            singular_name: r.singular.to_owned(),
            namespaced: r.namespaced,
            group: None,
            version: None,
            kind: r.kind.to_owned(),
            verbs: strings(r.verbs),
            short_names: strings(r.short_names),
            categories: strings(r.categories),
        });
        for s in r.subresources {
            out.push(ApiResource {
                name: format!("{}/{}", r.plural, s.name),
                singular_name: String::new(),
                namespaced: r.namespaced,
                group: s.group.map(str::to_owned),
                version: s.version.map(str::to_owned),
                kind: s.kind.to_owned(),
                verbs: strings(s.verbs),
                short_names: Vec::new(),
                categories: Vec::new(),
            });
        }
    }
    out
}

const CRUD: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];
const GET_PATCH_UPDATE: &[&str] = &["get", "patch", "update"];
const CREATE: &[&str] = &["create"];

const fn review(
    gv: GroupVersion,
    kind: &'static str,
    plural: &'static str,
    singular: &'static str,
    namespaced: bool,
) -> Resource {
    Resource {
        gv,
        kind,
        plural,
        singular,
        short_names: &[],
        categories: &[],
        namespaced,
        verbs: CREATE,
        subresources: &[],
        storage_prefix: "",
    }
}

const fn status_of(kind: &'static str) -> Subresource {
    Subresource {
        name: "status",
        kind,
        group: None,
        version: None,
        verbs: GET_PATCH_UPDATE,
    }
}

const fn scale() -> Subresource {
    Subresource {
        name: "scale",
        kind: "Scale",
        group: Some("autoscaling"),
        version: Some("v1"),
        verbs: GET_PATCH_UPDATE,
    }
}

/// Every served resource. Names, short names, categories, verbs and subresources are those
/// kube-apiserver's discovery reports for the same resources.
pub const RESOURCES: &[Resource] = &[
    Resource {
        gv: CORE_V1,
        kind: "ConfigMap",
        plural: "configmaps",
        singular: "configmap",
        short_names: &["cm"],
        categories: &[],
        namespaced: true,
        verbs: CRUD,
        subresources: &[],
        storage_prefix: "configmaps",
    },
    Resource {
        gv: CORE_V1,
        kind: "Event",
        plural: "events",
        singular: "event",
        short_names: &["ev"],
        categories: &[],
        namespaced: true,
        verbs: CRUD,
        subresources: &[],
        storage_prefix: "events",
    },
    Resource {
        gv: CORE_V1,
        kind: "Namespace",
        plural: "namespaces",
        singular: "namespace",
        short_names: &["ns"],
        categories: &[],
        namespaced: false,
        verbs: &[
            "create", "delete", "get", "list", "patch", "update", "watch",
        ],
        subresources: &[
            Subresource {
                name: "finalize",
                kind: "Namespace",
                group: None,
                version: None,
                verbs: &["update"],
            },
            status_of("Namespace"),
        ],
        storage_prefix: "namespaces",
    },
    Resource {
        gv: CORE_V1,
        kind: "Pod",
        plural: "pods",
        singular: "pod",
        short_names: &["po"],
        categories: &["all"],
        namespaced: true,
        verbs: CRUD,
        subresources: &[
            Subresource {
                name: "ephemeralcontainers",
                kind: "Pod",
                group: None,
                version: None,
                verbs: GET_PATCH_UPDATE,
            },
            status_of("Pod"),
        ],
        storage_prefix: "pods",
    },
    Resource {
        gv: CORE_V1,
        kind: "Secret",
        plural: "secrets",
        singular: "secret",
        short_names: &[],
        categories: &[],
        namespaced: true,
        verbs: CRUD,
        subresources: &[],
        storage_prefix: "secrets",
    },
    Resource {
        gv: CORE_V1,
        kind: "ServiceAccount",
        plural: "serviceaccounts",
        singular: "serviceaccount",
        short_names: &["sa"],
        categories: &[],
        namespaced: true,
        verbs: CRUD,
        subresources: &[Subresource {
            name: "token",
            kind: "TokenRequest",
            group: Some("authentication.k8s.io"),
            version: Some("v1"),
            verbs: CREATE,
        }],
        storage_prefix: "serviceaccounts",
    },
    Resource {
        gv: CORE_V1,
        kind: "Service",
        plural: "services",
        singular: "service",
        short_names: &["svc"],
        categories: &["all"],
        namespaced: true,
        verbs: CRUD,
        subresources: &[status_of("Service")],
        storage_prefix: "services/specs",
    },
    Resource {
        gv: APPS_V1,
        kind: "DaemonSet",
        plural: "daemonsets",
        singular: "daemonset",
        short_names: &["ds"],
        categories: &["all"],
        namespaced: true,
        verbs: CRUD,
        subresources: &[status_of("DaemonSet")],
        storage_prefix: "daemonsets",
    },
    Resource {
        gv: APPS_V1,
        kind: "Deployment",
        plural: "deployments",
        singular: "deployment",
        short_names: &["deploy"],
        categories: &["all"],
        namespaced: true,
        verbs: CRUD,
        subresources: &[scale(), status_of("Deployment")],
        storage_prefix: "deployments",
    },
    Resource {
        gv: APPS_V1,
        kind: "ReplicaSet",
        plural: "replicasets",
        singular: "replicaset",
        short_names: &["rs"],
        categories: &["all"],
        namespaced: true,
        verbs: CRUD,
        subresources: &[scale(), status_of("ReplicaSet")],
        storage_prefix: "replicasets",
    },
    Resource {
        gv: APPS_V1,
        kind: "StatefulSet",
        plural: "statefulsets",
        singular: "statefulset",
        short_names: &["sts"],
        categories: &["all"],
        namespaced: true,
        verbs: CRUD,
        subresources: &[scale(), status_of("StatefulSet")],
        storage_prefix: "statefulsets",
    },
    review(
        AUTHENTICATION_V1,
        "SelfSubjectReview",
        "selfsubjectreviews",
        "selfsubjectreview",
        false,
    ),
    review(
        AUTHENTICATION_V1,
        "TokenReview",
        "tokenreviews",
        "tokenreview",
        false,
    ),
    review(
        AUTHORIZATION_V1,
        "LocalSubjectAccessReview",
        "localsubjectaccessreviews",
        "localsubjectaccessreview",
        true,
    ),
    review(
        AUTHORIZATION_V1,
        "SelfSubjectAccessReview",
        "selfsubjectaccessreviews",
        "selfsubjectaccessreview",
        false,
    ),
    review(
        AUTHORIZATION_V1,
        "SelfSubjectRulesReview",
        "selfsubjectrulesreviews",
        "selfsubjectrulesreview",
        false,
    ),
    review(
        AUTHORIZATION_V1,
        "SubjectAccessReview",
        "subjectaccessreviews",
        "subjectaccessreview",
        false,
    ),
    Resource {
        gv: BATCH_V1,
        kind: "CronJob",
        plural: "cronjobs",
        singular: "cronjob",
        short_names: &["cj"],
        categories: &["all"],
        namespaced: true,
        verbs: CRUD,
        subresources: &[status_of("CronJob")],
        storage_prefix: "cronjobs",
    },
    Resource {
        gv: BATCH_V1,
        kind: "Job",
        plural: "jobs",
        singular: "job",
        short_names: &[],
        categories: &["all"],
        namespaced: true,
        verbs: CRUD,
        subresources: &[status_of("Job")],
        storage_prefix: "jobs",
    },
    Resource {
        gv: RBAC_V1,
        kind: "ClusterRoleBinding",
        plural: "clusterrolebindings",
        singular: "clusterrolebinding",
        short_names: &[],
        categories: &[],
        namespaced: false,
        verbs: CRUD,
        subresources: &[],
        storage_prefix: "clusterrolebindings",
    },
    Resource {
        gv: RBAC_V1,
        kind: "ClusterRole",
        plural: "clusterroles",
        singular: "clusterrole",
        short_names: &[],
        categories: &[],
        namespaced: false,
        verbs: CRUD,
        subresources: &[],
        storage_prefix: "clusterroles",
    },
    Resource {
        gv: RBAC_V1,
        kind: "RoleBinding",
        plural: "rolebindings",
        singular: "rolebinding",
        short_names: &[],
        categories: &[],
        namespaced: true,
        verbs: CRUD,
        subresources: &[],
        storage_prefix: "rolebindings",
    },
    Resource {
        gv: RBAC_V1,
        kind: "Role",
        plural: "roles",
        singular: "role",
        short_names: &[],
        categories: &[],
        namespaced: true,
        verbs: CRUD,
        subresources: &[],
        storage_prefix: "roles",
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_group_version_serves_something_and_every_resource_has_a_group_version() {
        for gv in GROUP_VERSIONS {
            assert!(resources_of(*gv).next().is_some(), "{gv:?} serves nothing");
        }
        for r in RESOURCES {
            assert!(
                GROUP_VERSIONS.contains(&r.gv),
                "{} has no group-version",
                r.plural
            );
        }
    }

    #[test]
    fn names_and_short_names_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for r in RESOURCES {
            assert!(seen.insert((r.gv.group, r.plural)), "{} twice", r.plural);
            for s in r.short_names {
                assert!(seen.insert(("short", s)), "short name {s} twice");
            }
        }
    }

    #[test]
    fn keys_follow_the_apiserver_layout() {
        let pods = lookup("", "v1", "pods").unwrap();
        assert_eq!(
            pods.key(Some("default"), "web"),
            "/registry/pods/default/web"
        );
        let ns = lookup("", "v1", "namespaces").unwrap();
        assert_eq!(ns.key(Some("ignored"), "demo"), "/registry/namespaces/demo");
        let svc = lookup("", "v1", "services").unwrap();
        assert_eq!(svc.key(Some("a"), "b"), "/registry/services/specs/a/b");
        assert_eq!(
            lookup("apps", "v1", "deployments")
                .unwrap()
                .group_resource(),
            "deployments.apps"
        );
    }
}

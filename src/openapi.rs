//! The OpenAPI v3 documents served at `/openapi/v3`, derived from the resource registry.
//!
//! kubectl (v1.32) reads these documents for two decisions, and the shapes here are chosen for
//! exactly those:
//!
//! * **Server-side field validation.** With the default `--validate=strict`, kubectl asks, per
//!   object, whether the PATCH operation of that kind declares a `fieldValidation` query
//!   parameter. It walks the `paths` of the group-version's document, takes the first PATCH
//!   operation whose `x-kubernetes-group-version-kind` object names the kind, and looks only at
//!   that operation's own `parameters` (path-level parameters are not consulted). If found, it
//!   skips client-side validation and sends `fieldValidation=Strict`; otherwise it falls back to
//!   validating against `/openapi/v2`, which portcullis does not serve. Since the walk order is
//!   unspecified, every PATCH operation (subresources included) declares `fieldValidation` on the
//!   operation itself. (A `kind: List` manifest is always validated client-side, so it fails
//!   under the default `--validate=strict` while `/openapi/v2` is not served.)
//! * **Client-side apply patches.** kubectl computes its strategic merge patch from these
//!   schemas only when the PATCH request body lists `application/strategic-merge-patch+json`.
//!   The schemas here are deliberately minimal, so the PATCH bodies leave that type out:
//!   kubectl then tries `/openapi/v2` (a 404 there is tolerated) and computes the patch from its
//!   compiled-in Go types, which carry the merge keys and strategies. kubectl still sends that
//!   patch as `application/strategic-merge-patch+json`.
//!
//! Each document is built once, on first use. Its hash (FNV-1a 64 over the serialized JSON) is
//! embedded in the index's `serverRelativeURL`s, so a changed document gets a new URL.
//!
//! Serving, as kube-apiserver does: answer both the index and a document with
//! `Content-Type: application/json` and a quoted `ETag` of the hash; when a document request's
//! `hash` query parameter equals the current hash also send `Cache-Control: public, immutable`,
//! an `Expires` a year ahead and `Vary: Accept`; when it differs, redirect (301) to the current
//! `serverRelativeURL`.

use std::sync::LazyLock;

use portcullis_api::registry::{self, GroupVersion, Resource};
use serde_json::{Map, Value, json};

/// Request body types the PATCH operations declare. Strategic merge is left out on purpose:
/// see the module documentation.
const PATCH_BODY_TYPES: &[&str] = &[
    "application/json-patch+json",
    "application/merge-patch+json",
];

const WRITE_PARAMS: &[&str] = &["dryRun", "fieldManager", "fieldValidation"];
const PATCH_PARAMS: &[&str] = &["dryRun", "fieldManager", "fieldValidation", "force"];
const DELETE_PARAMS: &[&str] = &[
    "dryRun",
    "gracePeriodSeconds",
    "orphanDependents",
    "propagationPolicy",
];
const LIST_PARAMS: &[&str] = &[
    "allowWatchBookmarks",
    "continue",
    "fieldSelector",
    "labelSelector",
    "limit",
    "resourceVersion",
    "resourceVersionMatch",
    "sendInitialEvents",
    "timeoutSeconds",
    "watch",
];
const DELETE_COLLECTION_PARAMS: &[&str] = &[
    "continue",
    "dryRun",
    "fieldSelector",
    "gracePeriodSeconds",
    "labelSelector",
    "limit",
    "orphanDependents",
    "propagationPolicy",
    "resourceVersion",
    "resourceVersionMatch",
    "sendInitialEvents",
    "timeoutSeconds",
];

const META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1";

/// One group-version's document and its hash.
struct Served {
    gv: GroupVersion,
    document: Value,
    hash: String,
}

static SERVED: LazyLock<Vec<Served>> = LazyLock::new(|| {
    registry::GROUP_VERSIONS
        .iter()
        .map(|&gv| {
            let document = build_document(gv);
            let hash = fnv1a_hex(document.to_string().as_bytes());
            Served { gv, document, hash }
        })
        .collect()
});

fn served(gv: GroupVersion) -> Option<&'static Served> {
    SERVED.iter().find(|s| s.gv == gv)
}

/// The `/openapi/v3` index document: `{"paths": {"api/v1": {"serverRelativeURL":
/// "/openapi/v3/api/v1?hash=…"}, "apis/apps/v1": …}}`, one entry per served group-version.
/// [`hash_of`] gives the hash embedded in each `serverRelativeURL`.
pub fn index() -> Value {
    let mut paths = Map::new();
    for s in SERVED.iter() {
        let prefix = s.gv.path_prefix();
        let url = format!("/openapi/v3{prefix}?hash={}", s.hash);
        let key = prefix.trim_start_matches('/').to_owned();
        paths.insert(key, json!({ "serverRelativeURL": url }));
    }
    json!({ "paths": paths })
}

/// The document for one group-version (`/openapi/v3/api/v1`, `/openapi/v3/apis/apps/v1`), or
/// `None` if that group-version is not served (the caller answers 404). Built from
/// [`portcullis_api::registry`] only.
pub fn group_version_document(gv: GroupVersion) -> Option<Value> {
    served(gv).map(|s| s.document.clone())
}

/// The stable content hash (16 upper-case hex digits) of [`group_version_document`]`(gv)`,
/// computed once; `None` if the group-version is not served.
pub fn hash_of(gv: GroupVersion) -> Option<String> {
    served(gv).map(|s| s.hash.clone())
}

/// FNV-1a, 64 bits, as upper-case hex.
fn fnv1a_hex(bytes: &[u8]) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{hash:016X}")
}

fn build_document(gv: GroupVersion) -> Value {
    let mut paths = Map::new();
    let mut schemas = Map::new();
    for name in ["Patch", "DeleteOptions", "Status"] {
        schemas.insert(format!("{META}.{name}"), json!({ "type": "object" }));
    }
    for r in registry::resources_of(gv) {
        add_resource(&mut paths, &mut schemas, r);
    }
    json!({
        "openapi": "3.0.0",
        "info": { "title": "portcullis", "version": env!("CARGO_PKG_VERSION") },
        "paths": paths,
        "components": { "schemas": schemas },
    })
}

/// The group-version as operationIds spell it: `CoreV1`, `AppsV1`, `RbacAuthorizationV1`.
fn id_prefix(gv: GroupVersion) -> String {
    let group = gv.group.strip_suffix(".k8s.io").unwrap_or(gv.group);
    let mut out = if group.is_empty() {
        "Core".to_owned()
    } else {
        group.split('.').map(capitalize).collect()
    };
    out.push_str(&capitalize(gv.version));
    out
}

/// The tag operations carry: `core_v1`, `apps_v1`, `rbacAuthorization_v1`.
fn tag(gv: GroupVersion) -> String {
    let camel = id_prefix(GroupVersion { version: "", ..gv });
    let mut chars = camel.chars();
    let first = chars.next().map(|c| c.to_lowercase().collect::<String>());
    format!(
        "{}{}_{}",
        first.unwrap_or_default(),
        chars.as_str(),
        gv.version
    )
}

fn capitalize(s: &str) -> String {
    let mut chars = s.chars();
    let first = chars.next().map(|c| c.to_uppercase().collect::<String>());
    first.unwrap_or_default() + chars.as_str()
}

/// The component schema name of a kind, as upstream names it: `io.k8s.api.apps.v1.Deployment`.
fn schema_name(group: &str, version: &str, kind: &str) -> String {
    let package = group.split('.').next().filter(|p| !p.is_empty());
    format!("io.k8s.api.{}.{version}.{kind}", package.unwrap_or("core"))
}

fn schema_ref(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn gvk(group: &str, version: &str, kind: &str) -> Value {
    json!({ "group": group, "kind": kind, "version": version })
}

fn query(name: &str) -> Value {
    let ty = match name {
        "allowWatchBookmarks" | "force" | "orphanDependents" | "sendInitialEvents" | "watch" => {
            "boolean"
        }
        "gracePeriodSeconds" | "limit" | "timeoutSeconds" => "integer",
        _ => "string",
    };
    json!({ "in": "query", "name": name, "schema": { "type": ty, "uniqueItems": true } })
}

fn path_param(name: &str, description: String) -> Value {
    json!({
        "description": description,
        "in": "path",
        "name": name,
        "required": true,
        "schema": { "type": "string", "uniqueItems": true },
    })
}

/// Path-level parameters: `{name}` on item paths, `{namespace}` when namespaced, and `pretty`.
fn path_params(kind: &str, item: bool, namespaced: bool) -> Vec<Value> {
    let mut params = Vec::new();
    if item {
        params.push(path_param("name", format!("name of the {kind}")));
    }
    if namespaced {
        let description = "namespace of the object".to_owned();
        params.push(path_param("namespace", description));
    }
    params.push(query("pretty"));
    params
}

/// What the operations on one path share.
#[derive(Clone)]
struct Target {
    /// `CoreV1`: the group-version part of operationIds.
    prefix: String,
    tag: String,
    /// The operations' `x-kubernetes-group-version-kind`.
    gvk: Value,
    /// Component schema names of the object and of its list.
    object: String,
    list: String,
}

impl Target {
    /// The operation behind `action` (an `x-kubernetes-action`) on a path; `verb` starts its
    /// operationId and `subject` ends it (`patch` … `NamespacedPod`).
    fn op(&self, action: &str, verb: &str, subject: &str) -> Value {
        let (params, codes): (&[&str], &[&str]) = match action {
            "list" => (LIST_PARAMS, &["200"]),
            "post" => (WRITE_PARAMS, &["200", "201", "202"]),
            "put" => (WRITE_PARAMS, &["200", "201"]),
            "patch" => (PATCH_PARAMS, &["200", "201"]),
            "delete" => (DELETE_PARAMS, &["200", "202"]),
            "deletecollection" => (DELETE_COLLECTION_PARAMS, &["200"]),
            _ => (&[], &["200"]),
        };
        let (body_types, body): (&[&str], String) = match action {
            "post" | "put" => (&["*/*"], self.object.clone()),
            "patch" => (PATCH_BODY_TYPES, format!("{META}.Patch")),
            "delete" | "deletecollection" => (&["*/*"], format!("{META}.DeleteOptions")),
            _ => (&[], String::new()),
        };
        let reply = schema_ref(&match action {
            "list" => self.list.clone(),
            "delete" | "deletecollection" => format!("{META}.Status"),
            _ => self.object.clone(),
        });

        let mut content = Map::new();
        content.insert("application/json".to_owned(), json!({ "schema": reply }));
        if action == "list" {
            let watch = json!({ "schema": reply });
            content.insert("application/json;stream=watch".to_owned(), watch);
        }
        let mut responses = Map::new();
        for &code in codes {
            let description = match code {
                "201" => "Created",
                "202" => "Accepted",
                _ => "OK",
            };
            let response = json!({ "content": content, "description": description });
            responses.insert(code.to_owned(), response);
        }
        responses.insert("401".to_owned(), json!({ "description": "Unauthorized" }));

        let mut op = Map::new();
        let infix = if action == "deletecollection" {
            "Collection"
        } else {
            ""
        };
        let operation_id = format!("{verb}{}{infix}{subject}", self.prefix);
        op.insert(
            "description".to_owned(),
            json!(format!("{action} {}", self.object)),
        );
        op.insert("operationId".to_owned(), json!(operation_id));
        if !params.is_empty() {
            let params: Vec<Value> = params.iter().map(|p| query(p)).collect();
            op.insert("parameters".to_owned(), Value::Array(params));
        }
        if !body_types.is_empty() {
            let body = json!({ "schema": schema_ref(&body) });
            let content: Map<_, _> = body_types
                .iter()
                .map(|t| ((*t).to_owned(), body.clone()))
                .collect();
            op.insert("requestBody".to_owned(), json!({ "content": content }));
        }
        op.insert("responses".to_owned(), Value::Object(responses));
        op.insert("tags".to_owned(), json!([self.tag]));
        op.insert("x-kubernetes-action".to_owned(), json!(action));
        op.insert(
            "x-kubernetes-group-version-kind".to_owned(),
            self.gvk.clone(),
        );
        Value::Object(op)
    }

    /// Adds `path` with the operations the registry `verbs` enable there and its path-level
    /// `params`, unless no verb applies. `on_item` picks the item meaning of `get`, `delete`.
    fn add_path(
        &self,
        out: &mut Map<String, Value>,
        (path, on_item): (String, bool),
        verbs: &[&str],
        subject: &str,
        params: Vec<Value>,
    ) {
        let mut ops = Map::new();
        for &v in verbs {
            // (HTTP method, x-kubernetes-action, operationId verb)
            let (method, action, verb) = match (v, on_item) {
                ("list", false) => ("get", "list", "list"),
                ("create", _) => ("post", "post", "create"),
                ("deletecollection", false) => ("delete", "deletecollection", "delete"),
                ("get", true) => ("get", "get", "read"),
                ("update", true) => ("put", "put", "replace"),
                ("patch", true) => ("patch", "patch", "patch"),
                ("delete", true) => ("delete", "delete", "delete"),
                _ => continue,
            };
            ops.insert(method.to_owned(), self.op(action, verb, subject));
        }
        if !ops.is_empty() {
            ops.insert("parameters".to_owned(), Value::Array(params));
            out.insert(path, Value::Object(ops));
        }
    }
}

fn add_schema(schemas: &mut Map<String, Value>, group: &str, version: &str, kind: &str) -> String {
    let name = schema_name(group, version, kind);
    let gvks = json!([gvk(group, version, kind)]);
    let schema = json!({ "type": "object", "x-kubernetes-group-version-kind": gvks });
    schemas.insert(name.clone(), schema);
    name
}

fn add_resource(paths: &mut Map<String, Value>, schemas: &mut Map<String, Value>, r: &Resource) {
    let (group, version, ns) = (r.gv.group, r.gv.version, r.namespaced);
    let prefix = r.gv.path_prefix();
    let (base, scope) = if ns {
        (
            format!("{prefix}/namespaces/{{namespace}}/{}", r.plural),
            "Namespaced",
        )
    } else {
        (format!("{prefix}/{}", r.plural), "")
    };
    let target = Target {
        prefix: id_prefix(r.gv),
        tag: tag(r.gv),
        gvk: gvk(group, version, r.kind),
        object: add_schema(schemas, group, version, r.kind),
        list: add_schema(schemas, group, version, &r.list_kind()),
    };
    let subject = format!("{scope}{}", r.kind);
    let params = path_params(r.kind, false, ns);
    target.add_path(paths, (base.clone(), false), r.verbs, &subject, params);
    if ns && r.supports("list") {
        let all = format!("{}ForAllNamespaces", r.kind);
        let path = (format!("{prefix}/{}", r.plural), false);
        target.add_path(paths, path, &["list"], &all, vec![query("pretty")]);
    }
    let params = path_params(r.kind, true, ns);
    let item = format!("{base}/{{name}}");
    let item_verbs: Vec<&str> = r.verbs.iter().copied().filter(|v| *v != "create").collect();
    target.add_path(paths, (item.clone(), true), &item_verbs, &subject, params);

    for s in r.subresources {
        let (sg, sv) = (s.group.unwrap_or(group), s.version.unwrap_or(version));
        let sub = Target {
            gvk: gvk(sg, sv, s.kind),
            object: add_schema(schemas, sg, sv, s.kind),
            ..target.clone()
        };
        let subject = format!("{subject}{}", capitalize(s.name));
        let params = path_params(r.kind, true, ns);
        let path = (format!("{item}/{}", s.name), true);
        sub.add_path(paths, path, s.verbs, &subject, params);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use registry::{APPS_V1, CORE_V1, GROUP_VERSIONS, RESOURCES};

    fn doc(gv: GroupVersion) -> Value {
        group_version_document(gv).expect("served")
    }

    /// kubectl's test: the PATCH operation's own parameters include `fieldValidation`.
    fn declares_field_validation(op: &Value) -> bool {
        let params = op["parameters"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default();
        params
            .iter()
            .any(|p| p["name"] == "fieldValidation" && p["in"] == "query")
    }

    #[test]
    fn the_index_lists_every_group_version_with_a_hash_url() {
        let index = index();
        let paths = index["paths"].as_object().expect("paths");
        assert_eq!(paths.len(), GROUP_VERSIONS.len());
        for &gv in GROUP_VERSIONS {
            let key = gv.path_prefix().trim_start_matches('/').to_owned();
            let hash = hash_of(gv).expect("hash");
            let url = format!("/openapi/v3/{key}?hash={hash}");
            assert_eq!(paths[&key]["serverRelativeURL"], url);
        }
        assert!(paths.contains_key("api/v1") && paths.contains_key("apis/apps/v1"));
    }

    #[test]
    fn the_core_document_patches_namespaced_pods_with_field_validation_on_the_operation() {
        let doc = doc(CORE_V1);
        let path = &doc["paths"]["/api/v1/namespaces/{namespace}/pods/{name}"];
        let patch = &path["patch"];
        assert_eq!(patch["operationId"], "patchCoreV1NamespacedPod");
        assert_eq!(patch["x-kubernetes-action"], "patch");
        let pod = json!({ "group": "", "kind": "Pod", "version": "v1" });
        assert_eq!(patch["x-kubernetes-group-version-kind"], pod);
        assert!(declares_field_validation(patch));
        let path_level = path["parameters"].as_array().expect("path parameters");
        assert!(path_level.iter().all(|p| p["name"] != "fieldValidation"));
        let all = &doc["paths"]["/api/v1/pods"]["get"];
        assert_eq!(all["operationId"], "listCoreV1PodForAllNamespaces");
        assert!(doc["paths"]["/api/v1/namespaces/{name}"]["patch"].is_object());
        let finalize = &doc["paths"]["/api/v1/namespaces/{name}/finalize"]["put"];
        assert_eq!(finalize["operationId"], "replaceCoreV1NamespaceFinalize");
        let eph = "/api/v1/namespaces/{namespace}/pods/{name}/ephemeralcontainers";
        let eph = &doc["paths"][eph]["patch"];
        assert_eq!(
            eph["operationId"],
            "patchCoreV1NamespacedPodEphemeralcontainers"
        );
    }

    #[test]
    fn every_patch_operation_declares_field_validation_and_every_kind_has_one() {
        for &gv in GROUP_VERSIONS {
            let doc = doc(gv);
            for (path, item) in doc["paths"].as_object().expect("paths") {
                if let Some(patch) = item.get("patch") {
                    assert!(declares_field_validation(patch), "{path}");
                    let content = patch["requestBody"]["content"].as_object().expect("body");
                    assert!(
                        content.contains_key("application/merge-patch+json"),
                        "{path}"
                    );
                    // Keeps kubectl apply on its compiled-in types; see the module docs.
                    assert!(!content.contains_key("application/strategic-merge-patch+json"));
                }
            }
        }
        for r in RESOURCES.iter().filter(|r| r.supports("patch")) {
            let doc = doc(r.gv);
            let mut items = doc["paths"].as_object().expect("paths").values();
            let kind_of = |item: &Value| item["patch"]["x-kubernetes-group-version-kind"].clone();
            let want = json!({ "group": r.gv.group, "kind": r.kind, "version": r.gv.version });
            assert!(
                items.any(|item| kind_of(item) == want),
                "no PATCH for {}",
                r.kind
            );
        }
    }

    #[test]
    fn the_apps_document_covers_deployments_and_their_scale() {
        let doc = doc(APPS_V1);
        let paths = &doc["paths"];
        let collection = &paths["/apis/apps/v1/namespaces/{namespace}/deployments"];
        assert_eq!(
            collection["post"]["operationId"],
            "createAppsV1NamespacedDeployment"
        );
        let delete = &collection["delete"];
        assert_eq!(
            delete["operationId"],
            "deleteAppsV1CollectionNamespacedDeployment"
        );
        assert_eq!(delete["x-kubernetes-action"], "deletecollection");
        let item = &paths["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"];
        for method in ["get", "put", "patch", "delete"] {
            assert!(item[method].is_object(), "{method}");
        }
        let scale = &paths["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale"];
        assert_eq!(
            scale["patch"]["operationId"],
            "patchAppsV1NamespacedDeploymentScale"
        );
        let gvk = json!({ "group": "autoscaling", "kind": "Scale", "version": "v1" });
        assert_eq!(scale["patch"]["x-kubernetes-group-version-kind"], gvk);
        assert!(declares_field_validation(&scale["patch"]));
        let reply = &scale["get"]["responses"]["200"]["content"]["application/json"]["schema"];
        assert_eq!(
            reply["$ref"],
            "#/components/schemas/io.k8s.api.autoscaling.v1.Scale"
        );
        let deployment = &doc["components"]["schemas"]["io.k8s.api.apps.v1.Deployment"];
        assert_eq!(
            deployment["x-kubernetes-group-version-kind"][0]["kind"],
            "Deployment"
        );
        assert!(paths["/apis/apps/v1/deployments"]["get"].is_object());
    }

    #[test]
    fn every_reference_resolves_within_its_document() {
        fn refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
            match v {
                Value::Object(m) => {
                    out.extend(m.get("$ref").and_then(Value::as_str));
                    m.values().for_each(|v| refs(v, out));
                }
                Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
                _ => {}
            }
        }
        for &gv in GROUP_VERSIONS {
            let doc = doc(gv);
            let mut found = Vec::new();
            refs(&doc["paths"], &mut found);
            assert!(!found.is_empty());
            for r in found {
                let name = r.strip_prefix("#/components/schemas/").expect("schema ref");
                assert!(doc["components"]["schemas"].get(name).is_some(), "{r}");
            }
        }
    }

    #[test]
    fn hashes_are_stable_and_differ_between_group_versions() {
        let hashes: Vec<String> = GROUP_VERSIONS
            .iter()
            .filter_map(|&gv| hash_of(gv))
            .collect();
        assert_eq!(hashes.len(), GROUP_VERSIONS.len());
        for (&gv, hash) in GROUP_VERSIONS.iter().zip(&hashes) {
            assert_eq!(hash_of(gv).as_ref(), Some(hash));
            assert_eq!(&fnv1a_hex(doc(gv).to_string().as_bytes()), hash);
        }
        let unique: std::collections::HashSet<_> = hashes.iter().collect();
        assert_eq!(unique.len(), hashes.len());
        assert_eq!(fnv1a_hex(b"a"), "AF63DC4C8601EC8C");
        let unserved = GroupVersion {
            group: "example.com",
            version: "v1",
        };
        assert!(group_version_document(unserved).is_none() && hash_of(unserved).is_none());
    }

    #[test]
    fn names_follow_upstream_spelling() {
        let rbac = registry::RBAC_V1;
        assert_eq!(id_prefix(rbac), "RbacAuthorizationV1");
        assert_eq!(
            (tag(rbac).as_str(), tag(CORE_V1).as_str()),
            ("rbacAuthorization_v1", "core_v1")
        );
        assert_eq!(
            schema_name(rbac.group, "v1", "Role"),
            "io.k8s.api.rbac.v1.Role"
        );
        assert_eq!(schema_name("", "v1", "Pod"), "io.k8s.api.core.v1.Pod");
    }
}

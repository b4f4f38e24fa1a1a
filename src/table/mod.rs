//! Server-side printing: `meta.k8s.io/v1` `Table` responses for `kubectl get`.
//!
//! When kubectl asks for `Accept: application/json;as=Table;v=v1;g=meta.k8s.io`,
//! kube-apiserver answers with a `Table` whose columns and cells come from its built-in
//! printers (`pkg/printers/internalversion`), or from the default convertor (Name,
//! Created At) for resources without one. This module reproduces those columns and cell
//! values from objects given as plain JSON, for:
//!
//! - core: pods, namespaces, configmaps, secrets, services, serviceaccounts, events
//!   (also events.k8s.io events, which upstream prints with the same printer);
//! - apps: deployments, replicasets, statefulsets, daemonsets;
//! - batch: jobs, cronjobs;
//! - rbac.authorization.k8s.io: rolebindings, clusterrolebindings (roles and clusterroles
//!   have no printer upstream and use the default convertor, hence `Created At`).
//!
//! Like kube-apiserver, rows always carry every column including the priority-1 ("wide")
//! ones; kubectl hides those unless `-o wide`. Integer cells are JSON numbers, all others
//! strings. Input is untrusted: missing or mistyped fields render as upstream renders the
//! zero value (`<none>`, `<unknown>`, `0`, `""`), never as a panic. There is no clock
//! inside; callers pass `now`.

#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

mod columns;
mod core;
mod util;
mod workloads;

#[cfg(test)]
mod tests;

use jiff::Timestamp;
use serde_json::{Map, Value, json};

/// Column definition as in `meta.k8s.io/v1` `TableColumnDefinition`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Column {
    /// Human-readable header, e.g. `Name` or `Up-to-date` (kubectl upper-cases it).
    pub name: &'static str,
    /// OpenAPI type of the cells: `string`, `integer`, `boolean`, `date`.
    pub type_: &'static str,
    /// OpenAPI format hint; `name` marks the object-name column, usually empty.
    pub format: &'static str,
    /// What the column shows.
    pub description: &'static str,
    /// 0 for default columns, 1 for columns kubectl shows only with `-o wide`.
    pub priority: i32,
}

impl Column {
    /// The column as `TableColumnDefinition` JSON (every field present, as upstream).
    pub fn to_json(self) -> Value {
        json!({
            "name": self.name,
            "type": self.type_,
            "format": self.format,
            "description": self.description,
            "priority": self.priority,
        })
    }
}

/// What each row's `object` holds: the `includeObject` query parameter of a Table request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IncludeObject {
    /// A `PartialObjectMetadata` carrying the object's metadata (upstream's default).
    #[default]
    Metadata,
    /// Nothing: the row's `object` is `null`, as upstream serializes it.
    None,
    /// The full object.
    Object,
}

impl IncludeObject {
    /// Parses the `includeObject` query value; an absent (empty) value means
    /// [`IncludeObject::Metadata`]. Unknown values give `None`: upstream answers 400.
    pub fn from_param(value: &str) -> Option<Self> {
        match value {
            "" | "Metadata" => Some(Self::Metadata),
            "None" => Some(Self::None),
            "Object" => Some(Self::Object),
            _ => None,
        }
    }
}

/// Which printer renders a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Printer {
    Pod,
    Namespace,
    ConfigMap,
    Secret,
    Service,
    ServiceAccount,
    Event,
    EventV1,
    Deployment,
    ReplicaSet,
    StatefulSet,
    DaemonSet,
    Job,
    CronJob,
    RoleBinding,
    ClusterRoleBinding,
    Default,
}

impl Printer {
    fn of(group: &str, plural: &str) -> Self {
        match (group, plural) {
            ("" | "core", "pods") => Self::Pod,
            ("" | "core", "namespaces") => Self::Namespace,
            ("" | "core", "configmaps") => Self::ConfigMap,
            ("" | "core", "secrets") => Self::Secret,
            ("" | "core", "services") => Self::Service,
            ("" | "core", "serviceaccounts") => Self::ServiceAccount,
            ("" | "core", "events") => Self::Event,
            ("events.k8s.io", "events") => Self::EventV1,
            ("apps", "deployments") => Self::Deployment,
            ("apps", "replicasets") => Self::ReplicaSet,
            ("apps", "statefulsets") => Self::StatefulSet,
            ("apps", "daemonsets") => Self::DaemonSet,
            ("batch", "jobs") => Self::Job,
            ("batch", "cronjobs") => Self::CronJob,
            ("rbac.authorization.k8s.io", "rolebindings") => Self::RoleBinding,
            ("rbac.authorization.k8s.io", "clusterrolebindings") => Self::ClusterRoleBinding,
            _ => Self::Default,
        }
    }

    fn columns(self) -> &'static [Column] {
        match self {
            Self::Pod => columns::POD,
            Self::Namespace => columns::NAMESPACE,
            Self::ConfigMap => columns::CONFIG_MAP,
            Self::Secret => columns::SECRET,
            Self::Service => columns::SERVICE,
            Self::ServiceAccount => columns::SERVICE_ACCOUNT,
            Self::Event | Self::EventV1 => columns::EVENT,
            Self::Deployment => columns::DEPLOYMENT,
            Self::ReplicaSet => columns::REPLICA_SET,
            Self::StatefulSet => columns::STATEFUL_SET,
            Self::DaemonSet => columns::DAEMON_SET,
            Self::Job => columns::JOB,
            Self::CronJob => columns::CRON_JOB,
            Self::RoleBinding => columns::ROLE_BINDING,
            Self::ClusterRoleBinding => columns::CLUSTER_ROLE_BINDING,
            Self::Default => columns::DEFAULT,
        }
    }

    fn cells(self, obj: &Value, now: Timestamp) -> Vec<Value> {
        match self {
            Self::Pod => core::pod(obj, now),
            Self::Namespace => core::namespace(obj, now),
            Self::ConfigMap => core::config_map(obj, now),
            Self::Secret => core::secret(obj, now),
            Self::Service => core::service(obj, now),
            Self::ServiceAccount => core::service_account(obj, now),
            Self::Event => core::event(obj, now, false),
            Self::EventV1 => core::event(obj, now, true),
            Self::Deployment => workloads::deployment(obj, now),
            Self::ReplicaSet => workloads::replica_set(obj, now),
            Self::StatefulSet => workloads::stateful_set(obj, now),
            Self::DaemonSet => workloads::daemon_set(obj, now),
            Self::Job => workloads::job(obj, now),
            Self::CronJob => workloads::cron_job(obj, now),
            Self::RoleBinding | Self::ClusterRoleBinding => workloads::binding(obj, now),
            Self::Default => vec![
                json!(util::string(obj, "/metadata/name")),
                json!(util::rfc3339(util::time(
                    obj,
                    "/metadata/creationTimestamp"
                ))),
            ],
        }
    }
}

/// The columns for a resource, by plural name and API group (`""` for core), e.g.
/// `("apps", "deployments")`. Unknown resources get the default convertor's
/// `Name` and `Created At`.
pub fn columns(group: &str, plural: &str) -> &'static [Column] {
    Printer::of(group, plural).columns()
}

/// The cells of one row, one value per entry of [`columns`], for an object given as JSON.
/// Ages are computed from `metadata.creationTimestamp` relative to `now`.
pub fn cells(group: &str, plural: &str, object: &Value, now: Timestamp) -> Vec<Value> {
    Printer::of(group, plural).cells(object, now)
}

/// Builds the whole `Table` for a list response, with column definitions.
///
/// `list_metadata` is the list's `metadata`; its `resourceVersion`, `continue` and
/// `remainingItemCount` are carried over. Each row's `object` follows `include`.
pub fn table(
    group: &str,
    plural: &str,
    objects: &[Value],
    list_metadata: Value,
    include: IncludeObject,
    now: Timestamp,
) -> Value {
    build(group, plural, objects, &list_metadata, include, now, true)
}

/// Builds the one-row `Table` sent as the object of a watch event.
///
/// Upstream's watch encoder (`watchEmbeddedEncoder` in
/// `apiserver/pkg/endpoints/handlers/response.go`) includes column definitions only in
/// the first event of a watch and sends `"columnDefinitions": null` afterwards; pass
/// `first_event` accordingly. The table's `resourceVersion` is the object's own.
pub fn watch_table(
    group: &str,
    plural: &str,
    object: &Value,
    include: IncludeObject,
    now: Timestamp,
    first_event: bool,
) -> Value {
    let metadata = object.pointer("/metadata").cloned().unwrap_or(Value::Null);
    build(
        group,
        plural,
        std::slice::from_ref(object),
        &metadata,
        include,
        now,
        first_event,
    )
}

fn build(
    group: &str,
    plural: &str,
    objects: &[Value],
    list_metadata: &Value,
    include: IncludeObject,
    now: Timestamp,
    with_columns: bool,
) -> Value {
    let printer = Printer::of(group, plural);
    let rows: Vec<Value> = objects
        .iter()
        .map(|obj| row(printer, obj, include, now))
        .collect();
    let column_definitions = if with_columns {
        Value::Array(
            printer
                .columns()
                .iter()
                .copied()
                .map(Column::to_json)
                .collect(),
        )
    } else {
        Value::Null
    };
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": table_metadata(list_metadata),
        "columnDefinitions": column_definitions,
        "rows": rows,
    })
}

fn row(printer: Printer, obj: &Value, include: IncludeObject, now: Timestamp) -> Value {
    let object = match include {
        IncludeObject::Metadata => json!({
            "kind": "PartialObjectMetadata",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": obj
                .pointer("/metadata")
                .filter(|m| m.is_object())
                .cloned()
                .unwrap_or_else(|| json!({})),
        }),
        IncludeObject::None => Value::Null,
        IncludeObject::Object => obj.clone(),
    };
    let mut row = Map::new();
    row.insert("cells".to_owned(), Value::Array(printer.cells(obj, now)));
    if printer == Printer::Pod
        && let Some(conditions) = core::pod_conditions(obj)
    {
        row.insert("conditions".to_owned(), conditions);
    }
    row.insert("object".to_owned(), object);
    Value::Object(row)
}

/// The `ListMeta` of the table: only the fields upstream copies, omitted when empty.
fn table_metadata(source: &Value) -> Value {
    let mut meta = Map::new();
    for key in ["resourceVersion", "continue"] {
        if let Some(s) = source
            .get(key)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
        {
            meta.insert(key.to_owned(), json!(s));
        }
    }
    if let Some(n) = source.get("remainingItemCount").and_then(Value::as_i64) {
        meta.insert("remainingItemCount".to_owned(), json!(n));
    }
    Value::Object(meta)
}

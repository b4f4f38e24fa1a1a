//! Column definitions per resource, in upstream's order with upstream's names, types,
//! formats and priorities. Descriptions of `Name`, `Age` and the default convertor's two
//! columns are the ObjectMeta OpenAPI texts upstream uses; the others are short summaries.

use super::Column;

/// The ObjectMeta OpenAPI description of `metadata.name`.
const NAME_DESC: &str = "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names";
/// The ObjectMeta OpenAPI description of `metadata.creationTimestamp`.
const CREATED_DESC: &str = "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata";

const fn col(name: &'static str, type_: &'static str, description: &'static str) -> Column {
    Column {
        name,
        type_,
        format: "",
        description,
        priority: 0,
    }
}

const fn wide(name: &'static str, type_: &'static str, description: &'static str) -> Column {
    Column {
        priority: 1,
        ..col(name, type_, description)
    }
}

const NAME: Column = Column {
    format: "name",
    ..col("Name", "string", NAME_DESC)
};
const AGE: Column = col("Age", "string", CREATED_DESC);
const CONTAINERS: Column = wide(
    "Containers",
    "string",
    "Names of the containers in the pod template.",
);
const IMAGES: Column = wide(
    "Images",
    "string",
    "Images of the containers in the pod template.",
);
const SELECTOR: Column = wide(
    "Selector",
    "string",
    "Label query over the pods this controller manages.",
);

/// The default convertor's columns, used for every resource without a printer.
pub(crate) const DEFAULT: &[Column] = &[NAME, col("Created At", "date", CREATED_DESC)];

pub(crate) const POD: &[Column] = &[
    NAME,
    col(
        "Ready",
        "string",
        "Ready containers out of all containers in the pod.",
    ),
    col(
        "Status",
        "string",
        "Summary of the pod's phase and container states.",
    ),
    col(
        "Restarts",
        "string",
        "Container restarts in the pod, and how long ago the last one was.",
    ),
    AGE,
    wide("IP", "string", "The pod's primary IP address."),
    wide("Node", "string", "The node the pod is scheduled onto."),
    wide(
        "Nominated Node",
        "string",
        "The node a preempting pod is nominated to run on.",
    ),
    wide(
        "Readiness Gates",
        "string",
        "Readiness gates that are true out of all readiness gates.",
    ),
];

pub(crate) const NAMESPACE: &[Column] = &[
    NAME,
    col("Status", "string", "The lifecycle phase of the namespace."),
    AGE,
];

pub(crate) const CONFIG_MAP: &[Column] = &[
    NAME,
    col("Data", "string", "Number of data and binaryData entries."),
    AGE,
];

pub(crate) const SECRET: &[Column] = &[
    NAME,
    col("Type", "string", "The type of the secret."),
    col("Data", "string", "Number of data entries in the secret."),
    AGE,
];

pub(crate) const SERVICE: &[Column] = &[
    NAME,
    col("Type", "string", "How the service is exposed."),
    col("Cluster-IP", "string", "The service's primary cluster IP."),
    col(
        "External-IP",
        "string",
        "External IPs or load balancer ingress points.",
    ),
    col("Port(s)", "string", "Ports the service exposes."),
    AGE,
    wide(
        "Selector",
        "string",
        "Labels of the pods traffic is routed to.",
    ),
];

pub(crate) const SERVICE_ACCOUNT: &[Column] = &[
    NAME,
    col(
        "Secrets",
        "string",
        "Number of secrets listed on the account.",
    ),
    AGE,
];

pub(crate) const EVENT: &[Column] = &[
    col(
        "Last Seen",
        "string",
        "Time since the event was last observed.",
    ),
    col("Type", "string", "The type of the event (Normal, Warning)."),
    col(
        "Reason",
        "string",
        "Short machine-readable reason for the event.",
    ),
    col("Object", "string", "The object the event is about."),
    wide(
        "Subobject",
        "string",
        "Field path of the part of the object involved.",
    ),
    wide("Source", "string", "The component that reported the event."),
    col(
        "Message",
        "string",
        "Human-readable description of the event.",
    ),
    wide(
        "First Seen",
        "string",
        "Time since the event was first observed.",
    ),
    wide("Count", "string", "How many times the event has occurred."),
    Column {
        priority: 1,
        ..NAME
    },
];

pub(crate) const DEPLOYMENT: &[Column] = &[
    NAME,
    col("Ready", "string", "Ready pods out of desired pods."),
    col(
        "Up-to-date",
        "string",
        "Pods that run the latest pod template.",
    ),
    col(
        "Available",
        "string",
        "Pods that have been ready long enough to be available.",
    ),
    AGE,
    CONTAINERS,
    IMAGES,
    SELECTOR,
];

pub(crate) const REPLICA_SET: &[Column] = &[
    NAME,
    col("Desired", "integer", "Number of desired pods."),
    col("Current", "integer", "Number of pods currently present."),
    col("Ready", "integer", "Number of ready pods."),
    AGE,
    CONTAINERS,
    IMAGES,
    SELECTOR,
];

pub(crate) const STATEFUL_SET: &[Column] = &[
    NAME,
    col("Ready", "string", "Ready pods out of desired pods."),
    AGE,
    CONTAINERS,
    IMAGES,
];

pub(crate) const DAEMON_SET: &[Column] = &[
    NAME,
    col(
        "Desired",
        "integer",
        "Number of nodes that should run the daemon pod.",
    ),
    col(
        "Current",
        "integer",
        "Number of nodes running at least one daemon pod.",
    ),
    col(
        "Ready",
        "integer",
        "Number of nodes with a ready daemon pod.",
    ),
    col(
        "Up-to-date",
        "integer",
        "Number of nodes running the latest daemon pod.",
    ),
    col(
        "Available",
        "integer",
        "Number of nodes with an available daemon pod.",
    ),
    col(
        "Node Selector",
        "string",
        "Node labels the daemon pods are restricted to.",
    ),
    AGE,
    CONTAINERS,
    IMAGES,
    SELECTOR,
];

pub(crate) const JOB: &[Column] = &[
    NAME,
    col("Status", "string", "Status of the job."),
    col(
        "Completions",
        "string",
        "Succeeded pods out of required completions.",
    ),
    col(
        "Duration",
        "string",
        "Time the job took, or has been running.",
    ),
    AGE,
    CONTAINERS,
    IMAGES,
    SELECTOR,
];

pub(crate) const CRON_JOB: &[Column] = &[
    NAME,
    col("Schedule", "string", "The cron schedule."),
    col(
        "Timezone",
        "string",
        "Time zone the schedule is evaluated in.",
    ),
    col(
        "Suspend",
        "boolean",
        "Whether subsequent runs are suspended.",
    ),
    col("Active", "integer", "Number of running jobs."),
    col(
        "Last Schedule",
        "string",
        "Time since a job was last scheduled.",
    ),
    AGE,
    CONTAINERS,
    IMAGES,
    wide(
        "Selector",
        "string",
        "Label query over the pods of the job template.",
    ),
];

pub(crate) const ROLE_BINDING: &[Column] = &[
    NAME,
    col(
        "Role",
        "string",
        "The role the binding grants, as Kind/name.",
    ),
    AGE,
    wide("Users", "string", "Users in the roleBinding"),
    wide("Groups", "string", "Groups in the roleBinding"),
    wide(
        "ServiceAccounts",
        "string",
        "ServiceAccounts in the roleBinding",
    ),
];

pub(crate) const CLUSTER_ROLE_BINDING: &[Column] = &[
    NAME,
    col(
        "Role",
        "string",
        "The role the binding grants, as Kind/name.",
    ),
    AGE,
    wide("Users", "string", "Users in the clusterRoleBinding"),
    wide("Groups", "string", "Groups in the clusterRoleBinding"),
    wide(
        "ServiceAccounts",
        "string",
        "ServiceAccounts in the clusterRoleBinding",
    ),
];

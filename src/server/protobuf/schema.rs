//! The hand-written schema table behind the protobuf decoder: for each supported message, its
//! field numbers, JSON names and types, as given by the upstream `generated.proto` files
//! (`k8s.io/api` and `k8s.io/apimachinery`) and the JSON tags of the Go types they come from.
//!
//! Labels follow the Go types, because Go clients (kubectl) encode every non-pointer field, even
//! when it holds its zero value: a non-pointer `omitempty` scalar is [`Label::OmitZero`] (its
//! zero value is dropped, as kube-apiserver's JSON encoding would), a pointer or a
//! non-`omitempty` field is [`Label::Optional`] (emitted whenever present, zero or not).

/// How a field's values are rendered in JSON.
#[derive(Clone, Copy, Debug)]
pub(super) enum Ty {
    /// `string`, validated as UTF-8.
    Str,
    /// `bool`.
    Bool,
    /// `int32` (varint, low 32 bits).
    #[allow(dead_code, reason = "no supported kind has such a field yet")]
    I32,
    /// `int64` (varint).
    I64,
    /// `bytes`, rendered as a standard base64 string.
    Bytes,
    /// `meta.v1.Time`: RFC 3339 in UTC with whole seconds; an empty message is `null`.
    Time,
    /// `meta.v1.MicroTime`: RFC 3339 in UTC with six fractional digits; empty is `null`.
    #[allow(dead_code, reason = "no supported kind has such a field yet")]
    MicroTime,
    /// `util.intstr.IntOrString`: a JSON number or string.
    #[allow(dead_code, reason = "no supported kind has such a field yet")]
    IntOrString,
    /// `api.resource.Quantity`: its string, as sent.
    #[allow(dead_code, reason = "no supported kind has such a field yet")]
    Quantity,
    /// `meta.v1.FieldsV1`: its raw bytes are JSON, inlined.
    FieldsV1,
    /// A message whose only field is `repeated string items = 1` (`ExtraValue`,
    /// `AttestationValue`), rendered as a JSON array of strings.
    StrList,
    /// An embedded message, rendered as a JSON object.
    Msg(&'static Message),
}

/// The cardinality of a field and how absence and zero values are treated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Label {
    /// Single value, emitted whenever present (the last occurrence wins; messages merge).
    Optional,
    /// Single value, dropped when it is the zero value (`""`, `0`, `false`, `null`).
    OmitZero,
    /// Repeated value, order kept.
    Repeated,
    /// `map<string, T>`: repeated entries `{key = 1, value = 2}`, rendered as a JSON object.
    Map,
}

/// One field of a message.
#[derive(Debug)]
pub(super) struct Field {
    /// The protobuf field number.
    pub(super) number: u32,
    /// The JSON name.
    pub(super) json: &'static str,
    /// The value type (for maps: the value type; keys are strings).
    pub(super) ty: Ty,
    /// Cardinality and zero-value handling.
    pub(super) label: Label,
}

/// A message type: its fields.
#[derive(Debug)]
pub(super) struct Message {
    /// Its known fields.
    pub(super) fields: &'static [Field],
}

impl Message {
    /// The field with `number`, if known.
    pub(super) fn field(&self, number: u32) -> Option<&'static Field> {
        self.fields.iter().find(|f| f.number == number)
    }
}

const fn opt(number: u32, json: &'static str, ty: Ty) -> Field {
    Field {
        number,
        json,
        ty,
        label: Label::Optional,
    }
}
const fn omz(number: u32, json: &'static str, ty: Ty) -> Field {
    Field {
        number,
        json,
        ty,
        label: Label::OmitZero,
    }
}
const fn rep(number: u32, json: &'static str, ty: Ty) -> Field {
    Field {
        number,
        json,
        ty,
        label: Label::Repeated,
    }
}
const fn map(number: u32, json: &'static str, ty: Ty) -> Field {
    Field {
        number,
        json,
        ty,
        label: Label::Map,
    }
}
/// `metadata = 1`, shared by every top-level kind.
const METADATA: Field = opt(1, "metadata", Ty::Msg(&OBJECT_META));

use Ty::{Bool, Bytes, I64, Msg, Str, StrList, Time};

// ---- meta.k8s.io/v1 -------------------------------------------------------------------------

static OWNER_REFERENCE: Message = Message {
    fields: &[
        opt(5, "apiVersion", Str),
        opt(1, "kind", Str),
        opt(3, "name", Str),
        opt(4, "uid", Str),
        opt(6, "controller", Bool),
        opt(7, "blockOwnerDeletion", Bool),
    ],
};

static MANAGED_FIELDS_ENTRY: Message = Message {
    fields: &[
        omz(1, "manager", Str),
        omz(2, "operation", Str),
        omz(3, "apiVersion", Str),
        opt(4, "time", Time),
        omz(6, "fieldsType", Str),
        opt(7, "fieldsV1", Ty::FieldsV1),
        omz(8, "subresource", Str),
    ],
};

pub(super) static OBJECT_META: Message = Message {
    fields: &[
        omz(1, "name", Str),
        omz(2, "generateName", Str),
        omz(3, "namespace", Str),
        omz(4, "selfLink", Str),
        omz(5, "uid", Str),
        omz(6, "resourceVersion", Str),
        omz(7, "generation", I64),
        // Go: `omitempty,omitzero`, so a zero timestamp is dropped.
        omz(8, "creationTimestamp", Time),
        opt(9, "deletionTimestamp", Time),
        opt(10, "deletionGracePeriodSeconds", I64),
        map(11, "labels", Str),
        map(12, "annotations", Str),
        rep(13, "ownerReferences", Msg(&OWNER_REFERENCE)),
        rep(14, "finalizers", Str),
        rep(17, "managedFields", Msg(&MANAGED_FIELDS_ENTRY)),
    ],
};

static LABEL_SELECTOR_REQUIREMENT: Message = Message {
    fields: &[
        opt(1, "key", Str),
        opt(2, "operator", Str),
        rep(3, "values", Str),
    ],
};

static FIELD_SELECTOR_REQUIREMENT: Message = Message {
    fields: &[
        opt(1, "key", Str),
        opt(2, "operator", Str),
        rep(3, "values", Str),
    ],
};

static LABEL_SELECTOR: Message = Message {
    fields: &[
        map(1, "matchLabels", Str),
        rep(2, "matchExpressions", Msg(&LABEL_SELECTOR_REQUIREMENT)),
    ],
};

static PRECONDITIONS: Message = Message {
    fields: &[opt(1, "uid", Str), opt(2, "resourceVersion", Str)],
};

pub(super) static DELETE_OPTIONS: Message = Message {
    fields: &[
        opt(1, "gracePeriodSeconds", I64),
        opt(2, "preconditions", Msg(&PRECONDITIONS)),
        opt(3, "orphanDependents", Bool),
        opt(4, "propagationPolicy", Str),
        rep(5, "dryRun", Str),
        opt(6, "ignoreStoreReadErrorWithClusterBreakingPotential", Bool),
    ],
};

// ---- v1 (core) ------------------------------------------------------------------------------

static NAMESPACE_SPEC: Message = Message {
    fields: &[rep(1, "finalizers", Str)],
};

static NAMESPACE_CONDITION: Message = Message {
    fields: &[
        opt(1, "type", Str),
        opt(2, "status", Str),
        opt(4, "lastTransitionTime", Time),
        omz(5, "reason", Str),
        omz(6, "message", Str),
    ],
};

static NAMESPACE_STATUS: Message = Message {
    fields: &[
        omz(1, "phase", Str),
        rep(2, "conditions", Msg(&NAMESPACE_CONDITION)),
    ],
};

static NAMESPACE: Message = Message {
    fields: &[
        METADATA,
        opt(2, "spec", Msg(&NAMESPACE_SPEC)),
        opt(3, "status", Msg(&NAMESPACE_STATUS)),
    ],
};

static CONFIG_MAP: Message = Message {
    fields: &[
        METADATA,
        opt(4, "immutable", Bool),
        map(2, "data", Str),
        map(3, "binaryData", Bytes),
    ],
};

static SECRET: Message = Message {
    fields: &[
        METADATA,
        opt(5, "immutable", Bool),
        map(2, "data", Bytes),
        map(4, "stringData", Str),
        omz(3, "type", Str),
    ],
};

static OBJECT_REFERENCE: Message = Message {
    fields: &[
        omz(1, "kind", Str),
        omz(2, "namespace", Str),
        omz(3, "name", Str),
        omz(4, "uid", Str),
        omz(5, "apiVersion", Str),
        omz(6, "resourceVersion", Str),
        omz(7, "fieldPath", Str),
    ],
};

static LOCAL_OBJECT_REFERENCE: Message = Message {
    fields: &[omz(1, "name", Str)],
};

static SERVICE_ACCOUNT: Message = Message {
    fields: &[
        METADATA,
        rep(2, "secrets", Msg(&OBJECT_REFERENCE)),
        rep(3, "imagePullSecrets", Msg(&LOCAL_OBJECT_REFERENCE)),
        opt(4, "automountServiceAccountToken", Bool),
    ],
};

// ---- rbac.authorization.k8s.io/v1 -----------------------------------------------------------

static POLICY_RULE: Message = Message {
    fields: &[
        rep(1, "verbs", Str),
        rep(2, "apiGroups", Str),
        rep(3, "resources", Str),
        rep(4, "resourceNames", Str),
        rep(5, "nonResourceURLs", Str),
    ],
};

static AGGREGATION_RULE: Message = Message {
    fields: &[rep(1, "clusterRoleSelectors", Msg(&LABEL_SELECTOR))],
};

static ROLE: Message = Message {
    fields: &[METADATA, rep(2, "rules", Msg(&POLICY_RULE))],
};

static CLUSTER_ROLE: Message = Message {
    fields: &[
        METADATA,
        rep(2, "rules", Msg(&POLICY_RULE)),
        opt(3, "aggregationRule", Msg(&AGGREGATION_RULE)),
    ],
};

static SUBJECT: Message = Message {
    fields: &[
        opt(1, "kind", Str),
        omz(2, "apiGroup", Str),
        opt(3, "name", Str),
        omz(4, "namespace", Str),
    ],
};

static ROLE_REF: Message = Message {
    fields: &[
        opt(1, "apiGroup", Str),
        opt(2, "kind", Str),
        opt(3, "name", Str),
    ],
};

static ROLE_BINDING: Message = Message {
    fields: &[
        METADATA,
        rep(2, "subjects", Msg(&SUBJECT)),
        opt(3, "roleRef", Msg(&ROLE_REF)),
    ],
};

static CLUSTER_ROLE_BINDING: Message = Message {
    fields: ROLE_BINDING.fields,
};

// ---- authorization.k8s.io/v1 ----------------------------------------------------------------

static FIELD_SELECTOR_ATTRIBUTES: Message = Message {
    fields: &[
        omz(1, "rawSelector", Str),
        rep(2, "requirements", Msg(&FIELD_SELECTOR_REQUIREMENT)),
    ],
};

static LABEL_SELECTOR_ATTRIBUTES: Message = Message {
    fields: &[
        omz(1, "rawSelector", Str),
        rep(2, "requirements", Msg(&LABEL_SELECTOR_REQUIREMENT)),
    ],
};

static RESOURCE_ATTRIBUTES: Message = Message {
    fields: &[
        omz(1, "namespace", Str),
        omz(2, "verb", Str),
        omz(3, "group", Str),
        omz(4, "version", Str),
        omz(5, "resource", Str),
        omz(6, "subresource", Str),
        omz(7, "name", Str),
        opt(8, "fieldSelector", Msg(&FIELD_SELECTOR_ATTRIBUTES)),
        opt(9, "labelSelector", Msg(&LABEL_SELECTOR_ATTRIBUTES)),
    ],
};

static NON_RESOURCE_ATTRIBUTES: Message = Message {
    fields: &[omz(1, "path", Str), omz(2, "verb", Str)],
};

static SUBJECT_ACCESS_REVIEW_SPEC: Message = Message {
    fields: &[
        opt(1, "resourceAttributes", Msg(&RESOURCE_ATTRIBUTES)),
        opt(2, "nonResourceAttributes", Msg(&NON_RESOURCE_ATTRIBUTES)),
        omz(3, "user", Str),
        rep(4, "groups", Str),
        map(5, "extra", StrList),
        omz(6, "uid", Str),
    ],
};

static SELF_SUBJECT_ACCESS_REVIEW_SPEC: Message = Message {
    fields: &[
        opt(1, "resourceAttributes", Msg(&RESOURCE_ATTRIBUTES)),
        opt(2, "nonResourceAttributes", Msg(&NON_RESOURCE_ATTRIBUTES)),
    ],
};

static SUBJECT_ACCESS_REVIEW_STATUS: Message = Message {
    fields: &[
        opt(1, "allowed", Bool),
        omz(4, "denied", Bool),
        omz(2, "reason", Str),
        omz(3, "evaluationError", Str),
    ],
};

static SUBJECT_ACCESS_REVIEW: Message = Message {
    fields: &[
        METADATA,
        opt(2, "spec", Msg(&SUBJECT_ACCESS_REVIEW_SPEC)),
        opt(3, "status", Msg(&SUBJECT_ACCESS_REVIEW_STATUS)),
    ],
};

static LOCAL_SUBJECT_ACCESS_REVIEW: Message = Message {
    fields: SUBJECT_ACCESS_REVIEW.fields,
};

static SELF_SUBJECT_ACCESS_REVIEW: Message = Message {
    fields: &[
        METADATA,
        opt(2, "spec", Msg(&SELF_SUBJECT_ACCESS_REVIEW_SPEC)),
        opt(3, "status", Msg(&SUBJECT_ACCESS_REVIEW_STATUS)),
    ],
};

static RESOURCE_RULE: Message = Message {
    fields: &[
        rep(1, "verbs", Str),
        rep(2, "apiGroups", Str),
        rep(3, "resources", Str),
        rep(4, "resourceNames", Str),
    ],
};

static NON_RESOURCE_RULE: Message = Message {
    fields: &[rep(1, "verbs", Str), rep(2, "nonResourceURLs", Str)],
};

static SUBJECT_RULES_REVIEW_STATUS: Message = Message {
    fields: &[
        rep(1, "resourceRules", Msg(&RESOURCE_RULE)),
        rep(2, "nonResourceRules", Msg(&NON_RESOURCE_RULE)),
        opt(3, "incomplete", Bool),
        omz(4, "evaluationError", Str),
    ],
};

static SELF_SUBJECT_RULES_REVIEW_SPEC: Message = Message {
    fields: &[omz(1, "namespace", Str)],
};

static SELF_SUBJECT_RULES_REVIEW: Message = Message {
    fields: &[
        METADATA,
        opt(2, "spec", Msg(&SELF_SUBJECT_RULES_REVIEW_SPEC)),
        opt(3, "status", Msg(&SUBJECT_RULES_REVIEW_STATUS)),
    ],
};

// ---- authentication.k8s.io/v1 ---------------------------------------------------------------

static USER_INFO: Message = Message {
    fields: &[
        omz(1, "username", Str),
        omz(2, "uid", Str),
        rep(3, "groups", Str),
        map(4, "extra", StrList),
    ],
};

static TOKEN_REVIEW_SPEC: Message = Message {
    fields: &[omz(1, "token", Str), rep(2, "audiences", Str)],
};

static TOKEN_REVIEW_STATUS: Message = Message {
    fields: &[
        omz(1, "authenticated", Bool),
        opt(2, "user", Msg(&USER_INFO)),
        rep(4, "audiences", Str),
        omz(3, "error", Str),
    ],
};

static TOKEN_REVIEW: Message = Message {
    fields: &[
        METADATA,
        opt(2, "spec", Msg(&TOKEN_REVIEW_SPEC)),
        opt(3, "status", Msg(&TOKEN_REVIEW_STATUS)),
    ],
};

static SELF_SUBJECT_REVIEW_STATUS: Message = Message {
    fields: &[opt(1, "userInfo", Msg(&USER_INFO))],
};

static SELF_SUBJECT_REVIEW: Message = Message {
    fields: &[METADATA, opt(2, "status", Msg(&SELF_SUBJECT_REVIEW_STATUS))],
};

static BOUND_OBJECT_REFERENCE: Message = Message {
    fields: &[
        omz(1, "kind", Str),
        omz(2, "apiVersion", Str),
        omz(3, "name", Str),
        // The proto calls it `uID`; the JSON name is `uid`.
        omz(4, "uid", Str),
    ],
};

static TOKEN_REQUEST_SPEC: Message = Message {
    fields: &[
        rep(1, "audiences", Str),
        opt(4, "expirationSeconds", I64),
        opt(3, "boundObjectRef", Msg(&BOUND_OBJECT_REFERENCE)),
        map(5, "attestations", StrList),
    ],
};

static TOKEN_REQUEST_STATUS: Message = Message {
    fields: &[opt(1, "token", Str), opt(2, "expirationTimestamp", Time)],
};

static TOKEN_REQUEST: Message = Message {
    fields: &[
        METADATA,
        opt(2, "spec", Msg(&TOKEN_REQUEST_SPEC)),
        opt(3, "status", Msg(&TOKEN_REQUEST_STATUS)),
    ],
};

// ---- the kinds ------------------------------------------------------------------------------

/// The supported top-level kinds: `(apiVersion, kind, message)`. `DeleteOptions` is looked up
/// separately, since clients send it under any group version.
pub(super) static KINDS: &[(&str, &str, &Message)] = &[
    ("v1", "Namespace", &NAMESPACE),
    ("v1", "ConfigMap", &CONFIG_MAP),
    ("v1", "Secret", &SECRET),
    ("v1", "ServiceAccount", &SERVICE_ACCOUNT),
    ("rbac.authorization.k8s.io/v1", "Role", &ROLE),
    ("rbac.authorization.k8s.io/v1", "ClusterRole", &CLUSTER_ROLE),
    ("rbac.authorization.k8s.io/v1", "RoleBinding", &ROLE_BINDING),
    (
        "rbac.authorization.k8s.io/v1",
        "ClusterRoleBinding",
        &CLUSTER_ROLE_BINDING,
    ),
    (
        "authorization.k8s.io/v1",
        "SubjectAccessReview",
        &SUBJECT_ACCESS_REVIEW,
    ),
    (
        "authorization.k8s.io/v1",
        "LocalSubjectAccessReview",
        &LOCAL_SUBJECT_ACCESS_REVIEW,
    ),
    (
        "authorization.k8s.io/v1",
        "SelfSubjectAccessReview",
        &SELF_SUBJECT_ACCESS_REVIEW,
    ),
    (
        "authorization.k8s.io/v1",
        "SelfSubjectRulesReview",
        &SELF_SUBJECT_RULES_REVIEW,
    ),
    ("authentication.k8s.io/v1", "TokenReview", &TOKEN_REVIEW),
    (
        "authentication.k8s.io/v1",
        "SelfSubjectReview",
        &SELF_SUBJECT_REVIEW,
    ),
    ("authentication.k8s.io/v1", "TokenRequest", &TOKEN_REQUEST),
];

/// The message for `apiVersion` and `kind`, if supported.
pub(super) fn lookup(api_version: &str, kind: &str) -> Option<&'static Message> {
    if kind == "DeleteOptions" {
        return Some(&DELETE_OPTIONS);
    }
    KINDS
        .iter()
        .find(|(v, k, _)| *v == api_version && *k == kind)
        .map(|(_, _, m)| *m)
}

//! The `audit.k8s.io/v1` `Event`, field by field as kube-apiserver writes it, and the helpers that
//! shape one: bodies by level, `managedFields` stripping, and bounds on client-supplied values.
//!
//! Field order and omission rules follow the upstream Go types, so a line written here is what
//! Falco, SIEM pipelines and `jq` scripts written for kube-apiserver logs expect. Everything here
//! is pure; time is passed in.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use jiff::Timestamp;
use portcullis_api::UserInfo;
use portcullis_api::status::{Status, StatusDetails};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use crate::policy::{API_VERSION, AuditConfig, Level, Stage};

mod line;

pub use line::{EventLine, LineParts};

/// Annotations gathered while a request is served, kept apart from an [`Event`] until its line
/// is written: sorted by key, keys and most values `'static` (no allocation for
/// `authorization.k8s.io/decision: allow`). [`EventLine::with_parts`] writes them merged with
/// the event's own ([`LineParts::annotations`]); [`Annotations::copy_into`] gives them to an
/// [`Event`] that needs them (the webhook backend's).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Annotations(Vec<(Cow<'static, str>, Cow<'static, str>)>);

impl Annotations {
    /// No annotations.
    pub const fn new() -> Annotations {
        Annotations(Vec::new())
    }

    /// Sets `key` to `value`, replacing an earlier value.
    pub fn insert(
        &mut self,
        key: impl Into<Cow<'static, str>>,
        value: impl Into<Cow<'static, str>>,
    ) {
        let (key, value) = (key.into(), value.into());
        match self
            .0
            .binary_search_by(|(k, _)| k.as_ref().cmp(key.as_ref()))
        {
            Ok(i) => {
                if let Some(slot) = self.0.get_mut(i) {
                    slot.1 = value;
                }
            }
            Err(i) => self.0.insert(i, (key, value)),
        }
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .binary_search_by(|(k, _)| k.as_ref().cmp(key))
            .ok()
            .and_then(|i| self.0.get(i))
            .map(|(_, v)| v.as_ref())
    }

    /// The annotations in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_ref(), v.as_ref()))
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Adds these annotations to `map` (replacing values of the same keys).
    pub fn copy_into(&self, map: &mut BTreeMap<String, String>) {
        for (k, v) in self.iter() {
            map.insert(k.to_owned(), v.to_owned());
        }
    }
}

/// The authorization decision annotation: `allow` or `forbid`.
pub const ANNOTATION_DECISION: &str = "authorization.k8s.io/decision";
/// The authorization reason annotation.
pub const ANNOTATION_REASON: &str = "authorization.k8s.io/reason";
/// Set to `true` when bodies were removed to keep an event under the size limit.
pub const ANNOTATION_TRUNCATED: &str = "audit.k8s.io/truncated";
/// The response header that carries the audit ID.
pub const HEADER_AUDIT_ID: &str = "Audit-ID";

/// The longest `userAgent` kept; longer values are cut and marked.
pub const MAX_USER_AGENT_BYTES: usize = 1024;
/// Appended to a cut `userAgent`.
pub const USER_AGENT_TRUNCATED_SUFFIX: &str = "...TRUNCATED";
/// The longest client-supplied `Audit-ID` accepted.
pub const MAX_AUDIT_ID_CHARS: usize = 128;

/// One audit event: one stage of one request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    /// Always `Event` (borrowed: no allocation per event).
    #[serde(default = "event_kind")]
    pub kind: Cow<'static, str>,
    /// Always `audit.k8s.io/v1`.
    #[serde(default = "api_version")]
    pub api_version: Cow<'static, str>,
    /// The level the policy chose.
    pub level: Level,
    /// Unique per request; the same on every stage event of one request.
    #[serde(rename = "auditID")]
    pub audit_id: String,
    /// The stage this event records.
    pub stage: Stage,
    /// Path and query, exactly as sent.
    #[serde(rename = "requestURI", default)]
    pub request_uri: String,
    /// The Kubernetes verb, or the lower-cased HTTP method of a non-resource request.
    #[serde(default)]
    pub verb: String,
    /// The authenticated user (empty when authentication failed).
    #[serde(default)]
    pub user: UserInfo,
    /// The user impersonated, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub impersonated_user: Option<UserInfo>,
    /// How the request was authenticated, when that is worth recording.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authentication_metadata: Option<AuthenticationMetadata>,
    /// `X-Forwarded-For`, then `X-Real-Ip`, then the peer; only the last is trustworthy.
    #[serde(rename = "sourceIPs", default, skip_serializing_if = "Vec::is_empty")]
    pub source_ips: Vec<String>,
    /// The client's `User-Agent`, bounded by [`truncate_user_agent`].
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub user_agent: String,
    /// The object the request is about; absent for non-resource requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_ref: Option<ObjectReference>,
    /// The response status (absent before the response).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_status: Option<ResponseStatus>,
    /// The request body, at `Request` level and above, resource requests only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_object: Option<Value>,
    /// The response body, at `RequestResponse` level, resource requests only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_object: Option<Value>,
    /// When the request arrived.
    pub request_received_timestamp: MicroTime,
    /// When this stage was reached.
    pub stage_timestamp: MicroTime,
    /// Annotations from authentication, authorization, admission and the audit chain.
    // INVARIANT: the last field, so the chain annotation is the last one in a line (chain.rs).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

fn event_kind() -> Cow<'static, str> {
    Cow::Borrowed("Event")
}

fn api_version() -> Cow<'static, str> {
    Cow::Borrowed(API_VERSION)
}

/// `authenticationMetadata` of an event.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthenticationMetadata {
    /// The verb of the constrained-impersonation mode used.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub impersonation_constraint: String,
}

/// `objectRef` of an event.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectReference {
    /// Resource (plural).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub resource: String,
    /// Namespace.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    /// Object name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Object uid.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uid: String,
    /// API group.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub api_group: String,
    /// API version.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub api_version: String,
    /// Object resourceVersion.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub resource_version: String,
    /// Subresource.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub subresource: String,
}

/// `responseStatus` of an event: the `metav1.Status` fields kube-apiserver records, in its
/// order (`metadata` is always `{}`; `code` 0 is omitted).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResponseStatus {
    /// Always empty.
    #[serde(default)]
    pub metadata: serde_json::Map<String, Value>,
    /// `Success` or `Failure`; empty for plain successful responses.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub status: String,
    /// Human-readable description.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// Machine-readable reason, e.g. `Forbidden`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// Details of the object concerned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<StatusDetails>,
    /// HTTP status code.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub code: i32,
}

fn is_zero(code: &i32) -> bool {
    *code == 0
}

impl ResponseStatus {
    /// The status of a response that carried no `Status` body: just the code, as upstream.
    pub fn from_code(code: u16) -> Self {
        ResponseStatus {
            code: i32::from(code),
            ..ResponseStatus::default()
        }
    }
}

impl From<&Status> for ResponseStatus {
    fn from(s: &Status) -> Self {
        ResponseStatus {
            metadata: serde_json::Map::new(),
            status: s.status.clone(),
            message: s.message.clone(),
            reason: s.reason.clone(),
            details: s.details.clone(),
            code: i32::from(s.code),
        }
    }
}

/// `EventList`: how the webhook backend sends a batch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventList {
    /// Always `EventList`.
    pub kind: String,
    /// Always `audit.k8s.io/v1`.
    pub api_version: String,
    /// Always empty.
    #[serde(default)]
    pub metadata: serde_json::Map<String, Value>,
    /// The events.
    pub items: Vec<Event>,
}

impl EventList {
    /// A list of `items`.
    pub fn new(items: Vec<Event>) -> Self {
        EventList {
            kind: "EventList".to_owned(),
            api_version: API_VERSION.to_owned(),
            metadata: serde_json::Map::new(),
            items,
        }
    }
}

impl Event {
    /// A `RequestReceived`-style skeleton: everything else empty, both timestamps `received`.
    pub fn new(audit_id: &AuditId, level: Level, stage: Stage, received: Timestamp) -> Event {
        let at = MicroTime::new(received);
        Event {
            kind: event_kind(),
            api_version: api_version(),
            level,
            audit_id: audit_id.as_str().to_owned(),
            stage,
            request_uri: String::new(),
            verb: String::new(),
            user: UserInfo::default(),
            impersonated_user: None,
            authentication_metadata: None,
            source_ips: Vec::new(),
            user_agent: String::new(),
            object_ref: None,
            response_status: None,
            request_object: None,
            response_object: None,
            request_received_timestamp: at,
            stage_timestamp: at,
            annotations: BTreeMap::new(),
        }
    }

    /// A copy of this event for a later stage, reached at `at`.
    #[must_use]
    pub fn for_stage(&self, stage: Stage, at: Timestamp) -> Event {
        Event {
            stage,
            stage_timestamp: MicroTime::new(at),
            ..self.clone()
        }
    }

    /// Sets the level and drops what that level does not record: no bodies below `Request`,
    /// no response body below `RequestResponse`, never bodies for non-resource requests (no
    /// `objectRef`); strips `metadata.managedFields` from the bodies kept when asked.
    pub fn apply_level(&mut self, config: &AuditConfig) {
        self.level = config.level;
        let resource = self.object_ref.is_some();
        if config.level < Level::Request || !resource {
            self.request_object = None;
        }
        if config.level < Level::RequestResponse || !resource {
            self.response_object = None;
        }
        if config.omit_managed_fields {
            for body in [&mut self.request_object, &mut self.response_object]
                .into_iter()
                .flatten()
            {
                strip_managed_fields(body);
            }
        }
    }

    /// Sets `userAgent`, bounded by [`truncate_user_agent`].
    pub fn set_user_agent(&mut self, user_agent: &str) {
        self.user_agent = truncate_user_agent(user_agent).into_owned();
    }

    /// Removes both bodies and marks the event with `audit.k8s.io/truncated: "true"`, as
    /// upstream's truncating backend does for oversized events.
    pub fn truncate_bodies(&mut self) {
        self.request_object = None;
        self.response_object = None;
        self.annotations
            .insert(ANNOTATION_TRUNCATED.to_owned(), "true".to_owned());
    }

    /// The `authorization.k8s.io/decision` annotation, if set.
    pub fn decision(&self) -> Option<&str> {
        self.annotations
            .get(ANNOTATION_DECISION)
            .map(String::as_str)
    }
}

/// Removes `metadata.managedFields` from an object, from each of a list's `items`, and from
/// each object of a `Table`'s `rows`.
pub fn strip_managed_fields(body: &mut Value) {
    fn strip_one(obj: &mut Value) {
        if let Some(Value::Object(meta)) = obj.get_mut("metadata") {
            meta.remove("managedFields");
        }
    }
    strip_one(body);
    if let Some(Value::Array(items)) = body.get_mut("items") {
        items.iter_mut().for_each(strip_one);
    }
    if let Some(Value::Array(rows)) = body.get_mut("rows") {
        for row in rows {
            if let Some(obj) = row.get_mut("object") {
                strip_one(obj);
            }
        }
    }
}

/// Bounds a client-supplied `User-Agent`: longer than [`MAX_USER_AGENT_BYTES`] is cut (at a
/// character boundary at or below the limit) and [`USER_AGENT_TRUNCATED_SUFFIX`] appended.
pub fn truncate_user_agent(user_agent: &str) -> Cow<'_, str> {
    if user_agent.len() <= MAX_USER_AGENT_BYTES {
        return Cow::Borrowed(user_agent);
    }
    let mut cut = MAX_USER_AGENT_BYTES;
    while !user_agent.is_char_boundary(cut) {
        cut -= 1;
    }
    let head = user_agent.get(..cut).unwrap_or_default();
    Cow::Owned(format!("{head}{USER_AGENT_TRUNCATED_SUFFIX}"))
}

/// A request's audit ID: a client's `Audit-ID` header when it is safe to log and echo, a fresh
/// UUID otherwise.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AuditId(String);

impl AuditId {
    /// A fresh random (v4) UUID.
    pub fn generate() -> AuditId {
        let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
        AuditId(
            uuid::Uuid::new_v4()
                .hyphenated()
                .encode_lower(&mut text)
                .to_owned(),
        )
    }

    /// The value of a client's `Audit-ID` header if it is 1 to [`MAX_AUDIT_ID_CHARS`] characters
    /// of `[A-Za-z0-9._-]`; otherwise (absent, too long, anything else) a fresh UUID.
    /// Upstream takes the header verbatim; a value that flows into logs and a response header
    /// must not carry control characters or unbounded length.
    pub fn from_header(value: Option<&[u8]>) -> AuditId {
        value
            .and_then(AuditId::parse)
            .unwrap_or_else(AuditId::generate)
    }

    /// The client value if acceptable (see [`AuditId::from_header`]).
    pub fn parse(value: &[u8]) -> Option<AuditId> {
        let ok = !value.is_empty()
            && value.len() <= MAX_AUDIT_ID_CHARS
            && value
                .iter()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'));
        ok.then(|| AuditId(String::from_utf8_lossy(value).into_owned()))
    }

    /// The ID.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AuditId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A `metav1.MicroTime`: written as RFC 3339 in UTC with exactly six fractional digits
/// (`2024-05-01T12:00:00.000000Z`); read from any RFC 3339 timestamp.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MicroTime(Timestamp);

impl MicroTime {
    /// `ts`, truncated to the microsecond.
    pub fn new(ts: Timestamp) -> MicroTime {
        let nanos = ts.subsec_nanosecond();
        let truncated = ts
            .checked_sub(jiff::SignedDuration::from_nanos(i64::from(nanos % 1000)))
            .unwrap_or(ts);
        MicroTime(truncated)
    }

    /// The instant.
    pub fn timestamp(self) -> Timestamp {
        self.0
    }
}

impl From<Timestamp> for MicroTime {
    fn from(ts: Timestamp) -> Self {
        MicroTime::new(ts)
    }
}

impl fmt::Display for MicroTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Timestamp's Display is RFC 3339 in UTC with `Z`; the precision fixes six digits.
        write!(f, "{:.6}", self.0)
    }
}

impl Serialize for MicroTime {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for MicroTime {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <Cow<'de, str>>::deserialize(d)?;
        s.parse::<Timestamp>()
            .map(MicroTime::new)
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests;

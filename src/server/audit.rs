//! Audit at the gateway: the `audit.k8s.io/v1` events of every request, written to the
//! backends of `portcullis-audit`.
//!
//! Two layers wrap the pipeline (see `router`):
//! - `begin` (outside authentication) assigns the Audit-ID (echoed in the `Audit-ID` response
//!   header), opens the request's [`Record`], and closes it when the handler is done:
//!   ResponseComplete (ResponseStarted first for watches), or Panic. A request that failed
//!   authentication is judged by the policy without a user, as upstream does.
//! - `received` (after authentication, before authorization) evaluates the policy for the
//!   authenticated user (unless no rule names users or groups: the verdict `begin` reached
//!   then holds for any user and is taken as it is), keeps the request body at Request level and above, and emits
//!   RequestReceived.
//!
//! Durability, stronger than kube-apiserver's (whose `blocking` mode swallows write errors):
//! - `blocking`: a mutating request (create, update, patch, delete, deletecollection) waits until
//!   its RequestReceived event is written and fsynced before it goes on to storage, and is
//!   refused if that fails; its ResponseComplete is made durable before the response is sent,
//!   and if that fails the gateway refuses every mutation (and `/readyz` fails) until an audit
//!   write succeeds again. Other requests join the next group commit without waiting.
//! - `blocking-strict`: every request waits for its events to be durable and is refused if
//!   RequestReceived cannot be written.
//! - `batch`: events are queued and never waited for; a full queue drops the event, counted in
//!   `portcullis_audit_events_dropped_total` and logged.
//!
//! A request whose events nobody waits for (not a watch) holds its RequestReceived line back
//! and sends it to the log with the closing event, in one enqueue: the two lines are adjacent
//! in the file. A panic or a dropped request still gets the held line written.
//!
//! Authorization and admission add their annotations to the [`Record`] as they decide.

use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use futures_util::FutureExt;
use jiff::Timestamp;
use portcullis_api::{RequestInfo, Status, UserInfo};
use portcullis_audit::event::{Annotations, EventLine, LineParts};
use portcullis_audit::log::{LogBackend, Mode, WriteError};
use portcullis_audit::policy::{AuditConfig, Level, PolicyEvaluator, RequestAttributes, Stage};
use portcullis_audit::{AuditId, Event, MicroTime, WebhookBackend};
use serde_json::Value;

use super::AppState;
use super::body::status_response;

/// The header that carries the Audit-ID, in requests and responses.
const AUDIT_ID_HEADER: HeaderName = HeaderName::from_static("audit-id");
/// Most `X-Forwarded-For` entries recorded in `sourceIPs`.
const MAX_FORWARDED: usize = 10;
/// Largest request body kept for `requestObject` (the API's own body limit).
const MAX_BODY: usize = super::body::MAX_BODY_BYTES;
/// Largest response body kept for `responseObject`.
const MAX_RESPONSE_BODY: usize = 8 << 20;

/// The audit trail's writer: the policy in force and the backends.
pub struct Auditor {
    policy: arc_swap::ArcSwap<PolicyEvaluator>,
    log: Option<LogBackend>,
    webhook: Option<WebhookBackend>,
    /// Set when a closing event could not be made durable: mutations are refused until an
    /// audit write succeeds again.
    failing: AtomicBool,
}

impl std::fmt::Debug for Auditor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auditor")
            .field("log", &self.log.as_ref().map(|l| l.mode()))
            .finish_non_exhaustive()
    }
}

impl Auditor {
    /// No audit: every layer passes requests straight through.
    pub fn disabled() -> Auditor {
        Auditor {
            policy: arc_swap::ArcSwap::from_pointee(PolicyEvaluator::new(
                portcullis_audit::Policy::default_metadata(),
            )),
            log: None,
            webhook: None,
            failing: AtomicBool::new(false),
        }
    }

    /// Audit with `policy` to the log backend and the webhook backend given.
    pub fn new(
        policy: PolicyEvaluator,
        log: Option<LogBackend>,
        webhook: Option<WebhookBackend>,
    ) -> Auditor {
        Auditor {
            policy: arc_swap::ArcSwap::from_pointee(policy),
            log,
            webhook,
            failing: AtomicBool::new(false),
        }
    }

    /// Whether any backend is configured.
    pub fn enabled(&self) -> bool {
        self.log.is_some() || self.webhook.is_some()
    }

    /// The webhook backend, for metrics and shutdown.
    pub fn webhook(&self) -> Option<&WebhookBackend> {
        self.webhook.as_ref()
    }

    /// Replaces the policy (a reloaded `--audit-policy-file`).
    pub fn set_policy(&self, policy: PolicyEvaluator) {
        self.policy.store(Arc::new(policy));
    }

    /// The log backend, for metrics.
    pub fn log(&self) -> Option<&LogBackend> {
        self.log.as_ref()
    }

    /// `/readyz`: failing while closing events cannot be written.
    pub fn ready(&self) -> Result<(), String> {
        if self.failing.load(Ordering::Relaxed) {
            return Err("audit events cannot be written; mutations are refused".into());
        }
        if self.log.as_ref().is_some_and(|l| l.stats().failing) {
            return Err("the audit log's last write failed".into());
        }
        if self.webhook.as_ref().is_some_and(|w| w.stats().failing) {
            return Err("the audit webhook's last batch failed".into());
        }
        Ok(())
    }

    /// What each backend needs of `event` with `parts` (the record's annotations, users not
    /// copied into the event, an earlier stage's serialised `requestURI`..`objectRef`): its
    /// serialised line for the log, a copy holding the parts for the webhook. Made while the
    /// record is locked; nothing is copied for a backend that is off.
    fn outgoing(&self, event: &Event, parts: LineParts<'_>) -> Outgoing {
        Outgoing {
            line: self
                .log
                .as_ref()
                .map(|_| EventLine::with_parts(event, parts)),
            event: self.webhook.as_ref().map(|_| {
                let mut event = Box::new(event.clone());
                if let Some(annotations) = parts.annotations {
                    annotations.copy_into(&mut event.annotations);
                }
                if let Some((user, impersonated)) = parts.users {
                    event.user = user.clone();
                    event.impersonated_user = impersonated.cloned();
                }
                event
            }),
            held: None,
        }
    }

    /// Writes an event to every backend; waits for it to be durable (fsynced, or acknowledged
    /// by the webhook) in the blocking backends when `durable`.
    async fn emit(&self, out: Outgoing, durable: bool) -> Result<(), WriteError> {
        let mut result = Ok(());
        if let (Some(webhook), Some(event)) = (&self.webhook, out.event) {
            // Boxed: a future holding a whole Event would make every request's audit futures
            // (and their moves) larger, with or without a webhook.
            match webhook.mode() {
                Mode::Batch => {
                    webhook.try_enqueue(*event);
                }
                _ if durable => result = Box::pin(webhook.write(*event)).await,
                _ => result = Box::pin(webhook.enqueue(*event)).await,
            }
        }
        if let Some(log) = &self.log {
            let written = match (out.held, out.line) {
                (Some(held), Some(line)) => match log.mode() {
                    Mode::Batch => {
                        log.try_enqueue_pair(held, line);
                        Ok(())
                    }
                    _ => log.enqueue_pair(held, line).await,
                },
                (Some(line), None) | (None, Some(line)) => match log.mode() {
                    Mode::Batch => {
                        log.try_enqueue(line);
                        Ok(())
                    }
                    _ if durable => log.write(line).await.map(|_| ()),
                    _ => log.enqueue(line).await,
                },
                (None, None) => Ok(()),
            };
            result = result.and(written);
        }
        result
    }

    /// Sends a held RequestReceived line on its own: its request ended without a closing event
    /// (the policy omits it, or the request was dropped).
    fn release(self: &Arc<Self>, line: EventLine) {
        let Some(log) = &self.log else { return };
        if log.mode() == Mode::Batch {
            log.try_enqueue(line);
        } else if let Ok(handle) = tokio::runtime::Handle::try_current() {
            let auditor = self.clone();
            handle.spawn(async move {
                if let Some(log) = &auditor.log
                    && let Err(e) = log.enqueue(line).await
                {
                    tracing::error!(error = %e, "audit event not written");
                }
            });
        }
    }

    fn modes(&self) -> impl Iterator<Item = Mode> + '_ {
        self.log
            .iter()
            .map(LogBackend::mode)
            .chain(self.webhook.iter().map(|w| w.mode()))
    }

    /// Whether a request's events must be durable before it goes on: every request's in
    /// blocking-strict mode, a mutation's in blocking mode.
    fn must_wait(&self, mutating: bool) -> bool {
        self.strict() || (mutating && self.blocking())
    }

    fn strict(&self) -> bool {
        self.modes().any(|m| m == Mode::BlockingStrict)
    }

    fn blocking(&self) -> bool {
        self.modes().any(|m| m != Mode::Batch)
    }
}

/// An event on its way to the backends.
struct Outgoing {
    /// For the log backend.
    line: Option<EventLine>,
    /// For the webhook backend (boxed: see `emit`).
    event: Option<Box<Event>>,
    /// An earlier stage's line held back, sent to the log just before `line` in one enqueue.
    held: Option<EventLine>,
}

/// One request's audit record: the event being built, its annotations and what the policy
/// said. Shared by the layers through the request's extensions. The event is updated in place
/// for each stage (stage, timestamp, response status) and serialised from there: never copied
/// for the log.
#[derive(Debug)]
pub struct Record {
    state: Mutex<RecordState>,
}

#[derive(Debug)]
struct RecordState {
    event: Event,
    /// The annotations added while the request is served, kept out of `event` (whose map
    /// would allocate every key and value): merged into each line as it is written.
    annotations: Annotations,
    /// The policy's verdict, once the user is known.
    config: Option<AuditConfig>,
    /// The policy's verdict without a user, for requests that fail authentication.
    unauthenticated: AuditConfig,
    /// Whether `unauthenticated` is the verdict for any user too (no rule names users or
    /// groups): `received` then takes it instead of evaluating the policy again.
    final_verdict: bool,
    mutating: bool,
    /// Whether the RequestReceived line may be held back and sent with the closing event, when
    /// nobody waits for it: not for a watch, whose first events must be written when it starts.
    may_hold: bool,
    /// The RequestReceived line, held back for the closing event's enqueue. Whatever ends the
    /// request sends it first: `close`, or `Release` when the request is dropped.
    held: Option<EventLine>,
    /// Where the serialised `requestURI` through `objectRef` of the RequestReceived event is,
    /// for the later stages to reuse. Those fields are set before RequestReceived is emitted;
    /// whatever changes one of them afterwards must set this to [`Stable::None`].
    stable: Stable,
}

/// Where a record's serialised `requestURI`..`objectRef` is kept.
#[derive(Debug)]
enum Stable {
    /// Not kept (or no longer valid): the next line serialises the fields.
    None,
    /// In the held RequestReceived line: read from there, not copied.
    InHeld,
    /// A copy, for a request whose RequestReceived line was sent at once.
    Copied(Vec<u8>),
}

impl Record {
    fn lock(&self) -> std::sync::MutexGuard<'_, RecordState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds an annotation (`authorization.k8s.io/decision`, `pod-security.kubernetes.io/...`).
    pub fn annotate(&self, key: impl Into<Cow<'static, str>>, value: impl Into<Cow<'static, str>>) {
        self.lock().annotations.insert(key, value);
    }
}

fn is_mutating(verb: &str) -> bool {
    matches!(
        verb,
        "create" | "update" | "patch" | "delete" | "deletecollection"
    )
}

/// `sourceIPs`: the `X-Forwarded-For` entries (bounded, only well-formed addresses), then
/// `X-Real-Ip` if not listed, then the peer if it is not the last one. Only the peer is
/// trustworthy.
fn source_ips(req: &Request) -> Vec<String> {
    // Looked up by `HeaderName`: a `&str` name is parsed and checked on every lookup.
    const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
    const X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");
    let mut ips: Vec<String> = Vec::new();
    let headers = req.headers();
    if let Some(xff) = headers.get(X_FORWARDED_FOR).and_then(|v| v.to_str().ok()) {
        ips.extend(
            xff.split(',')
                .filter_map(|s| s.trim().parse::<IpAddr>().ok())
                .take(MAX_FORWARDED)
                .map(|ip| ip.to_string()),
        );
    }
    if let Some(ip) = headers
        .get(X_REAL_IP)
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.trim().parse::<IpAddr>().ok())
        .map(|ip| ip.to_string())
        && !ips.contains(&ip)
    {
        ips.push(ip);
    }
    if let Some(peer) = req.extensions().get::<super::Peer>()
        && ips.last().map(String::as_str) != Some(&*peer.ip)
    {
        ips.push(String::from(&*peer.ip));
    }
    ips
}

/// Opens the record, runs the request, and closes the record.
pub(super) async fn begin(State(state): State<AppState>, req: Request, next: Next) -> Response {
    begin_with(state.audit.clone(), req, next).await
}

/// [`begin`] with only what it uses of the state.
async fn begin_with(auditor: Arc<Auditor>, mut req: Request, next: Next) -> Response {
    if !auditor.enabled() {
        return next.run(req).await;
    }
    let received = Timestamp::now();
    let id = AuditId::from_header(req.headers().get(AUDIT_ID_HEADER).map(|v| v.as_bytes()));
    let audit_header = audit_id_header(&id);
    let mut event = Event::new(&id, Level::Metadata, Stage::RequestReceived, received);
    event.request_uri = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    event.source_ips = source_ips(&req);
    if let Some(ua) = req
        .headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
    {
        event.set_user_agent(ua);
    }
    let (mut mutating, mut watch) = (false, false);
    match req.extensions().get::<RequestInfo>() {
        Some(RequestInfo::Resource(r)) => {
            event.verb = r.verb.clone();
            mutating = is_mutating(&r.verb);
            watch = r.verb == "watch";
            event.object_ref = Some(portcullis_audit::event::ObjectReference {
                resource: r.resource.clone(),
                namespace: r.namespace.clone(),
                name: r.name.clone(),
                api_group: r.group.clone(),
                api_version: r.version.clone(),
                subresource: r.subresource.clone(),
                ..Default::default()
            });
        }
        Some(RequestInfo::NonResource { verb, .. }) => event.verb = verb.clone(),
        None => event.verb = req.method().as_str().to_ascii_lowercase(),
    }
    // What the policy says if authentication fails (no user): decided now, while the request
    // attributes are at hand.
    let path = req.uri().path();
    let policy = auditor.policy.load();
    let (unauthenticated, final_verdict) = match req.extensions().get::<RequestInfo>() {
        Some(info) => (
            policy.evaluate(&RequestAttributes::from_request_info(info, None, path)),
            !policy.depends_on_user(),
        ),
        None => (
            policy.evaluate(&RequestAttributes {
                path,
                ..RequestAttributes::default()
            }),
            false,
        ),
    };
    drop(policy);
    let record = Arc::new(Record {
        state: Mutex::new(RecordState {
            event,
            annotations: Annotations::new(),
            config: None,
            unauthenticated,
            final_verdict,
            mutating,
            may_hold: !watch,
            held: None,
            stable: Stable::None,
        }),
    });
    req.extensions_mut().insert(record.clone());
    // A request dropped before its closing event (the client went away) still gets its
    // RequestReceived written.
    let release = Release {
        auditor: &auditor,
        record: &record,
    };

    let outcome = std::panic::AssertUnwindSafe(next.run(req))
        .catch_unwind()
        .await;
    let mut response = match outcome {
        Ok(response) => response,
        Err(panic) => {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "panic".to_owned());
            tracing::error!(%message, "request handler panicked");
            let status = Status::internal(format!("the server panicked: {message}"));
            close(
                &auditor,
                &record,
                Stage::Panic,
                &status_json(&status),
                500,
                None,
            )
            .await;
            let mut response = status_response(&status);
            set_audit_id(&mut response, audit_header);
            return response;
        }
    };
    set_audit_id(&mut response, audit_header);
    let code = response.status().as_u16();
    let wants_body = record
        .lock()
        .config
        .is_some_and(|c| c.level >= Level::RequestResponse);
    let status = response
        .extensions()
        .get::<StatusBody>()
        .and_then(|s| s.0.clone());
    if watch && (200..300).contains(&code) {
        // Long-running: ResponseStarted now, ResponseComplete when the stream ends.
        close(
            &auditor,
            &record,
            Stage::ResponseStarted,
            &status,
            code,
            None,
        )
        .await;
        drop(release);
        let (parts, body) = response.into_parts();
        let guard = CompleteOnDrop {
            auditor: Some(auditor),
            record,
            code,
        };
        let body = Body::from_stream(WithGuard {
            inner: body.into_data_stream(),
            _guard: guard,
        });
        return Response::from_parts(parts, body);
    }
    let mut body_value = None;
    if wants_body {
        // Only a body whose size is known and bounded is kept for responseObject; anything else
        // goes to the client untouched and the event says it was truncated.
        use axum::body::HttpBody as _;
        let size = response.body().size_hint().exact();
        if size.is_some_and(|n| n <= MAX_RESPONSE_BODY as u64) {
            let (parts, body) = response.into_parts();
            match axum::body::to_bytes(body, MAX_RESPONSE_BODY).await {
                Ok(bytes) => {
                    body_value = serde_json::from_slice::<Value>(&bytes).ok();
                    response = Response::from_parts(parts, Body::from(bytes));
                }
                Err(e) => {
                    // The body failed while being read: the client gets the same failure.
                    tracing::warn!(error = %e, "response body failed while audited");
                    return status_response(&Status::internal("the response body failed"));
                }
            }
        } else {
            record
                .lock()
                .annotations
                .insert(portcullis_audit::event::ANNOTATION_TRUNCATED, "true");
        }
    }
    close(
        &auditor,
        &record,
        Stage::ResponseComplete,
        &status,
        code,
        body_value,
    )
    .await;
    response
}

/// The Status a response carries, attached by [`status_response`] for audit.
#[derive(Clone, Debug)]
pub(super) struct StatusBody(pub(super) Option<Value>);

fn status_json(status: &Status) -> Option<Value> {
    serde_json::to_value(status).ok()
}

/// The `Audit-ID` response header for `id`. Unique per response: HPACK must not index it, or
/// every response evicts and re-adds a dynamic-table entry (and walks the chain of earlier
/// IDs) for nothing.
fn audit_id_header(id: &AuditId) -> Option<HeaderValue> {
    let mut v = HeaderValue::from_str(id.as_str()).ok()?;
    v.set_sensitive(true);
    Some(v)
}

fn set_audit_id(response: &mut Response, value: Option<HeaderValue>) {
    if let Some(v) = value {
        response.headers_mut().insert(AUDIT_ID_HEADER, v);
    }
}

/// The `responseStatus` of a response: the Status it carried, or just the code.
fn response_status(code: u16, status: &Option<Value>) -> portcullis_audit::event::ResponseStatus {
    let mut rs = portcullis_audit::event::ResponseStatus::from_code(code);
    if let Some(s) = status {
        let text = |k: &str| s.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
        rs.status = text("status");
        rs.message = text("message");
        rs.reason = text("reason");
    }
    rs
}

/// Emits the closing event of a stage (ResponseStarted, ResponseComplete or Panic).
async fn close(
    auditor: &Auditor,
    record: &Record,
    stage: Stage,
    status: &Option<Value>,
    code: u16,
    response_body: Option<Value>,
) {
    let (out, durable) = {
        let mut st = record.lock();
        // Authentication failed (or never ran): the policy decides without a user.
        let fallback = st.unauthenticated;
        let config = *st.config.get_or_insert(fallback);
        let held = st.held.take();
        if config.level == Level::None || !config.emits(stage) {
            // Only a RequestReceived held back goes out.
            let out = Outgoing {
                line: held,
                event: None,
                held: None,
            };
            (out, false)
        } else {
            let st = &mut *st;
            let event = &mut st.event;
            event.stage = stage;
            event.stage_timestamp = MicroTime::new(Timestamp::now());
            event.response_status = Some(response_status(code, status));
            if let Some(body) = response_body {
                // uid and resourceVersion of the object answered, as upstream records them.
                if let Some(r) = event.object_ref.as_mut() {
                    let meta = |k: &str| {
                        body.pointer(&format!("/metadata/{k}"))
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_owned()
                    };
                    if body.get("kind").and_then(Value::as_str) != Some("Status") {
                        r.uid = meta("uid");
                        r.resource_version = meta("resourceVersion");
                        st.stable = Stable::None;
                    }
                }
                event.response_object = Some(body);
            }
            event.apply_level(&config);
            let stable = match &st.stable {
                Stable::None => None,
                Stable::InHeld => held.as_ref().and_then(EventLine::stable_part),
                Stable::Copied(bytes) => Some(bytes.as_slice()),
            };
            let parts = LineParts {
                stable,
                annotations: Some(&st.annotations),
                users: None,
            };
            let mut out = auditor.outgoing(event, parts);
            out.held = held;
            (out, auditor.must_wait(st.mutating))
        }
    };
    if out.line.is_none() && out.event.is_none() && out.held.is_none() {
        return;
    }
    if let Err(e) = auditor.emit(out, durable).await {
        let audit_id = record.lock().event.audit_id.clone();
        tracing::error!(audit_id = %audit_id, error = %e, stage = stage.as_str(), "audit event not written");
        if durable {
            auditor.failing.store(true, Ordering::Relaxed);
        }
    }
}

/// Evaluates the policy for the authenticated user, keeps the request body at Request level
/// and above, and emits RequestReceived; refuses the request when that must be durable and
/// cannot be.
pub(super) async fn received(State(state): State<AppState>, req: Request, next: Next) -> Response {
    received_with(&state.audit, &state.metrics, req, next).await
}

/// [`received`] with only what it uses of the state.
async fn received_with(
    auditor: &Auditor,
    metrics: &super::Metrics,
    req: Request,
    next: Next,
) -> Response {
    let Some(record) = req.extensions().get::<Arc<Record>>().cloned() else {
        return next.run(req).await;
    };
    // Decided while the request's extensions are borrowed: the users are copied once, into
    // the event, and only when the policy is known and the event needs them.
    let decided = {
        let ext = req.extensions();
        let requester = ext.get::<super::filters::Requester>().map(|r| &r.0);
        let user = ext.get::<UserInfo>();
        ext.get::<RequestInfo>().map(|info| {
            let requester_user = requester.or(user);
            let mut st = record.lock();
            let config = if st.final_verdict {
                st.unauthenticated
            } else {
                auditor
                    .policy
                    .load()
                    .evaluate(&RequestAttributes::from_request_info(
                        info,
                        requester_user,
                        req.uri().path(),
                    ))
            };
            st.config = Some(config);
            let impersonated = match (requester, user) {
                (Some(r), Some(u)) if r.username != u.username => Some(u),
                _ => None,
            };
            // At Metadata level with only the log backend, RequestReceived is serialised now,
            // from the borrowed users, and the later stages copy its bytes: the event needs
            // the users only if those bytes are not kept (the line could not be serialised).
            let early = (auditor.webhook.is_none()
                && config.level == Level::Metadata
                && config.emits(Stage::RequestReceived))
            .then(|| {
                let users = requester_user.map(|u| (u, impersonated));
                received_line(auditor, &mut st, &config, users)
            });
            if early.is_none() || matches!(st.stable, Stable::None) {
                if let Some(u) = requester_user {
                    st.event.user = u.clone();
                }
                st.event.impersonated_user = impersonated.cloned();
            }
            (
                config,
                st.mutating,
                matches!(info, RequestInfo::Resource(_)),
                early,
            )
        })
    };
    let Some((config, mutating, resource, early)) = decided else {
        return next.run(req).await;
    };
    if config.level == Level::None {
        if mutating && auditor.failing.load(Ordering::Relaxed) {
            return refuse_mutation();
        }
        return next.run(req).await;
    }
    // The request body, for requestObject.
    let req = if config.level >= Level::Request && resource {
        let (parts, body) = req.into_parts();
        let bytes = match axum::body::to_bytes(body, MAX_BODY).await {
            Ok(b) => b,
            Err(_) => {
                return status_response(&Status::too_large(MAX_BODY));
            }
        };
        if !bytes.is_empty() {
            // As received; protobuf and YAML bodies are logged as their JSON equivalent, patch
            // bodies as the patch.
            let media = super::body::media_type(&parts.headers);
            let decoded = match media.as_str() {
                "application/json" => serde_json::from_slice::<Value>(&bytes).ok(),
                m if m.ends_with("+json") => serde_json::from_slice::<Value>(&bytes).ok(),
                m => super::body::decode_object(m, &bytes).ok(),
            };
            if let Some(v) = decoded {
                record.lock().event.request_object = Some(v);
            }
        }
        Request::from_parts(parts, Body::from(bytes))
    } else {
        req
    };
    let prepared = match early {
        Some(prepared) => Some(prepared),
        None if config.emits(Stage::RequestReceived) => {
            Some(received_line(auditor, &mut record.lock(), &config, None))
        }
        None => None,
    };
    if let Some((out, durable)) = prepared {
        match auditor.emit(out, durable).await {
            Ok(()) if durable => auditor.failing.store(false, Ordering::Relaxed),
            Ok(()) => {}
            Err(e) if durable => {
                metrics.audit_rejected();
                tracing::error!(error = %e, "audit event not written; the request is refused");
                return status_response(&Status::internal(format!(
                    "failed to store audit event: {e}"
                )));
            }
            Err(e) => tracing::error!(error = %e, "audit event not written"),
        }
    }
    if mutating && auditor.failing.load(Ordering::Relaxed) {
        metrics.audit_rejected();
        return refuse_mutation();
    }
    next.run(req).await
}

/// Makes the RequestReceived event of `st` for the backends, with `users` instead of the
/// event's when given; holds its line back for the closing event's enqueue when nobody waits
/// for it, and keeps where its `requestURI`..`objectRef` bytes are for the later stages.
/// Returns it and whether it must be durable before the request goes on.
fn received_line(
    auditor: &Auditor,
    st: &mut RecordState,
    config: &AuditConfig,
    users: Option<(&UserInfo, Option<&UserInfo>)>,
) -> (Outgoing, bool) {
    // The event is at RequestReceived until the response: the level applies in place.
    st.event.apply_level(config);
    let parts = LineParts {
        stable: None,
        annotations: Some(&st.annotations),
        users,
    };
    let mut out = auditor.outgoing(&st.event, parts);
    let durable = auditor.must_wait(st.mutating);
    let stable = out.line.as_ref().and_then(EventLine::stable_part);
    if !durable && st.may_hold && out.line.is_some() {
        st.stable = match stable {
            Some(_) => Stable::InHeld,
            None => Stable::None,
        };
        // Nobody waits for it: it goes to the log with the closing event, in one enqueue (the
        // webhook still gets it now).
        st.held = out.line.take();
    } else {
        st.stable = match stable {
            Some(bytes) => Stable::Copied(bytes.to_vec()),
            None => Stable::None,
        };
    }
    (out, durable)
}

/// Sends the held RequestReceived line if the request ends (or is dropped) without a closing
/// event having taken it.
struct Release<'a> {
    auditor: &'a Arc<Auditor>,
    record: &'a Record,
}

impl Drop for Release<'_> {
    fn drop(&mut self) {
        if let Some(line) = self.record.lock().held.take() {
            self.auditor.release(line);
        }
    }
}

fn refuse_mutation() -> Response {
    status_response(&Status::unavailable(
        "the audit trail cannot be written: mutations are refused until it can",
    ))
}

/// Emits ResponseComplete for a watch when its stream ends (or the client goes away).
struct CompleteOnDrop {
    auditor: Option<Arc<Auditor>>,
    record: Arc<Record>,
    code: u16,
}

impl Drop for CompleteOnDrop {
    fn drop(&mut self) {
        let Some(auditor) = self.auditor.take() else {
            return;
        };
        let record = self.record.clone();
        let code = self.code;
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                close(
                    &auditor,
                    &record,
                    Stage::ResponseComplete,
                    &None,
                    code,
                    None,
                )
                .await;
            });
        }
    }
}

/// A body stream that holds a guard until it is dropped.
struct WithGuard<S> {
    inner: S,
    _guard: CompleteOnDrop,
}

impl<S: futures_util::Stream + Unpin> futures_util::Stream for WithGuard<S> {
    type Item = S::Item;
    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        std::pin::Pin::new(&mut self.inner).poll_next(cx)
    }
}

#[cfg(test)]
mod tests;

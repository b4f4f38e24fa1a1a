//! Watches: a stream of `{"type": ..., "object": ...}` JSON lines, as kube-apiserver sends them.
//!
//! Without a `resourceVersion` (or with `0`) the watch starts with a synthetic `ADDED` for every
//! current object and then follows changes; with one it resumes after that revision, or answers
//! with an `ERROR` event carrying a 410 `Expired` status when the history is gone, so clients
//! re-list. Watches end at `timeoutSeconds`, when the server shuts down, or when the watcher
//! falls too far behind.

use std::convert::Infallible;
use std::time::Duration;

use axum::body::Body;
use std::sync::Arc;

use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use bytes::Bytes;
use jiff::Timestamp;
use portcullis_api::request::Query;
use portcullis_api::{ResourceRequest, Status, UserInfo};
use portcullis_authz::Authorizer;
use serde_json::{Value, json};

use super::AppState;
use super::body::{ApiResult, Rendering, negotiate};
use super::resources::{Ctx, Selectors, materialize, read_list, resolve, store_error};
use crate::storage::{EventKind, StoreError};
use crate::table::{self, IncludeObject};

/// Upstream's default watch length (`--min-request-timeout`).
const DEFAULT_WATCH: Duration = Duration::from_secs(1800);

pub(super) async fn handle(
    state: AppState,
    r: ResourceRequest,
    query: Query,
    req: Request,
) -> ApiResult {
    let resource = resolve(&r)?;
    let rendering = negotiate(req.headers())?;
    let user = req.extensions().get::<UserInfo>().cloned();
    let authorizer = req.extensions().get::<Arc<Authorizer>>().cloned();
    let (Some(user), Some(authorizer)) = (user, authorizer) else {
        return Err(Status::internal("request reached a handler unauthorized").into());
    };
    let include =
        IncludeObject::from_param(query.get("includeObject").unwrap_or("")).ok_or_else(|| {
            Status::bad_request("includeObject must be one of None, Metadata or Object")
        })?;
    let ctx = Ctx {
        state,
        user,
        authorizer,
        resource,
        req: r,
        query,
        now: Timestamp::now(),
        audit: None,
    };
    let selectors = Selectors::from_query(resource, &ctx.query)?;
    let timeout = ctx
        .query
        .get("timeoutSeconds")
        .map(|t| {
            t.parse::<u64>()
                .map_err(|_| Status::bad_request(format!("invalid timeoutSeconds {t:?}")))
        })
        .transpose()?
        .map(Duration::from_secs)
        .unwrap_or(DEFAULT_WATCH)
        .min(DEFAULT_WATCH);
    let send_initial = ctx.query.is_true("sendInitialEvents");
    let rv = ctx.query.get("resourceVersion").unwrap_or("");

    // The initial state (for "most recent" and "any" semantics), then changes after it.
    let (initial, after) = if rv.is_empty() || rv == "0" || send_initial {
        let (items, revision, _) = read_list(&ctx, 0, None, 0).await?;
        (items, revision)
    } else {
        let after = rv
            .parse::<u64>()
            .map_err(|_| Status::bad_request(format!("invalid resource version {rv:?}")))?;
        (Vec::new(), after)
    };
    let prefix = resource.key_prefix(ctx.namespace_for_watch());
    let stream = ctx.state.store.watch(&prefix, after).await;

    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, Infallible>>(64);
    let mut shutdown = ctx.state.shutdown.clone();
    let group = resource.gv.group;
    let plural = resource.plural;
    let list_kind = (resource.api_version(), resource.kind);
    let r = ctx.req.clone();
    tokio::spawn(async move {
        let mut first = true;
        let mut encode = |kind: &str, obj: &Value| -> Bytes {
            let object = match rendering {
                Rendering::Json => obj.clone(),
                Rendering::Table => {
                    let t =
                        table::watch_table(group, plural, obj, include, Timestamp::now(), first);
                    first = false;
                    t
                }
            };
            let mut line =
                serde_json::to_vec(&json!({"type": kind, "object": object})).unwrap_or_default();
            line.push(b'\n');
            Bytes::from(line)
        };
        let mut stream = match stream {
            Ok(s) => s,
            Err(e @ StoreError::Gone { .. }) => {
                let status = serde_json::to_value(Status::gone(e.to_string())).unwrap_or_default();
                let _ = tx.send(Ok(encode("ERROR", &status))).await;
                return;
            }
            Err(e) => {
                let status = serde_json::to_value(store_error(e)).unwrap_or_default();
                let _ = tx.send(Ok(encode("ERROR", &status))).await;
                return;
            }
        };
        for obj in &initial {
            if tx.send(Ok(encode("ADDED", obj))).await.is_err() {
                return;
            }
        }
        if send_initial {
            let bookmark = json!({
                "kind": list_kind.1, "apiVersion": list_kind.0,
                "metadata": {"resourceVersion": after.to_string(), "annotations": {"k8s.io/initial-events-end": "true"}},
            });
            let mut line = serde_json::to_vec(&json!({"type": "BOOKMARK", "object": bookmark}))
                .unwrap_or_default();
            line.push(b'\n');
            if tx.send(Ok(Bytes::from(line))).await.is_err() {
                return;
            }
        }
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        loop {
            let event = tokio::select! {
                e = stream.next() => e,
                () = &mut deadline => return,
                _ = shutdown.changed() => return,
                () = tx.closed() => return,
            };
            let event = match event {
                None => return,
                Some(Err(e)) => {
                    let status = serde_json::to_value(store_error(e)).unwrap_or_default();
                    let _ = tx.send(Ok(encode("ERROR", &status))).await;
                    return;
                }
                Some(Ok(e)) => e,
            };
            let kv = crate::storage::KeyValue {
                key: event.key.clone(),
                value: event.value.clone(),
                mod_revision: event.revision,
            };
            let Ok(obj) = materialize(resource, &kv) else {
                continue;
            };
            // Only objects directly under the prefix; the name selector of `r` as well.
            if !r.name.is_empty()
                && obj.pointer("/metadata/name").and_then(Value::as_str) != Some(r.name.as_str())
            {
                continue;
            }
            if !selectors.matches(&obj) {
                continue;
            }
            let kind = match event.kind {
                EventKind::Added => "ADDED",
                EventKind::Modified => "MODIFIED",
                EventKind::Deleted => "DELETED",
            };
            if tx.send(Ok(encode(kind, &obj))).await.is_err() {
                return;
            }
        }
    });
    let body = Body::from_stream(tokio_stream_from(rx));
    let mut response = Response::new(body);
    *response.status_mut() = StatusCode::OK;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(response)
}

impl Ctx {
    fn namespace_for_watch(&self) -> Option<&str> {
        (self.resource.namespaced && !self.req.namespace.is_empty())
            .then_some(self.req.namespace.as_str())
    }
}

/// Adapts an mpsc receiver into a stream without pulling in tokio-stream.
fn tokio_stream_from(
    mut rx: tokio::sync::mpsc::Receiver<Result<Bytes, Infallible>>,
) -> impl futures_util::Stream<Item = Result<Bytes, Infallible>> {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

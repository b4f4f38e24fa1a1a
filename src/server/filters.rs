//! The request filters that run before any handler, in pipeline order: request attributes,
//! metrics, authentication, authorization.

use std::time::Instant;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use portcullis_api::user::{SYSTEM_ANONYMOUS, SYSTEM_UNAUTHENTICATED};
use portcullis_api::{RequestInfo, Status, UserInfo};
use portcullis_authn::Authenticated;
use rustls::pki_types::UnixTime;

use super::body::status_response;
use super::metrics::RequestLabels;
use super::{AppState, Peer};

/// Paths anyone may read without credentials, as kube-apiserver's anonymous configuration
/// recommends for health probes.
const ANONYMOUS_PATHS: &[&str] = &["/healthz", "/livez", "/readyz"];

/// Derives [`RequestInfo`] from the method, path and query; a path that cannot be parsed is a
/// 400 before anything else runs.
pub(super) async fn request_info(mut req: Request, next: Next) -> Response {
    let info = RequestInfo::parse(req.method().as_str(), req.uri().path(), req.uri().query());
    match info {
        Ok(info) => {
            req.extensions_mut().insert(info);
            next.run(req).await
        }
        Err(e) => status_response(&Status::bad_request(e.to_string())),
    }
}

/// Counts and times every request with kube-apiserver's metric labels, and logs it.
pub(super) async fn observe(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let _inflight = state.metrics.start();
    let method = req.method().clone();
    let uri = req.uri().clone();
    let info = req.extensions().get::<RequestInfo>().cloned();
    let response = next.run(req).await;
    let code = response.status().as_u16();
    let elapsed = start.elapsed();
    let labels = match &info {
        Some(RequestInfo::Resource(r)) => RequestLabels {
            verb: metric_verb(&r.verb, method.as_str()),
            group: r.group.clone(),
            version: r.version.clone(),
            resource: r.resource.clone(),
            subresource: r.subresource.clone(),
            scope: if !r.name.is_empty() && r.verb != "create" {
                "resource"
            } else if !r.namespace.is_empty() {
                "namespace"
            } else {
                "cluster"
            }
            .to_owned(),
            component: "apiserver".to_owned(),
            code: code.to_string(),
        },
        _ => RequestLabels {
            verb: method.as_str().to_owned(),
            group: String::new(),
            version: String::new(),
            resource: String::new(),
            subresource: String::new(),
            scope: String::new(),
            component: "apiserver".to_owned(),
            code: code.to_string(),
        },
    };
    state.metrics.observe(labels, elapsed.as_secs_f64());
    tracing::debug!(%method, %uri, code, elapsed_ms = elapsed.as_secs_f64() * 1e3, "request");
    response
}

/// kube-apiserver's metric verb: the HTTP method, except LIST and WATCH for collections.
fn metric_verb(verb: &str, method: &str) -> String {
    match verb {
        "list" => "LIST".to_owned(),
        "watch" => "WATCH".to_owned(),
        _ => method.to_owned(),
    }
}

/// Authenticates the request: a verified client certificate, or anonymous on the health paths;
/// anything else is 401.
pub(super) async fn authenticate(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Response {
    let chain = req
        .extensions()
        .get::<Peer>()
        .map(|p| p.certificates.clone())
        .unwrap_or_default();
    let user = match state.x509.authenticate(&chain, UnixTime::now()) {
        Ok(Authenticated::User(user)) => user.with_authenticated_group(),
        Ok(Authenticated::NotAttempted) if ANONYMOUS_PATHS.contains(&req.uri().path()) => {
            UserInfo {
                username: SYSTEM_ANONYMOUS.to_owned(),
                groups: vec![SYSTEM_UNAUTHENTICATED.to_owned()],
                ..UserInfo::default()
            }
        }
        Ok(Authenticated::NotAttempted) => return status_response(&Status::unauthorized()),
        Err(e) => {
            tracing::info!(error = %format!("{e:#}"), "client certificate rejected");
            return status_response(&Status::unauthorized());
        }
    };
    // Impersonation is not implemented yet. Acting as the caller instead of the requested user
    // would silently answer a different question, so such requests are refused.
    if req
        .headers()
        .keys()
        .any(|h| h.as_str().starts_with("impersonate-"))
    {
        return status_response(&Status::forbidden_impersonation(&user.username));
    }
    req.extensions_mut().insert(user);
    next.run(req).await
}

/// Authorizes the request; anything not allowed gets kube-apiserver's 403.
pub(super) async fn authorize(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Response {
    // One snapshot for the whole request: later stages (escalation checks, reviews) use it too.
    let authorizer = state.rbac.authorizer();
    let (Some(user), Some(info)) = (
        req.extensions().get::<UserInfo>(),
        req.extensions().get::<RequestInfo>(),
    ) else {
        // The pipeline always sets both; fail closed if it ever does not.
        return status_response(&Status::internal(
            "request reached authorization unauthenticated",
        ));
    };
    let decision = authorizer.authorize(user, info);
    if !decision.is_allowed() {
        return status_response(&Status::forbidden_request(
            &user.username,
            info,
            decision.reason(),
        ));
    }
    req.extensions_mut().insert(authorizer);
    next.run(req).await
}

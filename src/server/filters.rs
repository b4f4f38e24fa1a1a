//! The request filters that run before any handler, in pipeline order: request attributes,
//! metrics, authentication, authorization.

use std::time::Instant;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use portcullis_api::user::{SYSTEM_ANONYMOUS, SYSTEM_UNAUTHENTICATED};
use portcullis_api::{RequestInfo, Status, UserInfo};
use portcullis_authn::Authenticated;
use portcullis_authn::token_file::Bearer;
use rustls::pki_types::UnixTime;

use super::body::status_response;
use super::metrics::RequestLabels;
use super::{AppState, Peer};

/// Paths anyone may read without credentials, as kube-apiserver's anonymous configuration
/// recommends for health probes.
const ANONYMOUS_PATHS: &[&str] = &[
    "/healthz",
    "/livez",
    "/readyz",
    // Admission webhooks: kube-apiserver calls them without credentials unless configured to.
    "/admission/validate",
    "/admission/mutate",
];

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
    // The URI is only kept when it will be logged.
    let uri = tracing::enabled!(tracing::Level::DEBUG).then(|| req.uri().clone());
    // Labels are computed before the request moves on, from borrowed attributes; only the code
    // is filled in afterwards.
    let code = 0;
    let mut labels = match req.extensions().get::<RequestInfo>() {
        Some(RequestInfo::Resource(r)) => {
            // Registry strings are static; a resource the server does not serve is counted
            // without its names (it was answered 404 anyway).
            let resource = portcullis_api::registry::lookup(&r.group, &r.version, &r.resource);
            let subresource = resource
                .and_then(|res| res.subresource(&r.subresource))
                .map(|s| s.name)
                .unwrap_or("");
            RequestLabels {
                verb: metric_verb(&r.verb, method.as_str()),
                group: resource.map(|r| r.gv.group).unwrap_or(""),
                version: resource.map(|r| r.gv.version).unwrap_or(""),
                resource: resource.map(|r| r.plural).unwrap_or(""),
                subresource,
                scope: if !r.name.is_empty() && r.verb != "create" {
                    "resource"
                } else if !r.namespace.is_empty() {
                    "namespace"
                } else {
                    "cluster"
                },
                component: "apiserver",
                code,
            }
        }
        _ => RequestLabels {
            verb: metric_verb("", method.as_str()),
            group: "",
            version: "",
            resource: "",
            subresource: "",
            scope: "",
            component: "apiserver",
            code,
        },
    };
    let response = next.run(req).await;
    labels.code = response.status().as_u16();
    let elapsed = start.elapsed();
    state.metrics.observe(labels, elapsed.as_secs_f64());
    if let Some(uri) = uri {
        tracing::debug!(%method, %uri, code = labels.code, elapsed_ms = elapsed.as_secs_f64() * 1e3, "request");
    }
    response
}

/// kube-apiserver's metric verb: the HTTP method, except LIST and WATCH for collections.
fn metric_verb(verb: &str, method: &str) -> &'static str {
    match (verb, method) {
        ("list", _) => "LIST",
        ("watch", _) => "WATCH",
        (_, "GET") => "GET",
        (_, "HEAD") => "HEAD",
        (_, "POST") => "POST",
        (_, "PUT") => "PUT",
        (_, "PATCH") => "PATCH",
        (_, "DELETE") => "DELETE",
        (_, "OPTIONS") => "OPTIONS",
        _ => "OTHER",
    }
}

/// Authenticates the request in kube-apiserver's order: client certificate, bearer tokens (token
/// file, service-account and login tokens), LDAP (HTTP Basic), then anonymous (health paths
/// always; every path with `--anonymous-auth`, and only when no authenticator failed). Anything
/// else is 401. The method is recorded for `/login`, metrics and audit.
pub(super) async fn authenticate(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Response {
    let verdict = match req.extensions().get::<Peer>() {
        Some(peer) => certificate_verdict(&state, peer),
        None => Ok(None),
    };
    let mut method = if matches!(verdict, Ok(Some(_))) {
        AuthMethod::X509
    } else {
        AuthMethod::None
    };
    let bearer = req
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(portcullis_authn::token_file::bearer)
        .unwrap_or(Bearer::Absent);
    let verdict = match (verdict, bearer) {
        (Ok(None), Bearer::Token(token)) => {
            let token = token.to_owned();
            let (outcome, name, cached) = state
                .tokens
                .authenticate_detailed(state.store.as_ref(), &token, &[])
                .await;
            if name == "jwt" {
                state.metrics.auth_cache(name, cached);
            }
            match outcome {
                super::tokens::TokenOutcome::User(user, _) => {
                    state.metrics.authentication(name, true);
                    method = if name == "jwt" {
                        AuthMethod::Jwt
                    } else {
                        AuthMethod::TokenFile
                    };
                    // The credential is consumed here; nothing downstream sees it.
                    req.headers_mut().remove(axum::http::header::AUTHORIZATION);
                    Ok(Some(user.with_authenticated_group()))
                }
                super::tokens::TokenOutcome::Invalid(reason) => {
                    state.metrics.authentication(name, false);
                    tracing::info!(%reason, "bearer token rejected");
                    Err(())
                }
            }
        }
        (Ok(None), Bearer::TooLong) => Err(()),
        (Ok(None), Bearer::Absent) => {
            let v = basic_credentials(&state, &mut req).await;
            if matches!(v, Ok(Some(_))) {
                method = AuthMethod::Ldap;
            }
            v
        }
        (verdict, _) => verdict,
    };
    let user = match verdict {
        Ok(Some(user)) => user,
        Ok(None) if state.anonymous_auth || ANONYMOUS_PATHS.contains(&req.uri().path()) => {
            method = AuthMethod::Anonymous;
            UserInfo {
                username: SYSTEM_ANONYMOUS.to_owned(),
                groups: vec![SYSTEM_UNAUTHENTICATED.to_owned()],
                ..UserInfo::default()
            }
        }
        Ok(None) | Err(()) => return status_response(&Status::unauthorized()),
    };
    req.extensions_mut().insert(method);
    if let Some(record) = req
        .extensions()
        .get::<std::sync::Arc<super::audit::Record>>()
    {
        record.annotate(AUTHENTICATOR_ANNOTATION, method.as_str());
    }
    req.extensions_mut().insert(Requester(user.clone()));
    let user = match impersonate(&state, &user, &mut req) {
        Ok(u) => u,
        Err(status) => return status_response(&status),
    };
    req.extensions_mut().insert(user);
    next.run(req).await
}

/// The audit annotation naming the authenticator that named the user.
const AUTHENTICATOR_ANNOTATION: &str = "authentication.portcullis.dev/method";

/// The user the credentials named, before impersonation (audit's `user`; the impersonated
/// one is the request's [`UserInfo`]).
#[derive(Clone, Debug)]
pub(super) struct Requester(pub(super) UserInfo);

/// Which authenticator named the user (for `/login`, metrics and audit).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum AuthMethod {
    /// No credentials were presented (only possible for a 401, never reaches a handler).
    None,
    /// A verified client certificate.
    X509,
    /// A static token from the token file.
    TokenFile,
    /// A service-account or portcullis login token.
    Jwt,
    /// HTTP Basic credentials checked against LDAP.
    Ldap,
    /// Anonymous (health paths, or `--anonymous-auth`).
    Anonymous,
}

impl AuthMethod {
    /// The name used in metrics and audit annotations.
    pub(super) fn as_str(self) -> &'static str {
        match self {
            AuthMethod::None => "none",
            AuthMethod::X509 => "x509",
            AuthMethod::TokenFile => "token-file",
            AuthMethod::Jwt => "jwt",
            AuthMethod::Ldap => "ldap",
            AuthMethod::Anonymous => "anonymous",
        }
    }
}

/// HTTP Basic credentials, checked against LDAP when it is configured. No Basic header: not
/// attempted. A Basic header without LDAP, or any failure: 401 (logged without the password).
async fn basic_credentials(state: &AppState, req: &mut Request) -> Result<Option<UserInfo>, ()> {
    let Some(value) = req
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return Ok(None);
    };
    let value = value.trim();
    let Some(encoded) = value
        .split_once(' ')
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"))
        .map(|(_, rest)| rest.trim())
    else {
        return Ok(None);
    };
    let Some(ldap) = &state.ldap else {
        tracing::info!("Basic credentials sent but no LDAP server is configured");
        return Err(());
    };
    use base64::Engine;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()
        .and_then(|b| String::from_utf8(b).ok());
    let Some((username, password)) = decoded.as_deref().and_then(|d| d.split_once(':')) else {
        tracing::info!("malformed Basic credentials");
        return Err(());
    };
    let started = std::time::Instant::now();
    let (result, cached) = ldap.authenticate_detailed(username, password).await;
    state.metrics.auth_cache("ldap", cached);
    if !cached {
        state.metrics.ldap_login(started.elapsed().as_secs_f64());
    }
    state.metrics.authentication("ldap", result.is_ok());
    match result {
        Ok(user) => {
            req.headers_mut().remove(axum::http::header::AUTHORIZATION);
            Ok(Some(user.with_authenticated_group()))
        }
        Err(e) => {
            tracing::info!(user = %username, error = %e, "LDAP login rejected");
            Err(())
        }
    }
}

/// The connection's client-certificate verdict: verified once, then reused by the connection's
/// requests for [`VERDICT_TTL`](super::VERDICT_TTL). Chain verification costs signature checks;
/// a keep-alive client would otherwise pay them on every request.
fn certificate_verdict(state: &AppState, peer: &Peer) -> Result<Option<UserInfo>, ()> {
    if peer.certificates.is_empty() {
        return Ok(None);
    }
    let mut cached = peer.verdict.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(c) = cached.as_ref()
        && c.at.elapsed() < super::VERDICT_TTL
    {
        state.metrics.auth_cache("x509", true);
        return c.outcome.clone();
    }
    let outcome = match state
        .x509
        .load()
        .authenticate(&peer.certificates, UnixTime::now())
    {
        Ok(Authenticated::User(user)) => Ok(Some(user.with_authenticated_group())),
        Ok(Authenticated::NotAttempted) => Ok(None),
        Err(e) => {
            tracing::info!(address = %peer.address, error = %format!("{e:#}"), "client certificate rejected");
            Err(())
        }
    };
    state.metrics.auth_cache("x509", false);
    if !matches!(outcome, Ok(None)) {
        state.metrics.authentication("x509", outcome.is_ok());
    }
    *cached = Some(super::CachedVerdict {
        at: std::time::Instant::now(),
        outcome: outcome.clone(),
    });
    outcome
}

/// Applies `Impersonate-*` headers as kube-apiserver's (legacy) impersonation filter does: each
/// requested value is authorized for the *requesting* user with verb `impersonate`; the
/// request then continues as the impersonated user, headers removed.
fn impersonate(
    state: &AppState,
    requester: &UserInfo,
    req: &mut Request,
) -> Result<UserInfo, Status> {
    let headers = req.headers();
    let values = |name: &str| -> Vec<String> {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(str::to_owned)
            .collect()
    };
    let users = values("impersonate-user");
    let groups = values("impersonate-group");
    let uids = values("impersonate-uid");
    let mut extra: std::collections::BTreeMap<String, Vec<String>> =
        std::collections::BTreeMap::new();
    for (name, value) in headers.iter() {
        if let Some(key) = name.as_str().strip_prefix("impersonate-extra-")
            && let Ok(v) = value.to_str()
        {
            let key = portcullis_api::request::Query::parse(&format!("k={key}"))
                .get("k")
                .unwrap_or(key)
                .to_owned();
            extra.entry(key).or_default().push(v.to_owned());
        }
    }
    if users.is_empty() {
        if !groups.is_empty() || !uids.is_empty() || !extra.is_empty() {
            let mut asked: Vec<String> = groups
                .iter()
                .map(|g| format!("Impersonate-Group={g}"))
                .collect();
            asked.extend(uids.iter().map(|u| format!("Impersonate-Uid={u}")));
            asked.extend(extra.keys().map(|k| format!("Impersonate-Extra-{k}")));
            return Err(Status::bad_request(format!(
                "requested [{}] without impersonating a user",
                asked.join(" ")
            )));
        }
        return Ok(requester.clone());
    }
    if users.len() > 1 || uids.len() > 1 {
        return Err(Status::bad_request(
            "only one Impersonate-User and one Impersonate-Uid may be sent",
        ));
    }
    let authorizer = state.rbac.authorizer();
    let check = |group: &str,
                 resource: &str,
                 subresource: &str,
                 namespace: &str,
                 name: &str|
     -> Result<(), Status> {
        let attrs = RequestInfo::Resource(portcullis_api::ResourceRequest {
            verb: "impersonate".into(),
            group: group.into(),
            resource: resource.into(),
            subresource: subresource.into(),
            namespace: namespace.into(),
            name: name.into(),
            ..portcullis_api::ResourceRequest::default()
        });
        let d = authorizer.authorize(requester, &attrs);
        if d.is_allowed() {
            Ok(())
        } else {
            Err(Status::forbidden_request(
                &requester.username,
                &attrs,
                d.reason(),
            ))
        }
    };
    let username = users.into_iter().next().unwrap_or_default();
    let service_account = username
        .strip_prefix(portcullis_authz::rbac::SERVICE_ACCOUNT_PREFIX)
        .and_then(|rest| rest.split_once(':'))
        .filter(|(ns, name)| !ns.is_empty() && !name.is_empty() && !name.contains(':'));
    match service_account {
        Some((ns, name)) => check("", "serviceaccounts", "", ns, name)?,
        None => check("", "users", "", "", &username)?,
    }
    for g in &groups {
        check("", "groups", "", "", g)?;
    }
    for (key, vals) in &extra {
        for v in vals {
            check("authentication.k8s.io", "userextras", key, "", v)?;
        }
    }
    let uid = uids.into_iter().next().unwrap_or_default();
    if !uid.is_empty() {
        check("authentication.k8s.io", "uids", "", "", &uid)?;
    }
    let mut groups = groups;
    if groups.is_empty()
        && let Some((ns, _)) = service_account
    {
        groups = vec![
            "system:serviceaccounts".to_owned(),
            format!("system:serviceaccounts:{ns}"),
        ];
    }
    let mut user = UserInfo {
        username,
        uid,
        groups,
        extra,
    };
    if user.username == SYSTEM_ANONYMOUS {
        if !user.in_group(SYSTEM_UNAUTHENTICATED) {
            user.groups.push(SYSTEM_UNAUTHENTICATED.to_owned());
        }
    } else {
        user = user.with_authenticated_group();
    }
    let names: Vec<_> = req
        .headers()
        .keys()
        .filter(|h| h.as_str().starts_with("impersonate-"))
        .cloned()
        .collect();
    for h in names {
        req.headers_mut().remove(h);
    }
    Ok(user)
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
    if let Some(record) = req
        .extensions()
        .get::<std::sync::Arc<super::audit::Record>>()
    {
        let allowed = decision.is_allowed();
        record.annotate(
            "authorization.k8s.io/decision",
            if allowed { "allow" } else { "forbid" },
        );
        let reason = decision.reason();
        if !reason.is_empty() {
            record.annotate("authorization.k8s.io/reason", reason.to_owned());
        }
    }
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

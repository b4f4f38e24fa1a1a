//! Non-resource endpoints: health, version, metrics, API discovery and OpenAPI.
//!
//! Discovery documents are derived from the resource registry of `portcullis-api`, so what is
//! listed here is exactly what the resource handlers serve.

use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use portcullis_api::Status;
use portcullis_api::registry::{self, GROUP_VERSIONS, GroupVersion};
use portcullis_api::request::Query;
use serde_json::{Value, json};

use super::AppState;
use super::body::{object_response, status_response};
use crate::openapi;

/// The Kubernetes minor version whose API this server speaks.
pub(crate) const KUBE_MINOR: &str = "33";

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(livez))
        .route("/livez", get(livez))
        .route("/readyz", get(readyz))
        .route("/version", get(version))
        .route("/metrics", get(metrics))
        .route("/api", get(core_versions))
        .route("/api/v1", get(core_resources))
        .route("/apis", get(group_list))
        .route("/apis/{group}", get(group))
        .route("/apis/{group}/{version}", get(group_resources))
        .route(
            "/.well-known/openid-configuration",
            get(openid_configuration),
        )
        .route("/openid/v1/jwks", get(jwks))
        .route("/login", axum::routing::post(login))
        .route("/openapi/v3", get(openapi_index))
        .route("/openapi/v3/{*path}", get(openapi_document))
}

fn text(code: StatusCode, body: String) -> Response {
    let mut r = (code, body).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// Renders health checks as kube-apiserver does: `ok`, or with `?verbose` one `[+]name ok`
/// line per check; a failed check makes the whole answer 500.
fn checks(endpoint: &str, results: &[(&str, bool)], query: Option<String>) -> Response {
    let verbose = query
        .map(|q| Query::parse(&q).get("verbose").is_some())
        .unwrap_or(false);
    let failed = results.iter().any(|(_, ok)| !ok);
    let code = if failed {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    };
    if !verbose && !failed {
        return text(code, "ok".to_owned());
    }
    let mut out = String::new();
    for (name, ok) in results {
        if *ok {
            out.push_str(&format!("[+]{name} ok\n"));
        } else {
            out.push_str(&format!("[-]{name} failed: reason withheld\n"));
        }
    }
    if failed {
        out.push_str(&format!("{endpoint} check failed\n"));
    } else {
        out.push_str(&format!("{endpoint} check passed\n"));
    }
    text(code, out)
}

async fn livez(RawQuery(q): RawQuery) -> Response {
    checks("livez", &[("ping", true)], q)
}

async fn readyz(State(state): State<AppState>, RawQuery(q): RawQuery) -> Response {
    // As kube-apiserver's etcd readiness check, bounded (--etcd-readycheck-timeout's 2 s).
    let storage = matches!(
        tokio::time::timeout(std::time::Duration::from_secs(2), state.store.revision()).await,
        Ok(Ok(_))
    );
    let running = !*state.shutdown.borrow();
    let audit = match state.audit.ready() {
        Ok(()) => true,
        Err(why) => {
            tracing::warn!(%why, "readyz: audit check failed");
            false
        }
    };
    checks(
        "readyz",
        &[
            ("ping", true),
            ("storage", storage),
            ("audit", audit),
            ("shutdown", running),
        ],
        q,
    )
}

async fn version() -> Response {
    object_response(
        StatusCode::OK,
        &json!({
            "major": "1",
            "minor": KUBE_MINOR,
            "emulationMajor": "1",
            "emulationMinor": KUBE_MINOR,
            "minCompatibilityMajor": "1",
            "minCompatibilityMinor": KUBE_MINOR,
            "gitVersion": format!("v1.{KUBE_MINOR}.0+portcullis-{}", env!("CARGO_PKG_VERSION")),
            "gitCommit": "",
            "gitTreeState": "",
            "buildDate": "",
            "goVersion": "",
            "compiler": "rustc",
            "platform": format!("{}/{}", std::env::consts::OS, match std::env::consts::ARCH { "x86_64" => "amd64", "aarch64" => "arm64", a => a }),
        }),
    )
}

async fn metrics(State(state): State<AppState>) -> Response {
    if state.audit.enabled() {
        let log = state.audit.log().map(|l| l.stats());
        let webhook = state.audit.webhook().map(|w| w.stats());
        state.metrics.audit_stats(log.as_ref(), webhook.as_ref());
    }
    let mut r = state.metrics.encode().into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    r
}

async fn core_versions() -> Response {
    object_response(
        StatusCode::OK,
        &json!({
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": ""}],
        }),
    )
}

fn resource_list(gv: GroupVersion) -> Response {
    object_response(
        StatusCode::OK,
        &json!({
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": gv.api_version(),
            "resources": registry::api_resources(gv),
        }),
    )
}

async fn core_resources() -> Response {
    resource_list(registry::CORE_V1)
}

fn group_json(name: &str) -> Value {
    let versions: Vec<Value> = GROUP_VERSIONS
        .iter()
        .filter(|gv| gv.group == name)
        .map(|gv| json!({"groupVersion": gv.api_version(), "version": gv.version}))
        .collect();
    let preferred = versions.first().cloned().unwrap_or(Value::Null);
    json!({"name": name, "versions": versions, "preferredVersion": preferred})
}

fn groups() -> Vec<&'static str> {
    let mut out: Vec<&str> = Vec::new();
    for gv in GROUP_VERSIONS {
        if !gv.group.is_empty() && !out.contains(&gv.group) {
            out.push(gv.group);
        }
    }
    out
}

async fn group_list() -> Response {
    let groups: Vec<Value> = groups().into_iter().map(group_json).collect();
    object_response(
        StatusCode::OK,
        &json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}),
    )
}

async fn group(Path(name): Path<String>) -> Response {
    if !groups().contains(&name.as_str()) {
        return status_response(&Status::path_not_found());
    }
    let mut g = group_json(&name);
    if let Some(o) = g.as_object_mut() {
        o.insert("kind".into(), "APIGroup".into());
        o.insert("apiVersion".into(), "v1".into());
    }
    object_response(StatusCode::OK, &g)
}

async fn group_resources(Path((group, version)): Path<(String, String)>) -> Response {
    match GROUP_VERSIONS
        .iter()
        .find(|gv| gv.group == group && gv.version == version && !gv.group.is_empty())
    {
        Some(gv) => resource_list(*gv),
        None => status_response(&Status::path_not_found()),
    }
}

async fn openid_configuration(State(state): State<AppState>) -> Response {
    let mut r = object_response(StatusCode::OK, &state.tokens.openid_configuration());
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    r
}

async fn jwks(State(state): State<AppState>) -> Response {
    let mut r = object_response(StatusCode::OK, &state.tokens.verifier.keys().jwks());
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/jwk-set+json"),
    );
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    r
}

/// `POST /login`: exchanges LDAP credentials (HTTP Basic) for a short-lived token that
/// authenticates at the gateway and through TokenReview (`portcullis credential` calls it).
async fn login(
    State(state): State<AppState>,
    method: Option<axum::Extension<super::filters::AuthMethod>>,
    user: Option<axum::Extension<portcullis_api::UserInfo>>,
) -> Response {
    let (Some(axum::Extension(super::filters::AuthMethod::Ldap)), Some(axum::Extension(user))) =
        (method, user)
    else {
        return status_response(&Status::bad_request(
            "login takes LDAP credentials as HTTP Basic authentication",
        ));
    };
    match state.tokens.issue_login(&user, LOGIN_TOKEN_SECONDS) {
        Ok((token, exp)) => {
            let expires = jiff::Timestamp::from_second(exp as i64)
                .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
                .unwrap_or_default();
            object_response(
                StatusCode::OK,
                &json!({"apiVersion": "client.authentication.k8s.io/v1", "kind": "ExecCredential",
                        "status": {"token": token, "expirationTimestamp": expires}}),
            )
        }
        Err(e) => status_response(&Status::internal(e)),
    }
}

/// How long a `/login` token lives.
const LOGIN_TOKEN_SECONDS: u64 = 3600;

async fn openapi_index() -> Response {
    object_response(StatusCode::OK, &openapi::index())
}

async fn openapi_document(Path(path): Path<String>, RawQuery(q): RawQuery) -> Response {
    let gv = GROUP_VERSIONS.iter().find(|gv| {
        let prefix = gv.path_prefix();
        prefix.trim_start_matches('/') == path
    });
    let Some(gv) = gv else {
        return status_response(&Status::path_not_found());
    };
    let (Some(doc), Some(hash)) = (openapi::group_version_document(*gv), openapi::hash_of(*gv))
    else {
        return status_response(&Status::path_not_found());
    };
    let mut r = object_response(StatusCode::OK, &doc);
    let asked = q
        .map(|q| Query::parse(&q).get("hash").map(str::to_owned))
        .unwrap_or_default();
    let cache = if asked.as_deref() == Some(hash.as_str()) {
        "public, immutable"
    } else {
        "no-cache, private"
    };
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    if let Ok(etag) = HeaderValue::from_str(&format!("\"{hash}\"")) {
        r.headers_mut().insert(header::ETAG, etag);
    }
    r
}

//! The HTTPS server: accept loop, connection limits, graceful shutdown, and the request pipeline.
//!
//! [`router`] builds the pipeline in the order DESIGN.md gives, so reading it is reading the
//! request path: request attributes → metrics → audit (Audit-ID, closing events) →
//! authentication → audit (policy, RequestReceived) → authorization → handler (discovery,
//! OpenAPI, health, or the resource handlers over the store, with admission).

pub mod admission;
pub mod audit;
mod body;
mod discovery;
mod filters;
mod metrics;
mod objects;
mod protobuf;
mod rbac_writes;
mod resources;
mod reviews;
mod selectors;
pub mod tokens;
mod watch;
mod webhooks;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use axum::Router;
use axum::middleware::{from_fn, from_fn_with_state};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use portcullis_authn::X509Authenticator;
use rustls::pki_types::CertificateDer;
use tokio::net::TcpListener;
use tokio::sync::watch as signal;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use crate::rbac::Rbac;
use crate::storage::Store;

pub use metrics::Metrics;

/// Everything a request handler may use: the store, the decision engines, and server-wide
/// settings, behind one shared pointer: each layer of the pipeline clones it per request, so a
/// clone is one reference-count increment. Fields are reached through `Deref`.
#[derive(Clone)]
pub struct AppState(Arc<State>);

impl AppState {
    /// Shares `state` with every request.
    pub fn new(state: State) -> AppState {
        AppState(Arc::new(state))
    }
}

impl std::ops::Deref for AppState {
    type Target = State;
    fn deref(&self) -> &State {
        &self.0
    }
}

/// The contents of [`AppState`].
pub struct State {
    /// The storage backend.
    pub store: Arc<dyn Store>,
    /// Client-certificate authenticator; swapped when the client CA file changes.
    pub x509: Arc<arc_swap::ArcSwap<X509Authenticator>>,
    /// RBAC: the authorizer in force and its rebuilds.
    pub rbac: Arc<Rbac>,
    /// Bearer-token authenticators, TokenRequest signing and issuer discovery.
    pub tokens: Arc<tokens::Tokens>,
    /// Rego and Gatekeeper policies (`--admission-policy-dir`), swapped when they change.
    pub policies: Arc<arc_swap::ArcSwapOption<portcullis_admission::rego::PolicySet>>,
    /// The image policy (`--image-policy-file`), swapped when the file changes.
    pub image_policy: Arc<arc_swap::ArcSwapOption<portcullis_admission::image_policy::ImagePolicy>>,
    /// Whether requests without credentials are served as `system:anonymous` on every path.
    pub anonymous_auth: bool,
    /// Pod Security defaults and exemptions (`--admission-control-config-file`).
    pub pod_security: Arc<arc_swap::ArcSwap<admission::PodSecurityConfig>>,
    /// The LDAP authenticator for HTTP Basic credentials, when configured.
    pub ldap: Option<Arc<portcullis_authn::ldap::LdapAuthenticator>>,
    /// Request metrics.
    pub metrics: Arc<Metrics>,
    /// The audit trail.
    pub audit: Arc<audit::Auditor>,
    /// Turns true when the server begins shutting down; long-running watches end on it.
    pub shutdown: signal::Receiver<bool>,
}

/// The request pipeline, outermost layer last.
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(discovery::routes())
        .merge(webhooks::routes())
        .fallback(resources::handle)
        .layer(from_fn_with_state(state.clone(), filters::authorize))
        .layer(from_fn_with_state(state.clone(), audit::received))
        .layer(from_fn_with_state(state.clone(), filters::authenticate))
        .layer(from_fn_with_state(state.clone(), audit::begin))
        .layer(from_fn_with_state(state.clone(), filters::observe))
        .layer(from_fn(filters::request_info))
        .with_state(state)
}

/// The TLS peer of one connection, attached to each of its requests.
#[derive(Clone, Debug)]
pub struct Peer {
    /// The certificate chain the client presented, leaf first (empty when none).
    pub certificates: Arc<[CertificateDer<'static>]>,
    /// The client's address.
    pub address: SocketAddr,
    /// The client's IP address as text, made once per connection for the audit events'
    /// `sourceIPs`.
    pub ip: Arc<str>,
    /// The x509 authenticator's verdict on `certificates`, shared by the connection's requests.
    pub verdict: Arc<std::sync::Mutex<Option<CachedVerdict>>>,
}

/// A client-certificate verdict and when it was reached.
#[derive(Clone, Debug)]
pub struct CachedVerdict {
    /// When the chain was verified.
    pub at: std::time::Instant,
    /// The user it names, `None` when it names nobody, or the rejection (logged once).
    pub outcome: Result<Option<portcullis_api::UserInfo>, ()>,
}

/// How long a connection reuses its certificate verdict before verifying the chain again (so a
/// certificate that expires during a long connection stops working within this time).
pub const VERDICT_TTL: Duration = Duration::from_secs(10);

/// Limits the HTTP layer enforces before any handler runs.
const MAX_HEADER_BYTES: usize = 1 << 20;
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// Serves `app` on `listener` with TLS until `shutdown` resolves, then lets in-flight requests
/// finish (up to a grace period).
pub async fn serve(
    listener: TcpListener,
    tls: rustls::ServerConfig,
    app: Router,
    shutdown: impl std::future::Future<Output = ()>,
    stop_watches: signal::Sender<bool>,
) -> Result<()> {
    let acceptor = TlsAcceptor::from(Arc::new(tls));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_buf_size(MAX_HEADER_BYTES);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(MAX_HEADER_BYTES as u32)
        .max_concurrent_streams(250);
    let builder = Arc::new(builder);
    tokio::pin!(shutdown);
    loop {
        let (tcp, address) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let app = app.clone();
        let builder = builder.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await
            {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    tracing::debug!(%address, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%address, "TLS handshake timed out");
                    return;
                }
            };
            let certificates: Arc<[CertificateDer<'static>]> = tls
                .get_ref()
                .1
                .peer_certificates()
                .map(|c| c.iter().map(|c| c.clone().into_owned()).collect())
                .unwrap_or_default();
            let peer = Peer {
                certificates,
                address,
                ip: address.ip().to_string().into(),
                verdict: Arc::default(),
            };
            let service = hyper::service::service_fn(
                move |mut req: hyper::Request<hyper::body::Incoming>| {
                    req.extensions_mut().insert(peer.clone());
                    app.clone().oneshot(req.map(axum::body::Body::new))
                },
            );
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(tls), service);
            if let Err(e) = watcher.watch(conn.into_owned()).await {
                tracing::debug!(%address, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    tracing::info!("shutting down: no new connections; waiting for in-flight requests");
    let _ = stop_watches.send(true);
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("all connections closed"),
        () = tokio::time::sleep(SHUTDOWN_GRACE) => tracing::warn!("grace period over; closing remaining connections"),
    }
    Ok(())
}

/// Binds the listening socket, failing with the address in the message.
pub async fn bind(address: SocketAddr) -> Result<TcpListener> {
    TcpListener::bind(address)
        .await
        .with_context(|| format!("binding {address}"))
}

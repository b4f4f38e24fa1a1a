//! Test helpers: a CA with server and client certificates, and a real audit webhook receiver
//! (plain HTTP or mTLS) on a free port of 127.0.0.1 whose answers a test scripts.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair,
};
use tokio::net::TcpListener;

use crate::event::EventList;

/// A CA, a server certificate for 127.0.0.1/localhost, and a client certificate, as PEM.
pub(crate) struct Pki {
    pub(crate) ca_pem: String,
    pub(crate) server_cert_pem: String,
    pub(crate) server_key_pem: String,
    pub(crate) client_cert_pem: String,
    pub(crate) client_key_pem: String,
}

impl Pki {
    pub(crate) fn new() -> Pki {
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "audit test ca");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();

        let mut server =
            CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
        server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let server_key = KeyPair::generate().unwrap();
        let server_cert = server.signed_by(&server_key, &ca).unwrap();

        let mut client = CertificateParams::new(Vec::<String>::new()).unwrap();
        client
            .distinguished_name
            .push(DnType::CommonName, "kube-apiserver-audit");
        client.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let client_key = KeyPair::generate().unwrap();
        let client_cert = client.signed_by(&client_key, &ca).unwrap();

        Pki {
            ca_pem: ca.pem(),
            server_cert_pem: server_cert.pem(),
            server_key_pem: server_key.serialize_pem(),
            client_cert_pem: client_cert.pem(),
            client_key_pem: client_key.serialize_pem(),
        }
    }
}

/// What the receiver does with one request.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Answer {
    Status(u16),
    /// Wait this long, then answer 200.
    Sleep(Duration),
}

/// One request the receiver got.
#[derive(Clone, Debug)]
pub(crate) struct Received {
    pub(crate) content_type: Option<String>,
    pub(crate) authorization: Option<String>,
    pub(crate) client_cert: bool,
    pub(crate) list: EventList,
    /// The answer scripted (200 when the script is used up).
    pub(crate) answer: Answer,
}

/// A receiver on 127.0.0.1. Answers are taken from the script in order, then 200.
pub(crate) struct Receiver {
    pub(crate) addr: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Clone)]
struct Shared {
    script: Arc<Mutex<VecDeque<Answer>>>,
    received: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    /// A plain HTTP receiver on a free port.
    pub(crate) async fn start(script: Vec<Answer>) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        Receiver::serve(listener, script, None)
    }

    /// A plain HTTP receiver on `addr` (a port reserved earlier).
    pub(crate) async fn start_on(addr: SocketAddr, script: Vec<Answer>) -> Receiver {
        let listener = TcpListener::bind(addr).await.unwrap();
        Receiver::serve(listener, script, None)
    }

    /// An HTTPS receiver that requires a client certificate issued by the test CA.
    pub(crate) async fn start_tls(pki: &Pki) -> Receiver {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(pki.ca_pem.as_bytes()).unwrap())
            .unwrap();
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            provider.clone(),
        )
        .build()
        .unwrap();
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_client_cert_verifier(verifier)
            .with_single_cert(
                vec![CertificateDer::from_pem_slice(pki.server_cert_pem.as_bytes()).unwrap()],
                PrivateKeyDer::from_pem_slice(pki.server_key_pem.as_bytes()).unwrap(),
            )
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        Receiver::serve(listener, Vec::new(), Some(acceptor))
    }

    fn serve(
        listener: TcpListener,
        script: Vec<Answer>,
        tls: Option<tokio_rustls::TlsAcceptor>,
    ) -> Receiver {
        let addr = listener.local_addr().unwrap();
        let shared = Shared {
            script: Arc::new(Mutex::new(script.into())),
            received: Arc::new(Mutex::new(Vec::new())),
        };
        let received = shared.received.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let shared = shared.clone();
                let tls = tls.clone();
                tokio::spawn(async move {
                    match tls {
                        None => serve_conn(TokioIo::new(stream), shared, false).await,
                        Some(acceptor) => {
                            let Ok(stream) = acceptor.accept(stream).await else {
                                return;
                            };
                            let client_cert = stream
                                .get_ref()
                                .1
                                .peer_certificates()
                                .is_some_and(|c| !c.is_empty());
                            serve_conn(TokioIo::new(stream), shared, client_cert).await;
                        }
                    }
                });
            }
        });
        Receiver {
            addr,
            received,
            task,
        }
    }

    pub(crate) fn url(&self) -> String {
        format!("http://{}/audit", self.addr)
    }

    pub(crate) fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// The audit IDs of the events in the requests answered 200 at once, in order.
    pub(crate) fn delivered_ids(&self) -> Vec<String> {
        self.received()
            .iter()
            .filter(|r| matches!(r.answer, Answer::Status(200)))
            .flat_map(|r| r.list.items.iter().map(|e| e.audit_id.clone()))
            .collect()
    }

    /// Stops accepting connections (open ones finish on their own).
    pub(crate) fn stop(&self) {
        self.task.abort();
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve_conn<I>(io: I, shared: Shared, client_cert: bool)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        let shared = shared.clone();
        async move {
            let header = |name: &str| {
                req.headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned)
            };
            let content_type = header("content-type");
            let authorization = header("authorization");
            let body = req.into_body().collect().await.unwrap().to_bytes();
            let list: EventList = serde_json::from_slice(&body).unwrap();
            let answer = shared
                .script
                .lock()
                .unwrap()
                .pop_front()
                .unwrap_or(Answer::Status(200));
            shared.received.lock().unwrap().push(Received {
                content_type,
                authorization,
                client_cert,
                list,
                answer,
            });
            let status = match answer {
                Answer::Status(code) => code,
                Answer::Sleep(d) => {
                    tokio::time::sleep(d).await;
                    200
                }
            };
            let mut response = Response::new(Full::new(Bytes::from_static(b"{}")));
            *response.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
            Ok::<_, Infallible>(response)
        }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(io, service)
        .await;
}

//! portcullis: a security gateway for Kubernetes.
//!
//! The binary's library half: CLI, server wiring, storage backends, PKI bootstrap and
//! configuration. Decisions live in the stage crates (`portcullis-authn`, `portcullis-authz`);
//! this crate does the I/O around them and the API machinery (storage semantics, patches,
//! tables, OpenAPI) kube-apiserver clients expect.

pub mod admit;
pub mod audit_cli;
pub mod cli;
pub mod credential;
pub mod duration;
pub mod gator;
pub mod lint;
pub mod offline;
pub mod openapi;
pub mod patch;
pub mod pki;
pub mod policies;
pub mod rbac;
pub mod reload;
pub mod replica;
pub mod server;
pub mod storage;
pub mod store_cli;
pub mod table;
pub mod tls;

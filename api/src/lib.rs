//! Shapes every portcullis stage shares.
//!
//! This crate owns the vocabulary of the request pipeline and nothing else: who is calling
//! ([`UserInfo`]), what they ask for ([`RequestInfo`], parsed from the HTTP method, path and query
//! exactly as kube-apiserver derives request attributes), which resources exist ([`registry`]: one
//! table that drives discovery, OpenAPI and path parsing alike), and how a failure looks on the wire
//! ([`Status`]). It does no I/O and holds no policy logic.

#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

pub mod registry;
pub mod request;
pub mod status;
pub mod user;

pub use registry::{GroupVersion, Resource};
pub use request::{RequestInfo, ResourceRequest};
pub use status::Status;
pub use user::UserInfo;

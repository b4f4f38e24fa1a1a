//! Who is calling.
//!
//! This crate turns the credentials a request carries into a [`UserInfo`]. It owns the
//! authenticators and their order; it never decides what the caller may do. In the gateway's
//! pipeline it runs right after request attributes are derived and before authorization.
//!
//! Today it holds the x509 client-certificate authenticator. The TLS layer only *asks* for a
//! client certificate and checks possession of its key; trust is decided here, so that a
//! certificate from an unknown CA yields 401 Unauthorized rather than a failed handshake, as
//! kube-apiserver behaves.

#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

pub mod ldap;
pub mod serviceaccount;
pub mod token_file;
pub mod x509;

pub use portcullis_api::UserInfo;
pub use x509::{X509Authenticator, X509Error};

/// The outcome of one authenticator on one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Authenticated {
    /// The credentials were valid and name this user.
    User(UserInfo),
    /// This authenticator found no credentials of its kind (the next one may).
    NotAttempted,
}

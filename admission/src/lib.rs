//! Is the object acceptable.
//!
//! The admission stage: pure decision engines that take an object (as JSON) and a policy and
//! return a verdict with its reasons. They read no files, sockets or clocks; the gateway wires
//! them after authorization and before storage, and `portcullis lint` runs the same engines over
//! manifests.
//!
//! Today this crate holds the Pod Security Standards engine ([`pod_security`]): every check of
//! the `baseline` and `restricted` levels, versioned from `v1.0` to `latest` as
//! kubernetes/pod-security-admission defines them, with the same messages.

#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

pub mod mutation;
pub mod pod_security;

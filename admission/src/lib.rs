//! Is the object acceptable.
//!
//! The admission stage: pure decision engines that take an object (as JSON) and a policy and
//! return a verdict with its reasons. They read no files, sockets or clocks; the gateway wires
//! them after authorization and before storage, and `portcullis lint` runs the same engines over
//! manifests.
//!
//! It holds the Pod Security Standards engine ([`pod_security`]): every check of the `baseline`
//! and `restricted` levels, versioned from `v1.0` to `latest` as kubernetes/pod-security-admission
//! defines them, with the same messages; the image policy engine ([`image_policy`]): allowed and
//! blocked registries, tags, digests and pull policies per namespace; and the opt-in restricted
//! defaults ([`mutation`]) as JSON Patch. The Rego engine ([`rego`]) runs conftest-style policies
//! and Gatekeeper ConstraintTemplates, compiled once and evaluated under a time limit.

#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

/// Image policy: allowed and blocked registries, tags, digests and pull policy, per namespace.
pub mod image_policy;
pub mod mutation;
pub mod pod_security;
pub mod rego;

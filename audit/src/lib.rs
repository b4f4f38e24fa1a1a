//! What happened.
//!
//! The audit stage of portcullis: the `audit.k8s.io/v1` [`policy`] that decides how much of a
//! request is recorded, the [`event`] that records it, in the exact JSON kube-apiserver emits.
//!
//! Policy evaluation and event shaping are pure: they read their inputs and the time they are
//! given, nothing else. The gateway wires them around its request pipeline.

#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

pub mod chain;
pub mod event;
mod lines;
pub mod log;
pub mod policy;
pub mod verify;

pub use chain::{CHAIN_ANNOTATION, Chain, Link};
pub use event::{AuditId, Event, EventList, MicroTime};
pub use lines::MAX_LINE_BYTES;
pub use log::{LogBackend, LogConfig, Mode};
pub use policy::{AuditConfig, Level, Policy, PolicyEvaluator, RequestAttributes, Stage};
pub use verify::{Report, VerifyOptions, verify};

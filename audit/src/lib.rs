//! What happened.
//!
//! The audit stage of portcullis:
//!
//! - [`policy`]: the `audit.k8s.io/v1` Policy that decides how much of a request is recorded
//!   (loading, upstream validation, first-match evaluation);
//! - [`event`]: the `audit.k8s.io/v1` Event, in the exact JSON kube-apiserver emits, and the
//!   helpers that shape it (bodies by level, bounds on client-supplied values);
//! - [`chain`]: the hash chain that makes the trail tamper-evident;
//! - [`log`]: the file backend (group-commit writer, rotation, blocking and batch modes);
//! - [`webhook`]: the webhook backend (`EventList` batches POSTed to a receiver such as Falco,
//!   with retries; the same modes);
//! - [`mod@verify`] and [`mod@query`]: reading a trail back, for `portcullis audit verify` and
//!   `portcullis audit query`.
//!
//! Policy evaluation, event shaping, sealing and filtering are pure: they read their inputs
//! and the time they are given, nothing else. File and network I/O live in [`log`], [`webhook`]
//! and the readers of [`mod@verify`] and [`mod@query`]. The gateway wires all of it around its
//! request pipeline; this crate never changes a decision.

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
pub mod query;
pub mod verify;
pub mod webhook;

pub use chain::{CHAIN_ANNOTATION, Chain, Link};
pub use event::{AuditId, Event, EventList, MicroTime};
pub use lines::MAX_LINE_BYTES;
pub use log::{LogBackend, LogConfig, Mode};
pub use policy::{AuditConfig, Level, Policy, PolicyEvaluator, RequestAttributes, Stage};
pub use query::{Filter, Record, query};
pub use verify::{Report, VerifyOptions, verify};
pub use webhook::{Endpoint, WebhookBackend, WebhookConfig};

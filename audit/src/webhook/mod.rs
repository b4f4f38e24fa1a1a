//! The webhook backend (`--audit-webhook-config-file`): audit events POSTed as `EventList`
//! batches to a receiver such as Falco's k8saudit plugin or a SIEM collector.
//!
//! The API mirrors the [`log`](crate::log) backend so the gateway drives both alike: the same
//! [`Mode`], [`WriteError`] and [`BatchObserver`]; [`WebhookBackend::write`] for the blocking
//! modes, [`WebhookBackend::try_enqueue`] for `batch`, [`WebhookBackend::flush`],
//! [`WebhookBackend::stats`].
//!
//! One sender task owns the queue and has one batch in flight at a time, so the receiver sees
//! events in the order they were queued. In the blocking modes a batch is whatever is queued
//! when the sender is free (requests arriving together share one POST) and every caller waits
//! for the 2xx of the batch holding its event; when retries are exhausted every caller of that
//! batch gets an error, so the gateway can fail the request closed and nothing is silently lost.
//! In `batch` mode, as upstream, a batch is sent when it holds [`WebhookConfig::max_batch_size`]
//! events or its first event has waited [`WebhookConfig::max_batch_wait`]; a full queue drops
//! events and an exhausted batch is dropped, both counted and logged.
//!
//! Delivery is at least once: an attempt that timed out may still have reached the receiver,
//! which then sees the batch again (events carry `auditID` and `stage` to de-duplicate).
//! Each attempt has its own timeout; any error (connection refused, timeout, any non-2xx) is
//! retried with exponential backoff (factor 1.5, up to 20 % jitter), as upstream's audit
//! webhook does. An event larger than [`WebhookConfig::max_event_bytes`] loses its bodies and
//! gains `audit.k8s.io/truncated: "true"`; if still too large it is dropped with an error.
//! Batches are split to stay under [`WebhookConfig::max_batch_bytes`].

mod kubeconfig;
mod sender;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::event::Event;
pub use crate::log::{BatchObserver, BatchOutcome, Mode, WriteError};
pub use kubeconfig::{Endpoint, KubeconfigError, KubeconfigOptions, MAX_FILE_BYTES};

/// How the backend batches, retries and bounds what it sends. Build with
/// [`WebhookConfig::new`], which sets kube-apiserver's defaults for the mode, then adjust.
#[derive(Clone)]
pub struct WebhookConfig {
    /// `--audit-webhook-mode`.
    pub mode: Mode,
    /// Queue capacity (`--audit-webhook-batch-buffer-size`): in batch mode, events beyond it
    /// are dropped; in the blocking modes, callers wait for room.
    pub buffer_size: usize,
    /// Most events in one POST (`--audit-webhook-batch-max-size`).
    pub max_batch_size: usize,
    /// Batch mode: the longest an event waits for its batch to fill
    /// (`--audit-webhook-batch-max-wait`). Unused in the blocking modes, which send at once.
    pub max_batch_wait: Duration,
    /// Batch mode: at most this many batches per second
    /// (`--audit-webhook-batch-throttle-enable`, `-qps`, `-burst`). Unused in the blocking modes.
    pub throttle: Option<Throttle>,
    /// The wait before the first retry (`--audit-webhook-initial-backoff`); each further wait is
    /// 1.5 times longer, plus up to 20 % jitter.
    pub initial_backoff: Duration,
    /// Attempts per batch, the first included (at least 1).
    pub max_attempts: u32,
    /// The timeout of one attempt: connect, send, and read the response status.
    pub attempt_timeout: Duration,
    /// An event serialised larger than this loses its bodies (and is dropped if still larger).
    pub max_event_bytes: usize,
    /// The largest POST body; a batch that would grow past it is split.
    pub max_batch_bytes: usize,
    /// Called after every batch (delivered or given up), for latency histograms.
    pub observer: Option<BatchObserver>,
}

/// A token bucket on batches: `qps` per second on average, `burst` at once.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Throttle {
    /// Batches per second (`--audit-webhook-batch-throttle-qps`).
    pub qps: f64,
    /// Batches sent at once after an idle time (`--audit-webhook-batch-throttle-burst`).
    pub burst: u32,
}

impl WebhookConfig {
    /// kube-apiserver's defaults for `mode`: a queue of 10000, batches of up to 400 events,
    /// 30 s attempt timeout, 5 attempts. Batch mode: 30 s max wait, throttled to 10 batches/s
    /// with a burst of 15, first retry after 10 s. The blocking modes send at once, unthrottled,
    /// and retry after 500 ms (upstream's 10 s is far too long for a request that waits).
    pub fn new(mode: Mode) -> WebhookConfig {
        let batch = mode == Mode::Batch;
        WebhookConfig {
            mode,
            buffer_size: 10_000,
            max_batch_size: 400,
            max_batch_wait: Duration::from_secs(30),
            throttle: batch.then_some(Throttle {
                qps: 10.0,
                burst: 15,
            }),
            initial_backoff: if batch {
                Duration::from_secs(10)
            } else {
                Duration::from_millis(500)
            },
            max_attempts: 5,
            attempt_timeout: Duration::from_secs(30),
            max_event_bytes: DEFAULT_MAX_EVENT_BYTES,
            max_batch_bytes: DEFAULT_MAX_BATCH_BYTES,
            observer: None,
        }
    }
}

impl std::fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("mode", &self.mode)
            .field("buffer_size", &self.buffer_size)
            .field("max_batch_size", &self.max_batch_size)
            .field("max_batch_wait", &self.max_batch_wait)
            .field("throttle", &self.throttle)
            .field("initial_backoff", &self.initial_backoff)
            .field("max_attempts", &self.max_attempts)
            .field("attempt_timeout", &self.attempt_timeout)
            .field("max_event_bytes", &self.max_event_bytes)
            .field("max_batch_bytes", &self.max_batch_bytes)
            .finish_non_exhaustive()
    }
}

/// Why one attempt to deliver a batch failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeliveryError {
    /// The receiver answered with a status other than 2xx.
    #[error("audit webhook answered with HTTP status {0}")]
    Status(u16),
    /// No answer: connection refused or reset, TLS failure, or the attempt timed out.
    #[error("audit webhook request failed")]
    Request(#[source] reqwest::Error),
}

/// Counters for metrics, updated by the sender; read with [`WebhookBackend::stats`].
#[derive(Debug, Default)]
struct WebhookStats {
    events_sent: AtomicU64,
    events_dropped: AtomicU64,
    events_failed: AtomicU64,
    events_truncated: AtomicU64,
    batches_sent: AtomicU64,
    batches_failed: AtomicU64,
    attempts_failed: AtomicU64,
    send_nanos: AtomicU64,
    failing: AtomicBool,
}

/// A reading of the backend's counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// Events in batches the receiver accepted (2xx).
    pub events_sent: u64,
    /// Events dropped before sending: queue full or backend closed (batch mode), or too large
    /// even without bodies.
    pub events_dropped: u64,
    /// Events in batches given up after the last attempt.
    pub events_failed: u64,
    /// Events that lost their bodies to stay under the size limit.
    pub events_truncated: u64,
    /// Batches the receiver accepted.
    pub batches_sent: u64,
    /// Batches given up after the last attempt.
    pub batches_failed: u64,
    /// Attempts that failed (each retry of a batch counts).
    pub attempts_failed: u64,
    /// Total time spent delivering batches, retries and backoff included.
    pub send_time: Duration,
    /// Whether the last batch was given up (cleared by the next one delivered): for `/readyz`.
    pub failing: bool,
}

/// The webhook backend. `Send + Sync`: share it behind an `Arc`. Dropping it stops accepting
/// events; the sender task delivers what is queued and ends.
pub struct WebhookBackend {
    tx: mpsc::Sender<Job>,
    stats: Arc<WebhookStats>,
    mode: Mode,
    url: String,
    task: JoinHandle<()>,
}

type Ack = oneshot::Sender<Result<(), WriteError>>;

enum Job {
    Event { event: Box<Event>, ack: Option<Ack> },
    Flush(Ack),
}

impl WebhookBackend {
    /// Starts the sender task on `runtime` (e.g. `tokio::runtime::Handle::current()`).
    pub fn start(
        endpoint: Endpoint,
        config: WebhookConfig,
        runtime: &tokio::runtime::Handle,
    ) -> WebhookBackend {
        let stats = Arc::new(WebhookStats::default());
        let (tx, rx) = mpsc::channel(config.buffer_size.max(1));
        let mode = config.mode;
        let url = endpoint.url().to_owned();
        let sender = sender::Sender::new(endpoint, config, stats.clone());
        let task = runtime.spawn(sender.run(rx));
        WebhookBackend {
            tx,
            stats,
            mode,
            url,
            task,
        }
    }

    /// The configured mode.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The receiver's URL, for log lines.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Submits an event and waits until the batch holding it got a 2xx, or was given up after
    /// the last attempt (then the error says why). Waits for room when the queue is full. For
    /// the blocking modes.
    pub async fn write(&self, event: Event) -> Result<(), WriteError> {
        let (ack, done) = oneshot::channel();
        let job = Job::Event {
            event: Box::new(event),
            ack: Some(ack),
        };
        self.tx.send(job).await.map_err(|_| WriteError::Closed)?;
        done.await.unwrap_or(Err(WriteError::Closed))
    }

    /// Queues an event without waiting for its delivery, but waiting for room in the bounded
    /// queue (never drops). A later delivery failure is counted in the stats and makes
    /// [`StatsSnapshot::failing`] true. For events nobody waits for in the blocking modes.
    pub async fn enqueue(&self, event: Event) -> Result<(), WriteError> {
        let job = Job::Event {
            event: Box::new(event),
            ack: None,
        };
        self.tx.send(job).await.map_err(|_| WriteError::Closed)
    }

    /// Queues an event without waiting (batch mode). Never blocks: when the queue is full the
    /// event is dropped, counted and logged, and `false` is returned.
    pub fn try_enqueue(&self, event: Event) -> bool {
        let audit_id = event.audit_id.clone();
        let job = Job::Event {
            event: Box::new(event),
            ack: None,
        };
        match self.tx.try_send(job) {
            Ok(()) => true,
            Err(e) => {
                self.stats.events_dropped.fetch_add(1, Ordering::Relaxed);
                let why = match e {
                    mpsc::error::TrySendError::Full(_) => "audit buffer queue blocked",
                    mpsc::error::TrySendError::Closed(_) => "audit backend shut down",
                };
                tracing::error!(audit_id = %audit_id, url = %self.url, "{why}: audit event dropped");
                false
            }
        }
    }

    /// Waits until every event queued before this call is delivered or given up; a batch
    /// being filled is sent at once. Returns the error of the last batch if it was given up.
    pub async fn flush(&self) -> Result<(), WriteError> {
        let (ack, done) = oneshot::channel();
        self.tx
            .send(Job::Flush(ack))
            .await
            .map_err(|_| WriteError::Closed)?;
        done.await.unwrap_or(Err(WriteError::Closed))
    }

    /// The counters, for metrics and `/readyz`.
    pub fn stats(&self) -> StatsSnapshot {
        let s = &self.stats;
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        StatsSnapshot {
            events_sent: load(&s.events_sent),
            events_dropped: load(&s.events_dropped),
            events_failed: load(&s.events_failed),
            events_truncated: load(&s.events_truncated),
            batches_sent: load(&s.batches_sent),
            batches_failed: load(&s.batches_failed),
            attempts_failed: load(&s.attempts_failed),
            send_time: Duration::from_nanos(load(&s.send_nanos)),
            failing: s.failing.load(Ordering::Relaxed),
        }
    }

    /// Stops accepting events, delivers (or gives up) what is queued and waits for the sender
    /// task to end. With the receiver down this takes up to the full retry budget per batch.
    pub async fn close(self) {
        let WebhookBackend { tx, task, .. } = self;
        drop(tx);
        if let Err(e) = task.await {
            tracing::error!(error = %e, "audit webhook sender task failed");
        }
    }
}

/// The default [`WebhookConfig::max_event_bytes`]: 4 MiB. Falco drops events over 256 KiB by
/// default (`maxEventSize`); lower this to match the receiver.
pub const DEFAULT_MAX_EVENT_BYTES: usize = 4 << 20;

/// The default [`WebhookConfig::max_batch_bytes`]: 10 MiB, upstream's truncating backend's
/// batch limit (Falco accepts up to 12 MiB).
pub const DEFAULT_MAX_BATCH_BYTES: usize = 10 << 20;

#[cfg(test)]
mod test_support;
#[cfg(test)]
mod tests;

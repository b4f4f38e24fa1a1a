//! The sender task: collects batches from the queue, sends one at a time, retries, acknowledges.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::mpsc;

use super::{
    Ack, BatchObserver, BatchOutcome, DeliveryError, Endpoint, Job, Mode, Throttle, WebhookConfig,
    WebhookStats, WriteError,
};
use crate::event::Event;

pub(super) struct Sender {
    endpoint: Endpoint,
    mode: Mode,
    max_batch_size: usize,
    max_batch_wait: Duration,
    max_event_bytes: usize,
    max_batch_bytes: usize,
    initial_backoff: Duration,
    max_attempts: u32,
    attempt_timeout: Duration,
    throttle: Option<TokenBucket>,
    observer: Option<BatchObserver>,
    stats: Arc<WebhookStats>,
    /// An event that did not fit in the previous batch's bytes: first in the next one.
    carry: Option<Pending>,
    /// The outcome of the last batch, for flushes.
    last: Result<(), WriteError>,
}

/// One event, serialised, and who waits for it.
struct Pending {
    audit_id: String,
    json: Vec<u8>,
    ack: Option<Ack>,
}

/// What one pass over the queue produced.
struct Collected {
    batch: Vec<Pending>,
    flushes: Vec<Ack>,
    closed: bool,
}

impl Sender {
    pub(super) fn new(endpoint: Endpoint, config: WebhookConfig, stats: Arc<WebhookStats>) -> Self {
        let batch_mode = config.mode == Mode::Batch;
        let max_batch_bytes = config.max_batch_bytes.max(MIN_BATCH_BYTES);
        Sender {
            endpoint,
            mode: config.mode,
            max_batch_size: config.max_batch_size.max(1),
            max_batch_wait: config.max_batch_wait,
            // An event must fit in a batch on its own.
            max_event_bytes: config.max_event_bytes.min(max_batch_bytes - LIST_OVERHEAD),
            max_batch_bytes,
            initial_backoff: config.initial_backoff,
            max_attempts: config.max_attempts.max(1),
            attempt_timeout: config.attempt_timeout,
            throttle: config
                .throttle
                .filter(|_| batch_mode)
                .and_then(TokenBucket::new),
            observer: config.observer,
            stats,
            carry: None,
            last: Ok(()),
        }
    }

    pub(super) async fn run(mut self, mut rx: mpsc::Receiver<Job>) {
        loop {
            let Collected {
                batch,
                flushes,
                closed,
            } = self.collect(&mut rx).await;
            if !batch.is_empty() {
                self.deliver(batch).await;
            }
            for flush in flushes {
                let _ = flush.send(self.last.clone());
            }
            if closed && self.carry.is_none() {
                return;
            }
        }
    }

    /// Takes the next batch off the queue. Blocking modes: what is queued now, without waiting.
    /// Batch mode: until the batch is full or its first event has waited `max_batch_wait`. A
    /// flush ends the batch early; events queued after it go to the next one.
    async fn collect(&mut self, rx: &mut mpsc::Receiver<Job>) -> Collected {
        let mut out = Collected {
            batch: Vec::new(),
            flushes: Vec::new(),
            closed: false,
        };
        let mut bytes = LIST_OVERHEAD;
        let mut deadline = None;
        if let Some(p) = self.carry.take() {
            bytes += p.json.len() + 1;
            out.batch.push(p);
            deadline = Some(tokio::time::Instant::now() + self.max_batch_wait);
        }
        while out.batch.len() < self.max_batch_size && out.flushes.is_empty() {
            let job = match (out.batch.is_empty(), self.mode, deadline) {
                (true, _, _) => rx.recv().await,
                (false, Mode::Batch, Some(at)) => {
                    match tokio::time::timeout_at(at, rx.recv()).await {
                        Ok(job) => job,
                        Err(_elapsed) => break,
                    }
                }
                (false, _, _) => match rx.try_recv() {
                    Ok(job) => Some(job),
                    Err(mpsc::error::TryRecvError::Empty) => break,
                    Err(mpsc::error::TryRecvError::Disconnected) => None,
                },
            };
            let Some(job) = job else {
                out.closed = true;
                break;
            };
            match job {
                Job::Flush(ack) => out.flushes.push(ack),
                Job::Event { event, ack } => {
                    let audit_id = event.audit_id.clone();
                    let json = match self.encode(event) {
                        Ok(json) => json,
                        Err(e) => {
                            self.stats.events_dropped.fetch_add(1, Ordering::Relaxed);
                            tracing::error!(audit_id = %audit_id, error = %e, "audit event dropped");
                            if let Some(ack) = ack {
                                let _ = ack.send(Err(e));
                            }
                            continue;
                        }
                    };
                    let pending = Pending {
                        audit_id,
                        json,
                        ack,
                    };
                    if !out.batch.is_empty()
                        && bytes + pending.json.len() + 1 > self.max_batch_bytes
                    {
                        self.carry = Some(pending);
                        break;
                    }
                    bytes += pending.json.len() + 1;
                    out.batch.push(pending);
                    deadline
                        .get_or_insert_with(|| tokio::time::Instant::now() + self.max_batch_wait);
                }
            }
        }
        out
    }

    /// Serialises an event within `max_event_bytes`, removing its bodies if needed.
    fn encode(&self, mut event: Box<Event>) -> Result<Vec<u8>, WriteError> {
        let to_json =
            |event: &Event| serde_json::to_vec(event).map_err(|e| WriteError::Event(e.to_string()));
        let json = to_json(&event)?;
        if json.len() <= self.max_event_bytes {
            return Ok(json);
        }
        event.truncate_bodies();
        self.stats.events_truncated.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(audit_id = %event.audit_id, bytes = json.len(), "audit event bodies removed to fit the webhook's event limit");
        let json = to_json(&event)?;
        if json.len() > self.max_event_bytes {
            return Err(WriteError::Event(format!(
                "the event is {} bytes without its bodies, more than the limit of {}",
                json.len(),
                self.max_event_bytes
            )));
        }
        Ok(json)
    }

    /// Sends one batch, retrying until delivered or out of attempts, then acknowledges it.
    async fn deliver(&mut self, batch: Vec<Pending>) {
        let started = Instant::now();
        if let Some(bucket) = &mut self.throttle {
            bucket.acquire().await;
        }
        let body = list_body(&batch);
        let mut backoff = self.initial_backoff;
        let mut attempt = 0;
        let outcome = loop {
            attempt += 1;
            match self.attempt(body.clone()).await {
                Ok(()) => break Ok(()),
                Err(e) => {
                    self.stats.attempts_failed.fetch_add(1, Ordering::Relaxed);
                    if attempt >= self.max_attempts {
                        break Err(e);
                    }
                    let wait = jitter(backoff);
                    tracing::warn!(
                        url = %self.endpoint.url(),
                        attempt,
                        events = batch.len(),
                        retry_in = ?wait,
                        error = %ErrorChain(&e),
                        "audit webhook attempt failed; retrying"
                    );
                    tokio::time::sleep(wait).await;
                    backoff = backoff.mul_f64(BACKOFF_FACTOR);
                }
            }
        };
        let elapsed = started.elapsed();
        let s = &self.stats;
        s.send_nanos.fetch_add(
            u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        let events = batch.len() as u64;
        let result = match outcome {
            Ok(()) => {
                s.events_sent.fetch_add(events, Ordering::Relaxed);
                s.batches_sent.fetch_add(1, Ordering::Relaxed);
                s.failing.store(false, Ordering::Relaxed);
                Ok(())
            }
            Err(e) => {
                s.events_failed.fetch_add(events, Ordering::Relaxed);
                s.batches_failed.fetch_add(1, Ordering::Relaxed);
                s.failing.store(true, Ordering::Relaxed);
                let ids: Vec<&str> = batch.iter().map(|p| p.audit_id.as_str()).collect();
                tracing::error!(
                    url = %self.endpoint.url(),
                    attempts = attempt,
                    events = batch.len(),
                    audit_ids = %ids.join(","),
                    error = %ErrorChain(&e),
                    "audit webhook batch given up: events not delivered"
                );
                Err(WriteError::Webhook {
                    attempts: attempt,
                    source: Arc::new(e),
                })
            }
        };
        if let Some(observer) = &self.observer {
            observer(&BatchOutcome {
                events: batch.len(),
                duration: elapsed,
                ok: result.is_ok(),
            });
        }
        for p in batch {
            if let Some(ack) = p.ack {
                let _ = ack.send(result.clone());
            }
        }
        self.last = result;
    }

    /// One POST: success is any 2xx.
    async fn attempt(&mut self, body: Bytes) -> Result<(), DeliveryError> {
        let mut response = self
            .endpoint
            .post(body, self.attempt_timeout)
            .send()
            .await
            .map_err(DeliveryError::Request)?;
        let status = response.status();
        // Read (a bounded part of) the body so the connection can be reused; never log it.
        let mut read = 0;
        while read < MAX_RESPONSE_BYTES {
            match response.chunk().await {
                Ok(Some(chunk)) => read += chunk.len(),
                Ok(None) | Err(_) => break,
            }
        }
        if status.is_success() {
            Ok(())
        } else {
            Err(DeliveryError::Status(status.as_u16()))
        }
    }
}

/// The `EventList` around already-serialised events, byte for byte what serialising
/// [`EventList::new`](crate::event::EventList::new) gives.
pub(super) fn list_body_from<'a>(items: impl ExactSizeIterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut body = Vec::with_capacity(LIST_OVERHEAD);
    body.extend_from_slice(LIST_PREFIX);
    for (i, json) in items.enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(json);
    }
    body.extend_from_slice(LIST_SUFFIX);
    body
}

fn list_body(batch: &[Pending]) -> Bytes {
    Bytes::from(list_body_from(batch.iter().map(|p| p.json.as_slice())))
}

/// `d` plus up to 20 %.
fn jitter(d: Duration) -> Duration {
    d.mul_f64(1.0 + JITTER * fastrand::f64())
}

/// An error and its causes on one line, `a: b: c`.
struct ErrorChain<'a>(&'a dyn std::error::Error);

impl std::fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(e) = source {
            write!(f, ": {e}")?;
            source = e.source();
        }
        Ok(())
    }
}

/// A token bucket over batches.
struct TokenBucket {
    qps: f64,
    burst: f64,
    tokens: f64,
    at: Instant,
}

impl TokenBucket {
    fn new(t: Throttle) -> Option<TokenBucket> {
        if !(t.qps.is_finite() && t.qps > 0.0) {
            tracing::warn!(
                qps = t.qps,
                "audit webhook throttle qps is not positive: not throttling"
            );
            return None;
        }
        let burst = f64::from(t.burst.max(1));
        Some(TokenBucket {
            qps: t.qps,
            burst,
            tokens: burst,
            at: Instant::now(),
        })
    }

    async fn acquire(&mut self) {
        let now = Instant::now();
        self.tokens =
            (self.tokens + now.duration_since(self.at).as_secs_f64() * self.qps).min(self.burst);
        self.at = now;
        if self.tokens < 1.0 {
            let wait = Duration::from_secs_f64((1.0 - self.tokens) / self.qps);
            tokio::time::sleep(wait).await;
            self.tokens = 1.0;
            self.at = Instant::now();
        }
        self.tokens -= 1.0;
    }
}

const BACKOFF_FACTOR: f64 = 1.5;
const JITTER: f64 = 0.2;
const LIST_PREFIX: &[u8] =
    br#"{"kind":"EventList","apiVersion":"audit.k8s.io/v1","metadata":{},"items":["#;
const LIST_SUFFIX: &[u8] = b"]}";
const LIST_OVERHEAD: usize = LIST_PREFIX.len() + LIST_SUFFIX.len();
/// A batch limit below this would leave no room for any event.
const MIN_BATCH_BYTES: usize = 64 * 1024;
/// The most of a response body read (and discarded) per attempt.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;

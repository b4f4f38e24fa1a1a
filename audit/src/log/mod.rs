//! The log backend: audit events as JSON lines in a file (or stdout), hash-chained, fsynced in
//! group commits, rotated lumberjack-style.
//!
//! One writer thread owns the file and the [`Chain`]. Callers submit events, serialised on
//! their own thread as [`EventLine`]s, over a bounded queue; the writer takes everything queued
//! (up to [`LogConfig::max_batch`]), seals the events in order, writes them, fsyncs once and
//! then acknowledges each caller, so concurrent requests share one fsync. A failed write (e.g.
//! `ENOSPC`) is returned to every waiting caller, the file is cut back to its last complete
//! line and the chain does not advance.
//!
//! Modes keep kube-apiserver's names. In `blocking` and `blocking-strict` the caller awaits
//! [`LogBackend::write`], which resolves once the event is durable (or failed); what a failure
//! does to the request is the gateway's policy. In `batch` the caller uses
//! [`LogBackend::try_enqueue`], which never blocks: a full queue drops the event, counts it in
//! [`StatsSnapshot::events_dropped`] and logs it.
//!
//! Rotation (`max_size` > 0) only happens between lines: a line never spans two files and is
//! never torn by rotation. On restart a torn last line (a crash mid-write) is cut off and the
//! chain resumes from the last complete line, of the current file or else of the newest
//! rotated one. Writing to stdout (`-`) has no rotation, no fsync and starts a new chain at
//! sequence 0 on every start.

mod rotate;
mod writer;

use std::fs::{DirBuilder, File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use jiff::Timestamp;
use tokio::sync::{mpsc, oneshot};

use crate::chain::{Chain, ChainError, Link};
use crate::event::EventLine;
use crate::lines::{self, MAX_LINE_BYTES};
use rotate::{Naming, Retention};
use writer::{Fault, Sink, Writer};

/// `--audit-log-mode`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Mode {
    /// The request waits for its event to be durable; the gateway decides what a failure
    /// means.
    #[default]
    Blocking,
    /// As `Blocking`; upstream fails the request when an event cannot be stored.
    BlockingStrict,
    /// The request does not wait; a full queue drops the event (counted and logged).
    Batch,
}

impl Mode {
    /// The flag value: `blocking`, `blocking-strict` or `batch`.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Blocking => "blocking",
            Mode::BlockingStrict => "blocking-strict",
            Mode::Batch => "batch",
        }
    }
}

impl FromStr for Mode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "blocking" => Ok(Mode::Blocking),
            "blocking-strict" => Ok(Mode::BlockingStrict),
            "batch" => Ok(Mode::Batch),
            other => Err(format!(
                "unknown audit log mode `{other}` (want blocking, blocking-strict or batch)"
            )),
        }
    }
}

/// Observes each group commit: how many events, how long write + fsync took, whether it
/// succeeded. Called on the writer thread; keep it cheap (e.g. a histogram observation).
pub type BatchObserver = Arc<dyn Fn(&BatchOutcome) + Send + Sync>;

/// One group commit, as a [`BatchObserver`] sees it.
#[derive(Clone, Debug)]
pub struct BatchOutcome {
    /// Events in the batch.
    pub events: usize,
    /// Time spent writing and fsyncing (including rotations).
    pub duration: Duration,
    /// Whether every event of the batch was written.
    pub ok: bool,
}

/// Where and how to write.
#[derive(Clone)]
pub struct LogConfig {
    /// The file (`--audit-log-path`); `-` writes to stdout.
    pub path: PathBuf,
    /// Rotate before a line would make the file larger than this many bytes
    /// (`--audit-log-maxsize` is in MB: multiply by 1024 * 1024); 0 disables rotation.
    pub max_size: u64,
    /// Rotated files to keep (`--audit-log-maxbackup`); 0 keeps all.
    pub max_backups: u64,
    /// Days to keep rotated files, by the time in their names (`--audit-log-maxage`); 0
    /// keeps them whatever their age.
    pub max_age_days: u64,
    /// Gzip rotated files in the background (`--audit-log-compress`).
    pub compress: bool,
    /// `--audit-log-mode`.
    pub mode: Mode,
    /// Queue capacity (`--audit-log-batch-buffer-size`): in batch mode, events beyond it are
    /// dropped; in the blocking modes, callers wait for room.
    pub buffer_size: usize,
    /// Most events written in one group commit.
    pub max_batch: usize,
    /// The clock used to name rotated files and to age them.
    pub clock: fn() -> Timestamp,
    /// Called after every group commit.
    pub observer: Option<BatchObserver>,
}

impl LogConfig {
    /// kube-apiserver's defaults: 100 MB files, 100 backups, 366 days, no compression,
    /// blocking mode, a queue of 10000.
    pub fn new(path: impl Into<PathBuf>) -> LogConfig {
        LogConfig {
            path: path.into(),
            max_size: 100 * 1024 * 1024,
            max_backups: 100,
            max_age_days: 366,
            compress: false,
            mode: Mode::Blocking,
            buffer_size: 10_000,
            max_batch: 1_000,
            clock: Timestamp::now,
            observer: None,
        }
    }
}

impl std::fmt::Debug for LogConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogConfig")
            .field("path", &self.path)
            .field("max_size", &self.max_size)
            .field("max_backups", &self.max_backups)
            .field("max_age_days", &self.max_age_days)
            .field("compress", &self.compress)
            .field("mode", &self.mode)
            .field("buffer_size", &self.buffer_size)
            .field("max_batch", &self.max_batch)
            .finish_non_exhaustive()
    }
}

/// Why the log could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LogError {
    /// Creating the directory, opening, reading or repairing the file failed.
    #[error("cannot open audit log `{path}`")]
    Open {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The last line of the existing trail carries no chain value to continue from.
    #[error("cannot continue the audit chain from the last line of `{path}`")]
    Resume {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: ChainError,
    },
    /// The writer thread could not be started.
    #[error("cannot start the audit log writer")]
    Spawn(#[source] io::Error),
}

/// Why an event was not written, by either backend. Cloneable: one failed group commit (or
/// webhook batch) fails every caller in it.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WriteError {
    /// Writing or syncing the file failed.
    #[error("audit log write failed: {message}")]
    Io {
        /// The kind of I/O error (e.g. `StorageFull`).
        kind: io::ErrorKind,
        /// The error text.
        message: String,
    },
    /// The event cannot be serialised within the line bound.
    #[error("audit event cannot be written: {0}")]
    Event(String),
    /// The audit webhook did not accept the batch holding the event, within its retries.
    #[error("audit webhook did not accept the event after {attempts} attempts")]
    Webhook {
        /// Attempts made.
        attempts: u32,
        /// Why the last attempt failed.
        #[source]
        source: std::sync::Arc<crate::webhook::DeliveryError>,
    },
    /// The backend is shut down.
    #[error("audit backend is closed")]
    Closed,
}

impl From<&io::Error> for WriteError {
    fn from(e: &io::Error) -> Self {
        WriteError::Io {
            kind: e.kind(),
            message: e.to_string(),
        }
    }
}

/// An event made durable: its place in the chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Receipt {
    /// The event's sequence number and hash.
    pub link: Link,
}

/// Counters for metrics, updated by the writer; read with [`LogBackend::stats`].
#[derive(Debug, Default)]
struct LogStats {
    events_written: AtomicU64,
    events_dropped: AtomicU64,
    write_errors: AtomicU64,
    rotations: AtomicU64,
    batches: AtomicU64,
    write_nanos: AtomicU64,
    unhealthy: AtomicBool,
    head: Mutex<Option<Link>>,
}

/// A reading of the backend's counters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// Events durably written.
    pub events_written: u64,
    /// Events dropped because the batch-mode queue was full (or the backend closed).
    pub events_dropped: u64,
    /// Events whose write failed.
    pub write_errors: u64,
    /// File rotations.
    pub rotations: u64,
    /// Group commits.
    pub batches: u64,
    /// Total time spent writing and fsyncing.
    pub write_time: Duration,
    /// Whether the last group commit failed (cleared by the next one that succeeds).
    pub failing: bool,
    /// The last event written: sequence number and hash, to compare with the trail.
    pub head: Option<Link>,
}

/// The log backend. `Send + Sync`: share it behind an `Arc`.
pub struct LogBackend {
    tx: mpsc::Sender<Job>,
    stats: Arc<LogStats>,
    mode: Mode,
    writer: Option<JoinHandle<()>>,
    mill: Option<(std::sync::mpsc::Sender<()>, JoinHandle<()>)>,
}

enum Job {
    Event {
        line: EventLine,
        /// A second line written right after `line`, in the same file (the two stages of a
        /// request nobody waits for).
        then: Option<EventLine>,
        ack: Option<oneshot::Sender<Result<Receipt, WriteError>>>,
    },
    Flush(oneshot::Sender<Result<(), WriteError>>),
}

impl LogBackend {
    /// Opens (creating, mode 0600, its directory 0700) or continues the log and starts the
    /// writer thread. A torn last line is cut off first; the chain resumes after the last
    /// complete line.
    pub fn open(config: LogConfig) -> Result<LogBackend, LogError> {
        Self::open_inner(config, None)
    }

    fn open_inner(config: LogConfig, fault: Option<Arc<Fault>>) -> Result<LogBackend, LogError> {
        let stats = Arc::new(LogStats::default());
        let (tx, rx) = mpsc::channel(config.buffer_size.max(1));
        let open_err = |source| LogError::Open {
            path: config.path.clone(),
            source,
        };
        let (sink, chain, naming) = if config.path.as_os_str() == "-" {
            (Sink::Stdout, Chain::genesis(), None)
        } else {
            let (file, chain) = open_file(&config.path)?;
            let regular = file.metadata().map_err(open_err)?.file_type().is_file();
            let size = file.metadata().map_err(open_err)?.len();
            let naming = Naming::new(&config.path);
            (
                Sink::File {
                    file: Some(file),
                    size,
                    regular,
                    needs_repair: false,
                },
                chain,
                regular.then_some(naming),
            )
        };
        *lock(&stats.head) = chain.head();
        let retention = Retention {
            max_backups: config.max_backups,
            max_age_days: config.max_age_days,
            compress: config.compress,
        };
        let mill = match &naming {
            Some(naming) if config.max_size > 0 => {
                Some(spawn_mill(naming.clone(), retention, config.clock)?)
            }
            _ => None,
        };
        let mut writer = Writer {
            path: config.path.clone(),
            sink,
            chain,
            naming,
            max_size: config.max_size,
            clock: config.clock,
            observer: config.observer.clone(),
            stats: stats.clone(),
            mill: mill.as_ref().map(|(tx, _)| tx.clone()),
            fault,
            last_error: None,
            unsynced: false,
            last_sync: std::time::Instant::now(),
            buf: Vec::new(),
        };
        let max_batch = config.max_batch.max(1);
        let handle = std::thread::Builder::new()
            .name("audit-log-writer".into())
            .spawn(move || writer.run(rx, max_batch))
            .map_err(LogError::Spawn)?;
        Ok(LogBackend {
            tx,
            stats,
            mode: config.mode,
            writer: Some(handle),
            mill,
        })
    }

    /// The configured mode.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Submits an event and waits until it is durable (written and fsynced), or its write
    /// failed. Waits for room when the queue is full. For the blocking modes.
    pub async fn write(&self, event: impl Into<EventLine>) -> Result<Receipt, WriteError> {
        let (ack, done) = oneshot::channel();
        let job = Job::Event {
            line: event.into(),
            then: None,
            ack: Some(ack),
        };
        self.tx.send(job).await.map_err(|_| WriteError::Closed)?;
        done.await.unwrap_or(Err(WriteError::Closed))
    }

    /// Submits an event without waiting for it to be durable: it joins the next group commit.
    /// Waits for room when the queue is full (never drops). A later write error is counted in
    /// the stats and makes [`StatsSnapshot::failing`] true. For events whose loss on a crash
    /// is acceptable (reads in `blocking` mode).
    pub async fn enqueue(&self, event: impl Into<EventLine>) -> Result<(), WriteError> {
        let job = Job::Event {
            line: event.into(),
            then: None,
            ack: None,
        };
        self.tx.send(job).await.map_err(|_| WriteError::Closed)
    }

    /// As [`LogBackend::enqueue`] for two events sent at once: `first` then `second`, next to
    /// each other in the same file, each with its own chain link. One queue send instead of
    /// two, for the two stages of a request nobody waits for.
    pub async fn enqueue_pair(
        &self,
        first: impl Into<EventLine>,
        second: impl Into<EventLine>,
    ) -> Result<(), WriteError> {
        let job = Job::Event {
            line: first.into(),
            then: Some(second.into()),
            ack: None,
        };
        self.tx.send(job).await.map_err(|_| WriteError::Closed)
    }

    /// As [`LogBackend::write`], for callers outside an async runtime. Must not be called from
    /// inside one.
    pub fn write_blocking(&self, event: impl Into<EventLine>) -> Result<Receipt, WriteError> {
        let (ack, done) = oneshot::channel();
        let job = Job::Event {
            line: event.into(),
            then: None,
            ack: Some(ack),
        };
        self.tx.blocking_send(job).map_err(|_| WriteError::Closed)?;
        done.blocking_recv().unwrap_or(Err(WriteError::Closed))
    }

    /// Queues an event without waiting (batch mode). Never blocks: when the queue is full the
    /// event is dropped, counted and logged, and `false` is returned.
    pub fn try_enqueue(&self, event: impl Into<EventLine>) -> bool {
        self.try_send(Job::Event {
            line: event.into(),
            then: None,
            ack: None,
        })
    }

    /// As [`LogBackend::try_enqueue`] for two events, as [`LogBackend::enqueue_pair`] writes
    /// them. Both are dropped when the queue is full.
    pub fn try_enqueue_pair(
        &self,
        first: impl Into<EventLine>,
        second: impl Into<EventLine>,
    ) -> bool {
        self.try_send(Job::Event {
            line: first.into(),
            then: Some(second.into()),
            ack: None,
        })
    }

    fn try_send(&self, job: Job) -> bool {
        let events = match &job {
            Job::Event { then: Some(_), .. } => 2,
            _ => 1,
        };
        match self.tx.try_send(job) {
            Ok(()) => true,
            Err(e) => {
                self.stats
                    .events_dropped
                    .fetch_add(events, Ordering::Relaxed);
                let (why, job) = match e {
                    mpsc::error::TrySendError::Full(job) => ("audit buffer queue blocked", job),
                    mpsc::error::TrySendError::Closed(job) => ("audit backend shut down", job),
                };
                let audit_id = match &job {
                    Job::Event { line, .. } => line.audit_id(),
                    Job::Flush(_) => "",
                };
                tracing::error!(audit_id = %audit_id, "{why}: audit event dropped");
                false
            }
        }
    }

    /// Waits until every event queued before this call is written (or failed). Returns the
    /// error of the last group commit if it failed.
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
        StatsSnapshot {
            events_written: s.events_written.load(Ordering::Relaxed),
            events_dropped: s.events_dropped.load(Ordering::Relaxed),
            write_errors: s.write_errors.load(Ordering::Relaxed),
            rotations: s.rotations.load(Ordering::Relaxed),
            batches: s.batches.load(Ordering::Relaxed),
            write_time: Duration::from_nanos(s.write_nanos.load(Ordering::Relaxed)),
            failing: s.unhealthy.load(Ordering::Relaxed),
            head: *lock(&s.head),
        }
    }

    /// Stops accepting events, writes what is queued and waits for the writer and the
    /// background compression to finish. Call outside an async runtime (or via
    /// `spawn_blocking`).
    pub fn close(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        // Dropping the sender ends the writer loop once the queue is drained.
        let (closed_tx, _) = mpsc::channel(1);
        drop(std::mem::replace(&mut self.tx, closed_tx));
        if let Some(handle) = self.writer.take() {
            let _ = handle.join();
        }
        if let Some((tx, handle)) = self.mill.take() {
            drop(tx);
            let _ = handle.join();
        }
    }
}

impl Drop for LogBackend {
    fn drop(&mut self) {
        // Detach: the threads finish the queue on their own.
        self.writer.take();
        self.mill.take();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Opens the current file for appending, repairs a torn tail and finds where the chain stands.
fn open_file(path: &Path) -> Result<(File, Chain), LogError> {
    let open_err = |source| LogError::Open {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
        && !dir.exists()
    {
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(open_err)?;
    }
    let mut file = OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path)
        .map_err(open_err)?;
    let meta = file.metadata().map_err(open_err)?;
    if !meta.file_type().is_file() {
        // A device or pipe (e.g. /dev/full): nothing to resume from.
        return Ok((file, Chain::genesis()));
    }
    let tail = lines::tail(&mut file, MAX_LINE_BYTES).map_err(open_err)?;
    if tail.complete_len < tail.len {
        tracing::warn!(
            path = %path.display(),
            bytes = tail.len - tail.complete_len,
            "removing a torn last line from the audit log (a write cut short by a crash)"
        );
        file.set_len(tail.complete_len).map_err(open_err)?;
        file.sync_all().map_err(open_err)?;
    }
    let resume_err = |source| LogError::Resume {
        path: path.to_path_buf(),
        source,
    };
    let chain = match tail.last_line {
        Some(line) => Chain::resume_from(&line).map_err(resume_err)?,
        None => resume_from_backups(path)?,
    };
    if let Some(dir) = path.parent() {
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        rotate::sync_dir(dir).map_err(open_err)?;
    }
    Ok((file, chain))
}

/// The chain after the newest rotated file, when the current file is empty.
fn resume_from_backups(path: &Path) -> Result<Chain, LogError> {
    let naming = Naming::new(path);
    let backups = naming.backups().map_err(|source| LogError::Open {
        path: path.to_path_buf(),
        source,
    })?;
    for backup in backups {
        let last = lines::last_complete_line(&backup.path, MAX_LINE_BYTES).map_err(|source| {
            LogError::Open {
                path: backup.path.clone(),
                source,
            }
        })?;
        if let Some(line) = last {
            return Chain::resume_from(&line).map_err(|source| LogError::Resume {
                path: backup.path.clone(),
                source,
            });
        }
    }
    Ok(Chain::genesis())
}

type MillHandle = (std::sync::mpsc::Sender<()>, JoinHandle<()>);

fn spawn_mill(
    naming: Naming,
    retention: Retention,
    clock: fn() -> Timestamp,
) -> Result<MillHandle, LogError> {
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let handle = std::thread::Builder::new()
        .name("audit-log-mill".into())
        .spawn(move || {
            // One pass at start (an earlier run may have been cut short), then one per rotation.
            loop {
                if let Err(e) = rotate::mill(&naming, retention, clock()) {
                    tracing::error!(error = %e, "cannot compress or prune rotated audit logs");
                }
                if rx.recv().is_err() {
                    return;
                }
                while rx.try_recv().is_ok() {}
            }
        })
        .map_err(LogError::Spawn)?;
    Ok((tx, handle))
}

#[cfg(test)]
mod tests;

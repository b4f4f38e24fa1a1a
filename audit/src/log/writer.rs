//! The writer thread: group commits, rotation between lines, cut-back after a failed write.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use tokio::sync::mpsc;

use super::rotate::{self, Naming};
use super::{BatchObserver, BatchOutcome, Job, LogStats, Receipt, WriteError, lock};
use crate::chain::{Chain, Link};

/// Test-only fault injection: makes writes fail after writing part of their bytes.
#[derive(Debug, Default)]
pub(crate) struct Fault {
    pub(crate) fail: AtomicBool,
    pub(crate) partial: AtomicU64,
}

pub(super) enum Sink {
    Stdout,
    File {
        /// `None` after a rotation that could not open the new file; reopened on next use.
        file: Option<File>,
        /// Bytes in the file up to its last complete line.
        size: u64,
        regular: bool,
        /// A failed write could not be cut back: do so before writing again.
        needs_repair: bool,
    },
}

pub(super) struct Writer {
    pub(super) path: PathBuf,
    pub(super) sink: Sink,
    pub(super) chain: Chain,
    pub(super) naming: Option<Naming>,
    pub(super) max_size: u64,
    pub(super) clock: fn() -> Timestamp,
    pub(super) observer: Option<BatchObserver>,
    pub(super) stats: Arc<LogStats>,
    pub(super) mill: Option<std::sync::mpsc::Sender<()>>,
    pub(super) fault: Option<Arc<Fault>>,
    /// The error of the last group commit that had events, for flushes.
    pub(super) last_error: Option<WriteError>,
    /// Lines were written without an fsync since the last one.
    pub(super) unsynced: bool,
    /// When the file was last fsynced.
    pub(super) last_sync: Instant,
    /// The last commit's buffer, kept for its capacity: lines are sealed into it without
    /// growing it again for every group.
    pub(super) buf: Vec<u8>,
}

/// How long a group of events nobody waits for lingers to collect more before it is written.
const LINGER: Duration = Duration::from_millis(1);
/// The largest commit buffer kept for the next commit.
const KEPT_BUFFER: usize = 4 << 20;
/// Lines nobody waits for are fsynced at the latest with the first group commit after this.
const SYNC_INTERVAL: Duration = Duration::from_secs(1);

/// Whether anyone waits for this job's durability.
fn awaited(job: &Job) -> bool {
    matches!(job, Job::Event { ack: Some(_), .. } | Job::Flush(_))
}

/// A sealed line waiting to be written.
struct Pending {
    job: usize,
    /// The second line of its job: written in the same file as the one before it.
    joined: bool,
    range: std::ops::Range<usize>,
    link: Link,
}

impl Writer {
    pub(super) fn run(&mut self, mut rx: mpsc::Receiver<Job>, max_batch: usize) {
        let mut jobs = Vec::with_capacity(max_batch);
        while let Some(first) = rx.blocking_recv() {
            jobs.push(first);
            let drain = |jobs: &mut Vec<Job>, rx: &mut mpsc::Receiver<Job>| {
                while jobs.len() < max_batch {
                    match rx.try_recv() {
                        Ok(job) => jobs.push(job),
                        Err(_) => break,
                    }
                }
            };
            drain(&mut jobs, &mut rx);
            // Events nobody waits for (reads in blocking mode, batch mode) linger a moment to
            // share one write with the events behind them; a waiter is served at once.
            if !jobs.iter().any(awaited) && jobs.len() < max_batch {
                std::thread::sleep(LINGER);
                drain(&mut jobs, &mut rx);
            }
            self.commit(&mut jobs);
        }
        // Closing: what was written without an fsync is made durable now.
        if self.unsynced
            && let Sink::File { file: Some(f), .. } = &self.sink
            && let Err(e) = f.sync_data()
        {
            tracing::error!(error = %e, "audit log fsync at close failed");
        }
    }

    /// Writes one group: seal all, write in chunks that fit the current file (rotating between
    /// chunks), fsync per chunk, then acknowledge.
    fn commit(&mut self, jobs: &mut Vec<Job>) {
        let started = Instant::now();
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        let mut pending = Vec::with_capacity(jobs.len() * 2);
        let mut results: Vec<Option<Result<Receipt, WriteError>>> = Vec::with_capacity(jobs.len());
        let before = self.chain;
        let mut chain = self.chain;
        for (i, job) in jobs.iter_mut().enumerate() {
            results.push(None);
            if let Job::Event { line, then, .. } = job {
                let mut joined = false;
                for line in std::iter::once(&*line).chain(then.as_ref()) {
                    let start = buf.len();
                    match chain.seal_line(line, &mut buf) {
                        Ok(link) => pending.push(Pending {
                            job: i,
                            joined,
                            range: start..buf.len(),
                            link,
                        }),
                        Err(e) => {
                            tracing::error!(audit_id = %line.audit_id(), error = %e, "audit event not written");
                            if let Some(slot) = results.get_mut(i) {
                                *slot = Some(Err(WriteError::Event(e.to_string())));
                            }
                        }
                    }
                    joined = true;
                }
            }
        }
        // fsync when someone waits for durability, or when lines have waited long enough.
        let sync = jobs.iter().any(awaited) || self.last_sync.elapsed() >= SYNC_INTERVAL;
        let (written, error) = self.write_lines(&buf, &pending, sync);
        // The chain advances to the last durable line only.
        self.chain = match written.checked_sub(1).and_then(|i| pending.get(i)) {
            Some(p) => Chain::after(p.link),
            None => before,
        };
        for (k, p) in pending.iter().enumerate() {
            if let Some(slot) = results.get_mut(p.job) {
                *slot = Some(if k < written {
                    Ok(Receipt { link: p.link })
                } else {
                    Err(error.clone().unwrap_or(WriteError::Closed))
                });
            }
        }
        if !pending.is_empty() {
            self.record(pending.len(), written, started.elapsed(), &error);
            self.last_error = error;
        }
        // Kept unless a burst made it large.
        if buf.capacity() <= KEPT_BUFFER {
            self.buf = buf;
        }
        for (job, result) in jobs.drain(..).zip(results) {
            match job {
                Job::Event { ack: Some(ack), .. } => {
                    let _ = ack.send(result.unwrap_or(Err(WriteError::Closed)));
                }
                Job::Event { ack: None, .. } => {}
                Job::Flush(ack) => {
                    let _ = ack.send(match &self.last_error {
                        Some(e) => Err(e.clone()),
                        None => Ok(()),
                    });
                }
            }
        }
    }

    /// Updates the counters and tells the observer about one group commit.
    fn record(&self, events: usize, written: usize, elapsed: Duration, error: &Option<WriteError>) {
        let failed = events - written;
        let s = &self.stats;
        s.events_written
            .fetch_add(written as u64, Ordering::Relaxed);
        s.write_errors.fetch_add(failed as u64, Ordering::Relaxed);
        s.batches.fetch_add(1, Ordering::Relaxed);
        s.write_nanos.fetch_add(
            u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        s.unhealthy.store(error.is_some(), Ordering::Relaxed);
        *lock(&s.head) = self.chain.head();
        if let Some(e) = error {
            tracing::error!(error = %e, events = failed, "audit log write failed");
        }
        if let Some(observer) = &self.observer {
            observer(&BatchOutcome {
                events,
                duration: elapsed,
                ok: error.is_none(),
            });
        }
    }

    /// Writes the sealed lines; returns how many are durable and the error that stopped the
    /// rest.
    fn write_lines(
        &mut self,
        buf: &[u8],
        pending: &[Pending],
        sync: bool,
    ) -> (usize, Option<WriteError>) {
        if pending.is_empty() {
            return (0, None);
        }
        if let Err(e) = self.prepare() {
            return (0, Some(WriteError::from(&e)));
        }
        let mut durable = 0;
        let mut chunk_start = 0;
        let mut chunk_bytes = 0u64;
        for (k, p) in pending.iter().enumerate() {
            let len = p.range.len() as u64;
            // A job's two lines stay in one file: the decision to rotate is taken before the
            // first, for both.
            let group = match pending.get(k + 1) {
                Some(next) if next.joined => len + next.range.len() as u64,
                _ => len,
            };
            let size = self.size();
            if !p.joined
                && self.rotating()
                && size + chunk_bytes > 0
                && size + chunk_bytes + group > self.max_size
            {
                if chunk_bytes > 0 {
                    // A file about to be rotated away is always fsynced.
                    if let Err(e) =
                        self.write_chunk(buf, pending.get(chunk_start..k).unwrap_or_default(), true)
                    {
                        return (durable, Some(WriteError::from(&e)));
                    }
                    durable = k;
                }
                if let Err(e) = self.rotate() {
                    return (durable, Some(WriteError::from(&e)));
                }
                chunk_start = k;
                chunk_bytes = 0;
            }
            chunk_bytes += len;
        }
        if let Err(e) = self.write_chunk(buf, pending.get(chunk_start..).unwrap_or_default(), sync)
        {
            return (durable, Some(WriteError::from(&e)));
        }
        (pending.len(), None)
    }

    fn rotating(&self) -> bool {
        self.max_size > 0 && self.naming.is_some()
    }

    fn size(&self) -> u64 {
        match &self.sink {
            Sink::File { size, .. } => *size,
            Sink::Stdout => 0,
        }
    }

    /// Before writing: reopen after a failed rotation, cut back after a failed write.
    fn prepare(&mut self) -> io::Result<()> {
        let path = self.path.clone();
        let Sink::File {
            file,
            size,
            regular,
            needs_repair,
        } = &mut self.sink
        else {
            return Ok(());
        };
        if file.is_none() {
            let f = OpenOptions::new()
                .read(true)
                .append(true)
                .create(true)
                .mode(0o600)
                .open(&path)?;
            *size = f.metadata()?.len();
            *file = Some(f);
        }
        if *needs_repair && *regular {
            if let Some(f) = file.as_ref() {
                f.set_len(*size)?;
                f.sync_all()?;
            }
            *needs_repair = false;
        }
        Ok(())
    }

    fn write_chunk(&mut self, buf: &[u8], chunk: &[Pending], sync: bool) -> io::Result<()> {
        let (Some(first), Some(last)) = (chunk.first(), chunk.last()) else {
            return Ok(());
        };
        // Lines written earlier without an fsync are covered by this chunk's.
        let sync = sync || (self.unsynced && self.last_sync.elapsed() >= SYNC_INTERVAL);
        let bytes = buf
            .get(first.range.start..last.range.end)
            .unwrap_or_default();
        let fault = self.fault.clone();
        match &mut self.sink {
            Sink::Stdout => {
                let mut out = io::stdout().lock();
                out.write_all(bytes)?;
                out.flush()
            }
            Sink::File {
                file,
                size,
                regular,
                needs_repair,
            } => {
                let f = file
                    .as_mut()
                    .ok_or_else(|| io::Error::other("audit log file is not open"))?;
                let result = write_faulty(f, bytes, fault.as_deref())
                    .and_then(|()| if sync { f.sync_data() } else { Ok(()) });
                match result {
                    Ok(()) => {
                        *size += bytes.len() as u64;
                        if sync {
                            self.unsynced = false;
                            self.last_sync = Instant::now();
                        } else {
                            self.unsynced = true;
                        }
                        Ok(())
                    }
                    Err(e) => {
                        // Never leave part of a line behind: cut back to the last complete one.
                        if *regular && f.set_len(*size).and_then(|()| f.sync_data()).is_err() {
                            *needs_repair = true;
                        }
                        Err(e)
                    }
                }
            }
        }
    }

    /// Renames the current file to its rotated name and starts a new one.
    fn rotate(&mut self) -> io::Result<()> {
        let Some(naming) = &self.naming else {
            return Ok(());
        };
        let backup = naming.backup_path((self.clock)());
        let dir = naming.dir().to_path_buf();
        let Sink::File { file, size, .. } = &mut self.sink else {
            return Ok(());
        };
        fs::rename(&self.path, &backup)?;
        *file = None;
        let new = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .mode(0o600)
            .open(&self.path);
        let new = match new {
            Ok(f) => f,
            Err(e) => {
                // Put the old file back so the trail stays in one place; retried next batch.
                if fs::rename(&backup, &self.path).is_ok() {
                    *file = OpenOptions::new().append(true).open(&self.path).ok();
                }
                return Err(e);
            }
        };
        *size = 0;
        *file = Some(new);
        rotate::sync_dir(&dir)?;
        self.stats.rotations.fetch_add(1, Ordering::Relaxed);
        if let Some(mill) = &self.mill {
            let _ = mill.send(());
        }
        Ok(())
    }
}

fn write_faulty(f: &mut File, bytes: &[u8], fault: Option<&Fault>) -> io::Result<()> {
    if let Some(fault) = fault
        && fault.fail.load(Ordering::Relaxed)
    {
        let partial = usize::try_from(fault.partial.load(Ordering::Relaxed))
            .unwrap_or(0)
            .min(bytes.len());
        f.write_all(bytes.get(..partial).unwrap_or_default())?;
        return Err(io::Error::new(
            io::ErrorKind::StorageFull,
            "No space left on device (injected)",
        ));
    }
    f.write_all(bytes)
}

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::sync::atomic::Ordering;

use serde_json::json;

use super::writer::Fault;
use super::*;
use crate::event::{AuditId, Event};
use crate::policy::{Level, Stage};
use crate::verify::{VerifyOptions, verify};

fn event(n: u64) -> Event {
    let mut ev = Event::new(
        &AuditId::parse(format!("id-{n}").as_bytes()).unwrap(),
        Level::Metadata,
        Stage::ResponseComplete,
        Timestamp::from_second(1_700_000_000 + n as i64).unwrap(),
    );
    ev.verb = "create".into();
    ev.request_uri = format!("/api/v1/namespaces/default/configmaps/c{n}");
    ev
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

fn names(dir: &Path) -> Vec<String> {
    files_in(dir)
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect()
}

/// A clock that advances one second per call, so rotated names differ and sort.
fn ticking() -> Timestamp {
    static NOW: AtomicU64 = AtomicU64::new(1_800_000_000);
    Timestamp::from_second(NOW.fetch_add(1, Ordering::Relaxed) as i64).unwrap()
}

fn config(path: &Path) -> LogConfig {
    LogConfig {
        clock: ticking,
        ..LogConfig::new(path)
    }
}

/// [`config`], rotating at 2000 bytes and keeping every backup.
fn rotating_at_2000_bytes(path: &Path) -> LogConfig {
    LogConfig {
        max_size: 2000,
        max_backups: 0,
        max_age_days: 0,
        ..config(path)
    }
}

#[test]
fn writes_chained_lines_that_verify() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let log = LogBackend::open(config(&path)).unwrap();
    for i in 0..5 {
        let r = log.write_blocking(event(i)).unwrap();
        assert_eq!(r.link.seq, i);
    }
    let stats = log.stats();
    assert_eq!((stats.events_written, stats.write_errors), (5, 0));
    assert_eq!(stats.head.unwrap().seq, 4);
    assert!(!stats.failing);
    log.close();
    let text = fs::read_to_string(&path).unwrap();
    assert_eq!(text.lines().count(), 5);
    for line in text.lines() {
        let ev: Event = serde_json::from_str(line).unwrap();
        assert!(ev.annotations.contains_key(crate::CHAIN_ANNOTATION));
    }
    let r = verify(
        &[&path],
        VerifyOptions {
            require_start: true,
        },
    );
    assert!(r.is_intact(), "{:?}", r.problem);
    assert_eq!(r.head, stats.head);
}

#[test]
fn creates_file_0600_in_directory_0700() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("new/sub/audit.log");
    let log = LogBackend::open(config(&path)).unwrap();
    log.write_blocking(event(0)).unwrap();
    log.close();
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(path.parent().unwrap()), 0o700);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_share_group_commits() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let log = Arc::new(LogBackend::open(config(&path)).unwrap());
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let log = log.clone();
            tokio::spawn(async move { log.write(event(i)).await })
        })
        .collect();
    let mut seqs = Vec::new();
    for t in tasks {
        seqs.push(t.await.unwrap().unwrap().link.seq);
    }
    seqs.sort();
    assert_eq!(seqs, (0..200).collect::<Vec<_>>());
    log.flush().await.unwrap();
    let stats = log.stats();
    assert_eq!(stats.events_written, 200);
    assert!(stats.batches <= 200);
    let r = verify(&[&path], VerifyOptions::default());
    assert!(r.is_intact(), "{:?}", r.problem);
    assert_eq!(r.events, 200);
}

#[test]
fn rotation_by_size_never_splits_a_line_and_the_chain_continues() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let log = LogBackend::open(rotating_at_2000_bytes(&path)).unwrap();
    for i in 0..60 {
        log.write_blocking(event(i)).unwrap();
    }
    let stats = log.stats();
    log.close();
    let files = files_in(dir.path());
    assert!(files.len() > 3, "{files:?}");
    assert_eq!(stats.rotations as usize, files.len() - 1);
    for f in &files {
        let bytes = fs::read(f).unwrap();
        assert!(bytes.len() <= 2000, "{f:?} has {} bytes", bytes.len());
        assert!(bytes.ends_with(b"\n"));
        for line in bytes.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            serde_json::from_slice::<Event>(line).unwrap();
        }
    }
    assert!(
        names(dir.path())
            .iter()
            .all(|n| n == "audit.log" || (n.starts_with("audit-") && n.ends_with(".log")))
    );
    let r = verify(
        &files,
        VerifyOptions {
            require_start: true,
        },
    );
    assert!(r.is_intact(), "{:?}", r.problem);
    assert_eq!(r.events, 60);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pair_is_written_in_order_in_one_file_with_a_link_each() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let log = LogBackend::open(rotating_at_2000_bytes(&path)).unwrap();
    for i in 0..30 {
        log.enqueue_pair(event(2 * i), event(2 * i + 1))
            .await
            .unwrap();
    }
    log.flush().await.unwrap();
    let stats = log.stats();
    assert_eq!(stats.events_written, 60);
    log.close();
    let files = files_in(dir.path());
    assert!(files.len() > 3, "{files:?}");
    let mut uris = Vec::new();
    for f in &files {
        let text = fs::read_to_string(f).unwrap();
        let events: Vec<Event> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        // Every file holds whole pairs: an even event first, its odd partner next.
        assert_eq!(events.len() % 2, 0, "{f:?}");
        for pair in events.chunks(2) {
            let n = |e: &Event| e.audit_id.trim_start_matches("id-").parse::<u64>().unwrap();
            assert_eq!(
                (n(&pair[0]) % 2, n(&pair[1])),
                (0, n(&pair[0]) + 1),
                "{f:?}"
            );
        }
        uris.extend(events.into_iter().map(|e| e.request_uri));
    }
    let expected: Vec<String> = (0..60)
        .map(|n| format!("/api/v1/namespaces/default/configmaps/c{n}"))
        .collect();
    uris.sort_by_key(|u| u.rsplit('c').next().unwrap().parse::<u64>().unwrap());
    assert_eq!(uris, expected);
    let r = verify(
        &files,
        VerifyOptions {
            require_start: true,
        },
    );
    assert!(r.is_intact(), "{:?}", r.problem);
    assert_eq!(r.events, 60);
}

#[test]
fn a_line_larger_than_max_size_gets_a_file_of_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let log = LogBackend::open(LogConfig {
        max_size: 100,
        max_backups: 0,
        ..config(&path)
    })
    .unwrap();
    for i in 0..3 {
        log.write_blocking(event(i)).unwrap();
    }
    log.close();
    let files = files_in(dir.path());
    assert_eq!(files.len(), 3);
    for f in &files {
        assert_eq!(fs::read_to_string(f).unwrap().lines().count(), 1);
    }
    assert!(verify(&files, VerifyOptions::default()).is_intact());
}

#[test]
fn max_backups_prunes_the_oldest_rotated_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let log = LogBackend::open(LogConfig {
        max_size: 1000,
        max_backups: 2,
        max_age_days: 0,
        ..config(&path)
    })
    .unwrap();
    for i in 0..40 {
        log.write_blocking(event(i)).unwrap();
    }
    log.close();
    let files = files_in(dir.path());
    assert_eq!(files.len(), 3, "{:?}", names(dir.path()));
    let r = verify(&files, VerifyOptions::default());
    assert!(r.is_intact(), "{:?}", r.problem);
    assert!(r.start_seq.unwrap() > 0);
    assert_eq!(r.head.unwrap().seq, 39);
}

#[test]
fn compress_gzips_rotated_files_and_the_trail_still_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let log = LogBackend::open(LogConfig {
        max_size: 1500,
        max_backups: 0,
        max_age_days: 0,
        compress: true,
        ..config(&path)
    })
    .unwrap();
    for i in 0..30 {
        log.write_blocking(event(i)).unwrap();
    }
    log.close();
    let names = names(dir.path());
    assert!(names.len() > 2, "{names:?}");
    for n in &names {
        assert!(n == "audit.log" || n.ends_with(".log.gz"), "{n}");
    }
    let r = verify(
        &files_in(dir.path()),
        VerifyOptions {
            require_start: true,
        },
    );
    assert!(r.is_intact(), "{:?}", r.problem);
    assert_eq!(r.events, 30);
}

#[test]
fn startup_finishes_interrupted_compression_and_prunes_by_age() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    // A compression cut short (tmp left), one that renamed but did not remove the source,
    // and a file far older than max_age.
    fs::write(
        dir.path().join("audit-2030-01-01T00-00-00.000.log.gz.tmp"),
        b"half",
    )
    .unwrap();
    fs::write(dir.path().join("audit-2030-01-02T00-00-00.000.log"), b"").unwrap();
    let gz = dir.path().join("audit-2030-01-02T00-00-00.000.log.gz");
    let empty_gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    fs::write(&gz, empty_gz.finish().unwrap()).unwrap();
    fs::write(dir.path().join("audit-2001-01-01T00-00-00.000.log"), b"").unwrap();
    let log = LogBackend::open(LogConfig {
        max_size: 1 << 20,
        max_age_days: 1,
        compress: true,
        clock: || "2030-01-02T12:00:00Z".parse().unwrap(),
        ..LogConfig::new(&path)
    })
    .unwrap();
    log.close();
    assert_eq!(
        names(dir.path()),
        vec![
            "audit-2030-01-02T00-00-00.000.log.gz".to_owned(),
            "audit.log".to_owned()
        ]
    );
}

#[test]
fn full_device_returns_errors_to_every_caller() {
    let log = LogBackend::open(config(Path::new("/dev/full"))).unwrap();
    let err = log.write_blocking(event(0)).unwrap_err();
    assert!(
        matches!(
            err,
            WriteError::Io {
                kind: io::ErrorKind::StorageFull,
                ..
            }
        ),
        "{err:?}"
    );
    let stats = log.stats();
    assert_eq!((stats.events_written, stats.write_errors), (0, 1));
    assert!(stats.failing);
    assert_eq!(stats.head, None);
    log.close();
}

#[test]
fn failed_write_leaves_no_partial_line_and_does_not_advance_the_chain() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let fault = Arc::new(Fault::default());
    let log = LogBackend::open_inner(config(&path), Some(fault.clone())).unwrap();
    for i in 0..3 {
        log.write_blocking(event(i)).unwrap();
    }
    let good_len = fs::metadata(&path).unwrap().len();
    fault.partial.store(37, Ordering::Relaxed);
    fault.fail.store(true, Ordering::Relaxed);
    for i in 3..5 {
        let err = log.write_blocking(event(i)).unwrap_err();
        assert!(matches!(
            err,
            WriteError::Io {
                kind: io::ErrorKind::StorageFull,
                ..
            }
        ));
        assert_eq!(fs::metadata(&path).unwrap().len(), good_len);
    }
    assert!(log.stats().failing);
    // Space returns: the next event continues the chain where it stood.
    fault.fail.store(false, Ordering::Relaxed);
    assert_eq!(log.write_blocking(event(5)).unwrap().link.seq, 3);
    let stats = log.stats();
    assert!(!stats.failing);
    assert_eq!((stats.events_written, stats.write_errors), (4, 2));
    log.close();
    let r = verify(
        &[&path],
        VerifyOptions {
            require_start: true,
        },
    );
    assert!(r.is_intact(), "{:?}", r.problem);
    assert_eq!(r.events, 4);
}

#[test]
fn torn_tail_is_repaired_on_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let log = LogBackend::open(config(&path)).unwrap();
    for i in 0..5 {
        log.write_blocking(event(i)).unwrap();
    }
    log.close();
    // kill -9 in the middle of a write.
    let mut f = OpenOptions::new().append(true).open(&path).unwrap();
    f.write_all(br#"{"kind":"Event","apiVersion":"audit.k8s.io/v1","lev"#)
        .unwrap();
    drop(f);
    let torn = verify(&[&path], VerifyOptions::default());
    assert!(torn.is_intact() && torn.torn_tail.is_some());

    let log = LogBackend::open(config(&path)).unwrap();
    assert_eq!(log.stats().head.unwrap().seq, 4);
    assert_eq!(log.write_blocking(event(5)).unwrap().link.seq, 5);
    log.close();
    let r = verify(
        &[&path],
        VerifyOptions {
            require_start: true,
        },
    );
    assert!(r.is_intact(), "{:?}", r.problem);
    assert_eq!((r.events, r.torn_tail), (6, None));
}

#[test]
fn restart_with_an_empty_current_file_continues_from_the_newest_rotated_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let log = LogBackend::open(config(&path)).unwrap();
    for i in 0..4 {
        log.write_blocking(event(i)).unwrap();
    }
    log.close();
    // A rotation happened, then a crash before the next write.
    fs::rename(&path, dir.path().join("audit-2030-01-01T00-00-00.000.log")).unwrap();
    fs::write(&path, b"").unwrap();
    let log = LogBackend::open(config(&path)).unwrap();
    assert_eq!(log.write_blocking(event(4)).unwrap().link.seq, 4);
    log.close();
    let r = verify(
        &files_in(dir.path()),
        VerifyOptions {
            require_start: true,
        },
    );
    assert!(r.is_intact(), "{:?}", r.problem);
    assert_eq!(r.events, 5);
}

#[test]
fn refuses_to_continue_a_file_without_a_chain() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    fs::write(&path, b"{\"kind\":\"Event\"}\n").unwrap();
    assert!(matches!(
        LogBackend::open(config(&path)),
        Err(LogError::Resume { .. })
    ));
}

#[test]
fn oversized_event_fails_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let log = LogBackend::open(config(&path)).unwrap();
    let mut huge = event(0);
    huge.annotations
        .insert("x".into(), "y".repeat(MAX_LINE_BYTES + 1));
    assert!(matches!(
        log.write_blocking(huge),
        Err(WriteError::Event(_))
    ));
    let mut big_body = event(1);
    big_body.object_ref = Some(Default::default());
    big_body.request_object = Some(json!({"data": "z".repeat(MAX_LINE_BYTES)}));
    assert_eq!(log.write_blocking(big_body).unwrap().link.seq, 0);
    assert_eq!(log.write_blocking(event(2)).unwrap().link.seq, 1);
    log.close();
    assert!(verify(&[&path], VerifyOptions::default()).is_intact());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_mode_drops_and_counts_when_the_queue_is_full() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    // The observer holds the writer inside its first commit until released.
    let (entered_tx, entered_rx) = std::sync::mpsc::channel::<()>();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let gate = Arc::new(Mutex::new((entered_tx, release_rx)));
    let observer: BatchObserver = Arc::new(move |_| {
        let g = gate.lock().unwrap();
        let _ = g.0.send(());
        let _ = g.1.recv();
    });
    let log = LogBackend::open(LogConfig {
        mode: Mode::Batch,
        buffer_size: 2,
        observer: Some(observer),
        ..config(&path)
    })
    .unwrap();
    assert_eq!(log.mode(), Mode::Batch);
    assert!(log.try_enqueue(event(0)));
    entered_rx.recv().unwrap();
    // The writer is stuck after its first commit: two fit in the queue, the rest drop.
    let accepted: Vec<bool> = (1..6).map(|i| log.try_enqueue(event(i))).collect();
    assert_eq!(accepted, vec![true, true, false, false, false]);
    assert_eq!(log.stats().events_dropped, 3);
    for _ in 0..3 {
        let _ = release_tx.send(());
    }
    drop(release_tx);
    log.flush().await.unwrap();
    let stats = log.stats();
    assert_eq!((stats.events_written, stats.events_dropped), (3, 3));
}

#[test]
fn modes_have_upstream_names() {
    for m in [Mode::Blocking, Mode::BlockingStrict, Mode::Batch] {
        assert_eq!(m.as_str().parse::<Mode>().unwrap(), m);
    }
    assert!("strict".parse::<Mode>().is_err());
    assert_eq!(Mode::default(), Mode::Blocking);
}

#[test]
fn observer_sees_each_group_commit() {
    let dir = tempfile::tempdir().unwrap();
    let seen = Arc::new(AtomicU64::new(0));
    let s = seen.clone();
    let log = LogBackend::open(LogConfig {
        observer: Some(Arc::new(move |o: &BatchOutcome| {
            assert!(o.ok);
            s.fetch_add(o.events as u64, Ordering::Relaxed);
        })),
        ..config(&dir.path().join("audit.log"))
    })
    .unwrap();
    for i in 0..3 {
        log.write_blocking(event(i)).unwrap();
    }
    log.close();
    assert_eq!(seen.load(Ordering::Relaxed), 3);
}

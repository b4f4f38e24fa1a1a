use std::io::Write;

use flate2::Compression;
use flate2::write::GzEncoder;
use jiff::Timestamp;

use super::*;
use crate::chain::Chain;
use crate::event::{AuditId, Event};
use crate::policy::{Level, Stage};

fn event(n: u64) -> Event {
    let mut ev = Event::new(
        &AuditId::parse(format!("id-{n}").as_bytes()).unwrap(),
        Level::Metadata,
        Stage::ResponseComplete,
        Timestamp::from_second(1_700_000_000 + n as i64).unwrap(),
    );
    ev.verb = "get".into();
    ev.request_uri = format!("/api/v1/namespaces/default/pods/p{n}");
    ev
}

/// `n` chained lines (each with its `\n`), starting from genesis.
fn chained_lines(n: u64) -> Vec<Vec<u8>> {
    let mut chain = Chain::genesis();
    (0..n)
        .map(|i| {
            let mut out = Vec::new();
            chain.seal(&mut event(i), &mut out).unwrap();
            out
        })
        .collect()
}

struct Trail {
    dir: tempfile::TempDir,
}

impl Trail {
    fn new() -> Self {
        Trail {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn write(&self, name: &str, lines: &[Vec<u8>]) -> PathBuf {
        let path = self.dir.path().join(name);
        let bytes = lines.concat();
        if name.ends_with(".gz") {
            let mut enc = GzEncoder::new(Vec::new(), Compression::default());
            enc.write_all(&bytes).unwrap();
            std::fs::write(&path, enc.finish().unwrap()).unwrap();
        } else {
            std::fs::write(&path, bytes).unwrap();
        }
        path
    }
}

fn run(files: &[PathBuf]) -> Report {
    verify(files, VerifyOptions::default())
}

fn at(report: &Report) -> (String, u64, Option<u64>) {
    let loc = match report.problem.as_ref().expect("a problem") {
        Problem::Modified { at }
        | Problem::HashMismatch { at }
        | Problem::Deleted { at, .. }
        | Problem::Inserted { at }
        | Problem::Reordered { at, .. }
        | Problem::MissingFile { at, .. }
        | Problem::Torn { at }
        | Problem::Malformed { at, .. }
        | Problem::NonZeroStart { at } => at,
        Problem::Unreadable { .. } => panic!("unreadable"),
    };
    (
        loc.file.file_name().unwrap().to_string_lossy().into_owned(),
        loc.line,
        loc.seq,
    )
}

#[test]
fn untouched_trail_passes() {
    let t = Trail::new();
    let lines = chained_lines(10);
    let f = t.write("audit.log", &lines);
    let r = run(&[f]);
    assert!(r.is_intact(), "{:?}", r.problem);
    assert_eq!((r.events, r.start_seq), (10, Some(0)));
    assert_eq!(r.head.unwrap().seq, 9);
    assert_eq!(r.torn_tail, None);
}

#[test]
fn rotated_files_in_any_order_plain_or_gzip_pass() {
    let t = Trail::new();
    let lines = chained_lines(30);
    let a = t.write("audit-2024-01-01T00-00-00.000.log.gz", &lines[..10]);
    let b = t.write("audit-2024-01-02T00-00-00.000.log", &lines[10..20]);
    let c = t.write("audit.log", &lines[20..]);
    let empty = t.write("empty.log", &[]);
    let r = run(&[c.clone(), empty, a.clone(), b.clone()]);
    assert!(r.is_intact(), "{}", r.problem.unwrap());
    assert_eq!(r.events, 30);
    let order: Vec<_> = r.files.iter().map(|f| f.first_seq).collect();
    assert_eq!(order, vec![Some(0), Some(10), Some(20), None]);
    assert_eq!(r.files[0].path, a);
}

#[test]
fn changed_byte_is_a_modified_line() {
    let t = Trail::new();
    let mut lines = chained_lines(10);
    let pos = lines[4].iter().position(|&b| b == b'p').unwrap();
    lines[4][pos] = b'q';
    let r = run(&[t.write("audit.log", &lines)]);
    assert!(
        matches!(r.problem, Some(Problem::Modified { .. })),
        "{:?}",
        r.problem
    );
    assert_eq!(at(&r), ("audit.log".into(), 5, Some(4)));
    assert_eq!(r.events, 4);
}

#[test]
fn modified_and_rehashed_line_shows_at_the_next_link() {
    let t = Trail::new();
    let mut lines = chained_lines(10);
    // Rewrite event 4 and recompute its hash from the real event 3: event 5 no longer chains
    // to it (and looks modified itself: the two cannot be told apart).
    let mut chain = Chain::resume_from(lines[3].strip_suffix(b"\n").unwrap()).unwrap();
    let mut forged = event(4);
    forged.verb = "delete".into();
    let mut out = Vec::new();
    chain.seal(&mut forged, &mut out).unwrap();
    lines[4] = out;
    let r = run(&[t.write("audit.log", &lines)]);
    assert!(
        matches!(r.problem, Some(Problem::Modified { .. })),
        "{:?}",
        r.problem
    );
    assert_eq!(at(&r), ("audit.log".into(), 6, Some(5)));
    assert!(r.problem.unwrap().to_string().contains("previous line"));
}

#[test]
fn changed_hash_digit_is_detected() {
    let t = Trail::new();
    let mut lines = chained_lines(5);
    let n = lines[2].len();
    // The last hex digit sits just before `"}}\n`.
    let i = n - 5;
    lines[2][i] = if lines[2][i] == b'0' { b'1' } else { b'0' };
    let r = run(&[t.write("audit.log", &lines)]);
    assert_eq!(at(&r), ("audit.log".into(), 3, Some(2)));
}

#[test]
fn deleted_line_is_a_gap() {
    let t = Trail::new();
    let mut lines = chained_lines(10);
    lines.remove(6);
    lines.remove(6);
    let r = run(&[t.write("audit.log", &lines)]);
    assert_eq!(
        r.problem
            .as_ref()
            .map(|p| matches!(p, Problem::Deleted { missing, .. } if *missing == (6..=7))),
        Some(true),
        "{:?}",
        r.problem
    );
    assert_eq!(at(&r), ("audit.log".into(), 7, Some(8)));
}

#[test]
fn swapped_pair_is_reordered() {
    let t = Trail::new();
    let mut lines = chained_lines(10);
    lines.swap(3, 4);
    let r = run(&[t.write("audit.log", &lines)]);
    assert!(
        matches!(r.problem, Some(Problem::Reordered { expected: 3, .. })),
        "{:?}",
        r.problem
    );
    assert_eq!(at(&r), ("audit.log".into(), 4, Some(4)));
}

#[test]
fn line_moved_later_is_reordered() {
    let t = Trail::new();
    let mut lines = chained_lines(10);
    let moved = lines.remove(2);
    lines.insert(7, moved);
    let r = run(&[t.write("audit.log", &lines)]);
    assert!(
        matches!(r.problem, Some(Problem::Reordered { expected: 2, .. })),
        "{:?}",
        r.problem
    );
    assert_eq!(at(&r), ("audit.log".into(), 3, Some(3)));
}

#[test]
fn inserted_line_is_detected() {
    let t = Trail::new();
    // A copy of an earlier line.
    let mut lines = chained_lines(10);
    let copy = lines[1].clone();
    lines.insert(5, copy);
    let r = run(&[t.write("audit.log", &lines)]);
    assert!(
        matches!(r.problem, Some(Problem::Inserted { .. })),
        "{:?}",
        r.problem
    );
    assert_eq!(at(&r), ("audit.log".into(), 6, Some(1)));

    // A forged line with the right next sequence number.
    let mut lines = chained_lines(10);
    // Event 99 sealed as seq 5 of another chain.
    let mut bogus = Chain::genesis();
    let mut out = Vec::new();
    for i in 0..5 {
        bogus.seal(&mut event(100 + i), &mut Vec::new()).unwrap();
    }
    bogus.seal(&mut event(99), &mut out).unwrap();
    lines.insert(5, out);
    let r = run(&[t.write("audit2.log", &lines)]);
    assert!(
        matches!(r.problem, Some(Problem::Inserted { .. })),
        "{:?}",
        r.problem
    );
    assert_eq!(at(&r), ("audit2.log".into(), 6, Some(5)));
}

#[test]
fn removed_middle_rotated_file_is_a_missing_file() {
    let t = Trail::new();
    let lines = chained_lines(30);
    let a = t.write("a.log", &lines[..10]);
    t.write("b.log", &lines[10..20]);
    let c = t.write("c.log", &lines[20..]);
    let r = run(&[a, c]);
    match &r.problem {
        Some(Problem::MissingFile { after, at, missing }) => {
            assert_eq!(*missing, 10..=19);
            assert_eq!((after.line, after.seq), (10, Some(9)));
            assert_eq!((at.line, at.seq), (1, Some(20)));
        }
        other => panic!("{other:?}"),
    }
    assert!(
        r.problem
            .unwrap()
            .to_string()
            .contains("c.log:1 (seq 20): file missing")
    );
}

#[test]
fn pruned_oldest_files_are_information_unless_start_is_required() {
    let t = Trail::new();
    let lines = chained_lines(30);
    let b = t.write("b.log.gz", &lines[10..20]);
    let c = t.write("c.log", &lines[20..]);
    let r = run(&[c.clone(), b.clone()]);
    assert!(r.is_intact(), "{:?}", r.problem);
    assert_eq!((r.start_seq, r.events), (Some(10), 20));
    let strict = verify(
        &[b, c],
        VerifyOptions {
            require_start: true,
        },
    );
    assert!(matches!(strict.problem, Some(Problem::NonZeroStart { .. })));
}

#[test]
fn torn_tail_is_a_notice_and_earlier_lines_verify() {
    let t = Trail::new();
    let mut lines = chained_lines(5);
    let cut = lines[4].len() / 2;
    lines[4].truncate(cut);
    let f = t.write("audit.log", &lines);
    let r = run(&[f]);
    assert!(r.is_intact(), "{:?}", r.problem);
    assert_eq!(r.events, 4);
    assert_eq!(r.torn_tail.as_ref().map(|l| l.line), Some(5));
}

#[test]
fn torn_line_inside_the_trail_is_a_problem() {
    let t = Trail::new();
    let mut lines = chained_lines(10);
    lines[4].truncate(20);
    let a = t.write("a.log", &lines[..5]);
    let b = t.write("b.log", &lines[5..]);
    let r = run(&[a, b]);
    assert!(
        matches!(r.problem, Some(Problem::Torn { .. })),
        "{:?}",
        r.problem
    );
    assert_eq!(at(&r), ("a.log".into(), 5, None));
}

#[test]
fn hostile_lines_are_reported_not_panicked_on() {
    let t = Trail::new();
    let lines = chained_lines(3);
    for (name, bad) in [
        ("garbage.log", b"not json at all\n".to_vec()),
        ("utf8.log", b"\xff\xfe\xfd\n".to_vec()),
        ("nochain.log", b"{\"kind\":\"Event\"}\n".to_vec()),
        (
            "huge.log",
            [vec![b'x'; MAX_LINE_BYTES + 10], b"\n".to_vec()].concat(),
        ),
    ] {
        let mut all = lines.clone();
        all.push(bad);
        let r = run(&[t.write(name, &all)]);
        assert!(
            matches!(r.problem, Some(Problem::Malformed { .. })),
            "{name}: {:?}",
            r.problem
        );
        assert_eq!(at(&r).1, 4, "{name}");
    }
    // A corrupt gzip file and a missing file.
    let path = t.dir.path().join("bad.log.gz");
    std::fs::write(&path, b"\x1f\x8b\x08\x00garbage").unwrap();
    assert!(matches!(
        run(&[path]).problem,
        Some(Problem::Unreadable { .. })
    ));
    let missing = t.dir.path().join("nope.log");
    assert!(matches!(
        run(&[missing]).problem,
        Some(Problem::Unreadable { .. })
    ));
    // A truncated gzip of a good trail: the complete lines before the cut are still read.
    let gz = t.write("cut.log.gz", &chained_lines(200));
    let bytes = std::fs::read(&gz).unwrap();
    std::fs::write(&gz, &bytes[..bytes.len() / 2]).unwrap();
    let r = run(&[gz]);
    assert!(!r.is_intact());
}

#[test]
fn empty_trail_is_intact_with_no_events() {
    let r = run(&[]);
    assert!(r.is_intact());
    assert_eq!((r.events, r.start_seq, r.head), (0, None, None));
}

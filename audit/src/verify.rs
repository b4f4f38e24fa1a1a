//! `portcullis audit verify`: checks the hash chain of an audit trail and points at the first
//! place where it breaks.
//!
//! Files may be given in any order, plain or gzip; they are put in chain order by the sequence
//! number of their first line. The report names the first problem by file, line and sequence
//! number and says what it looks like: a modified, deleted, inserted or reordered line, a
//! missing rotated file, a torn line. A torn *last* line of the trail (a write cut short by a
//! crash) is reported as a notice, not a problem: the chain up to the last complete line still
//! verifies, and the log backend removes such a line before it appends again.
//!
//! A trail may start at a sequence number above 0 when its oldest rotated files were pruned
//! (`--audit-log-maxbackup`, `--audit-log-maxage`); that is reported as information unless
//! [`VerifyOptions::require_start`] asks for a trail that starts at 0. See [`crate::chain`] for
//! what the chain can and cannot prove.

use std::fmt;
use std::io;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};

use crate::chain::{self, LineLink, Link};
use crate::lines::{self, LineReader, MAX_LINE_BYTES, RawLine};

/// Options of [`verify`].
#[derive(Clone, Copy, Debug, Default)]
pub struct VerifyOptions {
    /// Treat a trail that does not start at sequence 0 as a problem.
    pub require_start: bool,
}

/// Where in the trail something is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    /// The file.
    pub file: PathBuf,
    /// The line, from 1.
    pub line: u64,
    /// The sequence number the line carries, if it could be read.
    pub seq: Option<u64>,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)?;
        if let Some(seq) = self.seq {
            write!(f, " (seq {seq})")?;
        }
        Ok(())
    }
}

/// The first thing wrong with a trail.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Problem {
    /// The line does not match its recorded hash while the next line chains to that hash: the
    /// line was changed (or the previous line was rewritten with a recomputed hash).
    Modified {
        /// The changed line.
        at: Location,
    },
    /// The line does not chain to the one before it, nor the next line to it: lines around
    /// here were changed.
    HashMismatch {
        /// The line that fails.
        at: Location,
    },
    /// Lines are missing inside a file: the sequence jumps.
    Deleted {
        /// The first line after the gap.
        at: Location,
        /// The sequence numbers missing.
        missing: RangeInclusive<u64>,
    },
    /// An extra line: without it the chain continues.
    Inserted {
        /// The extra line.
        at: Location,
    },
    /// Lines are out of order: a sequence number that belongs elsewhere.
    Reordered {
        /// The first line out of place.
        at: Location,
        /// The sequence number expected there.
        expected: u64,
    },
    /// A whole file is missing between two files of the trail.
    MissingFile {
        /// The last line before the gap.
        after: Location,
        /// The first line after the gap.
        at: Location,
        /// The sequence numbers missing.
        missing: RangeInclusive<u64>,
    },
    /// A line without its newline that is not the last line of the trail.
    Torn {
        /// The line.
        at: Location,
    },
    /// A line that carries no readable chain value, or is too long to read.
    Malformed {
        /// The line.
        at: Location,
        /// What is wrong.
        reason: String,
    },
    /// The trail does not start at sequence 0 ([`VerifyOptions::require_start`]).
    NonZeroStart {
        /// The first line.
        at: Location,
    },
    /// A file could not be read (missing, permissions, corrupt gzip).
    Unreadable {
        /// The file.
        file: PathBuf,
        /// The error.
        reason: String,
    },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Modified { at } => write!(
                f,
                "{at}: line modified: its content does not match its recorded hash, which the next line chains to (or the previous line was rewritten with a recomputed hash)"
            ),
            Problem::HashMismatch { at } => write!(
                f,
                "{at}: line does not chain to the previous line, nor the next line to it (lines around here were modified)"
            ),
            Problem::Deleted { at, missing } => write!(
                f,
                "{at}: line(s) deleted before this line: seq {}..={} missing",
                missing.start(),
                missing.end()
            ),
            Problem::Inserted { at } => {
                write!(f, "{at}: line inserted (the chain continues without it)")
            }
            Problem::Reordered { at, expected } => {
                write!(f, "{at}: lines reordered: expected seq {expected} here")
            }
            Problem::MissingFile { after, at, missing } => write!(
                f,
                "{at}: file missing between {} and this file (or lines cut from the end of the earlier one): seq {}..={} missing",
                after,
                missing.start(),
                missing.end()
            ),
            Problem::Torn { at } => write!(f, "{at}: torn line (no newline) inside the trail"),
            Problem::Malformed { at, reason } => write!(f, "{at}: {reason}"),
            Problem::NonZeroStart { at } => write!(
                f,
                "{at}: trail does not start at seq 0 (older files pruned or missing)"
            ),
            Problem::Unreadable { file, reason } => {
                write!(f, "{}: cannot read: {reason}", file.display())
            }
        }
    }
}

/// One file of the trail, in chain order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileSummary {
    /// The file.
    pub path: PathBuf,
    /// The sequence number of its first readable line.
    pub first_seq: Option<u64>,
}

/// The outcome of [`verify`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    /// The files, in chain order.
    pub files: Vec<FileSummary>,
    /// Events verified (up to the first problem).
    pub events: u64,
    /// The sequence number of the first event; above 0 when older files were pruned.
    pub start_seq: Option<u64>,
    /// The last event verified: compare with a copy kept elsewhere to detect a cut tail.
    pub head: Option<Link>,
    /// A torn last line at the end of the trail (a crash mid-write); not counted in `events`.
    pub torn_tail: Option<Location>,
    /// The first problem; `None` when the chain is intact.
    pub problem: Option<Problem>,
}

impl Report {
    /// Whether the chain is intact (a torn tail does not count against it).
    pub fn is_intact(&self) -> bool {
        self.problem.is_none()
    }
}

/// Verifies the hash chain over `files` (any order, plain or `.gz`).
pub fn verify<P: AsRef<Path>>(files: &[P], options: VerifyOptions) -> Report {
    let mut report = Report {
        files: Vec::new(),
        events: 0,
        start_seq: None,
        head: None,
        torn_tail: None,
        problem: None,
    };
    let mut ordered = Vec::with_capacity(files.len());
    for path in files {
        let path = path.as_ref().to_path_buf();
        match first_seq(&path) {
            Ok(first_seq) => ordered.push(FileSummary { path, first_seq }),
            Err(e) => {
                report.problem = Some(Problem::Unreadable {
                    file: path,
                    reason: e.to_string(),
                });
                return report;
            }
        }
    }
    // Files without any readable line (an empty current file) go last.
    ordered.sort_by(|a, b| {
        (a.first_seq.is_none(), a.first_seq, &a.path).cmp(&(
            b.first_seq.is_none(),
            b.first_seq,
            &b.path,
        ))
    });
    report.files = ordered;
    let paths: Vec<PathBuf> = report.files.iter().map(|f| f.path.clone()).collect();
    check(&paths, options, &mut report);
    report
}

/// A line of the trail, in chain order.
struct Entry {
    file: usize,
    line: u64,
    kind: EntryKind,
}

enum EntryKind {
    Line {
        bytes: Vec<u8>,
        link: Result<LineLink, chain::ChainError>,
    },
    Torn,
    TooLong(u64),
    Unreadable(io::Error),
}

/// All lines of the files, in order.
struct Trail<'a> {
    paths: &'a [PathBuf],
    file: usize,
    reader: Option<LineReader<Box<dyn io::BufRead + Send>>>,
}

impl<'a> Trail<'a> {
    fn new(paths: &'a [PathBuf], from_file: usize) -> Self {
        Trail {
            paths,
            file: from_file,
            reader: None,
        }
    }
}

impl Iterator for Trail<'_> {
    type Item = Entry;

    fn next(&mut self) -> Option<Entry> {
        loop {
            let path = self.paths.get(self.file)?;
            let reader = match &mut self.reader {
                Some(r) => r,
                None => match lines::open(path) {
                    Ok(r) => self.reader.insert(LineReader::new(r, MAX_LINE_BYTES)),
                    Err(e) => {
                        let entry = Entry {
                            file: self.file,
                            line: 0,
                            kind: EntryKind::Unreadable(e),
                        };
                        self.file = usize::MAX;
                        return Some(entry);
                    }
                },
            };
            let file = self.file;
            match reader.next_line() {
                None => {
                    self.reader = None;
                    self.file += 1;
                }
                Some(Err(e)) => {
                    self.file = usize::MAX;
                    return Some(Entry {
                        file,
                        line: 0,
                        kind: EntryKind::Unreadable(e),
                    });
                }
                Some(Ok((line, raw))) => {
                    let kind = match raw {
                        RawLine::Complete(bytes) => EntryKind::Line {
                            link: chain::parse_link(&bytes),
                            bytes,
                        },
                        RawLine::Torn(_) => EntryKind::Torn,
                        RawLine::TooLong { len } => EntryKind::TooLong(len),
                    };
                    return Some(Entry { file, line, kind });
                }
            }
        }
    }
}

/// The sequence number of the first line of a file that carries one.
pub(crate) fn first_seq(path: &Path) -> io::Result<Option<u64>> {
    let mut reader = LineReader::new(lines::open(path)?, MAX_LINE_BYTES);
    while let Some(line) = reader.next_line() {
        if let (_, RawLine::Complete(bytes)) = line?
            && let Ok(link) = chain::parse_link(&bytes)
        {
            return Ok(Some(link.seq));
        }
    }
    Ok(None)
}

/// The chain state after the last good line.
struct Prev {
    expected: u64,
    hash: [u8; 32],
    file: usize,
    line: u64,
}

fn check(paths: &[PathBuf], options: VerifyOptions, report: &mut Report) {
    let loc = |e: &Entry, seq: Option<u64>| Location {
        file: paths.get(e.file).cloned().unwrap_or_default(),
        line: e.line,
        seq,
    };
    let mut trail = Trail::new(paths, 0).peekable();
    let mut prev: Option<Prev> = None;
    while let Some(entry) = trail.next() {
        let (bytes, link) = match &entry.kind {
            EntryKind::Line {
                bytes,
                link: Ok(link),
            } => (bytes, *link),
            EntryKind::Line { link: Err(e), .. } => {
                report.problem = Some(Problem::Malformed {
                    at: loc(&entry, None),
                    reason: e.to_string(),
                });
                return;
            }
            EntryKind::Torn => {
                if trail.peek().is_none() {
                    report.torn_tail = Some(loc(&entry, None));
                } else {
                    report.problem = Some(Problem::Torn {
                        at: loc(&entry, None),
                    });
                }
                return;
            }
            EntryKind::TooLong(len) => {
                report.problem = Some(Problem::Malformed {
                    at: loc(&entry, None),
                    reason: format!("line of {len} bytes is longer than {MAX_LINE_BYTES}"),
                });
                return;
            }
            EntryKind::Unreadable(e) => {
                report.problem = Some(Problem::Unreadable {
                    file: paths.get(entry.file).cloned().unwrap_or_default(),
                    reason: e.to_string(),
                });
                return;
            }
        };
        let at = loc(&entry, Some(link.seq));
        let state = match &prev {
            Some(p) => (p.expected, p.hash),
            None if link.seq == 0 => (0, [0; 32]),
            None => {
                // Older files were pruned: this line anchors the chain.
                report.start_seq = Some(link.seq);
                if options.require_start {
                    report.problem = Some(Problem::NonZeroStart { at });
                    return;
                }
                accept(report, &mut prev, &entry, link);
                continue;
            }
        };
        let (expected, prev_hash) = state;
        if link.seq == expected && chain::line_hash(&prev_hash, bytes, &link) == link.recorded {
            if prev.is_none() {
                report.start_seq = Some(0);
            }
            accept(report, &mut prev, &entry, link);
            continue;
        }
        let next = match trail.peek() {
            Some(Entry {
                kind:
                    EntryKind::Line {
                        bytes,
                        link: Ok(link),
                    },
                ..
            }) => Some((bytes.as_slice(), *link)),
            _ => None,
        };
        report.problem = Some(classify(
            paths, &prev, expected, prev_hash, &entry, bytes, link, next, at,
        ));
        return;
    }
}

fn accept(report: &mut Report, prev: &mut Option<Prev>, entry: &Entry, link: LineLink) {
    report.events += 1;
    report.head = Some(Link {
        seq: link.seq,
        hash: link.recorded,
    });
    *prev = Some(Prev {
        expected: link.seq.saturating_add(1),
        hash: link.recorded,
        file: entry.file,
        line: entry.line,
    });
}

/// Names what went wrong at a line that does not continue the chain, looking at the line
/// after it (and, for a jump forward, at the rest of the trail).
#[allow(clippy::too_many_arguments)]
fn classify(
    paths: &[PathBuf],
    prev: &Option<Prev>,
    expected: u64,
    prev_hash: [u8; 32],
    entry: &Entry,
    bytes: &[u8],
    link: LineLink,
    next: Option<(&[u8], LineLink)>,
    at: Location,
) -> Problem {
    let chains = |prev: &[u8; 32], bytes: &[u8], link: &LineLink| {
        chain::line_hash(prev, bytes, link) == link.recorded
    };
    let next_continues_prev =
        next.is_some_and(|(nb, nl)| nl.seq == expected && chains(&prev_hash, nb, &nl));
    if link.seq == expected {
        // Right place, wrong hash.
        if next.is_some_and(|(nb, nl)| nl.seq == link.seq + 1 && chains(&link.recorded, nb, &nl)) {
            return Problem::Modified { at };
        }
        if next_continues_prev {
            return Problem::Inserted { at };
        }
        return Problem::HashMismatch { at };
    }
    if next_continues_prev {
        let swapped = next
            .is_some_and(|(_, nl)| link.seq == nl.seq + 1 && chains(&nl.recorded, bytes, &link));
        return if swapped {
            Problem::Reordered { at, expected }
        } else {
            Problem::Inserted { at }
        };
    }
    if link.seq < expected {
        return Problem::Reordered { at, expected };
    }
    let missing = expected..=link.seq - 1;
    if appears_later(paths, entry, &missing) {
        return Problem::Reordered { at, expected };
    }
    match prev {
        Some(p) if p.file != entry.file && first_line_of_file(paths, entry) => {
            Problem::MissingFile {
                after: Location {
                    file: paths.get(p.file).cloned().unwrap_or_default(),
                    line: p.line,
                    seq: expected.checked_sub(1),
                },
                at,
                missing,
            }
        }
        _ => Problem::Deleted { at, missing },
    }
}

/// Whether the entry is the first chained line of its file.
fn first_line_of_file(paths: &[PathBuf], entry: &Entry) -> bool {
    Trail::new(paths, entry.file)
        .take_while(|e| e.file == entry.file && e.line <= entry.line)
        .all(|e| e.line == entry.line || !matches!(e.kind, EntryKind::Line { link: Ok(_), .. }))
}

/// Whether a line with a sequence number in `missing` comes after `entry` in the trail.
fn appears_later(paths: &[PathBuf], entry: &Entry, missing: &RangeInclusive<u64>) -> bool {
    Trail::new(paths, entry.file)
        .skip_while(|e| e.file == entry.file && e.line <= entry.line)
        .any(|e| match e.kind {
            EntryKind::Line { link: Ok(l), .. } => missing.contains(&l.seq),
            _ => false,
        })
}

#[cfg(test)]
mod tests;

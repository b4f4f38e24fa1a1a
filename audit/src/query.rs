//! `portcullis audit query`: reads events from an audit trail (rotated files, plain or gzip,
//! in chain order) and keeps those a [`Filter`] selects, for output as a table or JSON lines.
//!
//! Reading never panics on bad input: an unreadable file, a line that is not an event, invalid
//! UTF-8 or a line over [`MAX_LINE_BYTES`] comes out of the iterator as a [`QueryError`] naming
//! file and line, and reading goes on with the next line.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use jiff::Timestamp;

use crate::event::{ANNOTATION_DECISION, Event};
use crate::lines::{self, LineReader, MAX_LINE_BYTES, RawLine};
use crate::policy::Stage;

/// Which events to keep. Every field that is set must match.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    /// The user name: the authenticated user or the impersonated one.
    pub user: Option<String>,
    /// The verb.
    pub verb: Option<String>,
    /// `pods` (any subresource or none) or `pods/log` (that subresource).
    pub resource: Option<String>,
    /// The namespace (`objectRef.namespace`).
    pub namespace: Option<String>,
    /// The `authorization.k8s.io/decision` annotation: `allow` or `forbid`.
    pub decision: Option<String>,
    /// Keep events whose `stageTimestamp` is at or after this.
    pub since: Option<Timestamp>,
    /// Keep events whose `stageTimestamp` is before this.
    pub until: Option<Timestamp>,
    /// The stage.
    pub stage: Option<Stage>,
}

impl Filter {
    /// Whether `event` passes the filter.
    pub fn matches(&self, event: &Event) -> bool {
        let eq = |want: &Option<String>, got: &str| want.as_deref().is_none_or(|w| w == got);
        let object = event.object_ref.as_ref();
        let user_ok = self.user.as_deref().is_none_or(|u| {
            event.user.username == u
                || event
                    .impersonated_user
                    .as_ref()
                    .is_some_and(|i| i.username == u)
        });
        let resource_ok = self.resource.as_deref().is_none_or(|want| {
            let Some(o) = object else { return false };
            match want.split_once('/') {
                Some((res, sub)) => o.resource == res && o.subresource == sub,
                None => o.resource == want,
            }
        });
        let time = event.stage_timestamp.timestamp();
        user_ok
            && eq(&self.verb, &event.verb)
            && resource_ok
            && self
                .namespace
                .as_deref()
                .is_none_or(|ns| object.is_some_and(|o| o.namespace == ns))
            && eq(&self.decision, event.decision().unwrap_or(""))
            && self.since.is_none_or(|s| time >= s)
            && self.until.is_none_or(|u| time < u)
            && self.stage.is_none_or(|s| event.stage == s)
    }
}

/// An event read from the trail, with where it came from and its line as written.
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    /// The file.
    pub file: PathBuf,
    /// The line, from 1.
    pub line: u64,
    /// The event.
    pub event: Event,
    /// The line exactly as written (without its newline): the JSON-lines output.
    pub raw: String,
}

/// A line or file that could not be read as an event.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QueryError {
    /// The file could not be opened or read (including corrupt gzip data).
    #[error("{}: cannot read", file.display())]
    Unreadable {
        /// The file.
        file: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The line is not an audit event.
    #[error("{}:{line}: not an audit event: {reason}", file.display())]
    BadLine {
        /// The file.
        file: PathBuf,
        /// The line.
        line: u64,
        /// What is wrong.
        reason: String,
    },
    /// The line is longer than [`MAX_LINE_BYTES`].
    #[error("{}:{line}: line of {len} bytes is longer than {MAX_LINE_BYTES}", file.display())]
    TooLong {
        /// The file.
        file: PathBuf,
        /// The line.
        line: u64,
        /// Its length.
        len: u64,
    },
    /// The last line of a file has no newline (being written, or cut by a crash).
    #[error("{}:{line}: incomplete last line", file.display())]
    Torn {
        /// The file.
        file: PathBuf,
        /// The line.
        line: u64,
    },
}

/// The events of `files` that `filter` keeps, in trail order: files sorted by the sequence
/// number of their first line (files without a chain by name, which orders lumberjack's
/// rotated names by time, the current file last).
pub fn query<P: AsRef<Path>>(files: &[P], filter: Filter) -> Query {
    let mut ordered: Vec<(Option<u64>, PathBuf)> = files
        .iter()
        .map(|p| {
            let path = p.as_ref().to_path_buf();
            (crate::verify::first_seq(&path).ok().flatten(), path)
        })
        .collect();
    ordered.sort_by(|a, b| (a.0.is_none(), a.0, &a.1).cmp(&(b.0.is_none(), b.0, &b.1)));
    Query {
        files: ordered.into_iter().map(|(_, p)| p).collect(),
        next_file: 0,
        current: None,
        filter,
    }
}

/// The iterator [`query`] returns.
pub struct Query {
    files: Vec<PathBuf>,
    next_file: usize,
    current: Option<(PathBuf, LineReader<Box<dyn std::io::BufRead + Send>>)>,
    filter: Filter,
}

impl Iterator for Query {
    type Item = Result<Record, QueryError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let (file, reader) = match &mut self.current {
                Some(cur) => (&cur.0, &mut cur.1),
                None => {
                    let file = self.files.get(self.next_file)?.clone();
                    self.next_file += 1;
                    match lines::open(&file) {
                        Ok(r) => {
                            let cur = self
                                .current
                                .insert((file, LineReader::new(r, MAX_LINE_BYTES)));
                            (&cur.0, &mut cur.1)
                        }
                        Err(source) => return Some(Err(QueryError::Unreadable { file, source })),
                    }
                }
            };
            let item = match reader.next_line() {
                None => {
                    self.current = None;
                    continue;
                }
                Some(Err(source)) => Err(QueryError::Unreadable {
                    file: file.clone(),
                    source,
                }),
                Some(Ok((line, RawLine::Torn(_)))) => Err(QueryError::Torn {
                    file: file.clone(),
                    line,
                }),
                Some(Ok((line, RawLine::TooLong { len }))) => Err(QueryError::TooLong {
                    file: file.clone(),
                    line,
                    len,
                }),
                Some(Ok((line, RawLine::Complete(bytes)))) => match decode(bytes) {
                    Ok((event, raw)) => {
                        if !self.filter.matches(&event) {
                            continue;
                        }
                        Ok(Record {
                            file: file.clone(),
                            line,
                            event,
                            raw,
                        })
                    }
                    Err(reason) => Err(QueryError::BadLine {
                        file: file.clone(),
                        line,
                        reason,
                    }),
                },
            };
            // An I/O error ends this file (the reader is done); line errors do not.
            if matches!(item, Err(QueryError::Unreadable { .. })) {
                self.current = None;
            }
            return Some(item);
        }
    }
}

fn decode(bytes: Vec<u8>) -> Result<(Event, String), String> {
    let raw = String::from_utf8(bytes).map_err(|_| "invalid UTF-8".to_owned())?;
    let event: Event = serde_json::from_str(&raw).map_err(|e| e.to_string())?;
    Ok((event, raw))
}

/// Column titles of [`table_row`].
pub const TABLE_COLUMNS: [&str; 8] = [
    "TIME",
    "STAGE",
    "USER",
    "VERB",
    "RESOURCE",
    "NAMESPACE/NAME",
    "CODE",
    "DECISION",
];

/// The table cells of an event, control characters escaped (user names, paths and names come
/// from clients and must not drive the terminal).
pub fn table_row(event: &Event) -> [String; 8] {
    let user = match &event.impersonated_user {
        Some(i) => format!("{} (as {})", event.user.username, i.username),
        None => event.user.username.clone(),
    };
    let (resource, place) = match &event.object_ref {
        Some(o) => {
            let resource = if o.subresource.is_empty() {
                o.resource.clone()
            } else {
                format!("{}/{}", o.resource, o.subresource)
            };
            let place = match (o.namespace.is_empty(), o.name.is_empty()) {
                (true, _) => o.name.clone(),
                (false, true) => format!("{}/", o.namespace),
                (false, false) => format!("{}/{}", o.namespace, o.name),
            };
            (resource, place)
        }
        None => (
            event
                .request_uri
                .split('?')
                .next()
                .unwrap_or_default()
                .to_owned(),
            String::new(),
        ),
    };
    let code = event
        .response_status
        .as_ref()
        .map(|s| s.code.to_string())
        .unwrap_or_default();
    [
        event.stage_timestamp.to_string(),
        event.stage.as_str().to_owned(),
        user,
        event.verb.clone(),
        resource,
        place,
        code,
        event
            .annotations
            .get(ANNOTATION_DECISION)
            .cloned()
            .unwrap_or_default(),
    ]
    .map(|cell| escape_controls(&cell))
}

/// Renders rows under [`TABLE_COLUMNS`], columns padded to their widest cell.
pub fn render_table<'a>(events: impl IntoIterator<Item = &'a Event>) -> String {
    let rows: Vec<[String; 8]> = events.into_iter().map(table_row).collect();
    let mut widths = TABLE_COLUMNS.map(|c| c.chars().count());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let header = TABLE_COLUMNS.map(str::to_owned);
    for row in std::iter::once(&header).chain(&rows) {
        let mut line = String::new();
        for (i, (cell, w)) in row.iter().zip(widths).enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                let _ = write!(line, "{cell:<w$}   ");
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn escape_controls(s: &str) -> String {
    if !s.chars().any(char::is_control) {
        return s.to_owned();
    }
    s.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().collect()
            } else {
                c.to_string()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests;

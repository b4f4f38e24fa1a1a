//! The export file: JSON lines, read with bounds and validated line by line.
//!
//! ```text
//! {"kind":"PortcullisStoreExport","version":1,"revision":57,"exported":"2026-11-22T05:00:00Z"}
//! {"key":"/registry/configmaps/default/app","object":{"apiVersion":"v1","kind":"ConfigMap",...}}
//! ...one line per object, in key order...
//! {"kind":"PortcullisStoreExportEnd","objects":42}
//! ```
//!
//! The end line makes a file cut short at a line boundary detectable: an import refuses a file
//! without it, or whose count differs. Objects carry no `metadata.resourceVersion` (a store sets
//! it from its own revisions); one found on import is dropped. This module parses and checks;
//! it does no store I/O, so both passes of an import (validate, then write) and the unit tests
//! share it.

use std::collections::{BTreeMap, HashMap};
use std::io::BufRead;

use portcullis_api::registry::{RESOURCES, Resource};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The `kind` of the header line.
pub const HEADER_KIND: &str = "PortcullisStoreExport";
/// The `kind` of the end line.
pub const END_KIND: &str = "PortcullisStoreExportEnd";
/// The format version this build writes and reads.
pub const VERSION: u64 = 1;
/// The longest line accepted, in bytes (without its newline).
pub const MAX_LINE: usize = 16 * 1024 * 1024;
/// The root every exported key is under.
pub const ROOT: &str = "/registry/";
/// The longest key accepted.
const MAX_KEY: usize = 1024;

/// The first line of an export.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Header {
    /// Always [`HEADER_KIND`].
    pub kind: String,
    /// The format version, [`VERSION`].
    pub version: u64,
    /// The store revision the objects were read at.
    pub revision: u64,
    /// When the export was taken (RFC 3339).
    pub exported: String,
}

/// The last line of an export.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct End {
    /// Always [`END_KIND`].
    pub kind: String,
    /// How many object lines precede it.
    pub objects: u64,
}

/// One object line.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    key: String,
    object: Value,
}

/// A validated object, ready to be stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// The line it came from (1-based).
    pub line: usize,
    /// The storage key.
    pub key: String,
    /// The resource it belongs to, for summaries: `configmaps`, `rolebindings.rbac.authorization.k8s.io`,
    /// or the key's first segment when this build does not know the resource.
    pub resource: String,
    /// The object as JSON, without `metadata.resourceVersion`.
    pub value: Vec<u8>,
}

/// Why an export file is refused. Line numbers are 1-based.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FormatError {
    /// The file could not be read (or decompressed).
    #[error("line {line}: reading failed")]
    Read {
        /// The line being read.
        line: usize,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The file has no lines at all.
    #[error("the file is empty: an export starts with a `{HEADER_KIND}` line")]
    Empty,
    /// A line is longer than [`MAX_LINE`].
    #[error("line {line}: longer than {MAX_LINE} bytes")]
    LineTooLong {
        /// The line.
        line: usize,
    },
    /// The last line has no newline: the file was cut short.
    #[error(
        "line {line}: incomplete (no newline at the end of the file): the file looks truncated"
    )]
    Incomplete {
        /// The line.
        line: usize,
    },
    /// A line is not JSON, or not the JSON expected there.
    #[error("line {line}: not valid JSON")]
    Json {
        /// The line.
        line: usize,
        /// The parser's complaint.
        #[source]
        source: serde_json::Error,
    },
    /// The first line is not an export header.
    #[error(
        "line 1: not a portcullis store export (the first line must be a `{HEADER_KIND}` header)"
    )]
    NotAnExport,
    /// The header names a version this build does not read.
    #[error(
        "line 1: export format version {0} is not supported (this portcullis reads version {VERSION})"
    )]
    Version(u64),
    /// An object line breaks a rule.
    #[error("line {line}: {problem}")]
    Invalid {
        /// The line.
        line: usize,
        /// What is wrong.
        problem: String,
    },
    /// A key appears twice.
    #[error("line {line}: duplicate key `{key}` (first on line {first})")]
    Duplicate {
        /// The second line.
        line: usize,
        /// The first line.
        first: usize,
        /// The key.
        key: String,
    },
    /// More objects than the bound.
    #[error("line {line}: more than {max} objects (raise --max-objects if this is expected)")]
    TooMany {
        /// The line.
        line: usize,
        /// The bound.
        max: usize,
    },
    /// The file ends without the end line.
    #[error("the file ends after line {line} without the `{END_KIND}` line: it looks truncated")]
    MissingEnd {
        /// The last line read.
        line: usize,
    },
    /// The end line's count does not match.
    #[error("line {line}: the end line counts {declared} objects but the file has {actual}")]
    CountMismatch {
        /// The end line.
        line: usize,
        /// Its count.
        declared: u64,
        /// The object lines seen.
        actual: u64,
    },
    /// Something follows the end line.
    #[error("line {line}: content after the `{END_KIND}` line")]
    AfterEnd {
        /// The line.
        line: usize,
    },
}

/// Reads an export: the header on creation, then validated [`Record`]s in file order; it
/// fails at the first bad line and checks the end line once the records run out.
#[derive(Debug)]
pub struct ExportReader<R> {
    lines: Lines<R>,
    header: Header,
    max_objects: usize,
    seen: HashMap<String, usize>,
    objects: u64,
    by_resource: BTreeMap<String, usize>,
    done: bool,
}

impl<R: BufRead> ExportReader<R> {
    /// Reads and checks the header line.
    pub fn new(reader: R, max_objects: usize) -> Result<Self, FormatError> {
        let mut lines = Lines {
            reader,
            line: 0,
            buf: Vec::new(),
        };
        let Some(first) = lines.next_line()? else {
            return Err(FormatError::Empty);
        };
        let header = parse_header(first)?;
        Ok(ExportReader {
            lines,
            header,
            max_objects,
            seen: HashMap::new(),
            objects: 0,
            by_resource: BTreeMap::new(),
            done: false,
        })
    }

    /// The header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// Object counts by resource so far.
    pub fn by_resource(&self) -> &BTreeMap<String, usize> {
        &self.by_resource
    }

    /// Every key read so far, with its line.
    pub fn keys(&self) -> &HashMap<String, usize> {
        &self.seen
    }

    /// The next record; `Ok(None)` after a valid end line.
    pub fn next_record(&mut self) -> Result<Option<Record>, FormatError> {
        if self.done {
            return Ok(None);
        }
        // The line `next_line` is about to read (it borrows `self.lines` while `text` lives).
        let line = self.lines.line + 1;
        let Some(text) = self.lines.next_line()? else {
            return Err(FormatError::MissingEnd { line: line - 1 });
        };
        let value: Value =
            serde_json::from_slice(text).map_err(|source| FormatError::Json { line, source })?;
        if value.get("kind").is_some() && value.get("key").is_none() {
            let end: End = serde_json::from_value(value)
                .map_err(|source| FormatError::Json { line, source })?;
            if end.kind != END_KIND {
                return Err(FormatError::Invalid {
                    line,
                    problem: format!(
                        "a line of kind `{}` (only the last line has a kind: `{END_KIND}`)",
                        end.kind
                    ),
                });
            }
            if end.objects != self.objects {
                return Err(FormatError::CountMismatch {
                    line,
                    declared: end.objects,
                    actual: self.objects,
                });
            }
            self.lines.expect_eof()?;
            self.done = true;
            return Ok(None);
        }
        let parsed: Line =
            serde_json::from_value(value).map_err(|source| FormatError::Json { line, source })?;
        if self.seen.len() >= self.max_objects {
            return Err(FormatError::TooMany {
                line,
                max: self.max_objects,
            });
        }
        let record =
            validate(line, parsed).map_err(|problem| FormatError::Invalid { line, problem })?;
        if let Some(first) = self.seen.get(&record.key) {
            return Err(FormatError::Duplicate {
                line,
                first: *first,
                key: record.key,
            });
        }
        self.seen.insert(record.key.clone(), line);
        self.objects += 1;
        *self.by_resource.entry(record.resource.clone()).or_default() += 1;
        Ok(Some(record))
    }

    /// Reads every remaining record, keeping none: the validation pass.
    pub fn check_all(&mut self) -> Result<(), FormatError> {
        while self.next_record()?.is_some() {}
        Ok(())
    }
}

/// The resource label of a storage key, for summaries; `None` for keys that are not objects
/// (outside [`ROOT`], or a single segment under it, such as the `compact_rev_key` that
/// gateways before the compactor moved it to etcd's root kept there).
pub fn resource_of(key: &str) -> Option<String> {
    let rest = key.strip_prefix(ROOT)?;
    if !rest.contains('/') {
        return None;
    }
    Some(match known_resource(key) {
        Some((resource, _)) => resource.group_resource(),
        None => rest.split('/').next().unwrap_or_default().to_owned(),
    })
}

/// The header line of an export at `revision`, taken at `exported`.
pub fn header_line(revision: u64, exported: &str) -> Result<Vec<u8>, serde_json::Error> {
    serde_json::to_vec(&Header {
        kind: HEADER_KIND.to_owned(),
        version: VERSION,
        revision,
        exported: exported.to_owned(),
    })
}

/// The end line of an export of `objects` objects.
pub fn end_line(objects: u64) -> Result<Vec<u8>, serde_json::Error> {
    serde_json::to_vec(&End {
        kind: END_KIND.to_owned(),
        objects,
    })
}

/// The line of one stored object. `value` is kept as stored unless it is not one line of JSON.
pub fn object_line(key: &str, value: &[u8]) -> Result<Vec<u8>, String> {
    let object: Value = serde_json::from_slice(value)
        .map_err(|e| format!("key `{key}` does not hold JSON ({e})"))?;
    if !object.is_object() {
        return Err(format!("key `{key}` does not hold a JSON object"));
    }
    let mut line =
        serde_json::to_vec(&serde_json::json!({ "key": key })).map_err(|e| e.to_string())?;
    // `{"key":"..."}` -> `{"key":"...","object":<value>}`
    line.pop();
    line.extend_from_slice(b",\"object\":");
    if value.contains(&b'\n') || value.contains(&b'\r') {
        line.extend(serde_json::to_vec(&object).map_err(|e| e.to_string())?);
    } else {
        line.extend_from_slice(value.trim_ascii());
    }
    line.push(b'}');
    Ok(line)
}

// === helpers ===

/// Lines of at most [`MAX_LINE`] bytes, numbered from 1.
#[derive(Debug)]
struct Lines<R> {
    reader: R,
    line: usize,
    buf: Vec<u8>,
}

impl<R: BufRead> Lines<R> {
    /// The next non-blank line, without its line ending; blank lines are refused before the
    /// end line and ignored after it (see [`Lines::expect_eof`]).
    fn next_line(&mut self) -> Result<Option<&[u8]>, FormatError> {
        use std::io::Read;
        self.buf.clear();
        self.line += 1;
        let line = self.line;
        let limit = u64::try_from(MAX_LINE).unwrap_or(u64::MAX) + 2;
        let n = (&mut self.reader)
            .take(limit)
            .read_until(b'\n', &mut self.buf)
            .map_err(|source| FormatError::Read { line, source })?;
        if n == 0 {
            return Ok(None);
        }
        if self.buf.last() != Some(&b'\n') {
            if self.buf.len() > MAX_LINE {
                return Err(FormatError::LineTooLong { line });
            }
            return Err(FormatError::Incomplete { line });
        }
        self.buf.pop();
        if self.buf.last() == Some(&b'\r') {
            self.buf.pop();
        }
        if self.buf.len() > MAX_LINE {
            return Err(FormatError::LineTooLong { line });
        }
        if self.buf.trim_ascii().is_empty() {
            return Err(FormatError::Invalid {
                line,
                problem: "empty line".to_owned(),
            });
        }
        Ok(Some(&self.buf))
    }

    /// After the end line only blank lines may follow.
    fn expect_eof(&mut self) -> Result<(), FormatError> {
        use std::io::Read;
        loop {
            self.buf.clear();
            self.line += 1;
            let line = self.line;
            let limit = u64::try_from(MAX_LINE).unwrap_or(u64::MAX);
            let n = (&mut self.reader)
                .take(limit)
                .read_until(b'\n', &mut self.buf)
                .map_err(|source| FormatError::Read { line, source })?;
            if n == 0 {
                return Ok(());
            }
            if !self.buf.trim_ascii().is_empty() {
                return Err(FormatError::AfterEnd { line });
            }
        }
    }
}

fn parse_header(line: &[u8]) -> Result<Header, FormatError> {
    let value: Value = serde_json::from_slice(line).map_err(|_| FormatError::NotAnExport)?;
    if value.get("kind").and_then(Value::as_str) != Some(HEADER_KIND) {
        return Err(FormatError::NotAnExport);
    }
    if let Some(version) = value.get("version").and_then(Value::as_u64)
        && version != VERSION
    {
        return Err(FormatError::Version(version));
    }
    serde_json::from_value(value).map_err(|source| FormatError::Json { line: 1, source })
}

/// Checks one object line: the key is a well-formed key under [`ROOT`]; for a resource this
/// build serves, its namespace and name match the object's (and the kind, when given).
fn validate(line: usize, parsed: Line) -> Result<Record, String> {
    let Line { key, object } = parsed;
    let Value::Object(mut object) = object else {
        return Err(format!("the object of key `{key}` is not a JSON object"));
    };
    let Some(rest) = key.strip_prefix(ROOT) else {
        return Err(format!("key `{key}` is not under `{ROOT}`"));
    };
    if key.len() > MAX_KEY {
        return Err(format!("key `{key}` is longer than {MAX_KEY} bytes"));
    }
    if key.chars().any(char::is_control) {
        return Err(format!(
            "key `{}` holds control characters",
            key.escape_debug()
        ));
    }
    let segments: Vec<&str> = rest.split('/').collect();
    // As kube-apiserver's path segment rule: no `.`, `..`, or `%` (nor `/`, the separator).
    if segments.len() < 2
        || segments
            .iter()
            .any(|s| s.is_empty() || *s == "." || *s == ".." || s.contains('%'))
    {
        return Err(format!(
            "key `{key}` is not an object key (`{ROOT}<resource>/[<namespace>/]<name>`)"
        ));
    }
    let meta = object.get("metadata").and_then(Value::as_object);
    let resource = match known_resource(&key) {
        Some((resource, tail)) => {
            check_known(&key, resource, tail, meta, &object)?;
            resource.group_resource()
        }
        None => segments.first().copied().unwrap_or_default().to_owned(),
    };
    if let Some(Value::Object(meta)) = object.get_mut("metadata") {
        meta.remove("resourceVersion");
    }
    let value = serde_json::to_vec(&Value::Object(object)).map_err(|e| e.to_string())?;
    Ok(Record {
        line,
        key,
        resource,
        value,
    })
}

fn check_known(
    key: &str,
    resource: &Resource,
    tail: &str,
    meta: Option<&Map<String, Value>>,
    object: &Map<String, Value>,
) -> Result<(), String> {
    let field = |name: &str| meta.and_then(|m| m.get(name)).and_then(Value::as_str);
    let parts: Vec<&str> = tail.split('/').collect();
    let (namespace, name) = match (resource.namespaced, parts.as_slice()) {
        (true, [namespace, name]) => (Some(*namespace), *name),
        (false, [name]) => (None, *name),
        _ => {
            let shape = if resource.namespaced {
                "<namespace>/<name>"
            } else {
                "<name>"
            };
            return Err(format!(
                "key `{key}`: {} keys end in `{shape}`",
                resource.group_resource()
            ));
        }
    };
    if field("name") != Some(name) {
        return Err(format!(
            "key `{key}` names `{name}` but the object's metadata.name is {}",
            shown(field("name"))
        ));
    }
    let object_namespace = field("namespace").filter(|ns| !ns.is_empty());
    if object_namespace != namespace {
        return Err(format!(
            "key `{key}` is in namespace {} but the object's metadata.namespace is {}",
            shown(namespace),
            shown(object_namespace)
        ));
    }
    if let Some(kind) = object.get("kind").and_then(Value::as_str)
        && kind != resource.kind
    {
        return Err(format!(
            "key `{key}` holds {} objects but this one is of kind `{kind}`",
            resource.kind
        ));
    }
    Ok(())
}

/// The stored resource whose key prefix starts `key` (the longest such prefix), and the rest.
fn known_resource(key: &str) -> Option<(&'static Resource, &str)> {
    let rest = key.strip_prefix(ROOT)?;
    RESOURCES
        .iter()
        .filter(|r| r.is_stored())
        .filter_map(|r| {
            let tail = rest.strip_prefix(r.storage_prefix)?.strip_prefix('/')?;
            Some((r, tail))
        })
        .max_by_key(|(r, _)| r.storage_prefix.len())
}

fn shown(value: Option<&str>) -> String {
    match value {
        Some(v) => format!("`{v}`"),
        None => "not set".to_owned(),
    }
}

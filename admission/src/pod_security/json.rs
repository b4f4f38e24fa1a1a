//! Reading a pod out of `serde_json::Value`, failing closed on wrong types.
//!
//! The checks read the raw JSON rather than a typed model, so a field a typed model would drop is
//! still seen. Kubernetes decodes a pod into Go structs, where `null` and an absent field are the
//! same, and a value of the wrong type fails the whole request. Here `null` also reads as absent,
//! and a wrong type is a [`Malformed`] error that the check turns into a violation: hostile input
//! is denied, never allowed and never a panic.

use std::borrow::Cow;
use std::fmt::{self, Write as _};

use serde_json::{Map, Value};

/// A field of the wrong JSON type, with the path where it was found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Malformed {
    /// Outermost segment first.
    path: Vec<Segment>,
    /// What the field should have been, with its article: `a boolean`, `an object`.
    expected: &'static str,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Segment {
    Field(Cow<'static, str>),
    MapKey(String),
    Index(usize),
}

impl Malformed {
    /// A value at `path` (relative to the value being read) is not `expected`.
    fn new(path: &[&'static str], expected: &'static str) -> Self {
        Malformed {
            path: path
                .iter()
                .map(|k| Segment::Field(Cow::Borrowed(*k)))
                .collect(),
            expected,
        }
    }

    /// The value itself should have been an object (e.g. a list entry).
    pub(crate) fn not_an_object() -> Self {
        Malformed::new(&[], "an object")
    }

    /// Prefixes the path with the field `key` that held the value.
    pub(crate) fn within(mut self, key: &'static str) -> Self {
        self.path.insert(0, Segment::Field(Cow::Borrowed(key)));
        self
    }

    /// Prefixes the path with the list index `index`.
    pub(crate) fn at_index(mut self, index: usize) -> Self {
        self.path.insert(0, Segment::Index(index));
        self
    }

    /// Prefixes the path with the map key `key` (e.g. an annotation name).
    fn at_map_key(mut self, key: &str) -> Self {
        self.path.insert(0, Segment::MapKey(key.to_owned()));
        self
    }
}

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for segment in &self.path {
            match segment {
                Segment::Field(key) => {
                    if !first {
                        f.write_char('.')?;
                    }
                    f.write_str(key)?;
                }
                Segment::MapKey(key) => write!(f, "[{key}]")?,
                Segment::Index(index) => write!(f, "[{index}]")?,
            }
            first = false;
        }
        if first {
            f.write_str("pod")?;
        }
        write!(f, " must be {}", self.expected)
    }
}

/// Walks `path` through nested objects. An absent or `null` field anywhere gives `None`; a
/// non-object on the way is malformed.
pub(crate) fn lookup<'a>(
    value: &'a Value,
    path: &[&'static str],
) -> Result<Option<&'a Value>, Malformed> {
    let mut current = value;
    for (depth, key) in path.iter().enumerate() {
        match current {
            Value::Object(map) => match map.get(*key) {
                None | Some(Value::Null) => return Ok(None),
                Some(next) => current = next,
            },
            Value::Null => return Ok(None),
            _ => {
                let parent = path.get(..depth).unwrap_or_default();
                return Err(Malformed::new(parent, "an object"));
            }
        }
    }
    Ok(Some(current))
}

/// A boolean field; absent or `null` gives `None`.
pub(crate) fn lookup_bool(value: &Value, path: &[&'static str]) -> Result<Option<bool>, Malformed> {
    match lookup(value, path)? {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(Malformed::new(path, "a boolean")),
    }
}

/// A string field; absent or `null` gives `None`.
pub(crate) fn lookup_str<'a>(
    value: &'a Value,
    path: &[&'static str],
) -> Result<Option<&'a str>, Malformed> {
    match lookup(value, path)? {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(Malformed::new(path, "a string")),
    }
}

/// A string field read the way Go reads it into a `string`: absent or `null` is `""`.
pub(crate) fn lookup_string<'a>(
    value: &'a Value,
    path: &[&'static str],
) -> Result<&'a str, Malformed> {
    Ok(lookup_str(value, path)?.unwrap_or_default())
}

/// An integer field; absent or `null` gives `None`. Fractions are malformed, as they are for
/// Kubernetes' integer fields.
pub(crate) fn lookup_int(value: &Value, path: &[&'static str]) -> Result<Option<i128>, Malformed> {
    match lookup(value, path)? {
        None => Ok(None),
        Some(Value::Number(n)) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => Ok(Some(i128::from(i))),
            (None, Some(u)) => Ok(Some(i128::from(u))),
            (None, None) => Err(Malformed::new(path, "an integer")),
        },
        Some(_) => Err(Malformed::new(path, "an integer")),
    }
}

/// A list field; absent or `null` gives an empty list.
pub(crate) fn lookup_array<'a>(
    value: &'a Value,
    path: &[&'static str],
) -> Result<&'a [Value], Malformed> {
    match lookup(value, path)? {
        None => Ok(&[]),
        Some(Value::Array(items)) => Ok(items),
        Some(_) => Err(Malformed::new(path, "a list")),
    }
}

/// A list of strings (e.g. capabilities); absent or `null` gives an empty list.
pub(crate) fn lookup_strings<'a>(
    value: &'a Value,
    path: &[&'static str],
) -> Result<impl Iterator<Item = Result<&'a str, Malformed>>, Malformed> {
    let items = lookup_array(value, path)?;
    Ok(items.iter().enumerate().map(move |(index, item)| {
        item.as_str().ok_or_else(|| {
            let mut error = Malformed::new(path, "a string");
            error.path.push(Segment::Index(index));
            error
        })
    }))
}

/// The pod under evaluation: its metadata and spec, as raw JSON.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Pod<'a> {
    metadata: &'a Value,
    spec: &'a Value,
}

/// One container of any kind (init, regular or ephemeral), with its name.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Container<'a> {
    /// `name`, `""` when absent (as Go reads it).
    pub(crate) name: &'a str,
    /// The container object.
    pub(crate) value: &'a Value,
}

impl<'a> Pod<'a> {
    /// A pod from its metadata and spec.
    pub(crate) fn new(metadata: &'a Value, spec: &'a Value) -> Self {
        Pod { metadata, spec }
    }

    /// The top-level shape: metadata and spec must be objects (or absent).
    pub(crate) fn validate_shape(&self) -> Result<(), Malformed> {
        if !matches!(self.metadata, Value::Object(_) | Value::Null) {
            return Err(Malformed::new(&["metadata"], "an object"));
        }
        if !matches!(self.spec, Value::Object(_) | Value::Null) {
            return Err(Malformed::new(&["spec"], "an object"));
        }
        Ok(())
    }

    /// A field under `spec`.
    pub(crate) fn spec(&self, path: &[&'static str]) -> Result<Option<&'a Value>, Malformed> {
        lookup(self.spec, path).map_err(|e| e.within("spec"))
    }

    /// A boolean field under `spec`.
    pub(crate) fn spec_bool(&self, path: &[&'static str]) -> Result<Option<bool>, Malformed> {
        lookup_bool(self.spec, path).map_err(|e| e.within("spec"))
    }

    /// The pod-level `spec.securityContext`, when set.
    pub(crate) fn security_context(&self) -> Result<Option<&'a Value>, Malformed> {
        self.spec(&["securityContext"])
    }

    /// Whether `spec.os.name` is `windows`.
    pub(crate) fn is_windows(&self) -> Result<bool, Malformed> {
        let name = lookup_str(self.spec, &["os", "name"]).map_err(|e| e.within("spec"))?;
        Ok(name == Some("windows"))
    }

    /// Whether the pod runs in a user namespace (`spec.hostUsers: false`), which relaxes some
    /// checks from v1.35.
    pub(crate) fn in_user_namespace(&self) -> Result<bool, Malformed> {
        Ok(self.spec_bool(&["hostUsers"])? == Some(false))
    }

    /// Calls `visit` for every init, regular and ephemeral container, in that order (as
    /// upstream's visitor does), adding the container's path to any error.
    pub(crate) fn visit_containers(
        &self,
        mut visit: impl FnMut(Container<'a>) -> Result<(), Malformed>,
    ) -> Result<(), Malformed> {
        for list in CONTAINER_LISTS {
            let items = lookup_array(self.spec, &[list]).map_err(|e| e.within("spec"))?;
            for (index, value) in items.iter().enumerate() {
                let in_list = |e: Malformed| e.at_index(index).within(list).within("spec");
                if !value.is_object() {
                    return Err(in_list(Malformed::not_an_object()));
                }
                let name = lookup_string(value, &["name"]).map_err(in_list)?;
                visit(Container { name, value }).map_err(in_list)?;
            }
        }
        Ok(())
    }

    /// Calls `visit` for every entry of `spec.volumes` with the volume's name and object.
    pub(crate) fn visit_volumes(
        &self,
        mut visit: impl FnMut(&'a str, &'a Map<String, Value>) -> Result<(), Malformed>,
    ) -> Result<(), Malformed> {
        let items = lookup_array(self.spec, &["volumes"]).map_err(|e| e.within("spec"))?;
        for (index, value) in items.iter().enumerate() {
            let in_list = |e: Malformed| e.at_index(index).within("volumes").within("spec");
            let Value::Object(volume) = value else {
                return Err(in_list(Malformed::not_an_object()));
            };
            let name = lookup_string(value, &["name"]).map_err(in_list)?;
            visit(name, volume).map_err(in_list)?;
        }
        Ok(())
    }

    /// The string value of annotation `key`, when set.
    pub(crate) fn annotation(&self, key: &str) -> Result<Option<&'a str>, Malformed> {
        let Some(annotations) = self.annotations()? else {
            return Ok(None);
        };
        match annotations.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(value)) => Ok(Some(value)),
            Some(_) => Err(annotation_error(key)),
        }
    }

    /// Every annotation whose key starts with `prefix`, as (key, value) pairs.
    pub(crate) fn annotations_with_prefix(
        &self,
        prefix: &'static str,
    ) -> Result<Vec<(&'a str, &'a str)>, Malformed> {
        let mut found = Vec::new();
        let Some(annotations) = self.annotations()? else {
            return Ok(found);
        };
        for (key, value) in annotations {
            if !key.starts_with(prefix) {
                continue;
            }
            match value {
                Value::Null => {}
                Value::String(value) => found.push((key.as_str(), value.as_str())),
                _ => return Err(annotation_error(key)),
            }
        }
        Ok(found)
    }

    fn annotations(&self) -> Result<Option<&'a Map<String, Value>>, Malformed> {
        match lookup(self.metadata, &["annotations"]).map_err(|e| e.within("metadata"))? {
            None => Ok(None),
            Some(Value::Object(map)) => Ok(Some(map)),
            Some(_) => Err(Malformed::new(&["metadata", "annotations"], "an object")),
        }
    }
}

impl<'a> Container<'a> {
    /// A field under this container's `securityContext`.
    pub(crate) fn security(&self, path: &[&'static str]) -> Result<Option<&'a Value>, Malformed> {
        lookup(self.value, &["securityContext"])?
            .map_or(Ok(None), |sc| lookup(sc, path))
            .map_err(|e| e.within("securityContext"))
    }

    /// A string field under this container's `securityContext`.
    pub(crate) fn security_str(&self, path: &[&'static str]) -> Result<Option<&'a str>, Malformed> {
        match lookup(self.value, &["securityContext"])? {
            None => Ok(None),
            Some(sc) => lookup_str(sc, path).map_err(|e| e.within("securityContext")),
        }
    }

    /// A boolean field under this container's `securityContext`.
    pub(crate) fn security_bool(&self, path: &[&'static str]) -> Result<Option<bool>, Malformed> {
        match lookup(self.value, &["securityContext"])? {
            None => Ok(None),
            Some(sc) => lookup_bool(sc, path).map_err(|e| e.within("securityContext")),
        }
    }
}

fn annotation_error(key: &str) -> Malformed {
    Malformed::new(&[], "a string")
        .at_map_key(key)
        .within("annotations")
        .within("metadata")
}

/// `"a", "b"`: each item in double quotes, joined with `, ` (upstream's `joinQuote`; no escaping).
pub(crate) fn join_quote<S: AsRef<str>>(items: impl IntoIterator<Item = S>) -> String {
    let mut out = String::new();
    for (index, item) in items.into_iter().enumerate() {
        if index > 0 {
            out.push_str(", ");
        }
        out.push('"');
        out.push_str(item.as_ref());
        out.push('"');
    }
    out
}

/// `singular` when `count` is 1, else `plural`.
pub(crate) fn pluralize(
    singular: &'static str,
    plural: &'static str,
    count: usize,
) -> &'static str {
    if count == 1 { singular } else { plural }
}

/// `key="value"` with the value quoted as Go's `%q` does (`strconv.Quote`).
///
/// Printable characters stay as they are; quotes, backslashes and control characters are
/// escaped. Go decides "printable" with the full Unicode tables; this approximates it with
/// control, format, separator and private-use ranges, which is exact for ASCII.
pub(crate) fn key_go_quoted(key: &str, value: &str) -> String {
    let mut out = String::with_capacity(key.len() + value.len() + 3);
    out.push_str(key);
    out.push_str("=\"");
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{07}' => out.push_str("\\a"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{0b}' => out.push_str("\\v"),
            c if c < ' ' || c == '\u{7f}' => {
                let _ = write!(out, "\\x{:02x}", u32::from(c));
            }
            c if !go_printable(c) => {
                let code = u32::from(c);
                if code < 0x10000 {
                    let _ = write!(out, "\\u{code:04x}");
                } else {
                    let _ = write!(out, "\\U{code:08x}");
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn go_printable(c: char) -> bool {
    if c == ' ' {
        return true;
    }
    if c.is_control() || c.is_whitespace() {
        return false;
    }
    !matches!(u32::from(c),
        0xad | 0x600..=0x605 | 0x61c | 0x6dd | 0x70f | 0x180e | 0x200b..=0x200f
        | 0x2028..=0x202e | 0x2060..=0x206f | 0xd800..=0xf8ff | 0xfeff | 0xfff9..=0xfffb
        | 0xe0001 | 0xe0020..=0xe007f | 0xf0000..)
}

/// The container lists in the order upstream visits them.
const CONTAINER_LISTS: [&str; 3] = ["initContainers", "containers", "ephemeralContainers"];

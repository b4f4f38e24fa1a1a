//! Decoding of Kubernetes protobuf request bodies (`application/vnd.kubernetes.protobuf`).
//!
//! kubectl's generator commands (`kubectl create namespace|configmap|secret|serviceaccount|role|
//! clusterrole|rolebinding|clusterrolebinding|token`, `kubectl auth can-i|whoami`) send their
//! bodies as Kubernetes protobuf: the four magic bytes `k8s\0`, then a `runtime.Unknown`
//! envelope whose `typeMeta` names the apiVersion and kind and whose `raw` holds the object's
//! own protobuf encoding. This module turns such a body into the JSON that kube-apiserver's
//! JSON encoding would give for the same object, so the rest of the server only sees JSON.
//!
//! The decoder is a small protobuf wire reader driven by a hand-written schema table
//! ([`schema`]) covering the kinds kubectl sends this way; any other kind is refused with a
//! request to send JSON. Field numbers the table does not know are skipped and reported as
//! `parent.#N` paths in [`Decoded::unknown_fields`], so the caller can treat them like unknown
//! JSON fields. Malformed input (truncated values, lengths past the end, groups, wrong wire
//! types, invalid UTF-8, nesting deeper than 64 messages) is an error, never a panic.
//!
//! Go clients encode every non-pointer field, zero or not (`uid: ""`, `generation: 0`, an empty
//! `creationTimestamp`), so the decoder drops the zero value of each field whose Go type is a
//! non-pointer `omitempty` scalar, as Go's JSON encoding does, and keeps present pointer and
//! non-`omitempty` fields even when zero (`immutable: false`, `roleRef.apiGroup: ""`). Absent
//! fields are left out (Go would write `null` for some nil lists). `Time` renders as RFC 3339
//! in UTC with whole seconds (Go drops the nanoseconds), `MicroTime` with six fractional
//! digits, an empty `Time` message as `null` (omitted for `creationTimestamp`), `bytes` as
//! standard base64.

use std::fmt;

use base64::Engine as _;
use serde_json::{Map, Value};

mod schema;
#[cfg(test)]
mod tests;

use schema::{Label, Message, Ty};

/// The media type of Kubernetes protobuf bodies.
pub(crate) const MEDIA_TYPE: &str = "application/vnd.kubernetes.protobuf";

/// The bytes every Kubernetes protobuf body starts with.
const MAGIC: &[u8] = b"k8s\0";
/// How deeply messages may nest inside the object.
const MAX_DEPTH: usize = 64;
/// How many distinct unknown field paths are recorded; later ones are dropped.
const MAX_UNKNOWN: usize = 100;
/// The largest valid protobuf field number.
const MAX_FIELD_NUMBER: u32 = (1 << 29) - 1;
/// Seconds since the Unix epoch of 0000-01-01T00:00:00Z and 9999-12-31T23:59:59Z, the range of
/// timestamps Go renders as RFC 3339.
const TIME_RANGE: std::ops::RangeInclusive<i64> = -62_167_219_200..=253_402_300_799;

const VARINT: u8 = 0;
const LEN: u8 = 2;

/// A decoded protobuf object.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Decoded {
    /// The apiVersion named by the envelope's `typeMeta`.
    pub(crate) api_version: String,
    /// The kind named by the envelope's `typeMeta`.
    pub(crate) kind: String,
    /// The object as kube-apiserver's JSON encoding would render it, including `apiVersion`
    /// and `kind` taken from the envelope.
    pub(crate) object: serde_json::Value,
    /// Paths of fields whose numbers the schema does not know, like `metadata.#16` or
    /// `rules[0].#9` (at most 100, in the order met).
    pub(crate) unknown_fields: Vec<String>,
}

/// Why a protobuf body could not be decoded.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ProtobufError {
    /// The body does not start with `k8s\0`.
    #[error("protobuf body does not start with the kubernetes magic bytes `k8s\\x00`")]
    Magic,
    /// The envelope names no kind.
    #[error("protobuf envelope names no apiVersion and kind")]
    NoTypeMeta,
    /// The envelope declares a content encoding (such as gzip), which is not supported.
    #[error("protobuf content encoding `{0}` is not supported; send JSON")]
    ContentEncoding(String),
    /// The kind has no schema here.
    #[error("protobuf decoding of `{api_version}` `{kind}` is not supported; send JSON")]
    Unsupported {
        /// The envelope's apiVersion.
        api_version: String,
        /// The envelope's kind.
        kind: String,
    },
    /// The bytes are not valid protobuf.
    #[error("malformed protobuf at {}: {reason}", at(.path))]
    Malformed {
        /// Where: a field path.
        path: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// A known field arrived with a wire type that does not fit its type.
    #[error("protobuf field {} is {found}, expected {expected}", at(.path))]
    WireType {
        /// The field path.
        path: String,
        /// The wire type met.
        found: &'static str,
        /// The wire type the field's type needs.
        expected: &'static str,
    },
    /// Messages nest too deeply.
    #[error("protobuf messages nest deeper than {max} levels at {}", at(.path), max = MAX_DEPTH)]
    TooDeep {
        /// Where the limit was crossed.
        path: String,
    },
    /// A value is well-formed protobuf but cannot be rendered as JSON.
    #[error("invalid protobuf value at {}: {reason}", at(.path))]
    Invalid {
        /// The field path.
        path: String,
        /// What is wrong.
        reason: String,
    },
}

/// Renders a path for an error message.
fn at(path: &str) -> String {
    if path.is_empty() {
        "the top level".to_owned()
    } else {
        format!("`{path}`")
    }
}

/// Decodes a request body: the magic bytes, then a `runtime.Unknown` envelope.
pub(crate) fn decode(body: &[u8]) -> Result<Decoded, ProtobufError> {
    let envelope = body.strip_prefix(MAGIC).ok_or(ProtobufError::Magic)?;
    let Envelope {
        api_version,
        kind,
        raw,
        content_encoding,
    } = Envelope::parse(envelope)?;
    if kind.is_empty() {
        return Err(ProtobufError::NoTypeMeta);
    }
    if !content_encoding.is_empty() {
        return Err(ProtobufError::ContentEncoding(content_encoding));
    }
    let Some(message) = schema::lookup(&api_version, &kind) else {
        return Err(ProtobufError::Unsupported { api_version, kind });
    };
    let mut decoder = Decoder {
        unknown: Vec::new(),
    };
    let mut object = Map::new();
    decoder.message(raw, message, &mut object, &Path::Root(""), 1)?;
    object.insert("apiVersion".to_owned(), Value::String(api_version.clone()));
    object.insert("kind".to_owned(), Value::String(kind.clone()));
    Ok(Decoded {
        api_version,
        kind,
        object: Value::Object(object),
        unknown_fields: decoder.unknown,
    })
}

/// The parts of `runtime.Unknown` the decoder uses.
struct Envelope<'a> {
    api_version: String,
    kind: String,
    raw: &'a [u8],
    content_encoding: String,
}

impl<'a> Envelope<'a> {
    /// Parses `runtime.Unknown`: typeMeta = 1 {apiVersion = 1, kind = 2}, raw = 2,
    /// contentEncoding = 3, contentType = 4 (ignored, as are unknown fields).
    fn parse(buf: &'a [u8]) -> Result<Self, ProtobufError> {
        let root = Path::Root("envelope");
        let mut envelope = Envelope {
            api_version: String::new(),
            kind: String::new(),
            raw: &[],
            content_encoding: String::new(),
        };
        let mut wire = Wire { rest: buf };
        while let Some((number, raw)) = wire.next().map_err(|r| malformed(&root, r))? {
            match number {
                1 => {
                    let path = Path::Field(&root, "typeMeta");
                    let mut meta = Wire {
                        rest: len_of(raw, &path)?,
                    };
                    while let Some((number, raw)) = meta.next().map_err(|r| malformed(&path, r))? {
                        match number {
                            1 => envelope.api_version = string_of(raw, &path)?,
                            2 => envelope.kind = string_of(raw, &path)?,
                            _ => {}
                        }
                    }
                }
                2 => envelope.raw = len_of(raw, &Path::Field(&root, "raw"))?,
                3 => {
                    let path = Path::Field(&root, "contentEncoding");
                    envelope.content_encoding = string_of(raw, &path)?;
                }
                _ => {}
            }
        }
        Ok(envelope)
    }
}

/// A field path, rendered only when an error or an unknown field needs it.
enum Path<'p> {
    /// The top: `""` for the object, `"envelope"` for the envelope.
    Root(&'static str),
    /// A named field.
    Field(&'p Path<'p>, &'static str),
    /// An element of a repeated field.
    Index(&'p Path<'p>, usize),
    /// A field number the schema does not know.
    Number(&'p Path<'p>, u32),
}

impl Path<'_> {
    fn is_empty(&self) -> bool {
        matches!(self, Path::Root(""))
    }
}

impl fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Path::Root(name) => f.write_str(name),
            Path::Index(parent, index) => write!(f, "{parent}[{index}]"),
            Path::Field(parent, name) if parent.is_empty() => f.write_str(name),
            Path::Field(parent, name) => write!(f, "{parent}.{name}"),
            Path::Number(parent, number) if parent.is_empty() => write!(f, "#{number}"),
            Path::Number(parent, number) => write!(f, "{parent}.#{number}"),
        }
    }
}

/// One field's payload, by wire type.
#[derive(Clone, Copy)]
enum Raw<'a> {
    /// Wire type 0.
    Varint(u64),
    /// Wire type 2.
    Len(&'a [u8]),
    /// Wire types 1 and 5 (no supported field uses them; they are only skipped).
    Fixed(u8),
}

impl Raw<'_> {
    fn wire_name(self) -> &'static str {
        match self {
            Raw::Varint(_) => wire_name(VARINT),
            Raw::Len(_) => wire_name(LEN),
            Raw::Fixed(wire_type) => wire_name(wire_type),
        }
    }
}

fn wire_name(wire_type: u8) -> &'static str {
    match wire_type {
        VARINT => "a varint",
        1 => "a 64-bit value",
        LEN => "length-delimited",
        _ => "a 32-bit value",
    }
}

/// A cursor over protobuf wire data.
struct Wire<'a> {
    rest: &'a [u8],
}

impl<'a> Wire<'a> {
    /// The next field's number and payload, or `None` at the end of the input.
    fn next(&mut self) -> Result<Option<(u32, Raw<'a>)>, &'static str> {
        if self.rest.is_empty() {
            return Ok(None);
        }
        let key = self.varint()?;
        let number = u32::try_from(key >> 3)
            .ok()
            .filter(|n| (1..=MAX_FIELD_NUMBER).contains(n))
            .ok_or("invalid field number")?;
        let raw = match key & 7 {
            0 => Raw::Varint(self.varint()?),
            1 => {
                self.take(8)?;
                Raw::Fixed(1)
            }
            2 => {
                let len = usize::try_from(self.varint()?).map_err(|_| PAST_END)?;
                Raw::Len(self.take(len)?)
            }
            5 => {
                self.take(4)?;
                Raw::Fixed(5)
            }
            3 | 4 => return Err("groups are not supported"),
            _ => return Err("invalid wire type"),
        };
        Ok(Some((number, raw)))
    }

    fn varint(&mut self) -> Result<u64, &'static str> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let (&byte, rest) = self.rest.split_first().ok_or("truncated varint")?;
            self.rest = rest;
            if shift == 63 && byte > 1 {
                break;
            }
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err("varint overflows 64 bits")
    }

    fn take(&mut self, len: usize) -> Result<&'a [u8], &'static str> {
        let (head, rest) = self.rest.split_at_checked(len).ok_or(PAST_END)?;
        self.rest = rest;
        Ok(head)
    }
}

const PAST_END: &str = "value runs past the end of its message";

fn malformed(path: &Path<'_>, reason: &'static str) -> ProtobufError {
    ProtobufError::Malformed {
        path: path.to_string(),
        reason,
    }
}

fn check_depth(depth: usize, path: &Path<'_>) -> Result<(), ProtobufError> {
    if depth > MAX_DEPTH {
        return Err(ProtobufError::TooDeep {
            path: path.to_string(),
        });
    }
    Ok(())
}

fn invalid(path: &Path<'_>, reason: impl Into<String>) -> ProtobufError {
    ProtobufError::Invalid {
        path: path.to_string(),
        reason: reason.into(),
    }
}

fn wire_type(path: &Path<'_>, raw: Raw<'_>, expected: u8) -> ProtobufError {
    ProtobufError::WireType {
        path: path.to_string(),
        found: raw.wire_name(),
        expected: wire_name(expected),
    }
}

fn varint_of(raw: Raw<'_>, path: &Path<'_>) -> Result<u64, ProtobufError> {
    match raw {
        Raw::Varint(value) => Ok(value),
        other => Err(wire_type(path, other, VARINT)),
    }
}

fn len_of<'a>(raw: Raw<'a>, path: &Path<'_>) -> Result<&'a [u8], ProtobufError> {
    match raw {
        Raw::Len(bytes) => Ok(bytes),
        other => Err(wire_type(path, other, LEN)),
    }
}

fn string_of(raw: Raw<'_>, path: &Path<'_>) -> Result<String, ProtobufError> {
    let bytes = len_of(raw, path)?;
    match std::str::from_utf8(bytes) {
        Ok(s) => Ok(s.to_owned()),
        Err(_) => Err(invalid(path, "string is not valid UTF-8")),
    }
}

/// The JSON zero value of a type, used for a map entry that has no value.
fn zero_value(ty: Ty) -> Value {
    match ty {
        Ty::Str | Ty::Bytes | Ty::Quantity => Value::String(String::new()),
        Ty::Bool => Value::Bool(false),
        Ty::I32 | Ty::I64 | Ty::IntOrString => Value::from(0),
        Ty::Time | Ty::MicroTime | Ty::FieldsV1 | Ty::StrList => Value::Null,
        Ty::Msg(_) => Value::Object(Map::new()),
    }
}

/// Whether Go's `omitempty` would drop this scalar.
fn is_zero(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_i64() == Some(0),
        Value::String(s) => s.is_empty(),
        Value::Array(_) | Value::Object(_) => false,
    }
}

/// Decoding state: the unknown field paths met so far.
struct Decoder {
    unknown: Vec<String>,
}

impl Decoder {
    fn unknown_field(&mut self, path: &Path<'_>) {
        if self.unknown.len() < MAX_UNKNOWN {
            let path = path.to_string();
            if !self.unknown.contains(&path) {
                self.unknown.push(path);
            }
        }
    }

    /// Decodes `buf` as `message`, merging into `out` (protobuf merges repeated occurrences of
    /// a message field; for scalars the last occurrence wins).
    fn message(
        &mut self,
        buf: &[u8],
        message: &'static Message,
        out: &mut Map<String, Value>,
        path: &Path<'_>,
        depth: usize,
    ) -> Result<(), ProtobufError> {
        check_depth(depth, path)?;
        let mut wire = Wire { rest: buf };
        while let Some((number, raw)) = wire.next().map_err(|r| malformed(path, r))? {
            let Some(field) = message.field(number) else {
                self.unknown_field(&Path::Number(path, number));
                continue;
            };
            let field_path = Path::Field(path, field.json);
            match field.label {
                Label::Map => {
                    let (key, value) =
                        self.map_entry(len_of(raw, &field_path)?, field.ty, &field_path, depth)?;
                    if let Some(Value::Object(map)) = out.get_mut(field.json) {
                        map.insert(key, value);
                    } else {
                        let map = Map::from_iter([(key, value)]);
                        out.insert(field.json.to_owned(), Value::Object(map));
                    }
                }
                Label::Repeated => {
                    let index = match out.get(field.json) {
                        Some(Value::Array(items)) => items.len(),
                        _ => 0,
                    };
                    let item =
                        self.value(field.ty, raw, &Path::Index(&field_path, index), depth)?;
                    if let Some(Value::Array(items)) = out.get_mut(field.json) {
                        items.push(item);
                    } else {
                        out.insert(field.json.to_owned(), Value::Array(vec![item]));
                    }
                }
                Label::Optional | Label::OmitZero => {
                    let value = if let Ty::Msg(inner) = field.ty {
                        let mut merged = match out.remove(field.json) {
                            Some(Value::Object(map)) => map,
                            _ => Map::new(),
                        };
                        let bytes = len_of(raw, &field_path)?;
                        self.message(bytes, inner, &mut merged, &field_path, depth + 1)?;
                        Value::Object(merged)
                    } else {
                        self.value(field.ty, raw, &field_path, depth)?
                    };
                    if field.label == Label::OmitZero && is_zero(&value) {
                        out.remove(field.json);
                    } else {
                        out.insert(field.json.to_owned(), value);
                    }
                }
            }
        }
        Ok(())
    }

    /// Decodes a map entry `{key = 1, value = 2}`; a missing key is `""`, a missing value the
    /// type's zero value.
    fn map_entry(
        &mut self,
        buf: &[u8],
        ty: Ty,
        path: &Path<'_>,
        depth: usize,
    ) -> Result<(String, Value), ProtobufError> {
        check_depth(depth + 1, path)?;
        let (mut key, mut value) = (String::new(), None);
        let mut wire = Wire { rest: buf };
        while let Some((number, raw)) = wire.next().map_err(|r| malformed(path, r))? {
            match number {
                1 => key = string_of(raw, path)?,
                2 => value = Some(self.value(ty, raw, path, depth + 1)?),
                _ => self.unknown_field(&Path::Number(path, number)),
            }
        }
        Ok((key, value.unwrap_or_else(|| zero_value(ty))))
    }

    /// Decodes one value of `ty`; `depth` is that of the message holding it.
    fn value(
        &mut self,
        ty: Ty,
        raw: Raw<'_>,
        path: &Path<'_>,
        depth: usize,
    ) -> Result<Value, ProtobufError> {
        Ok(match ty {
            Ty::Bool => Value::Bool(varint_of(raw, path)? != 0),
            // int32 travels sign-extended to 64 bits; its value is the low 32 bits.
            Ty::I32 => Value::from(varint_of(raw, path)? as i32),
            Ty::I64 => Value::from(varint_of(raw, path)? as i64),
            Ty::Str => Value::String(string_of(raw, path)?),
            Ty::Bytes => {
                let bytes = len_of(raw, path)?;
                Value::String(base64::engine::general_purpose::STANDARD.encode(bytes))
            }
            Ty::Msg(inner) => {
                let mut map = Map::new();
                self.message(len_of(raw, path)?, inner, &mut map, path, depth + 1)?;
                Value::Object(map)
            }
            Ty::Time | Ty::MicroTime | Ty::IntOrString | Ty::Quantity | Ty::FieldsV1 => {
                self.special(ty, len_of(raw, path)?, path, depth + 1)?
            }
            Ty::StrList => {
                let buf = len_of(raw, path)?;
                check_depth(depth + 1, path)?;
                let mut items = Vec::new();
                let mut wire = Wire { rest: buf };
                while let Some((number, raw)) = wire.next().map_err(|r| malformed(path, r))? {
                    match number {
                        1 => items.push(Value::String(string_of(raw, path)?)),
                        _ => self.unknown_field(&Path::Number(path, number)),
                    }
                }
                Value::Array(items)
            }
        })
    }

    /// Decodes the messages with a JSON form of their own: `Time` and `MicroTime`
    /// {seconds = 1, nanos = 2}, `IntOrString` {type = 1, intVal = 2, strVal = 3}, `Quantity`
    /// {string = 1} and `FieldsV1` {Raw = 1}.
    fn special(
        &mut self,
        ty: Ty,
        buf: &[u8],
        path: &Path<'_>,
        depth: usize,
    ) -> Result<Value, ProtobufError> {
        check_depth(depth, path)?;
        let (mut first, mut second, mut text, mut bytes) = (0u64, 0u64, None, None);
        let mut wire = Wire { rest: buf };
        while let Some((number, raw)) = wire.next().map_err(|r| malformed(path, r))? {
            match (ty, number) {
                (Ty::Time | Ty::MicroTime | Ty::IntOrString, 1) => first = varint_of(raw, path)?,
                (Ty::Time | Ty::MicroTime | Ty::IntOrString, 2) => second = varint_of(raw, path)?,
                (Ty::IntOrString, 3) | (Ty::Quantity, 1) => text = Some(string_of(raw, path)?),
                (Ty::FieldsV1, 1) => bytes = Some(len_of(raw, path)?),
                _ => self.unknown_field(&Path::Number(path, number)),
            }
        }
        match ty {
            // Go decodes an empty Time as the zero time, which renders as null.
            Ty::Time | Ty::MicroTime if buf.is_empty() => Ok(Value::Null),
            // Go keeps whole seconds of a Time (the JSON form has no fraction).
            Ty::Time => format_time(first as i64, 0, false, path),
            Ty::MicroTime => {
                // Go truncates the nanoseconds toward zero to whole microseconds.
                let nanos = i64::from(second as i32);
                format_time(first as i64, nanos - nanos % 1000, true, path)
            }
            Ty::IntOrString => match first as i64 {
                0 => Ok(Value::from(second as i32)),
                1 => Ok(Value::String(text.unwrap_or_default())),
                other => Err(invalid(
                    path,
                    format!("IntOrString type {other} is neither 0 nor 1"),
                )),
            },
            Ty::FieldsV1 => match bytes {
                None | Some([]) => Ok(Value::Null),
                Some(json) => serde_json::from_slice(json)
                    .map_err(|e| invalid(path, format!("FieldsV1 is not JSON: {e}"))),
            },
            _ => Ok(Value::String(text.unwrap_or_default())),
        }
    }
}

/// Renders a timestamp as RFC 3339 in UTC: whole seconds for `Time`, six fractional digits for
/// `MicroTime` (whose `nanos` may be negative or past a second: Go normalises it).
fn format_time(
    seconds: i64,
    nanos: i64,
    micro: bool,
    path: &Path<'_>,
) -> Result<Value, ProtobufError> {
    let seconds = seconds
        .checked_add(nanos.div_euclid(1_000_000_000))
        .filter(|s| TIME_RANGE.contains(s))
        .ok_or_else(|| invalid(path, "timestamp is outside the years 0000 to 9999"))?;
    let (days, secs) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
    let (year, month, day) = civil_from_days(days);
    let (hour, minute, second) = (secs / 3600, secs / 60 % 60, secs % 60);
    let fraction = if micro {
        format!(".{:06}", nanos.rem_euclid(1_000_000_000) / 1000)
    } else {
        String::new()
    };
    Ok(Value::String(format!(
        "{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}{fraction}Z"
    )))
}

/// The proleptic Gregorian date of a day count from 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let days = days + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

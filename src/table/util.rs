//! Defensive JSON accessors and the formatting helpers every printer shares: ages
//! (apimachinery's `HumanDuration`), label maps and label selectors.
//!
//! Every accessor tolerates missing fields and fields of the wrong JSON type by falling
//! back to the zero value Go would have after decoding an absent field.

use jiff::Timestamp;
use serde_json::{Map, Value};

/// Placeholder upstream prints for an empty value.
pub(crate) const NONE: &str = "<none>";
/// Placeholder upstream prints for an absent timestamp.
pub(crate) const UNKNOWN: &str = "<unknown>";

const NANOS_PER_SECOND: i64 = 1_000_000_000;
const NANOS_PER_MINUTE: i64 = 60 * NANOS_PER_SECOND;
const NANOS_PER_HOUR: i64 = 60 * NANOS_PER_MINUTE;
/// Seconds from the Unix epoch to 0001-01-01T00:00:00Z, Go's zero `time.Time`.
const GO_ZERO_TIME_SECONDS: i64 = -62_135_596_800;

/// The value at `path` (a JSON pointer such as `/spec/replicas`), if any.
pub(crate) fn at<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    v.pointer(path)
}

/// The string at `path`, or `""` when absent or not a string.
pub(crate) fn string<'a>(v: &'a Value, path: &str) -> &'a str {
    at(v, path).and_then(Value::as_str).unwrap_or("")
}

/// The string at `path`, or `None` when absent or not a string (a Go `*string`).
pub(crate) fn opt_string<'a>(v: &'a Value, path: &str) -> Option<&'a str> {
    at(v, path).and_then(Value::as_str)
}

/// The integer at `path`, or `None` when absent or not an integer (a Go `*int32`).
pub(crate) fn opt_int(v: &Value, path: &str) -> Option<i64> {
    let value = at(v, path)?;
    value.as_i64().or_else(|| {
        // Accept integral floats such as `3.0`; reject anything else.
        value
            .as_f64()
            .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
            .map(|f| f as i64)
    })
}

/// The integer at `path`, or `0`.
pub(crate) fn int(v: &Value, path: &str) -> i64 {
    opt_int(v, path).unwrap_or(0)
}

/// The boolean at `path`, or `None` when absent or not a boolean (a Go `*bool`).
pub(crate) fn opt_bool(v: &Value, path: &str) -> Option<bool> {
    at(v, path).and_then(Value::as_bool)
}

/// The boolean at `path`, or `false`.
pub(crate) fn boolean(v: &Value, path: &str) -> bool {
    opt_bool(v, path).unwrap_or(false)
}

/// The array at `path`, or an empty slice.
pub(crate) fn array<'a>(v: &'a Value, path: &str) -> &'a [Value] {
    at(v, path)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// The object at `path`, if present and an object (a non-nil Go pointer to a struct).
pub(crate) fn object<'a>(v: &'a Value, path: &str) -> Option<&'a Map<String, Value>> {
    at(v, path).and_then(Value::as_object)
}

/// Whether `path` holds an object, i.e. whether the Go pointer would be non-nil.
pub(crate) fn present(v: &Value, path: &str) -> bool {
    object(v, path).is_some()
}

/// Number of keys of the object at `path` (the `len` of a Go map), or `0`.
pub(crate) fn map_len(v: &Value, path: &str) -> i64 {
    object(v, path).map_or(0, |m| i64::try_from(m.len()).unwrap_or(i64::MAX))
}

/// Length of a slice as the `int64` upstream puts into integer cells.
pub(crate) fn count(items: &[Value]) -> i64 {
    i64::try_from(items.len()).unwrap_or(i64::MAX)
}

/// The timestamp at `path`; `None` for absent, `null`, malformed, or Go's zero time
/// (upstream's `metav1.Time.IsZero`).
pub(crate) fn time(v: &Value, path: &str) -> Option<Timestamp> {
    let ts: Timestamp = at(v, path)?.as_str()?.parse().ok()?;
    (ts.as_second() != GO_ZERO_TIME_SECONDS || ts.subsec_nanosecond() != 0).then_some(ts)
}

/// Nanoseconds from `from` to `to`, saturated to the range of Go's `time.Duration`.
pub(crate) fn nanos_between(from: Timestamp, to: Timestamp) -> i64 {
    let diff = to.as_nanosecond() - from.as_nanosecond();
    i64::try_from(diff).unwrap_or(if diff < 0 { i64::MIN } else { i64::MAX })
}

/// Elapsed time since `since` as upstream's `translateTimestampSince`: `<unknown>` for a
/// missing timestamp, otherwise [`human_duration`].
pub(crate) fn since(since: Option<Timestamp>, now: Timestamp) -> String {
    match since {
        Some(ts) => human_duration(nanos_between(ts, now)),
        None => UNKNOWN.to_owned(),
    }
}

/// apimachinery's `HumanDuration`: about two or three significant figures, e.g. `59s`,
/// `2m10s`, `45m`, `3h5m`, `20h`, `3d4h`, `30d`, `2y15d`, `9y`.
pub(crate) fn human_duration(nanos: i64) -> String {
    let seconds = nanos / NANOS_PER_SECOND;
    if seconds < -1 {
        return "<invalid>".to_owned();
    }
    if seconds < 0 {
        return "0s".to_owned();
    }
    if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = nanos / NANOS_PER_MINUTE;
    if minutes < 10 {
        let s = seconds % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    }
    if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = nanos / NANOS_PER_HOUR;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    let days = hours / 24;
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 {
            format!("{days}d")
        } else {
            format!("{days}d{h}h")
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{days}d");
    }
    let years = days / 365;
    if hours < 24 * 365 * 8 {
        let dy = days % 365;
        return if dy == 0 {
            format!("{years}y")
        } else {
            format!("{years}y{dy}d")
        };
    }
    format!("{years}y")
}

/// Go's `time.RFC3339` rendering of a UTC timestamp (`2006-01-02T15:04:05Z`); the zero
/// time for a missing one, as upstream's default convertor prints it.
pub(crate) fn rfc3339(ts: Option<Timestamp>) -> String {
    match ts {
        Some(ts) => ts.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
        None => "0001-01-01T00:00:00Z".to_owned(),
    }
}

/// `labels.FormatLabels`: `k=v` pairs sorted by key, comma-joined; `<none>` when empty.
pub(crate) fn format_labels(v: &Value, path: &str) -> String {
    let Some(map) = object(v, path) else {
        return NONE.to_owned();
    };
    if map.is_empty() {
        return NONE.to_owned();
    }
    // serde_json's Map is ordered by key unless `preserve_order` is on; sort regardless.
    let mut pairs: Vec<(&str, &str)> = map
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str().unwrap_or("")))
        .collect();
    pairs.sort_unstable();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// How a `metav1.LabelSelector` renders, as `LabelSelectorAsSelector(..).String()`.
pub(crate) enum Selector {
    /// A nil selector (`labels.Nothing()`), rendered as `""`.
    Nothing,
    /// A valid selector, rendered as its requirement strings (may be `""` when empty).
    Rendered(String),
    /// A selector upstream refuses to convert (bad operator, key or values).
    Invalid,
}

/// Converts the label selector at `path` the way `metav1.LabelSelectorAsSelector` does.
pub(crate) fn label_selector(v: &Value, path: &str) -> Selector {
    let Some(sel) = at(v, path).filter(|s| !s.is_null()) else {
        return Selector::Nothing;
    };
    let mut reqs: Vec<(String, String)> = Vec::new();
    if let Some(labels) = object(sel, "/matchLabels") {
        for (key, value) in labels {
            let value = value.as_str().unwrap_or("");
            if !valid_label_key(key) || !valid_label_value(value) {
                return Selector::Invalid;
            }
            reqs.push((key.clone(), format!("{key}={value}")));
        }
    }
    for expr in array(sel, "/matchExpressions") {
        let key = string(expr, "/key");
        let mut values: Vec<&str> = Vec::new();
        for value in array(expr, "/values") {
            values.push(value.as_str().unwrap_or(""));
        }
        if !valid_label_key(key) || !values.iter().all(|v| valid_label_value(v)) {
            return Selector::Invalid;
        }
        let rendered = match string(expr, "/operator") {
            op @ ("In" | "NotIn") if !values.is_empty() => {
                values.sort_unstable();
                let word = if op == "In" { "in" } else { "notin" };
                format!("{key} {word} ({})", values.join(","))
            }
            "Exists" if values.is_empty() => key.to_owned(),
            "DoesNotExist" if values.is_empty() => format!("!{key}"),
            _ => return Selector::Invalid,
        };
        reqs.push((key.to_owned(), rendered));
    }
    reqs.sort_by(|a, b| a.0.cmp(&b.0));
    Selector::Rendered(
        reqs.into_iter()
            .map(|(_, r)| r)
            .collect::<Vec<_>>()
            .join(","),
    )
}

/// `metav1.FormatLabelSelector`: `<none>` for empty or nil, `<error>` for invalid.
pub(crate) fn format_label_selector(v: &Value, path: &str) -> String {
    match label_selector(v, path) {
        Selector::Rendered(s) if !s.is_empty() => s,
        Selector::Nothing | Selector::Rendered(_) => NONE.to_owned(),
        Selector::Invalid => "<error>".to_owned(),
    }
}

/// A qualified name (`[prefix/]name`), as label keys must be.
fn valid_label_key(key: &str) -> bool {
    let (prefix, name) = match key.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    if name.contains('/') || !(1..=63).contains(&name.len()) || !name_chars_ok(name) {
        return false;
    }
    prefix.is_none_or(valid_dns_subdomain)
}

/// A label value: empty, or at most 63 alphanumerics, `-`, `_`, `.`, alphanumeric at both ends.
fn valid_label_value(value: &str) -> bool {
    value.is_empty() || (value.len() <= 63 && name_chars_ok(value))
}

/// `[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?`
fn name_chars_ok(s: &str) -> bool {
    let bytes = s.as_bytes();
    let (Some(first), Some(last)) = (bytes.first(), bytes.last()) else {
        return false;
    };
    first.is_ascii_alphanumeric()
        && last.is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// An RFC 1123 subdomain: dot-separated lowercase labels, at most 253 characters.
fn valid_dns_subdomain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            let bytes = label.as_bytes();
            match (bytes.first(), bytes.last()) {
                (Some(first), Some(last)) => {
                    (first.is_ascii_lowercase() || first.is_ascii_digit())
                        && (last.is_ascii_lowercase() || last.is_ascii_digit())
                        && bytes
                            .iter()
                            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
                }
                _ => false,
            }
        })
}

/// Names and images of the containers at `path`, each comma-joined (`layoutContainerCells`).
pub(crate) fn container_cells(v: &Value, path: &str) -> (String, String) {
    let containers = array(v, path);
    let names: Vec<&str> = containers.iter().map(|c| string(c, "/name")).collect();
    let images: Vec<&str> = containers.iter().map(|c| string(c, "/image")).collect();
    (names.join(","), images.join(","))
}

/// `value` unless empty, else `<none>`.
pub(crate) fn or_none(value: &str) -> String {
    if value.is_empty() {
        NONE.to_owned()
    } else {
        value.to_owned()
    }
}

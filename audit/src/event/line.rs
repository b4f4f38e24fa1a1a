//! An event serialised once, as the log writes it, with a slot left for its chain value.
//!
//! The log backend used to serialise each event on its writer thread with a placeholder chain
//! annotation, then search the line for the placeholder and patch it. An [`EventLine`] is made
//! by the caller instead (on the thread that built the event, which also frees it there), by a
//! hand-written encoder that emits exactly the bytes `serde_json` writes for an [`Event`] whose
//! annotations hold the chain key: the writer only copies the two halves around the chain
//! value, hashes and writes. Bodies and status details still go through `serde_json`; strings
//! that need escaping too. The tests compare the output with `serde_json`'s byte for byte, on
//! generated events.

use std::ops::Range;

use portcullis_api::UserInfo;
use serde::Serialize;

use super::{Annotations, Event, MicroTime, ObjectReference, ResponseStatus};
use crate::chain::{CHAIN_ANNOTATION, ChainError, HASH_HEX_LEN, KEY_PATTERN};
use crate::lines::MAX_LINE_BYTES;
use crate::policy::API_VERSION;

/// One event as a log line, missing only its chain value (`<seq>:<sha256 hex>`). Made from an
/// [`Event`] with `From`; sealed by [`Chain::seal_line`](crate::chain::Chain::seal_line).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventLine {
    inner: Result<Encoded, Unencodable>,
}

/// A serialised line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Encoded {
    /// The line without its chain value and newline.
    bytes: Vec<u8>,
    /// Where the chain value goes: between `bytes[..slot]` and `bytes[slot..]`.
    slot: usize,
    /// The auditID as written (JSON-escaped, without quotes), for error messages.
    audit_id: Range<usize>,
    /// The event without bodies, marked truncated: present when this line might exceed
    /// [`MAX_LINE_BYTES`] once its chain value is in.
    truncated: Option<Box<Encoded>>,
    /// The fields from `requestURI` through `objectRef` (each with its leading comma).
    stable: Range<usize>,
}

/// An event that could not be serialised: the writer reports it as not written.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Unencodable {
    audit_id: String,
}

impl From<&Event> for EventLine {
    /// Serialises `event` with the chain annotation (whatever value it holds is replaced).
    /// When the line might exceed [`MAX_LINE_BYTES`], the same event without bodies is
    /// serialised too, for the writer to fall back on.
    fn from(event: &Event) -> EventLine {
        EventLine::encode(event, LineParts::default())
    }
}

impl From<Event> for EventLine {
    fn from(event: Event) -> EventLine {
        EventLine::from(&event)
    }
}

/// What a line takes from outside its [`Event`]; see [`EventLine::with_parts`].
#[derive(Clone, Copy, Debug, Default)]
pub struct LineParts<'a> {
    /// The fields from `requestURI` through `objectRef`, copied instead of serialised: what
    /// [`EventLine::stable_part`] gave for an earlier stage of the same request. The caller
    /// guarantees that those fields (`requestURI`, `verb`, `user`, `impersonatedUser`,
    /// `authenticationMetadata`, `sourceIPs`, `userAgent`, `objectRef`) have not changed since.
    pub stable: Option<&'a [u8]>,
    /// Annotations written among the event's own, in key order; the event's value wins where
    /// both have a key.
    pub annotations: Option<&'a Annotations>,
    /// `user` and `impersonatedUser`, written instead of the event's (which the caller need not
    /// have copied in).
    pub users: Option<(&'a UserInfo, Option<&'a UserInfo>)>,
}

impl EventLine {
    /// As `EventLine::from(event)`, with what `parts` gives in place of the event's fields.
    pub fn with_parts(event: &Event, parts: LineParts<'_>) -> EventLine {
        EventLine::encode(event, parts)
    }

    /// The serialised fields from `requestURI` through `objectRef`, which stay the same over
    /// the stages of a request unless the caller changes them; see
    /// [`EventLine::with_parts`].
    pub fn stable_part(&self) -> Option<&[u8]> {
        let line = self.inner.as_ref().ok()?;
        line.bytes.get(line.stable.clone())
    }

    fn encode(event: &Event, parts: LineParts<'_>) -> EventLine {
        let encoded = Encoded::new(event, Vec::new(), parts).and_then(|mut line| {
            if line.len_with(u64::MAX) > MAX_LINE_BYTES {
                let mut bare = event.clone();
                bare.truncate_bodies();
                let parts = LineParts {
                    stable: None,
                    ..parts
                };
                line.truncated = Some(Box::new(Encoded::new(&bare, Vec::new(), parts)?));
            }
            Ok(line)
        });
        let inner = encoded.map_err(|e| {
            tracing::error!(audit_id = %event.audit_id, error = %e, "cannot serialise audit event");
            Unencodable {
                audit_id: event.audit_id.clone(),
            }
        });
        EventLine { inner }
    }

    /// The auditID, as written in the line (JSON-escaped).
    pub fn audit_id(&self) -> &str {
        match &self.inner {
            Ok(line) => line
                .bytes
                .get(line.audit_id.clone())
                .and_then(|b| std::str::from_utf8(b).ok())
                .unwrap_or_default(),
            Err(u) => &u.audit_id,
        }
    }

    /// The line to write with sequence number `seq`: this one, or its form without bodies
    /// when this one would exceed [`MAX_LINE_BYTES`]; and whether it is that form.
    pub(crate) fn fitting(&self, seq: u64) -> Result<(&Encoded, bool), ChainError> {
        let line = self.inner.as_ref().map_err(|_| ChainError::Unencodable)?;
        if line.len_with(seq) <= MAX_LINE_BYTES {
            return Ok((line, false));
        }
        let bare = line.truncated.as_deref().unwrap_or(line);
        let size = bare.len_with(seq);
        if size > MAX_LINE_BYTES {
            return Err(ChainError::TooLarge {
                size,
                limit: MAX_LINE_BYTES,
            });
        }
        Ok((bare, true))
    }
}

impl Encoded {
    /// The line's length with a chain value for sequence number `seq`, without the newline.
    fn len_with(&self, seq: u64) -> usize {
        self.bytes.len() + decimal_len(seq) + 1 + HASH_HEX_LEN
    }

    /// Appends the line with chain value `seq:` and 64 zeros to `out`; returns the offset in
    /// `out` of the first hex digit.
    pub(crate) fn write_with_placeholder(&self, seq: u64, out: &mut Vec<u8>) -> usize {
        let (head, tail) = self.bytes.split_at(self.slot.min(self.bytes.len()));
        out.reserve(self.len_with(seq) + 1);
        out.extend_from_slice(head);
        write_u64(seq, out);
        out.push(b':');
        let hex_start = out.len();
        out.extend_from_slice(&[b'0'; HASH_HEX_LEN]);
        out.extend_from_slice(tail);
        hex_start
    }

    fn new(
        ev: &Event,
        mut out: Vec<u8>,
        parts: LineParts<'_>,
    ) -> Result<Encoded, serde_json::Error> {
        out.reserve(1024);
        let o = &mut out;
        if ev.kind == "Event" && ev.api_version == API_VERSION {
            o.extend_from_slice(b"{\"kind\":\"Event\",\"apiVersion\":\"audit.k8s.io/v1\"");
        } else {
            o.extend_from_slice(b"{\"kind\":");
            write_str(o, &ev.kind)?;
            o.extend_from_slice(b",\"apiVersion\":");
            write_str(o, &ev.api_version)?;
        }
        o.extend_from_slice(b",\"level\":\"");
        o.extend_from_slice(ev.level.as_str().as_bytes());
        o.extend_from_slice(b"\",\"auditID\":");
        let id_start = o.len() + 1;
        write_str(o, &ev.audit_id)?;
        let audit_id = id_start..o.len() - 1;
        o.extend_from_slice(b",\"stage\":\"");
        o.extend_from_slice(ev.stage.as_str().as_bytes());
        o.push(b'"');
        let stable_start = o.len();
        match parts.stable {
            Some(bytes) => o.extend_from_slice(bytes),
            None => write_stable_part(o, ev, parts.users)?,
        }
        let stable = stable_start..o.len();
        if let Some(s) = &ev.response_status {
            o.extend_from_slice(b",\"responseStatus\":");
            write_response_status(o, s)?;
        }
        if let Some(b) = &ev.request_object {
            o.extend_from_slice(b",\"requestObject\":");
            serde_json::to_writer(&mut *o, b)?;
        }
        if let Some(b) = &ev.response_object {
            o.extend_from_slice(b",\"responseObject\":");
            serde_json::to_writer(&mut *o, b)?;
        }
        o.extend_from_slice(b",\"requestReceivedTimestamp\":\"");
        write_micro_time(o, ev.request_received_timestamp);
        o.extend_from_slice(b"\",\"stageTimestamp\":\"");
        write_micro_time(o, ev.stage_timestamp);
        // The annotations in key order (a BTreeMap), the chain key among them.
        o.extend_from_slice(b"\",\"annotations\":{");
        let mut slot = None;
        let mut first = true;
        let mut chain_entry = |o: &mut Vec<u8>, first: &mut bool| {
            if !std::mem::take(first) {
                o.push(b',');
            }
            o.extend_from_slice(KEY_PATTERN);
            slot = Some(o.len());
            o.push(b'"');
        };
        let mut chain_written = false;
        let none = Annotations::new();
        for (k, v) in merged(&ev.annotations, parts.annotations.unwrap_or(&none)) {
            match k.cmp(CHAIN_ANNOTATION) {
                std::cmp::Ordering::Less => {}
                std::cmp::Ordering::Equal => continue,
                std::cmp::Ordering::Greater if !chain_written => {
                    chain_entry(o, &mut first);
                    chain_written = true;
                }
                std::cmp::Ordering::Greater => {}
            }
            if !std::mem::take(&mut first) {
                o.push(b',');
            }
            write_str(o, k)?;
            o.push(b':');
            write_str(o, v)?;
        }
        if !chain_written {
            chain_entry(o, &mut first);
        }
        o.extend_from_slice(b"}}");
        Ok(Encoded {
            slot: slot.unwrap_or(out.len()),
            bytes: out,
            audit_id,
            truncated: None,
            stable,
        })
    }
}

/// The event's annotations and `extra`, in key order; where both have a key, the event's.
fn merged<'a>(
    map: &'a std::collections::BTreeMap<String, String>,
    extra: &'a Annotations,
) -> impl Iterator<Item = (&'a str, &'a str)> {
    let mut a = map.iter().map(|(k, v)| (k.as_str(), v.as_str())).peekable();
    let mut b = extra.iter().peekable();
    std::iter::from_fn(move || match (a.peek(), b.peek()) {
        (Some(x), Some(y)) => match x.0.cmp(y.0) {
            std::cmp::Ordering::Less => a.next(),
            std::cmp::Ordering::Equal => {
                b.next();
                a.next()
            }
            std::cmp::Ordering::Greater => b.next(),
        },
        (Some(_), None) => a.next(),
        (None, _) => b.next(),
    })
}

/// The fields from `requestURI` through `objectRef`, each with its leading comma; `users`
/// replace the event's `user` and `impersonatedUser`.
fn write_stable_part(
    o: &mut Vec<u8>,
    ev: &Event,
    users: Option<(&UserInfo, Option<&UserInfo>)>,
) -> Result<(), serde_json::Error> {
    let (user, impersonated) = users.unwrap_or((&ev.user, ev.impersonated_user.as_ref()));
    o.extend_from_slice(b",\"requestURI\":");
    write_str(o, &ev.request_uri)?;
    o.extend_from_slice(b",\"verb\":");
    write_str(o, &ev.verb)?;
    o.extend_from_slice(b",\"user\":");
    write_user(o, user)?;
    if let Some(u) = impersonated {
        o.extend_from_slice(b",\"impersonatedUser\":");
        write_user(o, u)?;
    }
    if let Some(m) = &ev.authentication_metadata {
        o.extend_from_slice(b",\"authenticationMetadata\":");
        serde_json::to_writer(&mut *o, m)?;
    }
    if !ev.source_ips.is_empty() {
        o.extend_from_slice(b",\"sourceIPs\":");
        write_str_list(o, &ev.source_ips)?;
    }
    if !ev.user_agent.is_empty() {
        o.extend_from_slice(b",\"userAgent\":");
        write_str(o, &ev.user_agent)?;
    }
    if let Some(r) = &ev.object_ref {
        o.extend_from_slice(b",\"objectRef\":");
        write_object_ref(o, r)?;
    }
    Ok(())
}

/// `user` / `impersonatedUser`, as `UserInfo`'s serde derive writes it.
fn write_user(o: &mut Vec<u8>, u: &UserInfo) -> Result<(), serde_json::Error> {
    let mut fields = Fields::new(o);
    fields.str("username", &u.username)?;
    fields.str("uid", &u.uid)?;
    if !u.groups.is_empty() {
        let o = fields.key("groups");
        write_str_list(o, &u.groups)?;
    }
    if !u.extra.is_empty() {
        let o = fields.key("extra");
        o.push(b'{');
        for (i, (k, v)) in u.extra.iter().enumerate() {
            if i > 0 {
                o.push(b',');
            }
            write_str(o, k)?;
            o.push(b':');
            write_str_list(o, v)?;
        }
        o.push(b'}');
    }
    fields.end();
    Ok(())
}

/// `objectRef`, as `ObjectReference`'s serde derive writes it.
fn write_object_ref(o: &mut Vec<u8>, r: &ObjectReference) -> Result<(), serde_json::Error> {
    let mut fields = Fields::new(o);
    fields.str("resource", &r.resource)?;
    fields.str("namespace", &r.namespace)?;
    fields.str("name", &r.name)?;
    fields.str("uid", &r.uid)?;
    fields.str("apiGroup", &r.api_group)?;
    fields.str("apiVersion", &r.api_version)?;
    fields.str("resourceVersion", &r.resource_version)?;
    fields.str("subresource", &r.subresource)?;
    fields.end();
    Ok(())
}

/// `responseStatus`, as `ResponseStatus`'s serde derive writes it.
fn write_response_status(o: &mut Vec<u8>, s: &ResponseStatus) -> Result<(), serde_json::Error> {
    o.extend_from_slice(b"{\"metadata\":");
    if s.metadata.is_empty() {
        o.extend_from_slice(b"{}");
    } else {
        serde_json::to_writer(&mut *o, &s.metadata)?;
    }
    let mut fields = Fields {
        out: o,
        first: false,
    };
    fields.str("status", &s.status)?;
    fields.str("message", &s.message)?;
    fields.str("reason", &s.reason)?;
    if let Some(d) = &s.details {
        serde_json::to_writer(&mut *fields.key("details"), d)?;
    }
    if s.code != 0 {
        let o = fields.key("code");
        if s.code < 0 {
            o.push(b'-');
        }
        write_u64(u64::from(s.code.unsigned_abs()), o);
    }
    fields.end();
    Ok(())
}

/// The fields of a JSON object, written one by one.
struct Fields<'a> {
    out: &'a mut Vec<u8>,
    first: bool,
}

impl<'a> Fields<'a> {
    fn new(out: &'a mut Vec<u8>) -> Self {
        out.push(b'{');
        Fields { out, first: true }
    }

    /// Writes `"name":` (after a comma unless first) and returns the output for the value.
    /// Names are plain ASCII field names: nothing to escape.
    fn key(&mut self, name: &str) -> &mut Vec<u8> {
        if !std::mem::take(&mut self.first) {
            self.out.push(b',');
        }
        self.out.push(b'"');
        self.out.extend_from_slice(name.as_bytes());
        self.out.extend_from_slice(b"\":");
        self.out
    }

    /// A string field, left out when empty (`skip_serializing_if = "String::is_empty"`).
    fn str(&mut self, name: &str, value: &str) -> Result<(), serde_json::Error> {
        if value.is_empty() {
            return Ok(());
        }
        write_str(self.key(name), value)
    }

    fn end(self) {
        self.out.push(b'}');
    }
}

fn write_str_list(o: &mut Vec<u8>, items: &[String]) -> Result<(), serde_json::Error> {
    o.push(b'[');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            o.push(b',');
        }
        write_str(o, item)?;
    }
    o.push(b']');
    Ok(())
}

/// A JSON string as `serde_json` writes it: copied as is when nothing in it needs escaping
/// (the common case, checked sixteen bytes at a time), through `serde_json` otherwise.
fn write_str(out: &mut Vec<u8>, s: &str) -> Result<(), serde_json::Error> {
    if needs_escape(s.as_bytes()) {
        return s.serialize(&mut serde_json::Serializer::new(out));
    }
    out.reserve(s.len() + 2);
    out.push(b'"');
    out.extend_from_slice(s.as_bytes());
    out.push(b'"');
    Ok(())
}

/// Whether `bytes` holds a control character, `"` or `\\`: what JSON strings escape.
///
/// Sixteen bytes at a time, written so that the compiler turns each block into a few SSE2
/// instructions (compare, or, move mask); a string shorter than sixteen bytes is checked byte
/// by byte, and the last partial block is the final sixteen bytes, read in place (overlapping
/// the block before it). Copying a tail into a padded block instead stalled on the load after
/// the copy's byte stores (a store-forwarding miss, about 15 cycles per string).
fn needs_escape(bytes: &[u8]) -> bool {
    fn escaped(b: u8) -> bool {
        b < 0x20 || b == b'"' || b == b'\\'
    }
    fn block_needs(block: &[u8; 16]) -> bool {
        // `fold` over a fixed-size array, without short-circuit: one vector compare per
        // condition.
        block.iter().fold(false, |any, &b| any | escaped(b))
    }
    let as_block = |chunk: &[u8]| <&[u8; 16]>::try_from(chunk).map_or(true, block_needs);
    if bytes.len() < 16 {
        return bytes.iter().any(|&b| escaped(b));
    }
    let mut chunks = bytes.chunks_exact(16);
    if chunks.by_ref().any(as_block) {
        return true;
    }
    !chunks.remainder().is_empty() && bytes.get(bytes.len() - 16..).is_none_or(as_block)
}

fn decimal_len(n: u64) -> usize {
    n.checked_ilog10().map_or(1, |d| d as usize + 1)
}

fn write_u64(n: u64, out: &mut Vec<u8>) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    let mut n = n;
    loop {
        i -= 1;
        if let Some(d) = digits.get_mut(i) {
            *d = b'0' + (n % 10) as u8;
        }
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(digits.get(i..).unwrap_or_default());
}

/// A [`MicroTime`] as its `Display` writes it, without `fmt` for years 1970 to 9999. The date
/// and time of day are the same for every event of one second: each thread keeps the last
/// second's text, and only the microseconds are written anew.
pub(crate) fn write_micro_time(out: &mut Vec<u8>, t: MicroTime) {
    thread_local! {
        /// The last second written and its `YYYY-MM-DDTHH:MM:SS`.
        static LAST: std::cell::Cell<(i64, [u8; 19])> =
            const { std::cell::Cell::new((-1, [0; 19])) };
    }
    let ts = t.timestamp();
    let secs = ts.as_second();
    let nanos = ts.subsec_nanosecond();
    if !(0..FAST_UNTIL).contains(&secs) || nanos < 0 {
        use std::io::Write as _;
        let _ = write!(out, "{t}");
        return;
    }
    let (last, mut text) = LAST.get();
    if last != secs {
        text = second_text(secs);
        LAST.set((secs, text));
    }
    let micros = nanos / 1000;
    // .ffffffZ, filled in on the stack.
    let mut frac = *b".000000Z";
    let mut n = micros;
    for digit in frac.iter_mut().skip(1).take(6).rev() {
        *digit = b'0' + (n % 10) as u8;
        n /= 10;
    }
    out.extend_from_slice(&text);
    out.extend_from_slice(&frac);
}

/// `YYYY-MM-DDTHH:MM:SS` of a second since the epoch, from 0 to [`FAST_UNTIL`].
fn second_text(secs: i64) -> [u8; 19] {
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days);
    let mut text = *b"0000-00-00T00:00:00";
    for (at, n) in [
        (0, y / 100),
        (2, y % 100),
        (5, m),
        (8, d),
        (11, rem / 3600),
        (14, rem / 60 % 60),
        (17, rem % 60),
    ] {
        if let Some([hi, lo]) = text
            .get_mut(at..at + 2)
            .and_then(|p| <&mut [u8; 2]>::try_from(p).ok())
        {
            *hi = b'0' + (n / 10 % 10) as u8;
            *lo = b'0' + (n % 10) as u8;
        }
    }
    text
}

/// 10000-01-01T00:00:00Z: no later instant takes the fast path (jiff ends before it).
const FAST_UNTIL: i64 = 253_402_300_800;

/// Year, month and day of a day count since 1970-01-01 (not negative), after Howard
/// Hinnant's `civil_from_days`.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
#[path = "line_tests.rs"]
mod tests;

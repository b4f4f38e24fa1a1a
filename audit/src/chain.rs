//! The hash chain that makes the audit trail tamper-evident.
//!
//! Every line the log backend writes carries the annotation `portcullis.dev/audit-chain` with
//! the value `<seq>:<hash>`:
//!
//! - `seq` is a decimal sequence number (no leading zeros) that grows by one per event over the
//!   whole trail, across rotated files;
//! - `hash` is 64 lowercase hex digits: `SHA-256(prev || line')`, where `prev` is the 32-byte
//!   hash of the previous event (32 zero bytes before the first event ever) and `line'` is the
//!   line exactly as written, without its trailing `\n`, with those 64 digits replaced by ASCII
//!   `0`.
//!
//! An event is serialised once, as an [`EventLine`] made by the caller, and written with the
//! placeholder `<seq>:000…0`; the writer hashes those bytes and overwrites the zeros with the
//! digest in place: no JSON canonicalisation, a verifier hashes the bytes it reads. The
//! annotation is found as the *last* occurrence of
//! `"portcullis.dev/audit-chain":"` in the line: `annotations` is the last field of an event and
//! keys sort, while a quote inside any JSON string is escaped, so nothing after it can fake the
//! pattern.
//!
//! What the chain proves: any change, deletion, insertion or reordering of lines *inside* the
//! trail breaks it. It is a plain hash, not a MAC: someone who can rewrite the files can also
//! recompute every hash, and lines cut from the end of the trail leave no trace in the files.
//! Both are caught by comparing the trail's head (`seq` and hash of the last event, see
//! [`Chain::head`] and `verify::Report::head`) with a copy kept elsewhere (the webhook backend,
//! metrics, a SIEM).

use sha2::{Digest, Sha256};

use crate::event::{Event, EventLine};

/// The annotation that carries the chain value.
pub const CHAIN_ANNOTATION: &str = "portcullis.dev/audit-chain";

/// The annotation key as it appears in a serialised line, with its quotes and the opening
/// quote of the value.
pub(crate) const KEY_PATTERN: &[u8] = b"\"portcullis.dev/audit-chain\":\"";

/// Hex digits in a chain value.
pub(crate) const HASH_HEX_LEN: usize = 64;

/// A position in the chain: an event's sequence number and hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Link {
    /// Sequence number.
    pub seq: u64,
    /// SHA-256 of the event (see the module docs).
    pub hash: [u8; 32],
}

impl Link {
    /// The hash as 64 lowercase hex digits.
    pub fn hash_hex(&self) -> String {
        to_hex(&self.hash)
    }
}

impl std::fmt::Display for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.seq, self.hash_hex())
    }
}

/// Why a line could not be sealed or read as part of the chain.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ChainError {
    /// The line has no `portcullis.dev/audit-chain` annotation.
    #[error("line has no `portcullis.dev/audit-chain` annotation")]
    Missing,
    /// The annotation value is not `<seq>:<64 hex digits>`.
    #[error("malformed `portcullis.dev/audit-chain` value")]
    Malformed,
    /// The event could not be serialised.
    #[error("cannot serialise audit event")]
    Serialize(#[source] serde_json::Error),
    /// The event could not be serialised when its [`EventLine`] was made (the cause was
    /// logged then).
    #[error("cannot serialise audit event")]
    Unencodable,
    /// The event is larger than the line bound even without bodies.
    #[error("audit event is {size} bytes without bodies, more than the limit of {limit}")]
    TooLarge {
        /// Its size.
        size: usize,
        /// The limit.
        limit: usize,
    },
}

/// The writer's chain state: the next sequence number and the previous hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Chain {
    next_seq: u64,
    prev: [u8; 32],
}

impl Chain {
    /// The state before the first event ever: sequence 0, previous hash all zeros.
    pub fn genesis() -> Chain {
        Chain {
            next_seq: 0,
            prev: [0; 32],
        }
    }

    /// The state after `last_line`, the last complete line written (without its `\n`): the
    /// next event gets the following sequence number and chains to its recorded hash.
    pub fn resume_from(last_line: &[u8]) -> Result<Chain, ChainError> {
        let link = parse_link(last_line)?;
        Ok(Chain {
            next_seq: link.seq.checked_add(1).ok_or(ChainError::Malformed)?,
            prev: link.recorded,
        })
    }

    /// The state right after `link` was sealed.
    pub(crate) fn after(link: Link) -> Chain {
        Chain {
            next_seq: link.seq.saturating_add(1),
            prev: link.hash,
        }
    }

    /// The sequence number the next event will get.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// The last event sealed (or resumed from); `None` at genesis.
    pub fn head(&self) -> Option<Link> {
        self.next_seq.checked_sub(1).map(|seq| Link {
            seq,
            hash: self.prev,
        })
    }

    /// Serialises `event` as one line, chained to the previous one, and appends it with its
    /// `\n` to `out`. Sets the chain annotation on `event`; an event whose line would exceed
    /// [`MAX_LINE_BYTES`](crate::MAX_LINE_BYTES) loses its bodies first
    /// ([`Event::truncate_bodies`]). On error `out` and the chain are unchanged.
    pub fn seal(&mut self, event: &mut Event, out: &mut Vec<u8>) -> Result<Link, ChainError> {
        let line = EventLine::from(&*event);
        let (link, truncated) = self.seal_inner(&line, out)?;
        if truncated {
            event.truncate_bodies();
        }
        event
            .annotations
            .insert(CHAIN_ANNOTATION.to_owned(), link.to_string());
        Ok(link)
    }

    /// Appends `line` with its chain value and `\n` to `out`, chained to the previous line;
    /// a line that would exceed [`MAX_LINE_BYTES`](crate::MAX_LINE_BYTES) is written without
    /// its bodies (see [`Chain::seal`]). On error `out` and the chain are unchanged.
    pub fn seal_line(&mut self, line: &EventLine, out: &mut Vec<u8>) -> Result<Link, ChainError> {
        self.seal_inner(line, out).map(|(link, _)| link)
    }

    fn seal_inner(
        &mut self,
        line: &EventLine,
        out: &mut Vec<u8>,
    ) -> Result<(Link, bool), ChainError> {
        let seq = self.next_seq;
        let (encoded, truncated) = line.fitting(seq)?;
        let start = out.len();
        let hex_start = encoded.write_with_placeholder(seq, out);
        let mut h = Sha256::new();
        h.update(self.prev);
        h.update(out.get(start..).unwrap_or_default());
        let hash: [u8; 32] = h.finalize().into();
        if let Some(digits) = out.get_mut(hex_start..hex_start + HASH_HEX_LEN) {
            write_hex(&hash, digits);
        }
        out.push(b'\n');
        self.next_seq = seq + 1;
        self.prev = hash;
        Ok((Link { seq, hash }, truncated))
    }
}

/// The chain value found in a line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct LineLink {
    /// Sequence number.
    pub(crate) seq: u64,
    /// The hash recorded in the line.
    pub(crate) recorded: [u8; 32],
    /// Offset of the first hex digit in the line.
    pub(crate) hex_start: usize,
}

/// Finds and parses the chain value of a line (without its `\n`).
pub(crate) fn parse_link(line: &[u8]) -> Result<LineLink, ChainError> {
    let key_at = rfind(line, KEY_PATTERN).ok_or(ChainError::Missing)?;
    let value_start = key_at + KEY_PATTERN.len();
    let rest = line.get(value_start..).ok_or(ChainError::Malformed)?;
    let colon = rest
        .iter()
        .take(21)
        .position(|&b| b == b':')
        .ok_or(ChainError::Malformed)?;
    let digits = rest.get(..colon).ok_or(ChainError::Malformed)?;
    let canonical = !digits.is_empty()
        && digits.iter().all(u8::is_ascii_digit)
        && (digits.len() == 1 || digits.first() != Some(&b'0'));
    if !canonical {
        return Err(ChainError::Malformed);
    }
    let seq: u64 = std::str::from_utf8(digits)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or(ChainError::Malformed)?;
    let hex_start = value_start + colon + 1;
    let hex = line
        .get(hex_start..hex_start + HASH_HEX_LEN)
        .ok_or(ChainError::Malformed)?;
    if line.get(hex_start + HASH_HEX_LEN) != Some(&b'"') {
        return Err(ChainError::Malformed);
    }
    let recorded = from_hex(hex).ok_or(ChainError::Malformed)?;
    Ok(LineLink {
        seq,
        recorded,
        hex_start,
    })
}

/// `SHA-256(prev || line with the hash digits zeroed)`, without copying the line.
pub(crate) fn line_hash(prev: &[u8; 32], line: &[u8], link: &LineLink) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(prev);
    h.update(line.get(..link.hex_start).unwrap_or_default());
    h.update([b'0'; HASH_HEX_LEN]);
    h.update(
        line.get(link.hex_start + HASH_HEX_LEN..)
            .unwrap_or_default(),
    );
    h.finalize().into()
}

fn rfind(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).rposition(|w| w == needle)
}

pub(crate) fn to_hex(bytes: &[u8; 32]) -> String {
    let mut digits = [0u8; HASH_HEX_LEN];
    write_hex(bytes, &mut digits);
    String::from_utf8_lossy(&digits).into_owned()
}

/// Writes the lowercase hex digits of `bytes` into `out` (as many as fit).
fn write_hex(bytes: &[u8; 32], out: &mut [u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let digit = |nibble: u8| {
        DIGITS
            .get(usize::from(nibble & 0xf))
            .copied()
            .unwrap_or(b'0')
    };
    for (pair, b) in out.chunks_exact_mut(2).zip(bytes) {
        if let [hi, lo] = pair {
            *hi = digit(b >> 4);
            *lo = digit(*b);
        }
    }
}

/// Lowercase hex only: a line has one spelling of its hash.
fn from_hex(hex: &[u8]) -> Option<[u8; 32]> {
    fn nibble(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        }
    }
    if hex.len() != HASH_HEX_LEN {
        return None;
    }
    let mut out = [0u8; 32];
    for (byte, pair) in out.iter_mut().zip(hex.chunks_exact(2)) {
        let (hi, lo) = (pair.first()?, pair.get(1)?);
        *byte = (nibble(*hi)? << 4) | nibble(*lo)?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use jiff::Timestamp;
    use serde_json::json;

    use super::*;
    use crate::MAX_LINE_BYTES;
    use crate::event::AuditId;
    use crate::policy::{Level, Stage};

    pub(crate) fn event(n: u32) -> Event {
        let mut ev = Event::new(
            &AuditId::parse(format!("id-{n}").as_bytes()).unwrap(),
            Level::Metadata,
            Stage::ResponseComplete,
            Timestamp::from_second(1_700_000_000 + i64::from(n)).unwrap(),
        );
        ev.verb = "get".into();
        ev.request_uri = format!("/api/v1/namespaces/default/pods/p{n}");
        ev
    }

    #[test]
    fn seal_writes_a_verifiable_line() {
        let mut chain = Chain::genesis();
        assert_eq!(chain.head(), None);
        let mut out = Vec::new();
        let l0 = chain.seal(&mut event(0), &mut out).unwrap();
        let l1 = chain.seal(&mut event(1), &mut out).unwrap();
        assert_eq!((l0.seq, l1.seq), (0, 1));
        assert_eq!(chain.head(), Some(l1));
        let text = String::from_utf8(out.clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(text.ends_with('\n'));
        // Each line is a valid event whose annotation holds seq:hash.
        let ev: Event = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(
            ev.annotations[CHAIN_ANNOTATION],
            format!("0:{}", l0.hash_hex())
        );
        // Recompute by hand: zero the digits, hash with the previous hash.
        let zeroed = lines[1].replace(&l1.hash_hex(), &"0".repeat(64));
        let mut h = Sha256::new();
        h.update(l0.hash);
        h.update(zeroed.as_bytes());
        assert_eq!(<[u8; 32]>::from(h.finalize()), l1.hash);
        let mut h = Sha256::new();
        h.update([0u8; 32]);
        h.update(lines[0].replace(&l0.hash_hex(), &"0".repeat(64)).as_bytes());
        assert_eq!(<[u8; 32]>::from(h.finalize()), l0.hash);
    }

    #[test]
    fn resume_continues_the_chain() {
        let mut chain = Chain::genesis();
        let mut out = Vec::new();
        chain.seal(&mut event(0), &mut out).unwrap();
        let line = out.strip_suffix(b"\n").unwrap();
        let resumed = Chain::resume_from(line).unwrap();
        assert_eq!(resumed, chain);
        assert_eq!(resumed.next_seq(), 1);
        assert!(matches!(
            Chain::resume_from(b"{\"kind\":\"Event\"}"),
            Err(ChainError::Missing)
        ));
    }

    #[test]
    fn body_mentioning_the_annotation_cannot_fake_the_chain_value() {
        let mut ev = event(0);
        ev.object_ref = Some(Default::default());
        ev.level = Level::Request;
        // An object whose own annotations carry our key, and a value with the pattern escaped.
        ev.request_object = Some(json!({"metadata": {"annotations": {
            CHAIN_ANNOTATION: format!("7:{}", "f".repeat(64))
        }}}));
        ev.annotations.insert(
            "zz".into(),
            format!("\"portcullis.dev/audit-chain\":\"9:{}\"", "e".repeat(64)),
        );
        let mut chain = Chain::genesis();
        let mut out = Vec::new();
        let link = chain.seal(&mut ev, &mut out).unwrap();
        let line = out.strip_suffix(b"\n").unwrap();
        let parsed = parse_link(line).unwrap();
        assert_eq!((parsed.seq, parsed.recorded), (0, link.hash));
        assert_eq!(line_hash(&[0; 32], line, &parsed), link.hash);
    }

    #[test]
    fn oversized_event_loses_bodies_and_is_marked() {
        let mut ev = event(0);
        ev.object_ref = Some(Default::default());
        ev.request_object = Some(json!({"data": "x".repeat(MAX_LINE_BYTES)}));
        let mut out = Vec::new();
        Chain::genesis().seal(&mut ev, &mut out).unwrap();
        assert!(out.len() < 4096);
        let back: Event = serde_json::from_slice(&out).unwrap();
        assert_eq!(back.annotations["audit.k8s.io/truncated"], "true");

        let mut huge = event(1);
        huge.annotations
            .insert("big".into(), "y".repeat(MAX_LINE_BYTES));
        let mut chain = Chain::genesis();
        let mut out = b"keep".to_vec();
        assert!(matches!(
            chain.seal(&mut huge, &mut out),
            Err(ChainError::TooLarge { .. })
        ));
        assert_eq!(out, b"keep");
        assert_eq!(chain, Chain::genesis());
    }

    #[test]
    fn malformed_values_are_refused() {
        let h = "a".repeat(64);
        for bad in [
            format!(r#"{{"annotations":{{"portcullis.dev/audit-chain":"x:{h}"}}}}"#),
            format!(r#"{{"annotations":{{"portcullis.dev/audit-chain":"01:{h}"}}}}"#),
            format!(r#"{{"annotations":{{"portcullis.dev/audit-chain":":{h}"}}}}"#),
            format!(
                r#"{{"annotations":{{"portcullis.dev/audit-chain":"1:{}"}}}}"#,
                "A".repeat(64)
            ),
            format!(
                r#"{{"annotations":{{"portcullis.dev/audit-chain":"1:{}"}}}}"#,
                "a".repeat(63)
            ),
            format!(r#"{{"annotations":{{"portcullis.dev/audit-chain":"1:{h}a"}}}}"#),
            format!(
                r#"{{"annotations":{{"portcullis.dev/audit-chain":"99999999999999999999999:{h}"}}}}"#
            ),
            r#"{"annotations":{"portcullis.dev/audit-chain":"1:"#.to_owned(),
        ] {
            assert!(parse_link(bad.as_bytes()).is_err(), "{bad}");
        }
        let ok = format!(r#"{{"annotations":{{"portcullis.dev/audit-chain":"0:{h}"}}}}"#);
        assert_eq!(parse_link(ok.as_bytes()).unwrap().seq, 0);
        let max = format!(r#"{{"portcullis.dev/audit-chain":"{}:{h}"}}"#, u64::MAX);
        assert!(matches!(
            Chain::resume_from(max.as_bytes()),
            Err(ChainError::Malformed)
        ));
    }
}

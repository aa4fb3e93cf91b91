//! The canonical audit event: what one ledger leaf says.
//!
//! A leaf must have exactly one byte representation, or two honest encoders
//! could produce different hashes for the same event and a verifier could not
//! tell a re-encoding from an edit. So the leaf bytes are compact JSON with the
//! fields in declaration order, every key present (`null` for absent values),
//! categories sorted and de-duplicated, and [`AuditEvent::decode`] refuses any
//! bytes that are not exactly what [`AuditEvent::encode`] would produce.
//!
//! Events name people and records only by opaque ids (invariant 3: the ledger
//! holds no personal data), so the formats of the id-like fields are checked.

use serde::{Deserialize, Serialize};

/// The only event schema version this crate writes and reads.
pub const EVENT_VERSION: u32 = 1;
/// Longest accepted string field, in bytes; keeps leaves small and stops free
/// text from creeping into the ledger.
pub const MAX_FIELD_BYTES: usize = 512;
/// Most data categories one event may name.
pub const MAX_CATEGORIES: usize = 64;
/// The outcomes an event may record.
pub const OUTCOMES: [&str; 4] = ["success", "denied", "failed", "not_found"];

/// One audited action: who did what to which record, touching which data
/// categories, for what purpose, and how it ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditEvent {
    /// Schema version, always [`EVENT_VERSION`].
    pub v: u32,
    /// When it happened: RFC 3339 UTC with milliseconds, e.g.
    /// `2026-11-30T02:13:25.123Z`, from the caller's clock.
    pub time: String,
    /// Who acted: `user:<uuid>`, `token:<uuid>`, `cli`, `system` or `anonymous`
    /// (UUIDs lower-case and hyphenated).
    pub actor: String,
    /// What was done, e.g. `contact.read`, `auth.login`.
    pub action: String,
    /// The data subject concerned, by opaque id.
    pub subject_id: Option<String>,
    /// The record concerned, e.g. `contact:<uuid>`.
    pub record: Option<String>,
    /// Data categories touched, e.g. `identity`, `contact_details`.
    pub categories: Vec<String>,
    /// The processing purpose invoked, if any.
    pub purpose: Option<String>,
    /// How it ended: one of [`OUTCOMES`].
    pub outcome: String,
    /// The client IP address, in its canonical textual form.
    pub client: Option<String>,
    /// The request id, to correlate with operational logs.
    pub request_id: Option<String>,
    /// A short non-personal note, e.g. `fields=first_name,email` or `count=50`.
    pub detail: Option<String>,
}

/// Why an event could not be encoded or decoded. Messages name the field,
/// never its value.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum EventError {
    /// The bytes are not JSON of the event schema (syntax error, wrong type,
    /// unknown or duplicate key).
    #[error("audit event is not valid JSON of the event schema (line {line}, column {column})")]
    Malformed {
        /// 1-based line of the error (0 when unknown).
        line: usize,
        /// 1-based column of the error (0 when unknown).
        column: usize,
    },
    /// `v` is not [`EVENT_VERSION`].
    #[error("unsupported audit event version {0}")]
    UnsupportedVersion(u32),
    /// The bytes decode, but are not the canonical encoding of what they decode to.
    #[error("audit event bytes are not in canonical form")]
    NotCanonical,
    /// A field contains a control or bidirectional-formatting character.
    #[error("field `{field}` contains a control character")]
    ControlCharacter {
        /// The offending field.
        field: &'static str,
    },
    /// A field is longer than [`MAX_FIELD_BYTES`].
    #[error("field `{field}` is longer than {MAX_FIELD_BYTES} bytes")]
    TooLong {
        /// The offending field.
        field: &'static str,
    },
    /// A field is empty; absent optional values are `None`, not `""`.
    #[error("field `{field}` is empty")]
    Empty {
        /// The offending field.
        field: &'static str,
    },
    /// A field does not have its documented format.
    #[error("field `{field}` is not in the expected format")]
    InvalidFormat {
        /// The offending field.
        field: &'static str,
    },
    /// More than [`MAX_CATEGORIES`] categories.
    #[error("an audit event may name at most {MAX_CATEGORIES} categories")]
    TooManyCategories,
}

impl AuditEvent {
    /// The canonical leaf bytes of this event, after checking every field.
    ///
    /// Categories are sorted and de-duplicated first, so callers need not care
    /// about their order.
    pub fn encode(&self) -> Result<Vec<u8>, EventError> {
        self.check()?;
        let sorted = self.categories.windows(2).all(|w| w[0] < w[1]);
        let bytes = if sorted {
            serde_json::to_vec(self)
        } else {
            let mut normal = self.clone();
            normal.categories.sort();
            normal.categories.dedup();
            serde_json::to_vec(&normal)
        };
        // Serialising plain strings and integers cannot fail; map it anyway
        // rather than unwrap.
        bytes.map_err(|_| EventError::Malformed { line: 0, column: 0 })
    }

    /// Decodes leaf bytes, refusing unknown keys, another version, invalid
    /// fields and any bytes that are not the canonical encoding (whitespace,
    /// key order, escapes, unsorted categories, missing `null`s).
    pub fn decode(data: &[u8]) -> Result<AuditEvent, EventError> {
        let event: AuditEvent =
            serde_json::from_slice(data).map_err(|e| EventError::Malformed {
                line: e.line(),
                column: e.column(),
            })?;
        if event.v != EVENT_VERSION {
            return Err(EventError::UnsupportedVersion(event.v));
        }
        if event.encode()? != data {
            return Err(EventError::NotCanonical);
        }
        Ok(event)
    }

    /// Checks every field against its documented format.
    fn check(&self) -> Result<(), EventError> {
        if self.v != EVENT_VERSION {
            return Err(EventError::UnsupportedVersion(self.v));
        }
        Fields {
            time: &self.time,
            actor: &self.actor,
            action: &self.action,
            subject_id: self.subject_id.as_deref(),
            record: self.record.as_deref(),
            categories: &self.categories,
            purpose: self.purpose.as_deref(),
            outcome: &self.outcome,
            client: self.client.as_deref(),
            request_id: self.request_id.as_deref(),
            detail: self.detail.as_deref(),
        }
        .check()
    }

    /// Checks that `data` is the canonical encoding of a valid event, exactly
    /// as [`AuditEvent::decode`] does, without building the event: the bytes
    /// are scanned once in place against the one layout [`AuditEvent::encode`]
    /// writes, and the fields are checked where they lie. This is what the
    /// ledger verifier runs on every leaf. Anything the scan does not accept
    /// goes through [`AuditEvent::decode`], so the verdict (and the error
    /// reported) is always the full decoder's.
    pub fn check_canonical(data: &[u8]) -> Result<(), EventError> {
        if canonical::accepts(data) {
            return Ok(());
        }
        Self::decode(data).map(|_| ())
    }
}

/// Borrowed fields of an event, for the checks shared by the encoder and the
/// in-place canonical scan.
struct Fields<'a, C> {
    time: &'a str,
    actor: &'a str,
    action: &'a str,
    subject_id: Option<&'a str>,
    record: Option<&'a str>,
    categories: &'a [C],
    purpose: Option<&'a str>,
    outcome: &'a str,
    client: Option<&'a str>,
    request_id: Option<&'a str>,
    detail: Option<&'a str>,
}

impl<C: AsRef<str>> Fields<'_, C> {
    fn check(&self) -> Result<(), EventError> {
        check_text("time", self.time)?;
        if !is_utc_millis_timestamp(self.time) {
            return Err(EventError::InvalidFormat { field: "time" });
        }
        check_text("actor", self.actor)?;
        if !is_actor(self.actor) {
            return Err(EventError::InvalidFormat { field: "actor" });
        }
        check_token("action", self.action)?;
        check_optional("subject_id", self.subject_id)?;
        check_optional("record", self.record)?;
        if self.categories.len() > MAX_CATEGORIES {
            return Err(EventError::TooManyCategories);
        }
        for category in self.categories {
            check_token("categories", category.as_ref())?;
        }
        check_optional("purpose", self.purpose)?;
        check_text("outcome", self.outcome)?;
        if !OUTCOMES.contains(&self.outcome) {
            return Err(EventError::InvalidFormat { field: "outcome" });
        }
        check_optional("client", self.client)?;
        if let Some(client) = self.client {
            // Canonical text only, so one address has one leaf encoding and
            // nothing but an address can hide in this field.
            if !is_canonical_ip(client) {
                return Err(EventError::InvalidFormat { field: "client" });
            }
        }
        check_optional("request_id", self.request_id)?;
        check_optional("detail", self.detail)?;
        Ok(())
    }
}

/// The in-place scan behind [`AuditEvent::check_canonical`].
///
/// It accepts only bytes laid out exactly as `serde_json` writes an
/// [`AuditEvent`]: the keys in declaration order, no whitespace, `1` for the
/// version, `null` for absent values, strings whose only escapes are `\"` and
/// `\\` (every other character is written raw by `serde_json`, and control
/// characters are refused in every field anyway), categories strictly
/// ascending. For such bytes, once the fields pass the same checks as the
/// encoder's, re-encoding the decoded event gives the same bytes back, so
/// accepting them here is accepting what `decode` accepts. Everything else is
/// refused here and left to `decode`.
mod canonical {
    use super::{Fields, MAX_CATEGORIES, check_token};
    use std::borrow::Cow;

    struct Scan<'a> {
        b: &'a [u8],
        /// The same bytes, checked as UTF-8 once for all the strings in them.
        text: &'a str,
        pos: usize,
    }

    impl<'a> Scan<'a> {
        fn lit(&mut self, s: &[u8]) -> Option<()> {
            if self.b.get(self.pos..)?.starts_with(s) {
                self.pos += s.len();
                Some(())
            } else {
                None
            }
        }

        fn string(&mut self) -> Option<Cow<'a, str>> {
            self.lit(b"\"")?;
            let start = self.pos;
            let mut escaped = false;
            // Jump from quote or backslash to the next; raw control bytes
            // in between are left to the field checks, which refuse them.
            loop {
                let at = self.pos + memchr::memchr2(b'"', b'\\', self.b.get(self.pos..)?)?;
                if self.b[at] == b'"' {
                    self.pos = at;
                    break;
                }
                if !matches!(self.b.get(at + 1), Some(b'"' | b'\\')) {
                    return None;
                }
                escaped = true;
                self.pos = at + 2;
            }
            // Both ends sit next to an ASCII quote, so on character
            // boundaries.
            let raw = self.text.get(start..self.pos)?;
            self.pos += 1;
            if !escaped {
                return Some(Cow::Borrowed(raw));
            }
            let mut out = String::with_capacity(raw.len());
            let mut chars = raw.chars();
            while let Some(c) = chars.next() {
                out.push(if c == '\\' { chars.next()? } else { c });
            }
            Some(Cow::Owned(out))
        }

        fn optional(&mut self) -> Option<Option<Cow<'a, str>>> {
            if self.lit(b"null").is_some() {
                Some(None)
            } else {
                self.string().map(Some)
            }
        }
    }

    fn opt<'a>(v: &'a Option<Cow<'a, str>>) -> Option<&'a str> {
        v.as_deref()
    }

    /// Whether `data` is certainly the canonical encoding of a valid event.
    pub(super) fn accepts(data: &[u8]) -> bool {
        scan(data).is_some()
    }

    fn scan(data: &[u8]) -> Option<()> {
        let mut s = Scan {
            b: data,
            text: std::str::from_utf8(data).ok()?,
            pos: 0,
        };
        s.lit(b"{\"v\":1,\"time\":")?;
        let time = s.string()?;
        s.lit(b",\"actor\":")?;
        let actor = s.string()?;
        s.lit(b",\"action\":")?;
        let action = s.string()?;
        s.lit(b",\"subject_id\":")?;
        let subject_id = s.optional()?;
        s.lit(b",\"record\":")?;
        let record = s.optional()?;
        s.lit(b",\"categories\":[")?;
        // Checked here as they come, in strictly ascending order (what the
        // encoder's sort and de-duplication leave).
        let mut previous: Option<Cow<'_, str>> = None;
        let mut count = 0usize;
        if s.lit(b"]").is_none() {
            loop {
                let category = s.string()?;
                count += 1;
                if count > MAX_CATEGORIES || check_token("categories", &category).is_err() {
                    return None;
                }
                if previous.as_ref().is_some_and(|p| *p >= category) {
                    return None;
                }
                previous = Some(category);
                if s.lit(b"]").is_some() {
                    break;
                }
                s.lit(b",")?;
            }
        }
        s.lit(b",\"purpose\":")?;
        let purpose = s.optional()?;
        s.lit(b",\"outcome\":")?;
        let outcome = s.string()?;
        s.lit(b",\"client\":")?;
        let client = s.optional()?;
        s.lit(b",\"request_id\":")?;
        let request_id = s.optional()?;
        s.lit(b",\"detail\":")?;
        let detail = s.optional()?;
        s.lit(b"}")?;
        if s.pos != data.len() {
            return None;
        }
        let no_categories: &[&str] = &[];
        Fields {
            time: &time,
            actor: &actor,
            action: &action,
            subject_id: opt(&subject_id),
            record: opt(&record),
            categories: no_categories,
            purpose: opt(&purpose),
            outcome: &outcome,
            client: opt(&client),
            request_id: opt(&request_id),
            detail: opt(&detail),
        }
        .check()
        .ok()
    }
}

/// Characters refused in every field: C0/C1 controls and DEL (they would need
/// escapes and can corrupt terminals and logs that show the ledger), line and
/// paragraph separators, and bidirectional overrides that can make an audit
/// view display something other than what is stored.
fn is_forbidden_char(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{200E}' | '\u{200F}' | '\u{2028}' | '\u{2029}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
        )
}

fn check_text(field: &'static str, value: &str) -> Result<(), EventError> {
    if value.is_empty() {
        return Err(EventError::Empty { field });
    }
    if value.len() > MAX_FIELD_BYTES {
        return Err(EventError::TooLong { field });
    }
    // Printable ASCII (nearly every field) holds no forbidden character;
    // only other text needs decoding into characters.
    // (A fold, not `all`: without an early exit it vectorises.)
    let printable_ascii = value
        .bytes()
        .fold(true, |ok, b| ok & (b.wrapping_sub(0x20) < 0x5f));
    if !printable_ascii && value.chars().any(is_forbidden_char) {
        return Err(EventError::ControlCharacter { field });
    }
    Ok(())
}

/// Whether `text` is the canonical textual form of an IP address, without
/// allocating (the verifier checks this on every leaf). Text without a colon
/// can only be IPv4, whose one textual form is checked by hand; IPv6 is
/// parsed and formatted again.
fn is_canonical_ip(text: &str) -> bool {
    if text.contains(':') {
        is_canonical_ipv6(text)
    } else {
        is_canonical_ipv4(text)
    }
}

/// Four decimal numbers up to 255 separated by dots, without leading zeros:
/// how `Ipv4Addr` prints.
fn is_canonical_ipv4(text: &str) -> bool {
    let mut parts = 0;
    for part in text.split('.') {
        parts += 1;
        let b = part.as_bytes();
        let digits = matches!(b.len(), 1..=3) && b.iter().all(u8::is_ascii_digit);
        let canonical =
            digits && (b.len() == 1 || b[0] != b'0') && part.parse::<u16>().is_ok_and(|v| v <= 255);
        if !canonical || parts > 4 {
            return false;
        }
    }
    parts == 4
}

fn is_canonical_ipv6(text: &str) -> bool {
    use std::fmt::Write;
    /// Formats into a stack buffer; longer output than fits fails.
    struct Buf {
        bytes: [u8; 64],
        len: usize,
    }
    impl Write for Buf {
        fn write_str(&mut self, s: &str) -> std::fmt::Result {
            let end = self.len + s.len();
            let slot = self.bytes.get_mut(self.len..end).ok_or(std::fmt::Error)?;
            slot.copy_from_slice(s.as_bytes());
            self.len = end;
            Ok(())
        }
    }
    let Ok(ip) = text.parse::<std::net::Ipv6Addr>() else {
        return false;
    };
    let mut buf = Buf {
        bytes: [0; 64],
        len: 0,
    };
    write!(buf, "{ip}").is_ok() && buf.bytes.get(..buf.len) == Some(text.as_bytes())
}

fn check_optional(field: &'static str, value: Option<&str>) -> Result<(), EventError> {
    value.map_or(Ok(()), |v| check_text(field, v))
}

/// Identifier-like fields (action, categories): printable ASCII without spaces.
fn check_token(field: &'static str, value: &str) -> Result<(), EventError> {
    check_text(field, value)?;
    if !value.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(EventError::InvalidFormat { field });
    }
    Ok(())
}

fn is_actor(actor: &str) -> bool {
    match actor {
        "cli" | "system" | "anonymous" => true,
        _ => actor
            .strip_prefix("user:")
            .or_else(|| actor.strip_prefix("token:"))
            .is_some_and(is_lower_uuid),
    }
}

/// A hyphenated lower-case UUID (`8-4-4-4-12` hex digits), the one form the
/// rest of Custos prints, so one actor has one spelling.
fn is_lower_uuid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, &c)| match i {
            8 | 13 | 18 | 23 => c == b'-',
            _ => c.is_ascii_digit() || (b'a'..=b'f').contains(&c),
        })
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` with a real calendar date; one fixed width so
/// leaves sort and compare as text.
fn is_utc_millis_timestamp(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 24 {
        return false;
    }
    let shape_ok = b.iter().enumerate().all(|(i, &c)| match i {
        4 | 7 => c == b'-',
        10 => c == b'T',
        13 | 16 => c == b':',
        19 => c == b'.',
        23 => c == b'Z',
        _ => c.is_ascii_digit(),
    });
    if !shape_ok {
        return false;
    }
    let num = |range: std::ops::Range<usize>| -> u32 {
        b[range]
            .iter()
            .fold(0u32, |acc, &c| acc * 10 + u32::from(c - b'0'))
    };
    let (year, month, day) = (num(0..4), num(5..7), num(8..10));
    let (hour, minute, second) = (num(11..13), num(14..16), num(17..19));
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let days_in_month = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (1..=days_in_month).contains(&day) && hour < 24 && minute < 60 && second < 60
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps() {
        assert!(is_utc_millis_timestamp("2026-11-30T02:13:25.123Z"));
        assert!(is_utc_millis_timestamp("2024-02-29T23:59:59.999Z"));
        assert!(!is_utc_millis_timestamp("2023-02-29T00:00:00.000Z"));
        assert!(!is_utc_millis_timestamp("2026-13-01T00:00:00.000Z"));
        assert!(!is_utc_millis_timestamp("2026-11-30T24:00:00.000Z"));
        assert!(!is_utc_millis_timestamp("2026-11-30T02:13:25Z"));
        assert!(!is_utc_millis_timestamp("2026-11-30T02:13:25.123+00:00"));
        assert!(!is_utc_millis_timestamp("2026-11-30 02:13:25.123Z"));
        assert!(!is_utc_millis_timestamp("2026-11-30T02:13:25.12Z"));
    }

    #[test]
    fn actors() {
        assert!(is_actor("cli"));
        assert!(is_actor("user:0192f0c1-7a2b-7c3d-8e4f-a0b1c2d3e4f5"));
        assert!(is_actor("token:0192f0c1-7a2b-7c3d-8e4f-a0b1c2d3e4f5"));
        assert!(!is_actor("user:0192F0C1-7A2B-7C3D-8E4F-A0B1C2D3E4F5"));
        assert!(!is_actor("user:alice@example.com"));
        assert!(!is_actor("admin"));
    }

    #[test]
    fn canonical_ip_text() {
        assert!(is_canonical_ip("127.0.0.1"));
        assert!(is_canonical_ip("::1"));
        assert!(is_canonical_ip("2001:db8::1"));
        assert!(!is_canonical_ip("0:0:0:0:0:0:0:1"));
        assert!(!is_canonical_ip("2001:DB8::1"));
        assert!(!is_canonical_ip("127.000.0.1"));
        assert!(!is_canonical_ip("localhost"));
        assert!(!is_canonical_ip(""));
    }

    #[test]
    fn forbidden_characters() {
        assert!(is_forbidden_char('\n'));
        assert!(is_forbidden_char('\u{7f}'));
        assert!(is_forbidden_char('\u{85}'));
        assert!(is_forbidden_char('\u{202E}'));
        assert!(!is_forbidden_char('é'));
        assert!(!is_forbidden_char(' '));
    }

    /// The hand-written IPv4 check accepts exactly what the standard
    /// library prints: the same verdict as parsing and printing again.
    #[test]
    fn canonical_ipv4_matches_the_standard_library() {
        let reference = |t: &str| {
            t.parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.to_string() == t)
        };
        let mut cases: Vec<String> = [
            "0.0.0.0",
            "255.255.255.255",
            "256.1.1.1",
            "1.2.3",
            "1.2.3.4.5",
            "",
            ".",
            "1..2.3",
            "1.2.3.4.",
            "+1.2.3.4",
            " 1.2.3.4",
            "1.2.3.04",
            "00.1.1.1",
            "1.2.3.1000",
            "1.2.3.0x1",
            "1.2.3.-1",
            "١.2.3.4",
            "::ffff:1.2.3.4",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        for a in [
            "0", "00", "7", "10", "010", "99", "199", "255", "256", "300", "999", "0255",
        ] {
            for b in ["0", "1", "01", "255", "256"] {
                cases.push(format!("{a}.{b}.{a}.{b}"));
                cases.push(format!("{b}.{a}.1.{a}"));
            }
        }
        for case in &cases {
            assert_eq!(is_canonical_ip(case), reference(case), "{case:?}");
        }
    }
}

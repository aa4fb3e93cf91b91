//! Field values and records, with their JSON form and their sealed plaintext form.

use crate::entity::Entity;
use crate::inventory::{self, FieldKind};
use std::collections::BTreeMap;
use time::format_description::well_known::Rfc3339;
use time::{Date, OffsetDateTime, UtcOffset};
use uuid::Uuid;

/// A typed field value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// Absent.
    Null,
    /// Text, emails, phones, enum values, stages, currency codes.
    Text(String),
    /// True or false.
    Bool(bool),
    /// An amount in hundredths (`"1250.00"` is 125000).
    Money(i64),
    /// A point in time (UTC, millisecond precision).
    Timestamp(OffsetDateTime),
    /// A calendar date.
    Date(Date),
    /// A record id.
    Uuid(Uuid),
    /// A list of labels.
    Tags(Vec<String>),
}

impl Value {
    /// The JSON form used by the API.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match self {
            Value::Null => J::Null,
            Value::Text(s) => J::String(s.clone()),
            Value::Bool(b) => J::Bool(*b),
            Value::Money(m) => J::String(format_money(*m)),
            Value::Timestamp(t) => J::String(format_timestamp(*t)),
            Value::Date(d) => J::String(format_date(*d)),
            Value::Uuid(u) => J::String(u.to_string()),
            Value::Tags(t) => J::Array(t.iter().cloned().map(J::String).collect()),
        }
    }

    /// A short human form, for pages and CSV.
    pub fn display(&self) -> String {
        match self {
            Value::Null => String::new(),
            Value::Tags(t) => t.join(", "),
            Value::Bool(b) => if *b { "yes" } else { "no" }.to_string(),
            other => match other.to_json() {
                serde_json::Value::String(s) => s,
                j => j.to_string(),
            },
        }
    }

    /// The bytes that are sealed for a sealed field.
    pub fn to_plaintext(&self) -> Vec<u8> {
        match self {
            Value::Text(s) => s.as_bytes().to_vec(),
            Value::Tags(t) => serde_json::to_vec(t).unwrap_or_default(),
            other => other.to_json().to_string().into_bytes(),
        }
    }

    /// Reads back what [`Value::to_plaintext`] wrote, for a field of `kind`.
    pub fn from_plaintext(kind: FieldKind, bytes: &[u8]) -> Option<Value> {
        match kind {
            FieldKind::Tags => serde_json::from_slice(bytes).ok().map(Value::Tags),
            FieldKind::Text { .. }
            | FieldKind::Email
            | FieldKind::Phone
            | FieldKind::Enum { .. }
            | FieldKind::Stage
            | FieldKind::Currency => std::str::from_utf8(bytes)
                .ok()
                .map(|s| Value::Text(s.to_string())),
            _ => {
                let j: serde_json::Value = serde_json::from_slice(bytes).ok()?;
                crate::validate::parse_value(
                    kind,
                    &j,
                    &crate::validate::ValidationContext::default(),
                )
                .ok()
            }
        }
    }

    /// The text inside, if any.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Value::Text(s) => Some(s),
            _ => None,
        }
    }

    /// The id inside, if any.
    pub fn as_uuid(&self) -> Option<Uuid> {
        match self {
            Value::Uuid(u) => Some(*u),
            _ => None,
        }
    }

    /// Whether the value is absent.
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }
}

/// Formats hundredths as a decimal string with two places.
pub fn format_money(hundredths: i64) -> String {
    let sign = if hundredths < 0 { "-" } else { "" };
    let abs = hundredths.unsigned_abs();
    format!("{sign}{}.{:02}", abs / 100, abs % 100)
}

/// Formats a time as RFC 3339 UTC (`2026-01-31T09:30:00Z`, milliseconds when present).
pub fn format_timestamp(t: OffsetDateTime) -> String {
    let t = t.to_offset(UtcOffset::UTC);
    let ms = t.millisecond();
    let (y, mo, d) = (t.year(), u8::from(t.month()), t.day());
    let (h, mi, s) = (t.hour(), t.minute(), t.second());
    if ms == 0 {
        format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
    } else {
        format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{ms:03}Z")
    }
}

/// Formats a date as `YYYY-MM-DD`.
pub fn format_date(d: Date) -> String {
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

/// Parses an RFC 3339 time into UTC, truncated to milliseconds (the stored precision).
pub fn parse_timestamp(s: &str) -> Option<OffsetDateTime> {
    let t = OffsetDateTime::parse(s, &Rfc3339)
        .ok()?
        .to_offset(UtcOffset::UTC);
    truncate_ms(t)
}

/// Truncates a time to whole milliseconds.
pub fn truncate_ms(t: OffsetDateTime) -> Option<OffsetDateTime> {
    t.replace_nanosecond(t.millisecond() as u32 * 1_000_000)
        .ok()
}

/// Milliseconds since the Unix epoch, the stored form of a timestamp.
pub fn to_unix_ms(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

/// The inverse of [`to_unix_ms`].
pub fn from_unix_ms(ms: i64) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok()
}

/// One record: its entity, id and field values (absent fields are `Null`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Which entity.
    pub entity: Entity,
    /// The record id.
    pub id: Uuid,
    /// Values by field name.
    pub values: BTreeMap<&'static str, Value>,
}

impl Record {
    /// A record with every declared field set to `Null` except its id.
    pub fn new(entity: Entity, id: Uuid) -> Record {
        let mut values: BTreeMap<&'static str, Value> = inventory::fields(entity)
            .map(|f| (f.name, Value::Null))
            .collect();
        values.insert("id", Value::Uuid(id));
        Record { entity, id, values }
    }

    /// A field's value (`Null` if unset or undeclared).
    pub fn get(&self, field: &str) -> &Value {
        self.values.get(field).unwrap_or(&Value::Null)
    }

    /// Sets a declared field; undeclared names are ignored (they cannot be stored).
    pub fn set(&mut self, field: &str, value: Value) {
        if let Some(decl) = inventory::field(self.entity, field) {
            self.values.insert(decl.name, value);
        }
    }

    /// The id of the person this record is about, if any.
    pub fn subject_id(&self) -> Option<Uuid> {
        self.entity
            .subject_field()
            .and_then(|f| self.get(f).as_uuid())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_formats_with_two_places_and_sign() {
        assert_eq!(format_money(125_000), "1250.00");
        assert_eq!(format_money(5), "0.05");
        assert_eq!(format_money(-1999), "-19.99");
    }

    #[test]
    fn timestamps_round_trip_in_utc_millis() {
        let t = parse_timestamp("2026-01-31T10:30:00.5+01:00").expect("valid");
        assert_eq!(format_timestamp(t), "2026-01-31T09:30:00.500Z");
        assert_eq!(from_unix_ms(to_unix_ms(t)), Some(t));
        assert!(parse_timestamp("2026-13-01T00:00:00Z").is_none());
    }

    #[test]
    fn plaintext_round_trips_for_every_kind() {
        let cases = [
            (
                FieldKind::Text {
                    max: 10,
                    multiline: false,
                },
                Value::Text("Zoë".into()),
            ),
            (
                FieldKind::Tags,
                Value::Tags(vec!["vip".into(), "b2b".into()]),
            ),
            (FieldKind::Money, Value::Money(12345)),
            (FieldKind::Bool, Value::Bool(true)),
        ];
        for (kind, v) in cases {
            assert_eq!(Value::from_plaintext(kind, &v.to_plaintext()), Some(v));
        }
    }
}

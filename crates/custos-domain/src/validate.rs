//! Validation of input against the inventory. Bad input produces one
//! [`FieldError`] per offending field and nothing is changed.

use crate::entity::Entity;
use crate::inventory::{self, FieldKind, Presence};
use crate::value::{Value, parse_timestamp};
use serde::Serialize;
use std::collections::BTreeMap;
use time::Date;
use uuid::Uuid;

/// A problem with one input field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    /// The field name as the client sent it.
    pub field: String,
    /// What is wrong, in words a person understands.
    pub message: String,
}

impl FieldError {
    /// Builds an error.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> FieldError {
        FieldError {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Configuration that validation depends on.
#[derive(Debug, Clone, Default)]
pub struct ValidationContext {
    /// The configured deal stages (empty: any stage name is refused).
    pub stages: Vec<String>,
    /// Fields the privacy officer decided to stop collecting (minimisation
    /// review): a value for them is refused; clearing one is allowed.
    pub not_collected: Vec<&'static str>,
}

/// Whether a payload creates a record or changes some of its fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Every required field must be present.
    Create,
    /// Only the fields present change; `null` clears an optional field.
    Patch,
}

/// Default deal stages of a new installation.
pub const DEFAULT_STAGES: [&str; 6] = [
    "lead",
    "qualified",
    "proposal",
    "negotiation",
    "won",
    "lost",
];

/// Whether a required field may be left out when creating a record because
/// Custos fills it in: a deal's stage starts as the pipeline's first.
pub fn defaulted_on_create(kind: FieldKind) -> bool {
    matches!(kind, FieldKind::Stage)
}

/// Maximum number of tags on one record.
pub const MAX_TAGS: usize = 20;

/// Parses a JSON object into field values for `entity`, refusing unknown fields,
/// fields set by Custos, wrong types, over-long strings and missing required fields.
pub fn parse_input(
    entity: Entity,
    input: &serde_json::Value,
    mode: Mode,
    ctx: &ValidationContext,
) -> Result<BTreeMap<&'static str, Value>, Vec<FieldError>> {
    let Some(obj) = input.as_object() else {
        return Err(vec![FieldError::new("", "the body must be a JSON object")]);
    };
    let mut errors = Vec::new();
    let mut out = BTreeMap::new();
    for (name, json) in obj {
        let Some(decl) = inventory::field(entity, name) else {
            errors.push(FieldError::new(
                name,
                format!("unknown field for a {}", entity.name()),
            ));
            continue;
        };
        if decl.presence == Presence::System {
            errors.push(FieldError::new(
                name,
                "is set by Custos and cannot be written",
            ));
            continue;
        }
        if !json.is_null() && ctx.not_collected.contains(&decl.name) {
            errors.push(FieldError::new(
                name,
                "is no longer collected (a data-minimisation decision of the privacy officer); leave it out",
            ));
            continue;
        }
        if json.is_null() {
            if decl.presence == Presence::Required {
                errors.push(FieldError::new(name, "is required and cannot be empty"));
            } else {
                out.insert(decl.name, Value::Null);
            }
            continue;
        }
        match parse_value(decl.kind, json, ctx) {
            Ok(Value::Text(s)) if decl.presence == Presence::Required && s.trim().is_empty() => {
                errors.push(FieldError::new(name, "is required and cannot be empty"));
            }
            Ok(v) => {
                out.insert(decl.name, v);
            }
            Err(message) => errors.push(FieldError::new(name, message)),
        }
    }
    if mode == Mode::Create {
        for decl in inventory::fields(entity) {
            if decl.presence != Presence::Required || obj.contains_key(decl.name) {
                continue;
            }
            match (decl.kind, ctx.stages.first()) {
                // A new deal starts in the pipeline's first stage, as in
                // Pipedrive and Twenty, unless one is given.
                (kind, Some(first)) if defaulted_on_create(kind) => {
                    out.insert(decl.name, Value::Text(first.clone()));
                }
                _ => errors.push(FieldError::new(decl.name, "is required")),
            }
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// Parses one JSON value as a field of `kind`; the error says what was expected.
pub fn parse_value(
    kind: FieldKind,
    json: &serde_json::Value,
    ctx: &ValidationContext,
) -> Result<Value, String> {
    let text = || json.as_str().ok_or_else(|| "must be a string".to_string());
    match kind {
        FieldKind::Id | FieldKind::Ref { .. } => {
            let s = text()?;
            Uuid::parse_str(s)
                .map(Value::Uuid)
                .map_err(|_| "must be an id (a UUID)".to_string())
        }
        FieldKind::Text { max, multiline } => {
            let s = text()?;
            check_text(s, max, multiline)?;
            Ok(Value::Text(s.trim().to_string()))
        }
        FieldKind::Email => {
            let s = text()?.trim();
            check_email(s)?;
            Ok(Value::Text(s.to_string()))
        }
        FieldKind::Phone => {
            let s = text()?.trim();
            check_phone(s)?;
            Ok(Value::Text(s.to_string()))
        }
        FieldKind::Enum { values } => {
            let s = text()?;
            if values.contains(&s) {
                Ok(Value::Text(s.to_string()))
            } else {
                Err(format!("must be one of: {}", values.join(", ")))
            }
        }
        FieldKind::Stage => {
            let s = text()?;
            if ctx.stages.iter().any(|st| st == s) {
                Ok(Value::Text(s.to_string()))
            } else {
                Err(format!(
                    "must be a pipeline stage: {}",
                    ctx.stages.join(", ")
                ))
            }
        }
        FieldKind::Money => {
            let s =
                text().map_err(|_| "must be a decimal string such as \"1250.00\"".to_string())?;
            parse_money(s).map(Value::Money)
        }
        FieldKind::Currency => {
            let s = text()?;
            if s.len() == 3 && s.bytes().all(|b| b.is_ascii_alphabetic()) {
                Ok(Value::Text(s.to_ascii_uppercase()))
            } else {
                Err("must be a three-letter ISO 4217 currency code such as EUR".to_string())
            }
        }
        FieldKind::Date => {
            let s = text()?;
            parse_date(s)
                .map(Value::Date)
                .ok_or_else(|| "must be a date as YYYY-MM-DD".to_string())
        }
        FieldKind::Timestamp => {
            let s = text()?;
            parse_timestamp(s)
                .map(Value::Timestamp)
                .ok_or_else(|| "must be an RFC 3339 time such as 2026-01-31T09:30:00Z".to_string())
        }
        FieldKind::Tags => {
            let arr = json
                .as_array()
                .ok_or_else(|| "must be a list of tags".to_string())?;
            if arr.len() > MAX_TAGS {
                return Err(format!("may hold at most {MAX_TAGS} tags"));
            }
            let mut tags: Vec<String> = Vec::new();
            for t in arr {
                let t = t
                    .as_str()
                    .ok_or_else(|| "each tag must be a string".to_string())?;
                let t = t.trim().to_lowercase();
                let ok = (1..=32).contains(&t.len())
                    && t.bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
                if !ok {
                    return Err(
                        "each tag must be 1 to 32 lowercase letters, digits or dashes".to_string(),
                    );
                }
                if !tags.contains(&t) {
                    tags.push(t);
                }
            }
            Ok(Value::Tags(tags))
        }
        FieldKind::Bool => json
            .as_bool()
            .map(Value::Bool)
            .ok_or_else(|| "must be true or false".to_string()),
    }
}

/// Checks free text: at most `max` characters, and no control characters
/// (line breaks and tabs allowed when `multiline`).
pub fn check_text(s: &str, max: usize, multiline: bool) -> Result<(), String> {
    if s.chars().count() > max {
        return Err(format!("must be at most {max} characters"));
    }
    let bad = s
        .chars()
        .any(|c| c.is_control() && !(multiline && (c == '\n' || c == '\r' || c == '\t')));
    if bad {
        return Err(if multiline {
            "must not contain control characters".to_string()
        } else {
            "must be a single line without control characters".to_string()
        });
    }
    Ok(())
}

/// Checks an email address: one `@`, a dotted domain, no spaces or control
/// characters, within the lengths of RFC 5321.
pub fn check_email(s: &str) -> Result<(), String> {
    const MSG: &str = "must be an email address such as name@example.com";
    if s.len() > 254 || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(MSG.to_string());
    }
    let Some((local, domain)) = s.rsplit_once('@') else {
        return Err(MSG.to_string());
    };
    let domain_ok = domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains("..")
        && !domain.contains('@');
    if local.is_empty() || local.len() > 64 || !domain_ok {
        return Err(MSG.to_string());
    }
    Ok(())
}

fn check_phone(s: &str) -> Result<(), String> {
    let allowed = s
        .chars()
        .all(|c| c.is_ascii_digit() || " +-().".contains(c));
    let digits = s.chars().filter(char::is_ascii_digit).count();
    let plus_ok = s.rfind('+').is_none_or(|i| i == 0);
    if !allowed || !plus_ok || !(3..=20).contains(&digits) || s.len() > 32 {
        return Err(
            "must be a phone number: digits, spaces, + - ( ) . (3 to 20 digits)".to_string(),
        );
    }
    Ok(())
}

/// Parses a decimal string with at most two decimals into hundredths.
pub fn parse_money(s: &str) -> Result<i64, String> {
    const MSG: &str = "must be a decimal string with at most two decimals, such as \"1250.00\"";
    let (neg, body) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    let digits_ok = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
    if int.is_empty() || int.len() > 13 || frac.len() > 2 || !digits_ok(int) || !digits_ok(frac) {
        return Err(MSG.to_string());
    }
    if body.contains('.') && frac.is_empty() {
        return Err(MSG.to_string());
    }
    let int: i64 = int.parse().map_err(|_| MSG.to_string())?;
    let frac: i64 = format!("{frac:0<2}").parse().map_err(|_| MSG.to_string())?;
    let v = int * 100 + frac;
    Ok(if neg { -v } else { v })
}

/// Parses `YYYY-MM-DD`.
pub fn parse_date(s: &str) -> Option<Date> {
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    if s.len() != 10 {
        return None;
    }
    Date::parse(s, &fmt).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ctx() -> ValidationContext {
        ValidationContext {
            stages: DEFAULT_STAGES.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn a_field_no_longer_collected_refuses_values_but_may_be_cleared() {
        let stopped = ValidationContext {
            not_collected: vec!["phone"],
            ..ctx()
        };
        let errs = parse_input(
            Entity::Contact,
            &json!({"first_name": "Ada", "last_name": "L", "phone": "+44 20 7946 0000"}),
            Mode::Create,
            &stopped,
        )
        .expect_err("refused");
        assert_eq!(fields_of(&errs), vec!["phone"]);
        assert!(errs[0].message.contains("no longer collected"));
        let v = parse_input(
            Entity::Contact,
            &json!({"phone": null}),
            Mode::Patch,
            &stopped,
        )
        .expect("clearing is allowed");
        assert_eq!(v.get("phone"), Some(&Value::Null));
        // Without the decision the same value is accepted.
        parse_input(
            Entity::Contact,
            &json!({"first_name": "Ada", "last_name": "L", "phone": "+44 20 7946 0000"}),
            Mode::Create,
            &ctx(),
        )
        .expect("accepted");
    }

    fn fields_of(errs: &[FieldError]) -> Vec<&str> {
        errs.iter().map(|e| e.field.as_str()).collect()
    }

    #[test]
    fn create_contact_accepts_valid_input() {
        let v = parse_input(
            Entity::Contact,
            &json!({"first_name": "Ada", "last_name": "Lovelace", "email": " Ada@Example.com ", "tags": ["VIP", "vip"]}),
            Mode::Create,
            &ctx(),
        )
        .expect("valid");
        assert_eq!(v["email"], Value::Text("Ada@Example.com".into()));
        assert_eq!(v["tags"], Value::Tags(vec!["vip".into()]));
    }

    #[test]
    fn create_names_every_bad_field() {
        let errs = parse_input(
            Entity::Contact,
            &json!({"first_name": 7, "email": "not-an-email", "id": "x", "nickname": "a", "phone": "abc"}),
            Mode::Create,
            &ctx(),
        )
        .expect_err("invalid");
        let mut f = fields_of(&errs);
        f.sort();
        assert_eq!(
            f,
            [
                "email",
                "first_name",
                "id",
                "last_name",
                "nickname",
                "phone"
            ]
        );
    }

    #[test]
    fn over_long_and_control_characters_are_refused() {
        let long = "x".repeat(101);
        let errs = parse_input(
            Entity::Contact,
            &json!({"first_name": long}),
            Mode::Patch,
            &ctx(),
        )
        .expect_err("long");
        assert!(errs[0].message.contains("at most 100"));
        let errs = parse_input(
            Entity::Contact,
            &json!({"last_name": "a\u{0007}b"}),
            Mode::Patch,
            &ctx(),
        )
        .expect_err("bell");
        assert_eq!(errs[0].field, "last_name");
    }

    #[test]
    fn patch_may_clear_optional_but_not_required() {
        let v = parse_input(
            Entity::Contact,
            &json!({"phone": null}),
            Mode::Patch,
            &ctx(),
        )
        .expect("ok");
        assert_eq!(v["phone"], Value::Null);
        let errs = parse_input(
            Entity::Contact,
            &json!({"first_name": null}),
            Mode::Patch,
            &ctx(),
        )
        .expect_err("req");
        assert_eq!(fields_of(&errs), ["first_name"]);
        let errs = parse_input(
            Entity::Contact,
            &json!({"first_name": "  "}),
            Mode::Patch,
            &ctx(),
        )
        .expect_err("blank");
        assert_eq!(fields_of(&errs), ["first_name"]);
    }

    #[test]
    fn money_parsing() {
        assert_eq!(parse_money("1250.00"), Ok(125_000));
        assert_eq!(parse_money("1250.5"), Ok(125_050));
        assert_eq!(parse_money("-3"), Ok(-300));
        for bad in [
            "",
            "1.234",
            "1,00",
            "1.",
            ".5",
            "abc",
            "1e3",
            "99999999999999",
        ] {
            assert!(parse_money(bad).is_err(), "{bad} accepted");
        }
        let errs = parse_input(
            Entity::Deal,
            &json!({"title": "X", "stage": "lead", "amount": 12.5}),
            Mode::Create,
            &ctx(),
        )
        .expect_err("number");
        assert_eq!(fields_of(&errs), ["amount"]);
    }

    #[test]
    fn a_new_deal_without_a_stage_starts_in_the_first_one() {
        let custom = ValidationContext {
            stages: vec!["inbox".into(), "talking".into()],
            ..Default::default()
        };
        let v = parse_input(Entity::Deal, &json!({"title": "X"}), Mode::Create, &custom)
            .expect("accepted");
        assert_eq!(v.get("stage"), Some(&Value::Text("inbox".into())));
        // Given, it is kept; null is still refused; a patch gets no default.
        let v = parse_input(
            Entity::Deal,
            &json!({"title": "X", "stage": "talking"}),
            Mode::Create,
            &custom,
        )
        .expect("accepted");
        assert_eq!(v.get("stage"), Some(&Value::Text("talking".into())));
        let e = parse_input(
            Entity::Deal,
            &json!({"title": "X", "stage": null}),
            Mode::Create,
            &custom,
        )
        .expect_err("refused");
        assert_eq!(fields_of(&e), ["stage"]);
        let v = parse_input(Entity::Deal, &json!({"title": "Y"}), Mode::Patch, &custom)
            .expect("accepted");
        assert!(!v.contains_key("stage"));
        // With no pipeline configured there is nothing to default to.
        let e = parse_input(
            Entity::Deal,
            &json!({"title": "X"}),
            Mode::Create,
            &ValidationContext::default(),
        )
        .expect_err("refused");
        assert_eq!(fields_of(&e), ["stage"]);
    }

    #[test]
    fn stages_enums_dates_and_refs() {
        let errs = parse_input(
            Entity::Deal,
            &json!({"title": "X", "stage": "imaginary", "close_date": "2026-02-30", "company_id": "nope", "currency": "EURO"}),
            Mode::Create,
            &ctx(),
        )
        .expect_err("bad");
        let mut f = fields_of(&errs);
        f.sort();
        assert_eq!(f, ["close_date", "company_id", "currency", "stage"]);
        let errs = parse_input(
            Entity::Activity,
            &json!({"contact_id": Uuid::nil().to_string(), "kind": "fax", "occurred_at": "yesterday"}),
            Mode::Create,
            &ctx(),
        )
        .expect_err("bad");
        let mut f = fields_of(&errs);
        f.sort();
        assert_eq!(f, ["kind", "occurred_at"]);
    }

    #[test]
    fn body_must_be_an_object() {
        let errs =
            parse_input(Entity::Company, &json!([1, 2]), Mode::Create, &ctx()).expect_err("array");
        assert_eq!(errs.len(), 1);
    }
}

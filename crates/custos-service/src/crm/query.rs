//! List parameters (`limit`, `cursor`, `sort`, filters, `q`) and keyset cursors.

use crate::{Result, ServiceError};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use custos_domain::{Entity, inventory};
use custos_store::{Sort, SqlValue};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Default and maximum page sizes (CONTRACT.md).
pub const DEFAULT_LIMIT: u32 = 50;
/// The largest page a client may ask for.
pub const MAX_LIMIT: u32 = 500;

/// Parsed list parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct ListParams {
    /// Page size.
    pub limit: u32,
    /// Sort order.
    pub sort: Sort,
    /// Where the previous page ended.
    pub after: Option<(SqlValue, Uuid)>,
    /// Field filters: (field, raw value).
    pub filters: Vec<(&'static str, String)>,
    /// Free-text search.
    pub q: Option<String>,
}

/// One page of results.
#[derive(Debug, Clone)]
pub struct Page<T> {
    /// The items.
    pub items: Vec<T>,
    /// Cursor for the next page, if there is one.
    pub next_cursor: Option<String>,
    /// The page stopped short: its filters match rarely, and it read as
    /// many rows as one request reads ([`crate::Config::list_window`]).
    /// `next_cursor` searches on from there.
    pub partial: bool,
}

#[derive(Serialize, Deserialize)]
struct Cursor {
    s: String,
    d: bool,
    v: serde_json::Value,
    i: Uuid,
}

impl ListParams {
    /// Parses raw query pairs for a list of `entity`. Unknown parameters, bad
    /// numbers, unsortable fields and malformed cursors are refused by name.
    pub fn parse(entity: Entity, pairs: &[(String, String)]) -> Result<ListParams> {
        let mut params = ListParams {
            limit: DEFAULT_LIMIT,
            sort: Sort {
                field: "created_at",
                descending: true,
            },
            after: None,
            filters: Vec::new(),
            q: None,
        };
        let mut cursor = None;
        let mut errors = Vec::new();
        for (k, v) in pairs {
            match k.as_str() {
                "limit" => match v.parse::<u32>() {
                    Ok(n) if (1..=MAX_LIMIT).contains(&n) => params.limit = n,
                    _ => errors.push(custos_domain::FieldError::new(
                        "limit",
                        format!("must be a whole number from 1 to {MAX_LIMIT}"),
                    )),
                },
                "cursor" => cursor = Some(v.clone()),
                "sort" => {
                    let (desc, name) = match v.strip_prefix('-') {
                        Some(n) => (true, n),
                        None => (false, v.as_str()),
                    };
                    match inventory::field(entity, name).filter(|f| f.sortable) {
                        Some(f) => {
                            params.sort = Sort {
                                field: f.name,
                                descending: desc,
                            }
                        }
                        None => {
                            let names: Vec<&str> = inventory::fields(entity)
                                .filter(|f| f.sortable)
                                .map(|f| f.name)
                                .collect();
                            errors.push(custos_domain::FieldError::new(
                                "sort",
                                format!(
                                    "must be one of {} (prefix - for descending)",
                                    names.join(", ")
                                ),
                            ));
                        }
                    }
                }
                "q" => {
                    let q = v.trim();
                    if q.chars().count() > 200 {
                        errors.push(custos_domain::FieldError::new(
                            "q",
                            "must be at most 200 characters",
                        ));
                    } else if !q.is_empty() {
                        params.q = Some(q.to_string());
                    }
                }
                name => match inventory::field(entity, name) {
                    Some(f) if f.name != "id" => {
                        if v.len() > 500 {
                            errors.push(custos_domain::FieldError::new(
                                name,
                                "filter value too long",
                            ));
                        } else {
                            params.filters.push((f.name, v.clone()));
                        }
                    }
                    _ => errors.push(custos_domain::FieldError::new(
                        name,
                        "unknown query parameter",
                    )),
                },
            }
        }
        if let Some(c) = cursor {
            match decode_cursor(&c) {
                Some(cur) if cur.s == params.sort.field && cur.d == params.sort.descending => {
                    let v = match cur.v {
                        serde_json::Value::Null => Some(SqlValue::Null),
                        serde_json::Value::String(s) => Some(SqlValue::Text(s)),
                        serde_json::Value::Bool(b) => Some(SqlValue::Bool(b)),
                        serde_json::Value::Number(n) => n.as_i64().map(SqlValue::Int),
                        _ => None,
                    };
                    match v {
                        Some(v) => params.after = Some((v, cur.i)),
                        None => errors.push(custos_domain::FieldError::new(
                            "cursor",
                            "is not a valid cursor",
                        )),
                    }
                }
                Some(_) => errors.push(custos_domain::FieldError::new(
                    "cursor",
                    "was made for another sort order; start again without a cursor",
                )),
                None => errors.push(custos_domain::FieldError::new(
                    "cursor",
                    "is not a valid cursor",
                )),
            }
        }
        if errors.is_empty() {
            Ok(params)
        } else {
            Err(ServiceError::Invalid(errors))
        }
    }

    /// The cursor that continues after a row with this sort value and id.
    pub fn cursor_after(&self, value: &SqlValue, id: Uuid) -> String {
        let v = match value {
            SqlValue::Null | SqlValue::Blob(_) => serde_json::Value::Null,
            SqlValue::Text(s) => serde_json::Value::String(s.clone()),
            SqlValue::Int(i) => serde_json::Value::from(*i),
            SqlValue::Bool(b) => serde_json::Value::Bool(*b),
        };
        let c = Cursor {
            s: self.sort.field.to_string(),
            d: self.sort.descending,
            v,
            i: id,
        };
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&c).unwrap_or_default())
    }
}

fn decode_cursor(s: &str) -> Option<Cursor> {
    if s.len() > 1000 {
        return None;
    }
    let bytes = URL_SAFE_NO_PAD.decode(s).ok()?;
    serde_json::from_slice(&bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn defaults_and_limits() {
        let p = ListParams::parse(Entity::Contact, &[]).expect("ok");
        assert_eq!(p.limit, 50);
        for bad in ["0", "501", "x", "-1"] {
            assert!(
                ListParams::parse(Entity::Contact, &pairs(&[("limit", bad)])).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn cursor_round_trips_and_rejects_garbage_or_other_sort() {
        let p = ListParams::parse(Entity::Deal, &pairs(&[("sort", "-amount")])).expect("ok");
        let id = Uuid::now_v7();
        let c = p.cursor_after(&SqlValue::Int(125_000), id);
        let p2 = ListParams::parse(Entity::Deal, &pairs(&[("sort", "-amount"), ("cursor", &c)]))
            .expect("ok");
        assert_eq!(p2.after, Some((SqlValue::Int(125_000), id)));
        assert!(
            ListParams::parse(Entity::Deal, &pairs(&[("sort", "amount"), ("cursor", &c)])).is_err()
        );
        assert!(ListParams::parse(Entity::Deal, &pairs(&[("cursor", "!!notbase64")])).is_err());
    }

    #[test]
    fn unknown_parameters_and_unsortable_fields_are_named() {
        let Err(ServiceError::Invalid(errs)) = ListParams::parse(
            Entity::Contact,
            &pairs(&[("colour", "red"), ("sort", "email")]),
        ) else {
            panic!("expected invalid")
        };
        let fields: Vec<_> = errs.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["colour", "sort"]);
    }
}

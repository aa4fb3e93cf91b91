//! Fields on pages, derived from the data inventory: which fields a table, a
//! detail page or a form shows, how a value reads, and how a posted form becomes
//! the JSON the service validates. Nothing here is written per field by hand.

use custos_domain::inventory::{self, FieldDecl, FieldKind, Presence};
use custos_domain::value::{format_date, format_money};
use custos_domain::{DataCategory, Entity, Record, Value};
use custos_service::{ListSize, Principal, RecordView};
use time::OffsetDateTime;

/// Words a person reads for an enum or stage value: `negotiation` → `Negotiation`.
pub fn humanize(s: &str) -> String {
    let s = s.replace('_', " ");
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// An amount with thousands separators: 125000 → `1,250.00`.
pub fn money(hundredths: i64) -> String {
    let plain = format_money(hundredths);
    let (sign, rest) = match plain.strip_prefix('-') {
        Some(r) => ("-", r),
        None => ("", plain.as_str()),
    };
    let (int, frac) = rest.split_once('.').unwrap_or((rest, "00"));
    format!("{sign}{}.{frac}", group_digits(int))
}

/// A number with thousands separators: 1234567 → `1,234,567`.
pub fn grouped(n: u64) -> String {
    group_digits(&n.to_string())
}

/// "1 entry", "1,234 entries".
pub fn plural(n: u64, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{} {many}", grouped(n))
    }
}

/// "1,234", or "more than 10,000" past the counting limit.
pub fn size_text(n: ListSize) -> String {
    match n {
        ListSize::Exactly(n) => grouped(n),
        ListSize::MoreThan(n) => format!("more than {}", grouped(n)),
    }
}

/// "1 order", "3 orders", "more than 10,000 orders".
pub fn n_things(n: ListSize, one: &str, many: &str) -> String {
    match n {
        ListSize::Exactly(n) => plural(n, one, many),
        ListSize::MoreThan(_) => format!("{} {many}", size_text(n)),
    }
}

fn group_digits(digits: &str) -> String {
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A time as people read it, in UTC: `2026-01-31 09:30 UTC`.
pub fn when(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{} {:02}:{:02} UTC",
        format_date(t.date()),
        t.hour(),
        t.minute()
    )
}

/// The value of a `datetime-local` input for a time (UTC).
pub fn datetime_input(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{}T{:02}:{:02}",
        format_date(t.date()),
        t.hour(),
        t.minute()
    )
}

/// How a value reads on a page (references are resolved by the caller).
pub fn display(f: &FieldDecl, record: &Record) -> String {
    let v = record.get(f.name);
    match (f.kind, v) {
        (_, Value::Null) => String::new(),
        (FieldKind::Money, Value::Money(m)) => {
            let currency = record.get("currency").as_text().unwrap_or_default();
            format!("{} {currency}", money(*m)).trim_end().to_string()
        }
        (FieldKind::Timestamp, Value::Timestamp(t)) => when(*t),
        (FieldKind::Bool, Value::Bool(b)) => if *b { "Yes" } else { "No" }.to_string(),
        (FieldKind::Enum { .. } | FieldKind::Stage, Value::Text(s)) => humanize(s),
        _ => v.display(),
    }
}

/// The name a record goes by on pages.
pub fn title(view: &RecordView) -> String {
    let r = &view.record;
    let hidden = |f: &str| view.masked.contains(&f);
    match r.entity {
        Entity::Contact => {
            if hidden("first_name") || hidden("last_name") {
                return "Contact (name hidden)".to_string();
            }
            let name = format!(
                "{} {}",
                r.get("first_name").display(),
                r.get("last_name").display()
            );
            let name = name.trim().to_string();
            if name.is_empty() {
                "Unnamed contact".into()
            } else {
                name
            }
        }
        Entity::Company => r.get("name").display(),
        Entity::Deal => r.get("title").display(),
        Entity::Activity => {
            let kind = humanize(r.get("kind").as_text().unwrap_or("activity"));
            match r.get("occurred_at") {
                Value::Timestamp(t) => format!("{kind} · {}", when(*t)),
                _ => kind,
            }
        }
        Entity::Order => match r.get("placed_at") {
            Value::Timestamp(t) => format!("Order of {}", format_date(t.date())),
            _ => "Order".to_string(),
        },
        Entity::User => "Staff account".to_string(),
        Entity::Request => format!(
            "{} request",
            humanize(r.get("kind").as_text().unwrap_or("privacy"))
        ),
        Entity::Consent => humanize(r.get("purpose").as_text().unwrap_or("consent")),
    }
}

/// Fields that make up a record's name, shown in the first column of a table.
pub fn title_fields(entity: Entity) -> &'static [&'static str] {
    match entity {
        Entity::Contact => &["first_name", "last_name"],
        Entity::Company => &["name"],
        Entity::Deal => &["title"],
        Entity::Activity => &["kind"],
        Entity::Order => &["placed_at"],
        Entity::User => &[],
        Entity::Request => &["kind"],
        Entity::Consent => &["purpose"],
    }
}

/// The column heading of the name column.
pub fn title_label(entity: Entity) -> &'static str {
    match entity {
        Entity::Contact | Entity::Company => "Name",
        Entity::Deal => "Title",
        Entity::Activity => "Activity",
        Entity::Order => "Placed",
        Entity::User => "User",
        Entity::Request => "Request",
        Entity::Consent => "Purpose",
    }
}

/// The field the name column sorts by, if it can be sorted.
pub fn title_sort(entity: Entity) -> Option<&'static str> {
    title_fields(entity)
        .first()
        .and_then(|n| inventory::field(entity, n))
        .filter(|f| f.sortable)
        .map(|f| f.name)
}

fn multiline(f: &FieldDecl) -> bool {
    matches!(
        f.kind,
        FieldKind::Text {
            multiline: true,
            ..
        }
    )
}

/// The columns of a list after the name column: every field a person enters,
/// except long text, the owner and the currency (shown with its amount), then
/// when the record was added.
pub fn table_columns(entity: Entity) -> Vec<&'static FieldDecl> {
    let titles = title_fields(entity);
    inventory::fields(entity)
        .filter(|f| {
            f.presence != Presence::System
                && f.category != DataCategory::Credentials
                && f.name != "owner_id"
                && f.name != "currency"
                && !multiline(f)
                && !titles.contains(&f.name)
        })
        .chain(inventory::field(entity, "created_at"))
        .collect()
}

/// Every field a detail page shows, in inventory order.
pub fn detail_fields(entity: Entity) -> Vec<&'static FieldDecl> {
    inventory::fields(entity)
        .filter(|f| {
            f.name != "id" && f.name != "currency" && f.category != DataCategory::Credentials
        })
        .collect()
}

/// Why a masked field is hidden from this role.
pub fn masked_reason(p: &Principal, f: &FieldDecl) -> String {
    let category = f.category.name().replace('_', " ");
    if p.read_level(f.category) == custos_domain::ReadLevel::Masked {
        format!(
            "Masked: the {} role sees only the shape of {category} data.",
            p.role_label
        )
    } else {
        format!(
            "Hidden: the {} role may not see {category} data.",
            p.role_label
        )
    }
}

/// One field of a form, ready for the template.
#[derive(Debug, Clone, Default)]
pub struct FormField {
    /// Field name (also the input's name; its id is `f-NAME`).
    pub name: &'static str,
    /// Label above the control.
    pub label: String,
    /// Help text under it, from the inventory.
    pub help: &'static str,
    /// Whether it must be filled in.
    pub required: bool,
    /// `text`, `email`, `tel`, `date`, `datetime-local`, `textarea`,
    /// `select`, `checkbox`, `money`, `hidden`, `picker`.
    pub control: &'static str,
    /// The current value as the control shows it.
    pub value: String,
    /// Choices of a select: (value, label).
    pub options: Vec<(String, String)>,
    /// Longest input accepted.
    pub maxlength: usize,
    /// The error next to the field, if any.
    pub error: Option<String>,
    /// For hidden fields: what the form says instead (e.g. the contact's
    /// name); for pickers, the name of the record chosen.
    pub shown_as: String,
    /// On edit forms, the value when the form was opened (sent back as
    /// `orig.NAME`): a field whose value is still this is left alone.
    pub orig: Option<String>,
    /// A contact or company picker's search state.
    pub picker: Option<Picker>,
}

/// The search part of a picker (a reference to a contact or a company): a
/// search box with a Find button that works without scripts (the form comes
/// back with the matches as radio buttons), enhanced by `picker.js` into a
/// typeahead against `POST /app/pick/{kind}`.
#[derive(Debug, Clone, Default)]
pub struct Picker {
    /// `contacts` or `companies`: the path under `/app/pick/`.
    pub kind: &'static str,
    /// `contact` or `company`.
    pub noun: &'static str,
    /// What was typed in the search box (`find.NAME`).
    pub query: String,
    /// Whether this form is the answer to a search of this picker: the
    /// choices are radio buttons instead of a hidden value.
    pub searched: bool,
    /// The matches: (id, name, detail such as an email or a domain).
    pub matches: Vec<(String, String, String)>,
    /// What the search says (no match, how to search, an error).
    pub note: String,
}

/// The name of the search box of picker `name`, and of its Find button's value.
pub fn find_name(name: &str) -> String {
    format!("find.{name}")
}

/// The name of the hidden field that carries `name`'s value as it was when
/// an edit form was opened.
pub fn orig_name(name: &str) -> String {
    format!("orig.{name}")
}

impl FormField {
    /// Whether the select option `v` is chosen.
    pub fn selected(&self, v: &str) -> bool {
        self.value == v
    }

    /// The id of the help text, for `aria-describedby`.
    pub fn described_by(&self) -> String {
        let mut ids = Vec::new();
        if !self.help.is_empty() {
            ids.push(format!("h-{}", self.name));
        }
        if self.error.is_some() {
            ids.push(format!("e-{}", self.name));
        }
        ids.join(" ")
    }
}

/// Whether a form shows this field: fields a person enters, that the role may
/// write; on edit, never the field that decides whose key seals the record.
pub fn form_fields(entity: Entity, p: &Principal, editing: bool) -> Vec<&'static FieldDecl> {
    let subject = entity.subject_field();
    inventory::fields(entity)
        .filter(|f| {
            f.presence != Presence::System
                && f.name != "owner_id"
                && p.can_write(f.category)
                && !(editing && Some(f.name) == subject)
        })
        .collect()
}

/// The control for a field.
pub fn control(f: &FieldDecl) -> (&'static str, usize) {
    match f.kind {
        FieldKind::Text {
            max,
            multiline: true,
        } => ("textarea", max),
        FieldKind::Text { max, .. } => ("text", max),
        FieldKind::Email => ("email", 254),
        FieldKind::Phone => ("tel", 32),
        FieldKind::Ref { .. } | FieldKind::Enum { .. } | FieldKind::Stage => ("select", 0),
        FieldKind::Money => ("money", 20),
        FieldKind::Currency => ("text", 3),
        FieldKind::Date => ("date", 10),
        FieldKind::Timestamp => ("datetime-local", 25),
        FieldKind::Tags => ("text", 700),
        FieldKind::Bool => ("checkbox", 0),
        FieldKind::Id => ("hidden", 0),
    }
}

/// The value a control shows for a stored value.
pub fn input_value(v: &Value) -> String {
    match v {
        Value::Timestamp(t) => datetime_input(*t),
        Value::Tags(t) => t.join(", "),
        Value::Bool(b) => b.to_string(),
        other => other.display(),
    }
}

/// A posted `datetime-local` value as RFC 3339 (the form's times are UTC).
fn timestamp_json(raw: &str) -> String {
    let n = raw.len();
    let looks_local = raw.as_bytes().get(10) == Some(&b'T')
        && !raw.ends_with('Z')
        && !raw.get(19..).unwrap_or_default().contains('+');
    if looks_local && n == 16 {
        format!("{raw}:00Z")
    } else if looks_local && n == 19 {
        format!("{raw}Z")
    } else {
        raw.to_string()
    }
}

/// The JSON object the service validates, from a posted form. On create, empty
/// fields are left out (a required one then gets "is required"); on edit, an
/// empty field clears the value. Unticked checkboxes mean false.
pub fn form_json(
    fields: &[&FieldDecl],
    form: &[(String, String)],
    editing: bool,
) -> serde_json::Value {
    let posted = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.trim());
    let mut map = serde_json::Map::new();
    for f in fields {
        let sent = posted(f.name);
        if editing {
            // A form never changes a field the user did not touch: with the
            // value it was opened with, a field still holding it is left
            // out (another user's change in the meantime stays); a field
            // the form did not send at all is left out too.
            let orig = posted(&orig_name(f.name));
            let now = match (sent, f.kind) {
                (None, FieldKind::Bool) if orig.is_some() => Some("false"),
                (s, _) => s,
            };
            match (now, orig) {
                (None, _) => continue,
                (Some(now), Some(orig)) if same_input(f.kind, now, orig) => continue,
                _ => {}
            }
        }
        let raw = sent.unwrap_or_default();
        let json = match f.kind {
            FieldKind::Bool => serde_json::Value::Bool(!raw.is_empty() && raw != "false"),
            _ if raw.is_empty() => {
                if editing {
                    serde_json::Value::Null
                } else {
                    continue;
                }
            }
            FieldKind::Tags => serde_json::Value::Array(
                raw.split(',')
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .map(|t| serde_json::Value::String(t.to_string()))
                    .collect(),
            ),
            FieldKind::Timestamp => serde_json::Value::String(timestamp_json(raw)),
            FieldKind::Money => serde_json::Value::String(raw.replace([',', ' '], "")),
            _ => serde_json::Value::String(raw.to_string()),
        };
        map.insert(f.name.to_string(), json);
    }
    serde_json::Value::Object(map)
}

/// Whether two inputs of a field say the same: checkboxes by being on,
/// everything else as typed (trimmed).
fn same_input(kind: FieldKind, a: &str, b: &str) -> bool {
    match kind {
        FieldKind::Bool => (!a.is_empty() && a != "false") == (!b.is_empty() && b != "false"),
        _ => a.trim() == b.trim(),
    }
}

/// An error message in the words of the form rather than of the API.
pub fn form_message(f: Option<&FieldDecl>, message: &str) -> String {
    match f.map(|f| f.kind) {
        Some(FieldKind::Timestamp) if message.contains("RFC 3339") => {
            "must be a date and time (UTC), such as 2026-01-31 09:30".to_string()
        }
        Some(FieldKind::Ref { entity }) if message.contains("UUID") => {
            format!("choose a {}", entity.name())
        }
        Some(FieldKind::Tags) => message.replace("a list of tags", "tags separated by commas"),
        _ => message.to_string(),
    }
}

#[cfg(test)]
mod tests {
    fn as_role(r: custos_domain::Role) -> custos_service::Principal {
        custos_service::Principal::with_role(uuid::Uuid::nil(), r, custos_service::Via::Cli)
    }

    use super::*;

    #[test]
    fn money_is_grouped() {
        assert_eq!(money(125_000), "1,250.00");
        assert_eq!(money(123_456_789), "1,234,567.89");
        assert_eq!(money(-5), "-0.05");
    }

    #[test]
    fn datetime_local_becomes_rfc3339() {
        assert_eq!(timestamp_json("2026-01-31T09:30"), "2026-01-31T09:30:00Z");
        assert_eq!(
            timestamp_json("2026-01-31T09:30:15"),
            "2026-01-31T09:30:15Z"
        );
        assert_eq!(
            timestamp_json("2026-01-31T09:30:00Z"),
            "2026-01-31T09:30:00Z"
        );
        assert_eq!(timestamp_json("tomorrow"), "tomorrow");
    }

    #[test]
    fn forms_cover_what_people_enter_and_tables_skip_long_text() {
        let names: Vec<_> =
            form_fields(Entity::Contact, &as_role(custos_domain::Role::Sales), false)
                .iter()
                .map(|f| f.name)
                .collect();
        assert_eq!(
            names,
            [
                "first_name",
                "last_name",
                "email",
                "phone",
                "company_id",
                "tags"
            ]
        );
        let edit: Vec<_> =
            form_fields(Entity::Activity, &as_role(custos_domain::Role::Sales), true)
                .iter()
                .map(|f| f.name)
                .collect();
        assert!(!edit.contains(&"contact_id"), "the subject cannot change");
        let support: Vec<_> =
            form_fields(Entity::Order, &as_role(custos_domain::Role::Support), false)
                .iter()
                .map(|f| f.name)
                .collect();
        assert!(!support.contains(&"total"), "support may not write money");
        let cols: Vec<_> = table_columns(Entity::Activity)
            .iter()
            .map(|f| f.name)
            .collect();
        assert!(!cols.contains(&"body"));
    }

    #[test]
    fn posted_forms_become_service_json() {
        let fields = form_fields(Entity::Contact, &as_role(custos_domain::Role::Sales), false);
        let form = vec![
            ("first_name".to_string(), " Ada ".to_string()),
            ("last_name".to_string(), String::new()),
            ("tags".to_string(), "vip, b2b,".to_string()),
        ];
        let j = form_json(&fields, &form, false);
        assert_eq!(j["first_name"], "Ada");
        assert!(j.get("last_name").is_none());
        assert_eq!(j["tags"], serde_json::json!(["vip", "b2b"]));
        let j = form_json(&fields, &form, true);
        assert!(j["last_name"].is_null());
    }

    #[test]
    fn an_edit_form_sends_only_what_was_changed() {
        let fields = form_fields(Entity::Deal, &as_role(custos_domain::Role::Sales), true);
        let contact = uuid::Uuid::now_v7().to_string();
        let pairs = |v: &[(&str, &str)]| -> Vec<(String, String)> {
            v.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let form = pairs(&[
            ("title", "Renamed"),
            ("orig.title", "Old name"),
            ("contact_id", &contact),
            ("orig.contact_id", &contact),
            ("amount", ""),
            ("orig.amount", "12.00"),
        ]);
        let j = form_json(&fields, &form, true);
        assert_eq!(j["title"], "Renamed");
        assert!(j["amount"].is_null(), "emptied on purpose: cleared");
        let map = j.as_object().expect("an object");
        assert!(!map.contains_key("contact_id"), "untouched: left alone");
        assert!(!map.contains_key("stage"), "not on the form: left alone");
        // A checkbox sends nothing when unticked: with its old value that
        // is a change to false; without one, nothing.
        let fields = form_fields(Entity::Activity, &as_role(custos_domain::Role::Sales), true);
        let j = form_json(&fields, &pairs(&[("orig.done", "true")]), true);
        assert_eq!(j["done"], false);
        let j = form_json(&fields, &pairs(&[("orig.done", "false")]), true);
        assert!(!j.as_object().expect("an object").contains_key("done"));
        let j = form_json(
            &fields,
            &pairs(&[("done", "true"), ("orig.done", "")]),
            true,
        );
        assert_eq!(j["done"], true);
    }
}

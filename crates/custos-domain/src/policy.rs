//! Roles and the access policy: deny by default, decided per operation, entity
//! and data category. The service layer asks this module before every action.

use crate::entity::Entity;
use crate::inventory::DataCategory;
use serde::{Deserialize, Serialize};

/// A built-in role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Runs Custos: users, settings, keys; full CRM access.
    Admin,
    /// Leads a sales team: full CRM access including deletion and export.
    Manager,
    /// Works contacts, deals, activities and orders.
    Sales,
    /// Answers customers: reads the CRM, logs activities.
    Support,
    /// Runs data-subject requests and privacy work; sees all personal data.
    PrivacyOfficer,
    /// Reads the ledger and reports; sees no personal data (it is masked).
    Auditor,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 6] = [
        Role::Admin,
        Role::Manager,
        Role::Sales,
        Role::Support,
        Role::PrivacyOfficer,
        Role::Auditor,
    ];

    /// Snake-case name.
    pub fn name(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Manager => "manager",
            Role::Sales => "sales",
            Role::Support => "support",
            Role::PrivacyOfficer => "privacy_officer",
            Role::Auditor => "auditor",
        }
    }

    /// Human label.
    pub fn label(self) -> &'static str {
        match self {
            Role::Admin => "Administrator",
            Role::Manager => "Manager",
            Role::Sales => "Sales",
            Role::Support => "Support",
            Role::PrivacyOfficer => "Privacy officer",
            Role::Auditor => "Auditor",
        }
    }

    /// Parses a snake-case name.
    pub fn from_name(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.name() == s)
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Something a caller wants to do with records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    /// Read one record, list or search.
    Read,
    /// Create a record.
    Create,
    /// Change a record.
    Update,
    /// Delete a record.
    Delete,
    /// Export records in bulk.
    Export,
}

impl Operation {
    /// Snake-case name, as used in audit actions.
    pub fn name(self) -> &'static str {
        match self {
            Operation::Read => "read",
            Operation::Create => "create",
            Operation::Update => "update",
            Operation::Delete => "delete",
            Operation::Export => "export",
        }
    }
}

/// Whether `role` may perform `op` on records of `entity`. Anything not listed is
/// denied. Staff accounts are managed through the admin use cases, not CRM routes.
pub fn allows(role: Role, op: Operation, entity: Entity) -> bool {
    use Entity::*;
    use Operation::*;
    if entity == User {
        return role == Role::Admin;
    }
    if entity == Request {
        // Any staff member may log a request a person made to them; only the
        // privacy officer and administrators read, verify and fulfil them.
        return match op {
            Create => role != Role::Auditor,
            Read | Update | Export => matches!(role, Role::Admin | Role::PrivacyOfficer),
            Delete => false,
        };
    }
    if entity == Consent {
        // The consent ledger is append-only: nobody changes or deletes an entry.
        return match op {
            Read => true,
            Create => role != Role::Auditor,
            Export => matches!(role, Role::Admin | Role::PrivacyOfficer),
            Update | Delete => false,
        };
    }
    match role {
        Role::Admin | Role::Manager => true,
        Role::Sales => match op {
            Read | Create | Update => true,
            Delete => matches!(entity, Deal | Activity),
            Export => false,
        },
        Role::Support => match op {
            Read => true,
            Create | Update => entity == Activity,
            Delete | Export => false,
        },
        Role::PrivacyOfficer => matches!(op, Read | Update | Export),
        Role::Auditor => op == Read,
    }
}

/// Whether `role` may see values of `category`. Fields it may not see come back
/// masked, never silently dropped.
pub fn can_read(role: Role, category: DataCategory) -> bool {
    use DataCategory::*;
    match role {
        Role::Admin | Role::Manager | Role::PrivacyOfficer => category != Credentials,
        Role::Sales | Role::Support => !matches!(category, SpecialCategory | Credentials),
        Role::Auditor => matches!(category, Identifiers | Business | System),
    }
}

/// Whether `role` may write values of `category` (on entities it may update).
pub fn can_write(role: Role, category: DataCategory) -> bool {
    match role {
        Role::Auditor => false,
        Role::Support => can_read(role, category) && category != DataCategory::Financial,
        _ => can_read(role, category),
    }
}

/// How much of a category's values a role sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReadLevel {
    /// Masked completely (`"•••"`), never decrypted.
    #[default]
    None,
    /// Decrypted, but shown only in a masked shape (`"j•••@example.com"`, last
    /// digits of a phone number), enough to recognise a record, not to use it.
    Masked,
    /// The value itself.
    Full,
}

impl ReadLevel {
    /// Every level, weakest first.
    pub const ALL: [ReadLevel; 3] = [ReadLevel::None, ReadLevel::Masked, ReadLevel::Full];

    /// Snake-case name.
    pub fn name(self) -> &'static str {
        match self {
            ReadLevel::None => "none",
            ReadLevel::Masked => "masked",
            ReadLevel::Full => "full",
        }
    }

    /// Parses a snake-case name.
    pub fn from_name(s: &str) -> Option<ReadLevel> {
        ReadLevel::ALL.into_iter().find(|l| l.name() == s)
    }
}

/// What a role may do with the values of one data category.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grant {
    /// How much of the values it sees.
    #[serde(default)]
    pub read: ReadLevel,
    /// Whether it may set them (on records it may change).
    #[serde(default)]
    pub write: bool,
    /// Whether they may leave Custos in its exports.
    #[serde(default)]
    pub export: bool,
    /// Whether it may erase them (data-subject erasure, crypto-shredding).
    #[serde(default)]
    pub erase: bool,
}

/// Which records a role reaches: the record's `owner_id` decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordScope {
    /// Records the user owns.
    Own,
    /// Records owned by anyone in the user's team (and their own).
    Team,
    /// Every record.
    #[default]
    All,
}

impl RecordScope {
    /// Every scope, narrowest first.
    pub const ALL: [RecordScope; 3] = [RecordScope::Own, RecordScope::Team, RecordScope::All];

    /// Snake-case name.
    pub fn name(self) -> &'static str {
        match self {
            RecordScope::Own => "own",
            RecordScope::Team => "team",
            RecordScope::All => "all",
        }
    }

    /// Human label.
    pub fn label(self) -> &'static str {
        match self {
            RecordScope::Own => "Own records",
            RecordScope::Team => "Team's records",
            RecordScope::All => "All records",
        }
    }

    /// Parses a snake-case name.
    pub fn from_name(s: &str) -> Option<RecordScope> {
        RecordScope::ALL.into_iter().find(|r| r.name() == s)
    }
}

/// A role's permissions on data: a [`Grant`] per data category and a record
/// scope. Built-in roles have fixed ones ([`Permissions::builtin`]); custom roles
/// are stored and edited by administrators. Credentials are never readable,
/// whatever a stored definition says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Permissions {
    /// Which records.
    #[serde(default)]
    pub scope: RecordScope,
    /// Per category name (`identity`, `contact_details`, …); absent = nothing.
    #[serde(default)]
    pub categories: std::collections::BTreeMap<String, Grant>,
}

impl Permissions {
    /// The permissions of a built-in role.
    pub fn builtin(role: Role) -> Permissions {
        let export = matches!(role, Role::Admin | Role::Manager | Role::PrivacyOfficer);
        let erase = matches!(role, Role::Admin | Role::PrivacyOfficer);
        let categories = DataCategory::ALL
            .into_iter()
            .map(|c| {
                let read = can_read(role, c);
                let g = Grant {
                    read: if read {
                        ReadLevel::Full
                    } else {
                        ReadLevel::None
                    },
                    write: can_write(role, c),
                    export: export && read,
                    erase: erase && read,
                };
                (c.name().to_string(), g)
            })
            .collect();
        Permissions {
            scope: RecordScope::All,
            categories,
        }
    }

    /// The grant for `category` (nothing for credentials).
    pub fn grant(&self, category: DataCategory) -> Grant {
        if category == DataCategory::Credentials {
            return Grant::default();
        }
        self.categories
            .get(category.name())
            .copied()
            .unwrap_or_default()
    }

    /// How much of `category` the role sees.
    pub fn read_level(&self, category: DataCategory) -> ReadLevel {
        self.grant(category).read
    }

    /// Whether the role sees values of `category` in full.
    pub fn can_read(&self, category: DataCategory) -> bool {
        self.read_level(category) == ReadLevel::Full
    }

    /// Whether the role may set values of `category`.
    pub fn can_write(&self, category: DataCategory) -> bool {
        let g = self.grant(category);
        g.write && g.read == ReadLevel::Full
    }

    /// Whether values of `category` may leave in the role's exports.
    pub fn can_export(&self, category: DataCategory) -> bool {
        let g = self.grant(category);
        g.export && g.read == ReadLevel::Full
    }

    /// Whether the role may erase values of `category`.
    pub fn can_erase(&self, category: DataCategory) -> bool {
        self.grant(category).erase
    }

    /// Checks a stored or submitted definition: known categories only, nothing
    /// on credentials, writing and exporting only what is read in full. Returns
    /// every problem, one line each.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (name, g) in &self.categories {
            let Some(c) = DataCategory::ALL.into_iter().find(|c| c.name() == name) else {
                out.push(format!("{name}: no such data category"));
                continue;
            };
            if c == DataCategory::Credentials
                && (g.read != ReadLevel::None || g.write || g.export || g.erase)
            {
                out.push(
                    "credentials: never granted (password hashes and second factors stay inside)"
                        .into(),
                );
                continue;
            }
            if g.write && g.read != ReadLevel::Full {
                out.push(format!("{name}: writing needs full read"));
            }
            if g.export && g.read != ReadLevel::Full {
                out.push(format!("{name}: exporting needs full read"));
            }
        }
        out
    }
}

/// The masked form of a value the caller may not see: enough to recognise the
/// shape, nothing that identifies.
pub fn mask(value: &crate::value::Value) -> serde_json::Value {
    use crate::value::Value;
    match value {
        Value::Null => serde_json::Value::Null,
        Value::Text(s) if s.contains('@') => {
            let first: String = s.chars().take(1).collect();
            let domain = s.rsplit_once('@').map(|(_, d)| d).unwrap_or_default();
            serde_json::Value::String(format!("{first}•••@{domain}"))
        }
        Value::Text(s) if looks_like_phone(s) => {
            let digits: Vec<char> = s.chars().filter(char::is_ascii_digit).collect();
            let tail: String = digits[digits.len() - 2..].iter().collect();
            serde_json::Value::String(format!("•••{tail}"))
        }
        Value::Text(s) if !s.trim().is_empty() => {
            let first: String = s.trim().chars().take(1).collect();
            serde_json::Value::String(format!("{first}•••"))
        }
        _ => serde_json::Value::String("•••".to_string()),
    }
}

/// A phone number: digits (at least six) with the usual separators only.
fn looks_like_phone(s: &str) -> bool {
    s.chars().filter(char::is_ascii_digit).count() >= 6
        && s.chars()
            .all(|c| c.is_ascii_digit() || " +-().".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auditor_sees_no_personal_category() {
        for c in DataCategory::ALL {
            if c.is_personal() {
                assert!(!can_read(Role::Auditor, c), "auditor reads {c:?}");
            }
        }
        assert!(!allows(Role::Auditor, Operation::Update, Entity::Contact));
    }

    #[test]
    fn nobody_reads_credentials_and_only_admin_touches_users() {
        for r in Role::ALL {
            assert!(!can_read(r, DataCategory::Credentials));
            assert_eq!(allows(r, Operation::Read, Entity::User), r == Role::Admin);
        }
    }

    #[test]
    fn support_cannot_change_contacts_or_export() {
        assert!(!allows(Role::Support, Operation::Update, Entity::Contact));
        assert!(!allows(Role::Support, Operation::Export, Entity::Contact));
        assert!(allows(Role::Support, Operation::Create, Entity::Activity));
    }

    #[test]
    fn mask_hides_the_local_part() {
        let m = mask(&crate::value::Value::Text("jane@example.com".into()));
        assert_eq!(m, serde_json::json!("j•••@example.com"));
    }

    #[test]
    fn mask_keeps_two_digits_of_a_phone_and_one_letter_of_a_name() {
        use crate::value::Value;
        assert_eq!(
            mask(&Value::Text("+44 20 7946 0958".into())),
            serde_json::json!("•••58")
        );
        assert_eq!(mask(&Value::Text("Ada".into())), serde_json::json!("A•••"));
        assert_eq!(mask(&Value::Money(12_00)), serde_json::json!("•••"));
    }

    #[test]
    fn builtin_permissions_say_what_the_role_functions_say() {
        for r in Role::ALL {
            let p = Permissions::builtin(r);
            assert!(p.problems().is_empty(), "{r}: {:?}", p.problems());
            for c in DataCategory::ALL {
                assert_eq!(p.can_read(c), can_read(r, c), "{r} read {c:?}");
                assert_eq!(p.can_write(c), can_write(r, c), "{r} write {c:?}");
            }
        }
        let auditor = Permissions::builtin(Role::Auditor);
        assert!(!auditor.can_export(DataCategory::Identity));
        assert!(Permissions::builtin(Role::PrivacyOfficer).can_erase(DataCategory::Identity));
        assert!(!Permissions::builtin(Role::Sales).can_erase(DataCategory::Identity));
    }

    #[test]
    fn stored_definitions_are_checked() -> Result<(), serde_json::Error> {
        let p: Permissions = serde_json::from_value(serde_json::json!({
            "scope": "team",
            "categories": {
                "identity": {"read": "masked", "write": true},
                "credentials": {"read": "full"},
                "nonsense": {"read": "full"},
                "financial": {"read": "full", "export": true}
            }
        }))?;
        assert_eq!(p.scope, RecordScope::Team);
        let problems = p.problems();
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems.iter().any(|m| m.starts_with("identity: writing")));
        assert!(problems.iter().any(|m| m.starts_with("credentials")));
        assert!(problems.iter().any(|m| m.starts_with("nonsense")));
        // Credentials stay unreadable even if a definition slipped through.
        assert!(!p.can_read(DataCategory::Credentials));
        assert!(p.can_export(DataCategory::Financial));
        assert!(!p.can_write(DataCategory::Identity));
        assert_eq!(p.read_level(DataCategory::Identity), ReadLevel::Masked);
        assert!(
            serde_json::from_value::<Grant>(serde_json::json!({"read": "all"})).is_err(),
            "unknown read levels are refused"
        );
        Ok(())
    }
}

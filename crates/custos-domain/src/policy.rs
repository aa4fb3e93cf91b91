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
        _ => serde_json::Value::String("•••".to_string()),
    }
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
}

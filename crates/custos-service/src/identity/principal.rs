//! Who is calling: every use case takes a [`Principal`] and decides from it.

use custos_domain::{DataCategory, Permissions, ReadLevel, RecordScope, Role};
use uuid::Uuid;

/// How the caller authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// A web session (cookie) or a session token from the sign-in API.
    Session(Uuid),
    /// An API token.
    ApiToken(Uuid),
    /// The local command line, run by whoever holds the data directory and key.
    Cli,
}

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Principal {
    /// The staff user (nil for the CLI operator).
    pub user_id: Uuid,
    /// Their role, or for a custom role the built-in role it is based on: it
    /// decides which functions (admin pages, privacy work, entities) they reach.
    pub role: Role,
    /// The role's name as assigned (`sales`, or a custom role's name).
    pub role_name: String,
    /// The role's label, for people (`Sales`, `Field sales`).
    pub role_label: String,
    /// What the role may do with each data category, and which records.
    pub perms: Permissions,
    /// For record scopes narrower than all: the users whose records the caller
    /// reaches (themself, or their team). `None` = every record.
    pub owners: Option<Vec<Uuid>>,
    /// An API token's scopes (`read`, `write`, `export`, `admin`); `None` =
    /// everything the role allows.
    pub scopes: Option<Vec<String>>,
    /// How they authenticated.
    pub via: Via,
    /// Where the request came from (IP address), for the audit ledger.
    pub client: Option<String>,
    /// The request id, for the audit ledger.
    pub request_id: Option<String>,
    /// Sessions: when the user last proved a second factor (or, for accounts
    /// without one, their password) in it (Unix ms). Step-up needs it recent.
    pub verified_at: Option<i64>,
}

impl Principal {
    /// A principal acting with `role` (tests and internal use).
    pub fn with_role(user_id: Uuid, role: Role, via: Via) -> Principal {
        Principal {
            user_id,
            role,
            role_name: role.name().to_string(),
            role_label: role.label().to_string(),
            perms: Permissions::builtin(role),
            owners: None,
            scopes: None,
            via,
            client: None,
            request_id: None,
            verified_at: None,
        }
    }

    /// The local operator using the `custos` command: acts as an administrator.
    pub fn cli() -> Principal {
        Principal::with_role(Uuid::nil(), Role::Admin, Via::Cli)
    }

    /// Whether the caller sees values of `category` in full.
    pub fn can_read(&self, category: DataCategory) -> bool {
        self.perms.can_read(category)
    }

    /// How much of `category` the caller sees.
    pub fn read_level(&self, category: DataCategory) -> ReadLevel {
        self.perms.read_level(category)
    }

    /// Whether the caller may set values of `category`.
    pub fn can_write(&self, category: DataCategory) -> bool {
        self.perms.can_write(category)
    }

    /// Whether values of `category` may leave in the caller's exports.
    pub fn can_export(&self, category: DataCategory) -> bool {
        self.perms.can_export(category)
    }

    /// Whether the caller may erase values of `category`.
    pub fn can_erase(&self, category: DataCategory) -> bool {
        self.perms.can_erase(category)
    }

    /// Whether the caller may export every personal category (a subject-access
    /// package, a mailing list holds them all).
    pub fn can_export_personal(&self) -> bool {
        DataCategory::ALL
            .into_iter()
            .filter(|c| c.is_personal() && *c != DataCategory::Credentials)
            .all(|c| self.can_export(c))
    }

    /// Whether the caller may erase every personal category (erasure destroys
    /// a person's data key, and with it all of them).
    pub fn can_erase_personal(&self) -> bool {
        DataCategory::ALL
            .into_iter()
            .filter(|c| c.is_personal() && *c != DataCategory::Credentials)
            .all(|c| self.can_erase(c))
    }

    /// Whether a record owned by `owner` is within the caller's record scope.
    /// Records without an owner are reached only by callers who reach all.
    pub fn reaches(&self, owner: Option<Uuid>) -> bool {
        match &self.owners {
            None => true,
            Some(ids) => owner.is_some_and(|o| ids.contains(&o)),
        }
    }

    /// The record scope, for messages.
    pub fn scope(&self) -> RecordScope {
        self.perms.scope
    }

    /// Whether an API token's scopes cover `scope` (always, outside tokens).
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes
            .as_ref()
            .is_none_or(|s| s.iter().any(|x| x == scope))
    }

    /// The actor string recorded in audit events.
    pub fn actor(&self) -> String {
        match self.via {
            Via::Cli => "cli".to_string(),
            _ => format!("user:{}", self.user_id),
        }
    }

    /// How they authenticated, for the audit detail.
    pub fn via_detail(&self) -> String {
        match self.via {
            Via::Session(id) => format!("via=session:{id}"),
            Via::ApiToken(id) => format!("via=token:{id}"),
            Via::Cli => "via=cli".to_string(),
        }
    }
}

/// Where an unauthenticated request came from (sign-in attempts).
#[derive(Debug, Clone, Default)]
pub struct RequestMeta {
    /// Client IP address.
    pub client: Option<String>,
    /// Request id.
    pub request_id: Option<String>,
    /// The client's `User-Agent`, shortened, for the list of sessions (sealed).
    pub user_agent: Option<String>,
}

//! Who is calling: every use case takes a [`Principal`] and decides from it.

use custos_domain::Role;
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
    /// Their role.
    pub role: Role,
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
            via,
            client: None,
            request_id: None,
            verified_at: None,
        }
    }

    /// The local operator using the `custos` command: acts as an administrator.
    pub fn cli() -> Principal {
        Principal {
            user_id: Uuid::nil(),
            role: Role::Admin,
            via: Via::Cli,
            client: None,
            request_id: None,
            verified_at: None,
        }
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

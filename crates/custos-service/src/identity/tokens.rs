//! API tokens: random, shown once, stored only as SHA-256 hashes, limited to
//! scopes and optionally to an expiry; listed without the secret; revoked.

use crate::identity::ms_text;
use crate::ledger::audit::Event;
use crate::{Custos, Principal, Result, ServiceError};
use custos_crypto::new_token;
use custos_domain::Role;
use custos_store::ApiTokenRow;
use secrecy::SecretString;
use std::time::Duration;
use uuid::Uuid;

pub(crate) const TOKEN_PREFIX: &str = "cst_";

/// A freshly created API token; the secret is shown once.
#[derive(Debug)]
pub struct NewToken {
    /// Token id (appears in audit events).
    pub id: Uuid,
    /// The token itself.
    pub token: SecretString,
}

/// An API token, as listed (never the secret).
#[derive(Debug, Clone, serde::Serialize)]
pub struct TokenView {
    /// Token id.
    pub id: Uuid,
    /// Whose.
    pub user_id: Uuid,
    /// Its label.
    pub name: String,
    /// Created (RFC 3339).
    pub created_at: String,
    /// Last used (RFC 3339).
    pub last_used_at: Option<String>,
    /// Ends (RFC 3339).
    pub expires_at: Option<String>,
    /// Revoked (RFC 3339).
    pub revoked_at: Option<String>,
    /// What it may do; `None` = everything its user's role may.
    pub scopes: Option<Vec<String>>,
}

/// The scopes an API token can be limited to.
pub const TOKEN_SCOPES: [&str; 4] = ["read", "write", "export", "admin"];

impl Custos {
    /// Creates an API token for the user with this email (administrators, or a
    /// user for themself). The token is returned once and stored hashed. In a
    /// session this needs a fresh second factor (step-up).
    pub async fn create_api_token(
        &self,
        p: &Principal,
        email: &str,
        name: &str,
        ttl: Option<Duration>,
    ) -> Result<NewToken> {
        self.create_scoped_token(p, email, name, ttl, None).await
    }

    /// [`Custos::create_api_token`] limited to `scopes` (see [`TOKEN_SCOPES`]).
    pub async fn create_scoped_token(
        &self,
        p: &Principal,
        email: &str,
        name: &str,
        ttl: Option<Duration>,
        scopes: Option<Vec<String>>,
    ) -> Result<NewToken> {
        match self
            .create_token_as(p, email, name, ttl, scopes, Uuid::now_v7())
            .await?
        {
            crate::Submission::Created(t) => Ok(t),
            crate::Submission::Replayed(id) => {
                Err(ServiceError::Conflict(format!("token {id} exists already")))
            }
        }
    }

    /// [`Custos::create_scoped_token`] with the id the token gets, from a
    /// form's idempotency key: sent twice, the second changes nothing and
    /// says which token the first made (its secret was shown only then).
    pub async fn create_scoped_token_once(
        &self,
        p: &Principal,
        email: &str,
        name: &str,
        ttl: Option<Duration>,
        scopes: Option<Vec<String>>,
        id: Uuid,
    ) -> Result<crate::Submission<NewToken>> {
        self.create_token_as(p, email, name, ttl, scopes, id).await
    }

    async fn create_token_as(
        &self,
        p: &Principal,
        email: &str,
        name: &str,
        ttl: Option<Duration>,
        scopes: Option<Vec<String>>,
        id: Uuid,
    ) -> Result<crate::Submission<NewToken>> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
            return Err(ServiceError::invalid(
                "name",
                "must be 1 to 100 characters on one line",
            ));
        }
        if let Some(s) = &scopes
            && (s.is_empty() || s.iter().any(|x| !TOKEN_SCOPES.contains(&x.as_str())))
        {
            return Err(ServiceError::invalid(
                "scopes",
                format!("give one or more of {}", TOKEN_SCOPES.join(", ")),
            ));
        }
        self.require_scope(p, "admin", "token.create").await?;
        self.require_step_up(p, "token.create").await?;
        let mut tx = self.inner.store.begin().await?;
        let found = self.find_user(tx.as_mut(), email).await?;
        // Non-administrators may only create tokens for themselves; decide that
        // before saying whether the email exists, so it cannot be probed.
        if p.role != Role::Admin && found.as_ref().is_none_or(|(row, _)| row.id != p.user_id) {
            let msg = "only administrators create tokens for other users".to_string();
            return Err(self.refuse_in(tx, p, "token.create", msg).await);
        }
        let Some((row, _rec)) = found else {
            return Err(ServiceError::invalid("email", "no user has this email"));
        };
        if tx
            .list_api_tokens(Some(row.id))
            .await?
            .iter()
            .any(|t| t.id == id)
        {
            return Ok(crate::Submission::Replayed(id));
        }
        let (token, hash) = new_token(TOKEN_PREFIX)?;
        let now = self.now_ms();
        let scopes = scopes.map(|s| {
            let mut s = s;
            s.sort();
            s.dedup();
            s.join(",")
        });
        tx.insert_api_token(&ApiTokenRow {
            id,
            user_id: row.id,
            name: name.to_string(),
            token_hash: hash.to_vec(),
            created_at: now,
            last_used_at: None,
            expires_at: ttl.map(|d| now + d.as_millis() as i64),
            revoked_at: None,
            scopes: scopes.clone(),
        })
        .await?;
        let ev = Event::new(p, "token.create")
            .subject(Some(row.id))
            .detail(format!("token={id}"))
            .detail(format!("scopes={}", scopes.as_deref().unwrap_or("all")));
        self.append(tx.as_mut(), ev).await?;
        tx.commit().await?;
        Ok(crate::Submission::Created(NewToken { id, token }))
    }

    /// API tokens: the caller's own, or everyone's for administrators (`all`).
    pub async fn list_api_tokens(&self, p: &Principal, all: bool) -> Result<Vec<TokenView>> {
        if all {
            self.require_admin(p, "token.list").await?;
        }
        let mut tx = self.inner.store.begin().await?;
        let rows = tx
            .list_api_tokens(if all { None } else { Some(p.user_id) })
            .await?;
        self.append(
            tx.as_mut(),
            Event::new(p, "token.list").detail(format!("count={}", rows.len())),
        )
        .await?;
        tx.commit().await?;
        Ok(rows
            .into_iter()
            .map(|t| TokenView {
                id: t.id,
                user_id: t.user_id,
                name: t.name,
                created_at: ms_text(t.created_at),
                last_used_at: t.last_used_at.map(ms_text),
                expires_at: t.expires_at.map(ms_text),
                revoked_at: t.revoked_at.map(ms_text),
                scopes: t.scopes.map(|s| s.split(',').map(str::to_string).collect()),
            })
            .collect())
    }

    /// Revokes an API token (its owner, or an administrator).
    pub async fn revoke_api_token(&self, p: &Principal, id: Uuid) -> Result<()> {
        let mut tx = self.inner.store.begin().await?;
        let owner_filter = if p.role == Role::Admin {
            None
        } else {
            Some(p.user_id)
        };
        let known = tx
            .list_api_tokens(owner_filter)
            .await?
            .into_iter()
            .any(|t| t.id == id);
        if !known {
            return Err(ServiceError::NotFound("token"));
        }
        tx.revoke_api_token(id, self.now_ms()).await?;
        self.append(
            tx.as_mut(),
            Event::new(p, "token.revoke").detail(format!("token={id}")),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }
}

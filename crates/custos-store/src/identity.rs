//! Sessions, API tokens, second factors, sign-in ceremonies and sign-in
//! throttling, written once for every backend.

use crate::exec::{Exec, Row};
use crate::sql::{self, Dialect, Query};
use crate::tx::{record_at, record_types};
use crate::{
    ApiTokenRow, ChallengeRow, ColumnType, CredentialRow, Result, SessionRow, StoredRow,
    UserAuthRow,
};
use async_trait::async_trait;
use custos_domain::Entity;
use uuid::Uuid;

use ColumnType::{Blob as B, Int as I, Text as T};

const SESSION_COLS: &str = "id, token_hash, user_id, created_at, last_seen_at, expires_at, revoked_at, kind, verified_at, device";
const SESSION_TYPES: &[ColumnType] = &[T, B, T, I, I, I, I, T, I, B];
const TOKEN_COLS: &str =
    "id, user_id, name, token_hash, created_at, last_used_at, expires_at, revoked_at, scopes";
const TOKEN_TYPES: &[ColumnType] = &[T, T, T, B, I, I, I, I, T];
const CREDENTIAL_COLS: &str =
    "id, user_id, credential_id, public_key, sign_count, name, created_at, last_used_at";
const CREDENTIAL_TYPES: &[ColumnType] = &[T, T, B, B, I, B, I, I];
const CHALLENGE_COLS: &str =
    "id, token_hash, user_id, purpose, session_id, challenge, attempts, created_at, expires_at";
const CHALLENGE_TYPES: &[ColumnType] = &[T, B, T, T, T, B, I, I, I];

fn decode_session(r: &Row) -> Result<SessionRow> {
    Ok(SessionRow {
        id: r.uuid(0, "session id")?,
        token_hash: r.blob(1)?,
        user_id: r.uuid(2, "session user")?,
        created_at: r.int(3)?,
        last_seen_at: r.int(4)?,
        expires_at: r.int(5)?,
        revoked_at: r.opt_int(6)?,
        kind: r.text(7)?,
        verified_at: r.opt_int(8)?,
        device: r.opt_blob(9)?,
    })
}

fn decode_token(r: &Row) -> Result<ApiTokenRow> {
    Ok(ApiTokenRow {
        id: r.uuid(0, "token id")?,
        user_id: r.uuid(1, "token user")?,
        name: r.text(2)?,
        token_hash: r.blob(3)?,
        created_at: r.int(4)?,
        last_used_at: r.opt_int(5)?,
        expires_at: r.opt_int(6)?,
        revoked_at: r.opt_int(7)?,
        scopes: r.opt_text(8)?,
    })
}

fn decode_credential(r: &Row) -> Result<CredentialRow> {
    Ok(CredentialRow {
        id: r.uuid(0, "credential id")?,
        user_id: r.uuid(1, "credential user")?,
        credential_id: r.blob(2)?,
        public_key: r.blob(3)?,
        sign_count: r.int(4)?,
        name: r.opt_blob(5)?,
        created_at: r.int(6)?,
        last_used_at: r.opt_int(7)?,
    })
}

fn decode_challenge(r: &Row) -> Result<ChallengeRow> {
    Ok(ChallengeRow {
        id: r.uuid(0, "challenge id")?,
        token_hash: r.blob(1)?,
        user_id: r.uuid(2, "challenge user")?,
        purpose: r.text(3)?,
        session_id: r.opt_uuid(4)?,
        challenge: r.opt_blob(5)?,
        attempts: r.int(6)?,
        created_at: r.int(7)?,
        expires_at: r.int(8)?,
    })
}

/// The types of a token's or session's columns followed by its user's.
fn with_user_types(own: &[ColumnType]) -> Vec<ColumnType> {
    let mut types = own.to_vec();
    types.extend(record_types(Entity::User));
    types
}

/// The user's record in the columns after the first `at`; `None` when the
/// user is gone (the LEFT JOIN found nothing).
fn user_after(r: &Row, at: usize) -> Result<Option<StoredRow>> {
    record_at(Entity::User, r, at)
}

/// Sessions, API tokens, second factors and sign-in throttling.
#[async_trait]
pub trait IdentityTx: Send {
    /// Stores a new session.
    async fn insert_session(&mut self, row: &SessionRow) -> Result<()>;
    /// Finds a session by token hash.
    async fn find_session(&mut self, token_hash: &[u8]) -> Result<Option<SessionRow>>;
    /// Finds a session by hash, with its user's record (`None` if the user
    /// is gone): recognising a caller in one query.
    async fn find_session_with_user(
        &mut self,
        token_hash: &[u8],
    ) -> Result<Option<(SessionRow, Option<StoredRow>)>>;
    /// Records activity on a session.
    async fn touch_session(&mut self, id: Uuid, now_ms: i64) -> Result<()>;
    /// Revokes a session.
    async fn revoke_session(&mut self, id: Uuid, now_ms: i64) -> Result<()>;
    /// Sessions neither revoked nor past their absolute end at `now_ms`, of one
    /// user or of everyone, newest first.
    async fn list_sessions(
        &mut self,
        user_id: Option<Uuid>,
        now_ms: i64,
        limit: u32,
    ) -> Result<Vec<SessionRow>>;
    /// Revokes every live session of a user except `except`; returns how many.
    async fn revoke_user_sessions(
        &mut self,
        user_id: Uuid,
        now_ms: i64,
        except: Option<Uuid>,
    ) -> Result<u64>;
    /// Records a second-factor check on a session and sets its kind.
    async fn set_session_verified(&mut self, id: Uuid, verified_at: i64, kind: &str) -> Result<()>;

    /// Stores a new API token.
    async fn insert_api_token(&mut self, row: &ApiTokenRow) -> Result<()>;
    /// Finds an API token by hash.
    async fn find_api_token(&mut self, token_hash: &[u8]) -> Result<Option<ApiTokenRow>>;
    /// Finds an API token by hash, with its user's record (`None` if the
    /// user is gone): recognising a caller in one query.
    async fn find_api_token_with_user(
        &mut self,
        token_hash: &[u8],
    ) -> Result<Option<(ApiTokenRow, Option<StoredRow>)>>;
    /// Records use of an API token.
    async fn touch_api_token(&mut self, id: Uuid, now_ms: i64) -> Result<()>;
    /// API tokens of one user or of everyone, newest first (revoked included).
    async fn list_api_tokens(&mut self, user_id: Option<Uuid>) -> Result<Vec<ApiTokenRow>>;
    /// Revokes an API token; false when it was unknown or already revoked.
    async fn revoke_api_token(&mut self, id: Uuid, now_ms: i64) -> Result<bool>;

    /// The sign-in state of a user.
    async fn get_user_auth(&mut self, user_id: Uuid) -> Result<Option<UserAuthRow>>;
    /// Stores the sign-in state of a user.
    async fn put_user_auth(&mut self, row: &UserAuthRow) -> Result<()>;
    /// Stores a new WebAuthn credential.
    async fn insert_credential(&mut self, row: &CredentialRow) -> Result<()>;
    /// A user's WebAuthn credentials, oldest first.
    async fn list_credentials(&mut self, user_id: Uuid) -> Result<Vec<CredentialRow>>;
    /// Records a use of a credential.
    async fn touch_credential(&mut self, id: Uuid, sign_count: i64, now_ms: i64) -> Result<()>;
    /// Deletes one credential of a user, or all of them; returns how many.
    async fn delete_credentials(&mut self, user_id: Uuid, id: Option<Uuid>) -> Result<u64>;
    /// Stores a new ceremony.
    async fn insert_challenge(&mut self, row: &ChallengeRow) -> Result<()>;
    /// Finds a ceremony by its token's hash.
    async fn find_challenge(&mut self, token_hash: &[u8]) -> Result<Option<ChallengeRow>>;
    /// Updates a ceremony's attempts and WebAuthn challenge.
    async fn update_challenge(
        &mut self,
        id: Uuid,
        attempts: i64,
        challenge: Option<&[u8]>,
    ) -> Result<()>;
    /// Ends a ceremony (and any that expired before `now_ms`).
    async fn delete_challenge(&mut self, id: Uuid, now_ms: i64) -> Result<()>;
    /// Records a failed sign-in under a throttling key; forgets failures older
    /// than a day.
    async fn record_auth_failure(&mut self, key: &[u8], at_ms: i64) -> Result<()>;
    /// Failures under a key at or after `since_ms`: how many, and the latest.
    async fn auth_failures(&mut self, key: &[u8], since_ms: i64) -> Result<(u64, Option<i64>)>;
}

#[async_trait]
impl<X: Exec> IdentityTx for X {
    async fn insert_session(&mut self, s: &SessionRow) -> Result<()> {
        let q = Query::written(format!(
            "INSERT INTO sessions ({SESSION_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
        ))
        .uuid(s.id)
        .blob(&s.token_hash)
        .uuid(s.user_id)
        .int(s.created_at)
        .int(s.last_seen_at)
        .int(s.expires_at)
        .opt_int(s.revoked_at)
        .text(&s.kind)
        .opt_int(s.verified_at)
        .opt_blob(s.device.as_deref());
        self.execute(q).await?;
        Ok(())
    }

    async fn find_session(&mut self, token_hash: &[u8]) -> Result<Option<SessionRow>> {
        let q = Query::written(format!(
            "SELECT {SESSION_COLS} FROM sessions WHERE token_hash = $1"
        ))
        .blob(token_hash);
        self.fetch_optional(q, SESSION_TYPES)
            .await?
            .map(|r| decode_session(&r))
            .transpose()
    }

    async fn find_session_with_user(
        &mut self,
        token_hash: &[u8],
    ) -> Result<Option<(SessionRow, Option<StoredRow>)>> {
        let q = Query::written(sql::with_user(Dialect::Postgres, "sessions", SESSION_COLS))
            .blob(token_hash);
        let types = with_user_types(SESSION_TYPES);
        self.fetch_optional(q, &types)
            .await?
            .map(|r| Ok((decode_session(&r)?, user_after(&r, SESSION_TYPES.len())?)))
            .transpose()
    }

    async fn touch_session(&mut self, id: Uuid, now_ms: i64) -> Result<()> {
        let q = Query::written("UPDATE sessions SET last_seen_at = $1 WHERE id = $2")
            .int(now_ms)
            .uuid(id);
        self.execute(q).await?;
        Ok(())
    }

    async fn revoke_session(&mut self, id: Uuid, now_ms: i64) -> Result<()> {
        let q = Query::written(
            "UPDATE sessions SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
        )
        .int(now_ms)
        .uuid(id);
        self.execute(q).await?;
        Ok(())
    }

    async fn list_sessions(
        &mut self,
        user_id: Option<Uuid>,
        now_ms: i64,
        limit: u32,
    ) -> Result<Vec<SessionRow>> {
        let q = Query::written(format!(
            "SELECT {SESSION_COLS} FROM sessions WHERE revoked_at IS NULL AND expires_at > $1 \
             AND (CAST($2 AS TEXT) IS NULL OR user_id = $2) ORDER BY created_at DESC, id DESC LIMIT $3"
        ))
        .int(now_ms)
        .opt_uuid(user_id)
        .int(i64::from(limit));
        self.fetch(q, SESSION_TYPES)
            .await?
            .iter()
            .map(decode_session)
            .collect()
    }

    async fn revoke_user_sessions(
        &mut self,
        user_id: Uuid,
        now_ms: i64,
        except: Option<Uuid>,
    ) -> Result<u64> {
        let q = Query::written(
            "UPDATE sessions SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL \
             AND (CAST($3 AS TEXT) IS NULL OR id <> $3)",
        )
        .int(now_ms)
        .uuid(user_id)
        .opt_uuid(except);
        self.execute(q).await
    }

    async fn set_session_verified(&mut self, id: Uuid, verified_at: i64, kind: &str) -> Result<()> {
        let q = Query::written("UPDATE sessions SET verified_at = $1, kind = $2 WHERE id = $3")
            .int(verified_at)
            .text(kind)
            .uuid(id);
        self.execute(q).await?;
        Ok(())
    }

    async fn insert_api_token(&mut self, t: &ApiTokenRow) -> Result<()> {
        let q = Query::written(format!(
            "INSERT INTO api_tokens ({TOKEN_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        ))
        .uuid(t.id)
        .uuid(t.user_id)
        .text(&t.name)
        .blob(&t.token_hash)
        .int(t.created_at)
        .opt_int(t.last_used_at)
        .opt_int(t.expires_at)
        .opt_int(t.revoked_at)
        .opt_text(t.scopes.as_deref());
        self.execute(q).await?;
        Ok(())
    }

    async fn find_api_token(&mut self, token_hash: &[u8]) -> Result<Option<ApiTokenRow>> {
        let q = Query::written(format!(
            "SELECT {TOKEN_COLS} FROM api_tokens WHERE token_hash = $1"
        ))
        .blob(token_hash);
        self.fetch_optional(q, TOKEN_TYPES)
            .await?
            .map(|r| decode_token(&r))
            .transpose()
    }

    async fn find_api_token_with_user(
        &mut self,
        token_hash: &[u8],
    ) -> Result<Option<(ApiTokenRow, Option<StoredRow>)>> {
        let q = Query::written(sql::with_user(Dialect::Postgres, "api_tokens", TOKEN_COLS))
            .blob(token_hash);
        let types = with_user_types(TOKEN_TYPES);
        self.fetch_optional(q, &types)
            .await?
            .map(|r| Ok((decode_token(&r)?, user_after(&r, TOKEN_TYPES.len())?)))
            .transpose()
    }

    async fn touch_api_token(&mut self, id: Uuid, now_ms: i64) -> Result<()> {
        let q = Query::written("UPDATE api_tokens SET last_used_at = $1 WHERE id = $2")
            .int(now_ms)
            .uuid(id);
        self.execute(q).await?;
        Ok(())
    }

    async fn list_api_tokens(&mut self, user_id: Option<Uuid>) -> Result<Vec<ApiTokenRow>> {
        let q = Query::written(format!(
            "SELECT {TOKEN_COLS} FROM api_tokens WHERE (CAST($1 AS TEXT) IS NULL OR user_id = $1) \
             ORDER BY created_at DESC, id DESC LIMIT 1000"
        ))
        .opt_uuid(user_id);
        self.fetch(q, TOKEN_TYPES)
            .await?
            .iter()
            .map(decode_token)
            .collect()
    }

    async fn revoke_api_token(&mut self, id: Uuid, now_ms: i64) -> Result<bool> {
        let q = Query::written(
            "UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
        )
        .int(now_ms)
        .uuid(id);
        Ok(self.execute(q).await? > 0)
    }

    async fn get_user_auth(&mut self, user_id: Uuid) -> Result<Option<UserAuthRow>> {
        let q = Query::written(
            "SELECT totp_last_step, failed_since_login, last_login_at, password_changed_at, recovery_codes \
             FROM user_auth WHERE user_id = $1",
        )
        .uuid(user_id);
        self.fetch_optional(q, &[I, I, I, I, B])
            .await?
            .map(|r| {
                Ok(UserAuthRow {
                    user_id,
                    totp_last_step: r.opt_int(0)?,
                    failed_since_login: r.int(1)?,
                    last_login_at: r.opt_int(2)?,
                    password_changed_at: r.opt_int(3)?,
                    recovery_codes: r.blob(4)?,
                })
            })
            .transpose()
    }

    async fn put_user_auth(&mut self, a: &UserAuthRow) -> Result<()> {
        let q = Query::written(
            "INSERT INTO user_auth (user_id, totp_last_step, failed_since_login, last_login_at, password_changed_at, recovery_codes) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (user_id) DO UPDATE SET \
             totp_last_step = excluded.totp_last_step, failed_since_login = excluded.failed_since_login, \
             last_login_at = excluded.last_login_at, password_changed_at = excluded.password_changed_at, \
             recovery_codes = excluded.recovery_codes",
        )
        .uuid(a.user_id)
        .opt_int(a.totp_last_step)
        .int(a.failed_since_login)
        .opt_int(a.last_login_at)
        .opt_int(a.password_changed_at)
        .blob(&a.recovery_codes);
        self.execute(q).await?;
        Ok(())
    }

    async fn insert_credential(&mut self, c: &CredentialRow) -> Result<()> {
        let q = Query::written(format!(
            "INSERT INTO webauthn_credentials ({CREDENTIAL_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
        ))
        .uuid(c.id)
        .uuid(c.user_id)
        .blob(&c.credential_id)
        .blob(&c.public_key)
        .int(c.sign_count)
        .opt_blob(c.name.as_deref())
        .int(c.created_at)
        .opt_int(c.last_used_at);
        self.execute(q).await?;
        Ok(())
    }

    async fn list_credentials(&mut self, user_id: Uuid) -> Result<Vec<CredentialRow>> {
        let q = Query::written(format!(
            "SELECT {CREDENTIAL_COLS} FROM webauthn_credentials WHERE user_id = $1 ORDER BY created_at, id"
        ))
        .uuid(user_id);
        self.fetch(q, CREDENTIAL_TYPES)
            .await?
            .iter()
            .map(decode_credential)
            .collect()
    }

    async fn touch_credential(&mut self, id: Uuid, sign_count: i64, now_ms: i64) -> Result<()> {
        let q = Query::written(
            "UPDATE webauthn_credentials SET sign_count = $1, last_used_at = $2 WHERE id = $3",
        )
        .int(sign_count)
        .int(now_ms)
        .uuid(id);
        self.execute(q).await?;
        Ok(())
    }

    async fn delete_credentials(&mut self, user_id: Uuid, id: Option<Uuid>) -> Result<u64> {
        let q = Query::written(
            "DELETE FROM webauthn_credentials WHERE user_id = $1 AND (CAST($2 AS TEXT) IS NULL OR id = $2)",
        )
        .uuid(user_id)
        .opt_uuid(id);
        self.execute(q).await
    }

    async fn insert_challenge(&mut self, c: &ChallengeRow) -> Result<()> {
        let q = Query::written(format!(
            "INSERT INTO auth_challenges ({CHALLENGE_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        ))
        .uuid(c.id)
        .blob(&c.token_hash)
        .uuid(c.user_id)
        .text(&c.purpose)
        .opt_uuid(c.session_id)
        .opt_blob(c.challenge.as_deref())
        .int(c.attempts)
        .int(c.created_at)
        .int(c.expires_at);
        self.execute(q).await?;
        Ok(())
    }

    async fn find_challenge(&mut self, token_hash: &[u8]) -> Result<Option<ChallengeRow>> {
        let q = Query::written(format!(
            "SELECT {CHALLENGE_COLS} FROM auth_challenges WHERE token_hash = $1"
        ))
        .blob(token_hash);
        self.fetch_optional(q, CHALLENGE_TYPES)
            .await?
            .map(|r| decode_challenge(&r))
            .transpose()
    }

    async fn update_challenge(
        &mut self,
        id: Uuid,
        attempts: i64,
        challenge: Option<&[u8]>,
    ) -> Result<()> {
        let q = Query::written(
            "UPDATE auth_challenges SET attempts = $1, challenge = $2 WHERE id = $3",
        )
        .int(attempts)
        .opt_blob(challenge)
        .uuid(id);
        self.execute(q).await?;
        Ok(())
    }

    async fn delete_challenge(&mut self, id: Uuid, now_ms: i64) -> Result<()> {
        let q = Query::written("DELETE FROM auth_challenges WHERE id = $1 OR expires_at < $2")
            .uuid(id)
            .int(now_ms);
        self.execute(q).await?;
        Ok(())
    }

    async fn record_auth_failure(&mut self, key: &[u8], at_ms: i64) -> Result<()> {
        let q = Query::written("DELETE FROM auth_failures WHERE at < $1").int(at_ms - 86_400_000);
        self.execute(q).await?;
        let q = Query::written("INSERT INTO auth_failures (key, at) VALUES ($1, $2)")
            .blob(key)
            .int(at_ms);
        self.execute(q).await?;
        Ok(())
    }

    async fn auth_failures(&mut self, key: &[u8], since_ms: i64) -> Result<(u64, Option<i64>)> {
        let q = Query::written(
            "SELECT COUNT(*), MAX(at) FROM auth_failures WHERE key = $1 AND at >= $2",
        )
        .blob(key)
        .int(since_ms);
        let row = self.fetch_optional(q, &[I, I]).await?;
        match row {
            Some(r) => Ok((r.int(0)?.max(0) as u64, r.opt_int(1)?)),
            None => Ok((0, None)),
        }
    }
}

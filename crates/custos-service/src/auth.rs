//! Staff accounts, sign-in, sessions and API tokens. Tokens are random, shown
//! once and stored only as SHA-256 hashes; passwords are Argon2id hashes, sealed.

use crate::audit::Event;
use crate::{Custos, Principal, RequestMeta, Result, ServiceError, Via};
use custos_crypto::{hash_password, hash_token, new_token, normalize, verify_password};
use custos_domain::validate::{self, Mode};
use custos_domain::{Entity, Role, Value};
use custos_store::{ApiTokenRow, Condition, ListQuery, SessionRow, Sort, StoredRow, Tx};
use secrecy::{ExposeSecret, SecretString};
use std::collections::BTreeMap;
use std::time::Duration;
use uuid::Uuid;

/// Minimum and maximum password length (NIST SP 800-63B / ASVS).
pub const PASSWORD_MIN: usize = 12;
/// Longer passwords are refused to bound hashing work.
pub const PASSWORD_MAX: usize = 128;

const SESSION_PREFIX: &str = "css_";
const TOKEN_PREFIX: &str = "cst_";

/// A staff account as shown to administrators.
#[derive(Debug, Clone, serde::Serialize)]
pub struct UserView {
    /// User id.
    pub id: Uuid,
    /// Sign-in email.
    pub email: String,
    /// Display name.
    pub display_name: Option<String>,
    /// Role.
    pub role: Role,
    /// Whether sign-in is blocked.
    pub disabled: bool,
}

/// A freshly created API token; the secret is shown once.
#[derive(Debug)]
pub struct NewToken {
    /// Token id (appears in audit events).
    pub id: Uuid,
    /// The token itself.
    pub token: SecretString,
}

/// The result of a successful sign-in.
#[derive(Debug)]
pub struct LoginResult {
    /// The session token (cookie value or bearer token).
    pub token: SecretString,
    /// The session id.
    pub session_id: Uuid,
    /// Who signed in.
    pub user: UserView,
}

fn check_password(pw: &SecretString) -> Result<()> {
    let n = pw.expose_secret().chars().count();
    if n < PASSWORD_MIN {
        return Err(ServiceError::invalid(
            "password",
            format!("must be at least {PASSWORD_MIN} characters"),
        ));
    }
    if n > PASSWORD_MAX {
        return Err(ServiceError::invalid(
            "password",
            format!("must be at most {PASSWORD_MAX} characters"),
        ));
    }
    Ok(())
}

fn user_view(r: &custos_domain::Record) -> Result<UserView> {
    let role = r
        .get("role")
        .as_text()
        .and_then(Role::from_name)
        .ok_or_else(|| ServiceError::Internal("user without role".into()))?;
    Ok(UserView {
        id: r.id,
        email: r.get("email").as_text().unwrap_or_default().to_string(),
        display_name: r.get("display_name").as_text().map(str::to_string),
        role,
        disabled: matches!(r.get("disabled"), Value::Bool(true)),
    })
}

impl Custos {
    /// Finds a user by email (blind index, confirmed on the opened value).
    async fn find_user(
        &self,
        tx: &mut dyn Tx,
        email: &str,
    ) -> Result<Option<(StoredRow, custos_domain::Record)>> {
        let norm = normalize::email(email);
        if norm.is_empty() {
            return Ok(None);
        }
        let hash = self.inner.keys.blind_term(Entity::User, "email", &norm);
        let q = ListQuery {
            entity: Entity::User,
            conditions: vec![Condition::Blind {
                field: "email",
                hash,
            }],
            sort: Sort {
                field: "created_at",
                descending: false,
            },
            after: None,
            limit: 50,
        };
        for row in tx.list_records(&q).await? {
            let rec = self.open_internal(tx, Entity::User, &row).await?;
            if rec.get("email").as_text().map(normalize::email).as_deref() == Some(norm.as_str()) {
                return Ok(Some((row, rec)));
            }
        }
        Ok(None)
    }

    /// Number of staff accounts (zero on a fresh installation).
    pub async fn user_count(&self) -> Result<u64> {
        let mut tx = self.inner.store.begin().await?;
        Ok(tx.count_records(Entity::User, &[]).await?)
    }

    /// Creates a staff account (administrators, or the local CLI).
    pub async fn create_user(
        &self,
        p: &Principal,
        email: &str,
        role: Role,
        password: &SecretString,
        display_name: Option<&str>,
    ) -> Result<UserView> {
        if p.role != Role::Admin {
            self.append_alone(Event::new(p, "user.create").outcome("denied"))
                .await?;
            return Err(ServiceError::Forbidden(
                "only administrators create users".into(),
            ));
        }
        let mut input = serde_json::json!({"email": email, "role": role.name()});
        if let Some(n) = display_name {
            input["display_name"] = serde_json::Value::String(n.to_string());
        }
        let mut values =
            validate::parse_input(Entity::User, &input, Mode::Create, &Default::default())
                .map_err(ServiceError::Invalid)?;
        check_password(password)?;
        let phc = hash_password(password)?;
        let mut tx = self.inner.store.begin().await?;
        if self.find_user(tx.as_mut(), email).await?.is_some() {
            return Err(ServiceError::Conflict(
                "a user with this email already exists".into(),
            ));
        }
        let id = Uuid::now_v7();
        let now = Value::Timestamp(self.now());
        values.insert("created_at", now.clone());
        values.insert("updated_at", now);
        values.insert("disabled", Value::Bool(false));
        values.insert("password_hash", Value::Text(phc));
        let key = self
            .inner
            .keys
            .create_subject_key(tx.as_mut(), id, Entity::User, self.now_ms())
            .await?;
        let mut columns = Vec::new();
        self.seal_values(
            tx.as_mut(),
            Entity::User,
            id,
            Some(id),
            Some(&key),
            &values,
            &mut columns,
        )
        .await?;
        tx.insert_record(
            Entity::User,
            &StoredRow {
                id,
                subject_id: Some(id),
                columns,
            },
        )
        .await?;
        let ev = Event::new(p, "user.create")
            .subject(Some(id))
            .record(Entity::User, id)
            .detail(format!("role={}", role.name()));
        self.append(tx.as_mut(), ev).await?;
        let row = tx
            .get_record(Entity::User, id)
            .await?
            .ok_or(ServiceError::NotFound("user"))?;
        let rec = self.open_internal(tx.as_mut(), Entity::User, &row).await?;
        tx.commit().await?;
        user_view(&rec)
    }

    /// Creates an API token for the user with this email (administrators, or a
    /// user for themself). The token is returned once and stored hashed.
    pub async fn create_api_token(
        &self,
        p: &Principal,
        email: &str,
        name: &str,
        ttl: Option<Duration>,
    ) -> Result<NewToken> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
            return Err(ServiceError::invalid(
                "name",
                "must be 1 to 100 characters on one line",
            ));
        }
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
        let (token, hash) = new_token(TOKEN_PREFIX)?;
        let id = Uuid::now_v7();
        let now = self.now_ms();
        tx.insert_api_token(&ApiTokenRow {
            id,
            user_id: row.id,
            name: name.to_string(),
            token_hash: hash.to_vec(),
            created_at: now,
            last_used_at: None,
            expires_at: ttl.map(|d| now + d.as_millis() as i64),
            revoked_at: None,
        })
        .await?;
        let ev = Event::new(p, "token.create")
            .subject(Some(row.id))
            .detail(format!("token={id}"));
        self.append(tx.as_mut(), ev).await?;
        tx.commit().await?;
        Ok(NewToken { id, token })
    }

    /// Signs in with email and password; opens a session. Unknown accounts and
    /// wrong passwords get the same answer after the same work.
    pub async fn login(
        &self,
        meta: &RequestMeta,
        email: &str,
        password: &SecretString,
    ) -> Result<LoginResult> {
        let mut tx = self.inner.store.begin().await?;
        let found = self.find_user(tx.as_mut(), email).await?;
        let Some((row, rec)) = found else {
            custos_crypto::dummy_verify_password(password);
            drop(tx);
            self.append_alone(
                Event::anonymous(meta, "auth.login")
                    .outcome("failed")
                    .detail("reason=credentials"),
            )
            .await?;
            return Err(ServiceError::Unauthenticated);
        };
        let phc = rec
            .get("password_hash")
            .as_text()
            .unwrap_or_default()
            .to_string();
        let disabled = matches!(rec.get("disabled"), Value::Bool(true));
        if !verify_password(&phc, password) || disabled {
            drop(tx);
            let reason = if disabled {
                "reason=disabled"
            } else {
                "reason=credentials"
            };
            let ev = Event::anonymous(meta, "auth.login")
                .subject(Some(row.id))
                .outcome("failed")
                .detail(reason);
            self.append_alone(ev).await?;
            return Err(ServiceError::Unauthenticated);
        }
        if custos_crypto::password_needs_rehash(&phc) {
            let mut v = BTreeMap::new();
            v.insert("password_hash", Value::Text(hash_password(password)?));
            self.write_system_fields(tx.as_mut(), Entity::User, row.id, Some(row.id), &v)
                .await?;
        }
        let (token, hash) = new_token(SESSION_PREFIX)?;
        let now = self.now_ms();
        let session_id = Uuid::now_v7();
        tx.insert_session(&SessionRow {
            id: session_id,
            token_hash: hash.to_vec(),
            user_id: row.id,
            created_at: now,
            last_seen_at: now,
            expires_at: now + self.inner.config.session_absolute.as_millis() as i64,
            revoked_at: None,
        })
        .await?;
        let ev = Event::anonymous(meta, "auth.login")
            .actor(format!("user:{}", row.id))
            .subject(Some(row.id))
            .detail(format!("session={session_id}"));
        self.append(tx.as_mut(), ev).await?;
        tx.commit().await?;
        Ok(LoginResult {
            token,
            session_id,
            user: user_view(&rec)?,
        })
    }

    /// Resolves a bearer token or session cookie to a principal.
    pub async fn authenticate(&self, token: &str, meta: &RequestMeta) -> Result<Principal> {
        if token.len() > 200 {
            return Err(ServiceError::Unauthenticated);
        }
        let hash = hash_token(token);
        let now = self.now_ms();
        let mut tx = self.inner.store.begin().await?;
        let (user_id, via) = if token.starts_with(SESSION_PREFIX) {
            let s = tx
                .find_session(&hash)
                .await?
                .ok_or(ServiceError::Unauthenticated)?;
            let idle = self.inner.config.session_idle.as_millis() as i64;
            if s.revoked_at.is_some() || now >= s.expires_at || now - s.last_seen_at >= idle {
                return Err(ServiceError::Unauthenticated);
            }
            tx.touch_session(s.id, now).await?;
            (s.user_id, Via::Session(s.id))
        } else if token.starts_with(TOKEN_PREFIX) {
            let t = tx
                .find_api_token(&hash)
                .await?
                .ok_or(ServiceError::Unauthenticated)?;
            if t.revoked_at.is_some() || t.expires_at.is_some_and(|e| now >= e) {
                return Err(ServiceError::Unauthenticated);
            }
            tx.touch_api_token(t.id, now).await?;
            (t.user_id, Via::ApiToken(t.id))
        } else {
            return Err(ServiceError::Unauthenticated);
        };
        let row = tx
            .get_record(Entity::User, user_id)
            .await?
            .ok_or(ServiceError::Unauthenticated)?;
        let role = match row.get("role") {
            custos_store::SqlValue::Text(r) => {
                Role::from_name(r).ok_or(ServiceError::Unauthenticated)?
            }
            _ => return Err(ServiceError::Unauthenticated),
        };
        if matches!(
            row.get("disabled"),
            custos_store::SqlValue::Bool(true) | custos_store::SqlValue::Int(1)
        ) {
            return Err(ServiceError::Unauthenticated);
        }
        tx.commit().await?;
        Ok(Principal {
            user_id,
            role,
            via,
            client: meta.client.clone(),
            request_id: meta.request_id.clone(),
        })
    }

    /// Ends the caller's session (API tokens are revoked by administrators).
    pub async fn logout(&self, p: &Principal) -> Result<()> {
        let mut tx = self.inner.store.begin().await?;
        if let Via::Session(id) = p.via {
            tx.revoke_session(id, self.now_ms()).await?;
        }
        self.append(
            tx.as_mut(),
            Event::new(p, "auth.logout").subject(Some(p.user_id)),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The signed-in user's own account.
    pub async fn me(&self, p: &Principal) -> Result<UserView> {
        let mut tx = self.inner.store.begin().await?;
        let row = tx
            .get_record(Entity::User, p.user_id)
            .await?
            .ok_or(ServiceError::Unauthenticated)?;
        let rec = self.open_internal(tx.as_mut(), Entity::User, &row).await?;
        self.append(
            tx.as_mut(),
            Event::new(p, "user.read_self")
                .subject(Some(p.user_id))
                .record(Entity::User, p.user_id),
        )
        .await?;
        tx.commit().await?;
        user_view(&rec)
    }
}

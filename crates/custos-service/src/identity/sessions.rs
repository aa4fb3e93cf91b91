//! Sign-in and sessions. Sign-in is two steps when the account has a second
//! factor: the password gives a short-lived `mfa_token`, and the second
//! factor (see `mfa.rs`) turns it into a session. With the MFA policy on, an
//! account without a second factor gets an *enrolment* session that can only
//! set one up. Failed attempts are throttled (see [`crate::security::throttle`]);
//! unknown accounts get the same answers after the same work. Session tokens
//! are random and stored only as SHA-256 hashes.

use crate::identity::ms_text;
use crate::identity::tokens::TOKEN_PREFIX;
use crate::identity::users::{UserView, user_view};
use crate::ledger::audit::Event;
use crate::{Custos, Principal, RequestMeta, Result, ServiceError, Via};
use custos_crypto::{hash_password, hash_token, new_token, verify_password};
use custos_domain::{Entity, Role, Value};
use custos_store::{ChallengeRow, SessionRow, Tx};
use secrecy::SecretString;
use std::collections::BTreeMap;
use uuid::Uuid;

/// How stale a session's last-seen time or a token's last use may get
/// before a request writes it again: the idle timeout is checked against
/// it, so it errs by at most this much, and most requests write nothing.
const TOUCH_EVERY_MS: i64 = 60_000;
const SESSION_PREFIX: &str = "css_";
const MFA_PREFIX: &str = "csm_";
/// How long an `mfa_token` lives.
const MFA_TOKEN_TTL_MS: i64 = 5 * 60 * 1000;
/// Wrong second-factor codes allowed per `mfa_token`.
pub(crate) const MFA_ATTEMPTS: i64 = 5;

/// The result of a successful sign-in.
#[derive(Debug)]
pub struct LoginResult {
    /// The session token (cookie value or bearer token).
    pub token: SecretString,
    /// The session id.
    pub session_id: Uuid,
    /// Who signed in.
    pub user: UserView,
    /// The session may only enrol a second factor (the MFA policy requires one
    /// and the account has none yet).
    pub enrol_only: bool,
    /// Failed sign-in attempts on this account since its previous sign-in.
    pub failed_attempts: i64,
}

/// What the password step of a sign-in gives.
#[derive(Debug)]
pub enum SignIn {
    /// Signed in (possibly to an enrolment-only session).
    Session(LoginResult),
    /// The password was right; a second factor must follow.
    SecondFactor {
        /// Give it back with the code (`POST /api/v1/auth/mfa`).
        mfa_token: SecretString,
        /// `totp`, `webauthn`, `recovery_code`.
        methods: Vec<&'static str>,
    },
}

/// A live session, as listed to its user or to administrators.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SessionView {
    /// Session id.
    pub id: Uuid,
    /// Whose.
    pub user_id: Uuid,
    /// Signed in (RFC 3339).
    pub created_at: String,
    /// Last request (RFC 3339).
    pub last_seen_at: String,
    /// Absolute end (RFC 3339).
    pub expires_at: String,
    /// `full` or `enrol`.
    pub kind: String,
    /// Browser or client, as it said.
    pub device: Option<String>,
    /// Address it signed in from.
    pub address: Option<String>,
    /// Whether it is the caller's own session.
    pub current: bool,
}

impl Custos {
    /// Signs in with email and password, for callers that do not handle a
    /// second factor (an account with one gets `Forbidden`). See [`Custos::sign_in`].
    pub async fn login(
        &self,
        meta: &RequestMeta,
        email: &str,
        password: &SecretString,
    ) -> Result<LoginResult> {
        match self.sign_in(meta, email, password).await? {
            SignIn::Session(r) => Ok(r),
            SignIn::SecondFactor { .. } => Err(ServiceError::Forbidden(
                "this account signs in with a second factor".into(),
            )),
        }
    }

    /// The password step of a sign-in. Unknown accounts and wrong passwords
    /// get the same answer after the same work; throttled attempts are refused
    /// (`RateLimited`) without checking the password, known account or not.
    pub async fn sign_in(
        &self,
        meta: &RequestMeta,
        email: &str,
        password: &SecretString,
    ) -> Result<SignIn> {
        let (acct, addr) = self.throttle_keys(email, meta);
        let mut tx = self.inner.store.begin().await?;
        let found = self.find_user(tx.as_mut(), email).await?;
        let last_success = match &found {
            Some((row, _)) => self.user_auth(tx.as_mut(), row.id).await?.last_login_at,
            None => None,
        };
        if self
            .throttled(tx.as_mut(), &acct, addr.as_deref(), last_success)
            .await?
        {
            drop(tx);
            let ev = Event::anonymous(meta, "auth.login")
                .subject(found.as_ref().map(|(r, _)| r.id))
                .outcome("denied")
                .detail("reason=throttled");
            self.append_alone(ev).await?;
            return Err(ServiceError::RateLimited);
        }
        let Some((row, rec)) = found else {
            custos_crypto::dummy_verify_password(password);
            self.record_failure(tx.as_mut(), &acct, addr.as_deref(), None)
                .await?;
            let ev = Event::anonymous(meta, "auth.login")
                .outcome("failed")
                .detail("reason=credentials");
            self.append(tx.as_mut(), ev).await?;
            tx.commit().await?;
            return Err(ServiceError::Unauthenticated);
        };
        let phc = rec
            .get("password_hash")
            .as_text()
            .unwrap_or_default()
            .to_string();
        let disabled = matches!(rec.get("disabled"), Value::Bool(true));
        if !verify_password(&phc, password) || disabled {
            let reason = if disabled {
                "reason=disabled"
            } else {
                "reason=credentials"
            };
            self.record_failure(tx.as_mut(), &acct, addr.as_deref(), Some(row.id))
                .await?;
            let ev = Event::anonymous(meta, "auth.login")
                .subject(Some(row.id))
                .outcome("failed")
                .detail(reason);
            self.append(tx.as_mut(), ev).await?;
            tx.commit().await?;
            return Err(ServiceError::Unauthenticated);
        }
        if custos_crypto::password_needs_rehash(&phc) {
            let mut v = BTreeMap::new();
            v.insert("password_hash", Value::Text(hash_password(password)?));
            self.write_system_fields(tx.as_mut(), Entity::User, row.id, Some(row.id), &v)
                .await?;
        }
        let methods = self.mfa_methods(tx.as_mut(), &rec).await?;
        if !methods.is_empty() {
            let (token, hash) = new_token(MFA_PREFIX)?;
            let now = self.now_ms();
            tx.insert_challenge(&ChallengeRow {
                id: Uuid::now_v7(),
                token_hash: hash.to_vec(),
                user_id: row.id,
                purpose: "signin".into(),
                session_id: None,
                challenge: None,
                attempts: 0,
                created_at: now,
                expires_at: now + MFA_TOKEN_TTL_MS,
            })
            .await?;
            let ev = Event::anonymous(meta, "auth.password")
                .actor(format!("user:{}", row.id))
                .subject(Some(row.id))
                .detail("next=mfa");
            self.append(tx.as_mut(), ev).await?;
            tx.commit().await?;
            return Ok(SignIn::SecondFactor {
                mfa_token: token,
                methods,
            });
        }
        let enrol = self.mfa_required_in(tx.as_mut()).await?;
        let kind = if enrol { "enrol" } else { "full" };
        let verified = (!enrol).then(|| self.now_ms());
        let res = self
            .open_session(tx.as_mut(), meta, &rec, kind, verified, "password")
            .await?;
        tx.commit().await?;
        Ok(SignIn::Session(res))
    }

    /// The second factors an account has (empty: none set up).
    pub(crate) async fn mfa_methods(
        &self,
        tx: &mut dyn Tx,
        rec: &custos_domain::Record,
    ) -> Result<Vec<&'static str>> {
        let mut m = Vec::new();
        if !rec.get("totp_secret").is_null() {
            m.push("totp");
        }
        if !tx.list_credentials(rec.id).await?.is_empty() {
            m.push("webauthn");
        }
        if !m.is_empty() && !self.user_auth(tx, rec.id).await?.recovery_codes.is_empty() {
            m.push("recovery_code");
        }
        Ok(m)
    }

    /// Opens a session after a complete sign-in, resets the failure counter and
    /// records the sign-in.
    pub(crate) async fn open_session(
        &self,
        tx: &mut dyn Tx,
        meta: &RequestMeta,
        rec: &custos_domain::Record,
        kind: &str,
        verified_at: Option<i64>,
        how: &str,
    ) -> Result<LoginResult> {
        let user = rec.id;
        let (token, hash) = new_token(SESSION_PREFIX)?;
        let now = self.now_ms();
        let session_id = Uuid::now_v7();
        let device = serde_json::json!({
            "ua": meta.user_agent.as_deref().map(|u| u.chars().take(200).collect::<String>()),
            "ip": meta.client,
        })
        .to_string();
        let device = self
            .seal_for_user(tx, user, "session_device", session_id, device.as_bytes())
            .await?;
        tx.insert_session(&SessionRow {
            id: session_id,
            token_hash: hash.to_vec(),
            user_id: user,
            created_at: now,
            last_seen_at: now,
            expires_at: now + self.inner.config.session_absolute.as_millis() as i64,
            revoked_at: None,
            kind: kind.to_string(),
            verified_at,
            device: Some(device),
        })
        .await?;
        let mut auth = self.user_auth(tx, user).await?;
        let failed = auth.failed_since_login;
        auth.failed_since_login = 0;
        auth.last_login_at = Some(now);
        tx.put_user_auth(&auth).await?;
        let ev = Event::anonymous(meta, "auth.login")
            .actor(format!("user:{user}"))
            .subject(Some(user))
            .detail(format!("session={session_id}"))
            .detail(format!("method={how}"))
            .detail(format!("kind={kind}"))
            .detail(format!("failed_before={failed}"));
        self.append(tx, ev).await?;
        Ok(LoginResult {
            token,
            session_id,
            user: user_view(rec)?,
            enrol_only: kind == "enrol",
            failed_attempts: failed,
        })
    }

    /// Resolves a bearer token or session cookie to a principal. Enrolment
    /// sessions are refused with [`ServiceError::EnrolmentRequired`].
    pub async fn authenticate(&self, token: &str, meta: &RequestMeta) -> Result<Principal> {
        let (p, enrol) = self.resolve(token, meta).await?;
        if enrol {
            return Err(ServiceError::EnrolmentRequired);
        }
        Ok(p)
    }

    /// Like [`Custos::authenticate`], also accepting enrolment sessions: for
    /// the use cases that set up a second factor, the account page and sign-out.
    /// Returns whether the session is an enrolment one.
    pub async fn authenticate_for_enrolment(
        &self,
        token: &str,
        meta: &RequestMeta,
    ) -> Result<(Principal, bool)> {
        self.resolve(token, meta).await
    }

    async fn resolve(&self, token: &str, meta: &RequestMeta) -> Result<(Principal, bool)> {
        if token.len() > 200 {
            return Err(ServiceError::Unauthenticated);
        }
        let hash = hash_token(token);
        let now = self.now_ms();
        // Reads only: a request does not queue behind writers to be
        // recognised. Last use is written separately, at most once a minute.
        let mut tx = self.inner.store.begin_read().await?;
        let mut token_scopes = None;
        let mut touch = None;
        // The token and its user's record come in one query.
        let (user_id, via, verified_at, enrol, created, user) = if token.starts_with(SESSION_PREFIX)
        {
            let (s, user) = tx
                .find_session_with_user(&hash)
                .await?
                .ok_or(ServiceError::Unauthenticated)?;
            let idle = self.inner.config.session_idle.as_millis() as i64;
            if s.revoked_at.is_some() || now >= s.expires_at || now - s.last_seen_at >= idle {
                return Err(ServiceError::Unauthenticated);
            }
            if now - s.last_seen_at >= TOUCH_EVERY_MS {
                touch = Some((s.id, true));
            }
            (
                s.user_id,
                Via::Session(s.id),
                s.verified_at,
                s.kind == "enrol",
                Some(s.created_at),
                user,
            )
        } else if token.starts_with(TOKEN_PREFIX) {
            let (t, user) = tx
                .find_api_token_with_user(&hash)
                .await?
                .ok_or(ServiceError::Unauthenticated)?;
            if t.revoked_at.is_some() || t.expires_at.is_some_and(|e| now >= e) {
                return Err(ServiceError::Unauthenticated);
            }
            if t.last_used_at.is_none_or(|at| now - at >= TOUCH_EVERY_MS) {
                touch = Some((t.id, false));
            }
            token_scopes = t
                .scopes
                .map(|s| s.split(',').map(str::to_string).collect::<Vec<_>>());
            (t.user_id, Via::ApiToken(t.id), None, false, None, user)
        } else {
            return Err(ServiceError::Unauthenticated);
        };
        let row = user.ok_or(ServiceError::Unauthenticated)?;
        let role_name = match row.get("role") {
            custos_store::SqlValue::Text(r) => r.clone(),
            _ => return Err(ServiceError::Unauthenticated),
        };
        let Some(resolved) = self.resolve_role(tx.as_mut(), &role_name).await? else {
            return Err(ServiceError::Unauthenticated);
        };
        let team = match row.get("team") {
            custos_store::SqlValue::Text(t) if !t.is_empty() => Some(t.clone()),
            _ => None,
        };
        let owners = self
            .scope_owners(tx.as_mut(), user_id, team.as_deref(), resolved.perms.scope)
            .await?;
        if matches!(
            row.get("disabled"),
            custos_store::SqlValue::Bool(true) | custos_store::SqlValue::Int(1)
        ) {
            return Err(ServiceError::Unauthenticated);
        }
        // A session from before the last password change is dead, even if
        // revoking it was missed.
        if let Some(created) = created {
            let changed = self
                .user_auth(tx.as_mut(), user_id)
                .await?
                .password_changed_at;
            if changed.is_some_and(|c| created < c) {
                return Err(ServiceError::Unauthenticated);
            }
        }
        tx.commit().await?;
        if let Some((id, session)) = touch {
            let mut tx = self.inner.store.begin().await?;
            if session {
                tx.touch_session(id, now).await?;
            } else {
                tx.touch_api_token(id, now).await?;
            }
            tx.commit().await?;
        }
        Ok((
            Principal {
                user_id,
                role: resolved.base,
                role_name,
                role_label: resolved.label,
                perms: resolved.perms,
                owners,
                scopes: token_scopes,
                via,
                client: meta.client.clone(),
                request_id: meta.request_id.clone(),
                verified_at,
            },
            enrol,
        ))
    }

    /// Ends the caller's session (API tokens are revoked on their own).
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

    /// Live sessions: the caller's own, or everyone's for administrators.
    pub async fn list_sessions(&self, p: &Principal, all: bool) -> Result<Vec<SessionView>> {
        if all {
            self.require_admin(p, "session.list").await?;
        }
        let mut tx = self.inner.store.begin().await?;
        let now = self.now_ms();
        let rows = tx
            .list_sessions(if all { None } else { Some(p.user_id) }, now, 500)
            .await?;
        let idle = self.inner.config.session_idle.as_millis() as i64;
        let mut out = Vec::new();
        for s in rows.into_iter().filter(|s| now - s.last_seen_at < idle) {
            let dev = match &s.device {
                Some(b) => {
                    self.open_for_user(tx.as_mut(), s.user_id, "session_device", s.id, b)
                        .await
                }
                None => None,
            };
            let dev: serde_json::Value = dev
                .and_then(|d| serde_json::from_str(&d).ok())
                .unwrap_or_default();
            out.push(SessionView {
                id: s.id,
                user_id: s.user_id,
                created_at: ms_text(s.created_at),
                last_seen_at: ms_text(s.last_seen_at),
                expires_at: ms_text(s.expires_at),
                kind: s.kind,
                device: dev["ua"].as_str().map(str::to_string),
                address: dev["ip"].as_str().map(str::to_string),
                current: p.via == Via::Session(s.id),
            });
        }
        self.append(
            tx.as_mut(),
            Event::new(p, "session.list")
                .subject((!all).then_some(p.user_id))
                .detail(format!("count={}", out.len())),
        )
        .await?;
        tx.commit().await?;
        Ok(out)
    }

    /// Revokes one session: the caller's own, or anyone's for administrators.
    pub async fn revoke_session(&self, p: &Principal, id: Uuid) -> Result<()> {
        let mut tx = self.inner.store.begin().await?;
        let now = self.now_ms();
        let owner = if p.role == Role::Admin {
            None
        } else {
            Some(p.user_id)
        };
        let Some(s) = tx
            .list_sessions(owner, now, 10_000)
            .await?
            .into_iter()
            .find(|s| s.id == id)
        else {
            return Err(ServiceError::NotFound("session"));
        };
        tx.revoke_session(id, now).await?;
        self.append(
            tx.as_mut(),
            Event::new(p, "session.revoke")
                .subject(Some(s.user_id))
                .detail(format!("session={id}")),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Revokes every session of the caller except the current one; returns
    /// how many ended.
    pub async fn revoke_other_sessions(&self, p: &Principal) -> Result<u64> {
        let mut tx = self.inner.store.begin().await?;
        let keep = match p.via {
            Via::Session(id) => Some(id),
            _ => None,
        };
        let n = tx
            .revoke_user_sessions(p.user_id, self.now_ms(), keep)
            .await?;
        self.append(
            tx.as_mut(),
            Event::new(p, "session.revoke_all")
                .subject(Some(p.user_id))
                .detail(format!("count={n}")),
        )
        .await?;
        tx.commit().await?;
        Ok(n)
    }

    /// Ends every session of a user (password or MFA change, disabling),
    /// recording why.
    pub(crate) async fn end_sessions(
        &self,
        tx: &mut dyn Tx,
        p: &Principal,
        user: Uuid,
        why: &str,
    ) -> Result<u64> {
        let n = tx.revoke_user_sessions(user, self.now_ms(), None).await?;
        self.append(
            tx,
            Event::new(p, "session.revoke_all")
                .subject(Some(user))
                .detail(format!("count={n}"))
                .detail(format!("reason={why}")),
        )
        .await?;
        Ok(n)
    }
}

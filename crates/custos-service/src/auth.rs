//! Staff accounts, sign-in, sessions and API tokens. Tokens are random, shown
//! once and stored only as SHA-256 hashes; passwords are Argon2id hashes, sealed.
//!
//! Sign-in is two steps when the account has a second factor: the password
//! gives a short-lived `mfa_token`, and the second factor (see `mfa.rs`) turns
//! it into a session. With the MFA policy on, an account without a second
//! factor gets an *enrolment* session that can only set one up. Failed
//! attempts are throttled per account and per client address (see
//! [`Throttle`]); unknown accounts get the same answers after the same work.

use crate::audit::Event;
use crate::{Custos, Principal, RequestMeta, Result, ServiceError, Via};
use custos_crypto::{
    SealContext, hash_password, hash_token, new_token, normalize, open, seal, sealed_key_version,
    verify_password,
};
use custos_domain::validate::{self, Mode};
use custos_domain::{Entity, Role, Value};
use custos_store::{
    ApiTokenRow, ChallengeRow, Condition, ListQuery, SessionRow, Sort, StoredRow, Tx, UserAuthRow,
};
use secrecy::{ExposeSecret, SecretString};
use std::collections::BTreeMap;
use std::time::Duration;
use uuid::Uuid;

/// Minimum and maximum password length (NIST SP 800-63B / ASVS).
pub const PASSWORD_MIN: usize = 12;
/// Longer passwords are refused to bound hashing work.
pub const PASSWORD_MAX: usize = 128;

/// The refusal of a sensitive action in a session whose last second-factor
/// check is too old: the client re-authenticates (`POST /api/v1/auth/step-up`)
/// and tries again.
pub const STEP_UP_REQUIRED: &str =
    "this action needs a fresh second factor: confirm your identity (step-up) and try again";
/// The refusal of anything but enrolment in an enrolment session.
pub const ENROLMENT_REQUIRED: &str = "a second factor is required for every account: set one up first (authenticator app or passkey)";

/// How stale a session's last-seen time or a token's last use may get
/// before a request writes it again: the idle timeout is checked against
/// it, so it errs by at most this much, and most requests write nothing.
const TOUCH_EVERY_MS: i64 = 60_000;
const SESSION_PREFIX: &str = "css_";
const TOKEN_PREFIX: &str = "cst_";
const MFA_PREFIX: &str = "csm_";
const MFA_SETTING: &str = "auth.mfa_required";
/// How long an `mfa_token` lives.
const MFA_TOKEN_TTL_MS: i64 = 5 * 60 * 1000;
/// Wrong second-factor codes allowed per `mfa_token`.
pub(crate) const MFA_ATTEMPTS: i64 = 5;

/// Throttling of failed sign-ins (ASVS V6.3, NIST SP 800-63B 5.2.2). No
/// permanent lock-out: every limit is a sliding window or a short back-off.
#[derive(Debug, Clone, Copy)]
pub struct Throttle;

impl Throttle {
    /// Failed attempts per account in any hour, after which attempts are
    /// refused without checking them until the oldest leaves the window.
    pub const ACCOUNT_PER_HOUR: u64 = 100;
    /// Consecutive failures on an account before back-off starts.
    pub const FREE_FAILURES: u64 = 5;
    /// Longest back-off between attempts on one account (seconds).
    pub const MAX_BACKOFF_SECS: i64 = 30;
    /// Failures from one address in 15 minutes before its back-off starts.
    pub const ADDRESS_FREE: u64 = 20;
    /// Longest back-off for one address (seconds).
    pub const ADDRESS_MAX_BACKOFF_SECS: i64 = 60;

    /// Seconds to wait after `n` consecutive failures (0 = none).
    pub fn backoff_secs(n: u64, free: u64, max: i64) -> i64 {
        if n < free {
            0
        } else {
            let e = (n - free).min(20) as u32;
            (1i64 << e).min(max)
        }
    }
}

/// A staff account as shown to administrators.
#[derive(Debug, Clone, serde::Serialize)]
pub struct UserView {
    /// User id.
    pub id: Uuid,
    /// Sign-in email.
    pub email: String,
    /// Display name.
    pub display_name: Option<String>,
    /// Role name (a built-in role, or a custom one).
    pub role: String,
    /// Whether sign-in is blocked.
    pub disabled: bool,
    /// Team, for team-scoped roles.
    pub team: Option<String>,
    /// Whether an authenticator app is set up.
    pub totp: bool,
}

/// A staff account to create.
#[derive(Debug, Clone, Copy)]
pub(crate) struct NewUser<'a> {
    pub email: &'a str,
    pub role: &'a str,
    pub display_name: Option<&'a str>,
    pub team: Option<&'a str>,
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

pub(crate) fn ms_text(ms: i64) -> String {
    custos_domain::value::from_unix_ms(ms)
        .map(custos_domain::value::format_timestamp)
        .unwrap_or_default()
}

pub(crate) fn check_password(pw: &SecretString) -> Result<()> {
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
    if custos_crypto::is_common_password(pw.expose_secret()) {
        return Err(ServiceError::invalid(
            "password",
            "is one of the most common passwords; choose another (a few unrelated words work well)",
        ));
    }
    Ok(())
}

fn user_view(r: &custos_domain::Record) -> Result<UserView> {
    let role = r
        .get("role")
        .as_text()
        .ok_or_else(|| ServiceError::Internal("user without role".into()))?
        .to_string();
    Ok(UserView {
        id: r.id,
        email: r.get("email").as_text().unwrap_or_default().to_string(),
        display_name: r.get("display_name").as_text().map(str::to_string),
        role,
        disabled: matches!(r.get("disabled"), Value::Bool(true)),
        team: r.get("team").as_text().map(str::to_string),
        totp: !r.get("totp_secret").is_null(),
    })
}

fn empty_auth(user_id: Uuid) -> UserAuthRow {
    UserAuthRow {
        user_id,
        ..Default::default()
    }
}

impl Custos {
    /// Finds a user by email (blind index, confirmed on the opened value).
    pub(crate) async fn find_user(
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

    /// Opens a user's record with full rights (internal).
    pub(crate) async fn user_record(
        &self,
        tx: &mut dyn Tx,
        id: Uuid,
    ) -> Result<Option<custos_domain::Record>> {
        match tx.get_record(Entity::User, id).await? {
            Some(row) => Ok(Some(self.open_internal(tx, Entity::User, &row).await?)),
            None => Ok(None),
        }
    }

    pub(crate) async fn user_auth(&self, tx: &mut dyn Tx, id: Uuid) -> Result<UserAuthRow> {
        Ok(tx
            .get_user_auth(id)
            .await?
            .unwrap_or_else(|| empty_auth(id)))
    }

    /// Seals a small value about a user (a session's device, a passkey's name)
    /// under their data key, bound to `field` and `record`.
    pub(crate) async fn seal_for_user(
        &self,
        tx: &mut dyn Tx,
        user: Uuid,
        field: &str,
        record: Uuid,
        plain: &[u8],
    ) -> Result<Vec<u8>> {
        let key = self
            .inner
            .keys
            .write_key(tx, user, "user", self.now_ms())
            .await?;
        let (u, r) = (user.to_string(), record.to_string());
        let ctx = SealContext {
            tenant: self.inner.keys.tenant(),
            entity: "user",
            field,
            record_id: &r,
            subject_id: &u,
        };
        Ok(seal(&key, &ctx, plain)?)
    }

    /// Opens what [`Custos::seal_for_user`] sealed (`None` if it cannot be).
    pub(crate) async fn open_for_user(
        &self,
        tx: &mut dyn Tx,
        user: Uuid,
        field: &str,
        record: Uuid,
        sealed: &[u8],
    ) -> Option<String> {
        let keys = self.inner.keys.subject_keys(tx, user, "user").await.ok()?;
        let k = keys.get(sealed_key_version(sealed).ok()?).ok()?;
        let (u, r) = (user.to_string(), record.to_string());
        let ctx = SealContext {
            tenant: self.inner.keys.tenant(),
            entity: "user",
            field,
            record_id: &r,
            subject_id: &u,
        };
        let plain = open(k, &ctx, sealed).ok()?;
        String::from_utf8(plain.to_vec()).ok()
    }

    /// Number of staff accounts (zero on a fresh installation).
    pub async fn user_count(&self) -> Result<u64> {
        let mut tx = self.inner.store.begin().await?;
        Ok(tx.count_records(Entity::User, &[]).await?)
    }

    /// Whether every account must have a second factor.
    pub async fn mfa_required(&self) -> Result<bool> {
        let mut tx = self.inner.store.begin().await?;
        self.mfa_required_in(tx.as_mut()).await
    }

    pub(crate) async fn mfa_required_in(&self, tx: &mut dyn Tx) -> Result<bool> {
        Ok(match tx.get_setting(MFA_SETTING).await?.as_deref() {
            Some("false") => false,
            Some(_) => true,
            None => self.inner.config.mfa_required,
        })
    }

    pub(crate) async fn ensure_auth_defaults(&self, tx: &mut dyn Tx) -> Result<()> {
        if tx.get_setting(MFA_SETTING).await?.is_none() {
            let v = if self.inner.config.mfa_required {
                "true"
            } else {
                "false"
            };
            tx.put_setting(MFA_SETTING, v).await?;
        }
        Ok(())
    }

    /// Turns the MFA policy on or off (administrators, after step-up).
    pub async fn set_mfa_required(&self, p: &Principal, required: bool) -> Result<bool> {
        self.require_admin(p, "settings.mfa").await?;
        self.require_step_up(p, "settings.mfa").await?;
        let mut tx = self.inner.store.begin().await?;
        tx.put_setting(MFA_SETTING, if required { "true" } else { "false" })
            .await?;
        self.append(
            tx.as_mut(),
            Event::new(p, "settings.mfa").detail(format!("required={required}")),
        )
        .await?;
        tx.commit().await?;
        Ok(required)
    }

    pub(crate) async fn require_admin(&self, p: &Principal, action: &str) -> Result<()> {
        if p.role != Role::Admin {
            Err(self
                .refuse(p, action, "only administrators may do this".into())
                .await)
        } else if !p.has_scope("admin") {
            Err(self
                .refuse(p, action, "this API token lacks the admin scope".into())
                .await)
        } else {
            Ok(())
        }
    }

    /// Refuses (and records) a sensitive action in a session whose last
    /// second-factor check is older than the step-up window. API tokens were
    /// minted after a step-up and are limited by their scopes; the local CLI
    /// operator holds the data directory and key.
    pub async fn require_step_up(&self, p: &Principal, action: &str) -> Result<()> {
        if self.step_up_fresh(p) {
            return Ok(());
        }
        Err(self.step_up_refused(p, action).await)
    }

    /// Whether `p` may do a sensitive action now without a new second-factor
    /// check: API tokens and the CLI always, sessions within the step-up window.
    pub(crate) fn step_up_fresh(&self, p: &Principal) -> bool {
        let Via::Session(_) = p.via else {
            return true;
        };
        let window = self.inner.config.step_up_window.as_millis() as i64;
        p.verified_at.is_some_and(|v| self.now_ms() - v <= window)
    }

    /// Records a sensitive action refused for want of a step-up and returns
    /// the error to give back. Call it with no transaction open.
    pub(crate) async fn step_up_refused(&self, p: &Principal, action: &str) -> ServiceError {
        let ev = Event::new(p, action)
            .outcome("denied")
            .detail("reason=step_up");
        match self.append_alone(ev).await {
            Ok(_) => ServiceError::Forbidden(STEP_UP_REQUIRED.into()),
            Err(e) => e,
        }
    }

    /// Refuses (and records) what an API token's scopes do not cover.
    pub async fn require_scope(&self, p: &Principal, scope: &str, action: &str) -> Result<()> {
        let Via::ApiToken(id) = p.via else {
            return Ok(());
        };
        let mut tx = self.inner.store.begin().await?;
        let tokens = tx.list_api_tokens(Some(p.user_id)).await?;
        drop(tx);
        let scopes = tokens
            .iter()
            .find(|t| t.id == id)
            .and_then(|t| t.scopes.clone());
        match scopes {
            None => Ok(()),
            Some(s) if s.split(',').any(|x| x == scope) => Ok(()),
            Some(_) => Err(self
                .refuse(p, action, format!("this API token lacks the {scope} scope"))
                .await),
        }
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
        if p.role != Role::Admin || !p.has_scope("admin") {
            self.append_alone(Event::new(p, "user.create").outcome("denied"))
                .await?;
            return Err(ServiceError::Forbidden(
                "only administrators create users".into(),
            ));
        }
        let new = NewUser {
            email,
            role: role.name(),
            display_name,
            team: None,
        };
        let mut tx = self.inner.store.begin().await?;
        let view = self
            .create_user_in(tx.as_mut(), p, &new, Some(password))
            .await?;
        tx.commit().await?;
        Ok(view)
    }

    /// Creates a staff account with any role (built-in or custom) inside `tx`
    /// (the caller has checked that `p` is an administrator); without a password the account gets an unusable random one (an
    /// invitation sets the real one).
    pub(crate) async fn create_user_in(
        &self,
        tx: &mut dyn Tx,
        p: &Principal,
        new: &NewUser<'_>,
        password: Option<&SecretString>,
    ) -> Result<UserView> {
        let NewUser {
            email,
            role,
            display_name,
            team,
        } = *new;
        let mut input = serde_json::json!({"email": email, "role": role});
        if let Some(n) = display_name {
            input["display_name"] = serde_json::Value::String(n.to_string());
        }
        if let Some(t) = team.map(str::trim).filter(|t| !t.is_empty()) {
            input["team"] = serde_json::Value::String(t.to_string());
        }
        let mut values =
            validate::parse_input(Entity::User, &input, Mode::Create, &Default::default())
                .map_err(ServiceError::Invalid)?;
        let phc = match password {
            Some(pw) => {
                check_password(pw)?;
                hash_password(pw)?
            }
            None => {
                let (random, _) = new_token("unusable_")?;
                hash_password(&random)?
            }
        };
        if !self.role_exists(tx, role).await? {
            return Err(ServiceError::invalid(
                "role",
                "must be a built-in role or a custom role an administrator defined",
            ));
        }
        if self.find_user(tx, email).await?.is_some() {
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
            .create_subject_key(tx, id, Entity::User, self.now_ms())
            .await?;
        let mut columns = Vec::new();
        self.seal_values(
            tx,
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
        let mut auth = empty_auth(id);
        auth.password_changed_at = Some(self.now_ms());
        tx.put_user_auth(&auth).await?;
        let ev = Event::new(p, "user.create")
            .subject(Some(id))
            .record(Entity::User, id)
            .detail(format!("role={role}"));
        self.append(tx, ev).await?;
        let rec = self
            .user_record(tx, id)
            .await?
            .ok_or(ServiceError::NotFound("user"))?;
        user_view(&rec)
    }

    /// Every staff account (administrators).
    pub async fn list_users(&self, p: &Principal) -> Result<Vec<UserView>> {
        self.require_admin(p, "user.read").await?;
        let mut tx = self.inner.store.begin().await?;
        let q = ListQuery {
            entity: Entity::User,
            conditions: vec![],
            sort: Sort {
                field: "created_at",
                descending: false,
            },
            after: None,
            limit: 500,
        };
        let mut out = Vec::new();
        for row in tx.list_records(&q).await? {
            let rec = self.open_internal(tx.as_mut(), Entity::User, &row).await?;
            out.push(user_view(&rec)?);
        }
        self.append(
            tx.as_mut(),
            Event::new(p, "user.list").detail(format!("count={}", out.len())),
        )
        .await?;
        tx.commit().await?;
        Ok(out)
    }

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

    /// Throttling keys of an attempt: the account's and the address's.
    fn throttle_keys(&self, email: &str, meta: &RequestMeta) -> (Vec<u8>, Option<Vec<u8>>) {
        let acct = self
            .inner
            .keys
            .throttle_key("account", &normalize::email(email));
        let addr = meta
            .client
            .as_deref()
            .map(|c| self.inner.keys.throttle_key("address", c));
        (acct, addr)
    }

    /// Whether an attempt must be refused without checking it. `since_success`
    /// is the account's last successful sign-in, if known.
    async fn throttled(
        &self,
        tx: &mut dyn Tx,
        acct: &[u8],
        addr: Option<&[u8]>,
        since_success: Option<i64>,
    ) -> Result<bool> {
        let now = self.now_ms();
        let hour_ago = now - 3_600_000;
        let (in_hour, last) = tx.auth_failures(acct, hour_ago + 1).await?;
        if in_hour >= Throttle::ACCOUNT_PER_HOUR {
            return Ok(true);
        }
        let since = since_success.map_or(hour_ago + 1, |s| s.max(hour_ago + 1));
        let (consecutive, _) = tx.auth_failures(acct, since).await?;
        let wait = Throttle::backoff_secs(
            consecutive,
            Throttle::FREE_FAILURES,
            Throttle::MAX_BACKOFF_SECS,
        );
        if wait > 0 && last.is_some_and(|l| now < l + wait * 1000) {
            return Ok(true);
        }
        if let Some(addr) = addr {
            let (n, last) = tx.auth_failures(addr, now - 15 * 60_000).await?;
            let wait = Throttle::backoff_secs(
                n,
                Throttle::ADDRESS_FREE,
                Throttle::ADDRESS_MAX_BACKOFF_SECS,
            );
            if wait > 0 && last.is_some_and(|l| now < l + wait * 1000) {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Records a failed attempt on both keys, and on the account's counter.
    pub(crate) async fn record_failure(
        &self,
        tx: &mut dyn Tx,
        acct: &[u8],
        addr: Option<&[u8]>,
        user: Option<Uuid>,
    ) -> Result<()> {
        let now = self.now_ms();
        tx.record_auth_failure(acct, now).await?;
        if let Some(a) = addr {
            tx.record_auth_failure(a, now).await?;
        }
        if let Some(u) = user {
            let mut auth = self.user_auth(tx, u).await?;
            auth.failed_since_login += 1;
            tx.put_user_auth(&auth).await?;
        }
        Ok(())
    }

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
    /// sessions are refused with [`ENROLMENT_REQUIRED`].
    pub async fn authenticate(&self, token: &str, meta: &RequestMeta) -> Result<Principal> {
        let (p, enrol) = self.resolve(token, meta).await?;
        if enrol {
            return Err(ServiceError::Forbidden(ENROLMENT_REQUIRED.into()));
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

    /// Changes the caller's password (the current one must be given). Every
    /// session ends; the caller gets a new one.
    pub async fn change_password(
        &self,
        p: &Principal,
        meta: &RequestMeta,
        current: &SecretString,
        new: &SecretString,
    ) -> Result<Option<LoginResult>> {
        check_password(new)?;
        let mut tx = self.inner.store.begin().await?;
        let rec = self
            .user_record(tx.as_mut(), p.user_id)
            .await?
            .ok_or(ServiceError::Unauthenticated)?;
        let phc = rec.get("password_hash").as_text().unwrap_or_default();
        if !verify_password(phc, current) {
            let ev = Event::new(p, "auth.password_change")
                .subject(Some(p.user_id))
                .outcome("failed")
                .detail("reason=credentials");
            self.append(tx.as_mut(), ev).await?;
            tx.commit().await?;
            return Err(ServiceError::invalid(
                "current_password",
                "is not your current password",
            ));
        }
        self.set_password(tx.as_mut(), p, p.user_id, new).await?;
        let res = match p.via {
            Via::Session(_) => Some(
                self.open_session(
                    tx.as_mut(),
                    meta,
                    &rec,
                    "full",
                    Some(self.now_ms()),
                    "password_change",
                )
                .await?,
            ),
            _ => None,
        };
        tx.commit().await?;
        Ok(res)
    }

    /// Writes a new password hash (sealed like every user field) and when it
    /// changed, which ends older sessions.
    pub(crate) async fn store_password(
        &self,
        tx: &mut dyn Tx,
        user: Uuid,
        new: &SecretString,
    ) -> Result<()> {
        let mut v = BTreeMap::new();
        v.insert("password_hash", Value::Text(hash_password(new)?));
        v.insert("updated_at", Value::Timestamp(self.now()));
        self.write_system_fields(tx, Entity::User, user, Some(user), &v)
            .await?;
        let mut auth = self.user_auth(tx, user).await?;
        auth.password_changed_at = Some(self.now_ms());
        tx.put_user_auth(&auth).await?;
        Ok(())
    }

    async fn set_password(
        &self,
        tx: &mut dyn Tx,
        p: &Principal,
        user: Uuid,
        new: &SecretString,
    ) -> Result<()> {
        self.store_password(tx, user, new).await?;
        self.append(
            tx,
            Event::new(p, "auth.password_change").subject(Some(user)),
        )
        .await?;
        self.end_sessions(tx, p, user, "password_change").await?;
        Ok(())
    }

    /// Sets a new password for another user (administrators, after step-up);
    /// their sessions end.
    pub async fn reset_password(
        &self,
        p: &Principal,
        user: Uuid,
        new: &SecretString,
    ) -> Result<()> {
        self.require_admin(p, "user.reset_password").await?;
        self.require_step_up(p, "user.reset_password").await?;
        check_password(new)?;
        let mut tx = self.inner.store.begin().await?;
        if tx.get_record(Entity::User, user).await?.is_none() {
            return Err(ServiceError::NotFound("user"));
        }
        self.set_password(tx.as_mut(), p, user, new).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Checks a change to a user record made through the generic update
    /// (administrators): a role change needs step-up and a known role;
    /// disabling ends the user's sessions in the same transaction.
    pub(crate) async fn guard_user_update(
        &self,
        tx: &mut dyn Tx,
        p: &Principal,
        id: Uuid,
        values: &BTreeMap<&'static str, Value>,
    ) -> Result<()> {
        if let Some(v) = values.get("role") {
            let name = v.as_text().unwrap_or_default();
            if !self.role_exists(tx, name).await? {
                return Err(ServiceError::invalid(
                    "role",
                    "must be a built-in role (admin, manager, sales, support, privacy_officer, auditor) or a custom role an administrator defined",
                ));
            }
            self.require_step_up(p, "user.update").await?;
        }
        if matches!(values.get("disabled"), Some(Value::Bool(true))) {
            self.end_sessions(tx, p, id, "disabled").await?;
        }
        Ok(())
    }
}

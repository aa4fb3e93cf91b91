//! Staff accounts: creating them (with a role, team and password), listing
//! them, the caller's own account, the MFA policy, sealing and opening the
//! fields of an account, and the checks on a change of role or status.

use crate::identity::passwords::check_password;
use crate::ledger::audit::Event;
use crate::{Custos, Principal, Result, ServiceError};
use custos_crypto::{SealContext, hash_password, new_token, open, seal, sealed_key_version};
use custos_domain::validate::{self, Mode};
use custos_domain::{Entity, Role, Value};
use custos_store::{ListQuery, Sort, StoredRow, Tx, UserAuthRow};
use secrecy::SecretString;
use std::collections::BTreeMap;
use uuid::Uuid;

const MFA_SETTING: &str = "auth.mfa_required";

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

pub(crate) fn user_view(r: &custos_domain::Record) -> Result<UserView> {
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
        Ok(self
            .find_by_email(tx, Entity::User, email, 50)
            .await?
            .into_iter()
            .next())
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
        self.seal_for_subject(tx, "user", user, field, record, plain)
            .await
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
        self.open_for_subject(tx, "user", user, field, record, sealed)
            .await
    }

    /// Seals a small value about a data subject of `kind` (`user`,
    /// `contact`) under their data key, bound to `field` and `record`.
    pub(crate) async fn seal_for_subject(
        &self,
        tx: &mut dyn Tx,
        kind: &'static str,
        subject: Uuid,
        field: &str,
        record: Uuid,
        plain: &[u8],
    ) -> Result<Vec<u8>> {
        let key = self
            .inner
            .keys
            .write_key(tx, subject, kind, self.now_ms())
            .await?;
        let (u, r) = (subject.to_string(), record.to_string());
        let ctx = SealContext {
            tenant: self.inner.keys.tenant(),
            entity: kind,
            field,
            record_id: &r,
            subject_id: &u,
        };
        Ok(seal(&key, &ctx, plain)?)
    }

    /// Opens what [`Custos::seal_for_subject`] sealed (`None` if it cannot
    /// be: the person was erased, or the bytes were altered).
    pub(crate) async fn open_for_subject(
        &self,
        tx: &mut dyn Tx,
        kind: &'static str,
        subject: Uuid,
        field: &str,
        record: Uuid,
        sealed: &[u8],
    ) -> Option<String> {
        let keys = self.inner.keys.subject_keys(tx, subject, kind).await.ok()?;
        let k = keys.get(sealed_key_version(sealed).ok()?).ok()?;
        let (u, r) = (subject.to_string(), record.to_string());
        let ctx = SealContext {
            tenant: self.inner.keys.tenant(),
            entity: kind,
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

    /// Sets whether a user may sign in (administrators); disabling ends every
    /// session.
    pub async fn set_user_disabled(&self, p: &Principal, user: Uuid, disabled: bool) -> Result<()> {
        let input = serde_json::json!({ "disabled": disabled });
        self.update(p, Entity::User, user, &input).await.map(|_| ())
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

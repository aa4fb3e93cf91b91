//! Passwords: length and common-password rules (NIST SP 800-63B, ASVS),
//! Argon2id hashes sealed in the account's row, change and reset.

use crate::identity::sessions::LoginResult;
use crate::ledger::audit::Event;
use crate::{Custos, Principal, RequestMeta, Result, ServiceError, Via};
use custos_crypto::{hash_password, verify_password};
use custos_domain::{Entity, Value};
use custos_store::Tx;
use secrecy::{ExposeSecret, SecretString};
use std::collections::BTreeMap;
use uuid::Uuid;

/// Minimum and maximum password length (NIST SP 800-63B / ASVS).
pub const PASSWORD_MIN: usize = 12;
/// Longer passwords are refused to bound hashing work.
pub const PASSWORD_MAX: usize = 128;

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

impl Custos {
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
}

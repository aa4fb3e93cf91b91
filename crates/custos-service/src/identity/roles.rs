//! Roles: the built-in set and the ones administrators define. A custom role is
//! based on a built-in role (which decides the functions it reaches: entities,
//! privacy work, reports) and has its own [`Permissions`]: read (full, masked or
//! not at all), write, export and erase per data category, and a record scope
//! (own, team, all). Definitions live in the settings table as `role:<name>`;
//! every change needs a recent second factor and is audited.

use crate::ledger::audit::Event;
use crate::{Custos, Principal, Result, ServiceError};
use custos_domain::{Entity, Permissions, RecordScope, Role};
use custos_store::{Condition, SqlValue, Tx};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

const PREFIX: &str = "role:";

/// A role as administrators see it.
#[derive(Debug, Clone, Serialize)]
pub struct RoleView {
    /// Its name, as assigned to users (`sales`, `emea_sales`).
    pub name: String,
    /// Human label.
    pub label: String,
    /// The built-in role it is (or is based on).
    pub base: Role,
    /// Whether it is one of the built-in roles (which cannot be changed).
    pub builtin: bool,
    /// What it may do with each data category, and which records.
    pub permissions: Permissions,
    /// How many users hold it.
    pub users: u64,
}

/// What an administrator submits to create or change a custom role.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleInput {
    /// Name: 2 to 40 lowercase letters, digits or underscores, starting with a
    /// letter; not a built-in role's name.
    pub name: String,
    /// Human label, 1 to 60 characters.
    pub label: String,
    /// The built-in role it is based on (any but admin).
    pub base: Role,
    /// Its permissions.
    pub permissions: Permissions,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Stored {
    label: String,
    base: Role,
    permissions: Permissions,
}

/// A role resolved for a signed-in user.
pub(crate) struct Resolved {
    pub base: Role,
    pub label: String,
    pub perms: Permissions,
}

fn check_name(name: &str) -> Result<()> {
    let ok = (2..=40).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if !ok {
        return Err(ServiceError::invalid(
            "name",
            "must be 2 to 40 lowercase letters, digits or underscores, starting with a letter",
        ));
    }
    if Role::from_name(name).is_some() {
        return Err(ServiceError::invalid(
            "name",
            "is the name of a built-in role; choose another",
        ));
    }
    Ok(())
}

fn check_input(input: &RoleInput) -> Result<()> {
    check_name(&input.name)?;
    let label = input.label.trim();
    if label.is_empty() || label.chars().count() > 60 || label.chars().any(char::is_control) {
        return Err(ServiceError::invalid(
            "label",
            "must be 1 to 60 characters on one line",
        ));
    }
    if input.base == Role::Admin {
        return Err(ServiceError::invalid(
            "base",
            "custom roles cannot be based on admin; administrators use the built-in role",
        ));
    }
    let problems = input.permissions.problems();
    if !problems.is_empty() {
        return Err(ServiceError::Invalid(
            problems
                .into_iter()
                .map(|m| custos_domain::FieldError::new("permissions", m))
                .collect(),
        ));
    }
    Ok(())
}

fn parse(raw: &str) -> Result<Stored> {
    serde_json::from_str(raw)
        .map_err(|e| ServiceError::Internal(format!("stored role definition unreadable: {e}")))
}

/// Audit detail naming what a definition grants (names only, no data).
fn describe(base: Role, perms: &Permissions) -> Vec<String> {
    let mut out = vec![
        format!("base={}", base.name()),
        format!("scope={}", perms.scope.name()),
    ];
    for (c, g) in &perms.categories {
        let mut rights = vec![format!("read:{}", g.read.name())];
        for (on, what) in [(g.write, "write"), (g.export, "export"), (g.erase, "erase")] {
            if on {
                rights.push(what.to_string());
            }
        }
        out.push(format!("{c}={}", rights.join("+")));
    }
    out
}

impl Custos {
    /// Resolves a user's role name to its base role and permissions; `None`
    /// when no such role exists (the account then has no access).
    pub(crate) async fn resolve_role(
        &self,
        tx: &mut dyn Tx,
        name: &str,
    ) -> Result<Option<Resolved>> {
        if let Some(r) = Role::from_name(name) {
            return Ok(Some(Resolved {
                base: r,
                label: r.label().to_string(),
                perms: Permissions::builtin(r),
            }));
        }
        let Some(raw) = tx.get_setting(&format!("{PREFIX}{name}")).await? else {
            return Ok(None);
        };
        let s = parse(&raw)?;
        Ok(Some(Resolved {
            base: s.base,
            label: s.label,
            perms: s.permissions,
        }))
    }

    /// The users whose records a caller with `scope` reaches: themself, or
    /// everyone in their team. `None` for all records.
    pub(crate) async fn scope_owners(
        &self,
        tx: &mut dyn Tx,
        user_id: Uuid,
        team: Option<&str>,
        scope: RecordScope,
    ) -> Result<Option<Vec<Uuid>>> {
        match (scope, team) {
            (RecordScope::All, _) => Ok(None),
            (RecordScope::Own, _) | (RecordScope::Team, None) => Ok(Some(vec![user_id])),
            (RecordScope::Team, Some(team)) => {
                let team = Condition::Eq("team", SqlValue::Text(team.to_string()));
                let mut ids = self.ids_where(tx, Entity::User, team).await?;
                if !ids.contains(&user_id) {
                    ids.push(user_id);
                }
                Ok(Some(ids))
            }
        }
    }

    /// Whether `name` names a role users can be given.
    pub(crate) async fn role_exists(&self, tx: &mut dyn Tx, name: &str) -> Result<bool> {
        Ok(self.resolve_role(tx, name).await?.is_some())
    }

    async fn holders(&self, tx: &mut dyn Tx, name: &str) -> Result<u64> {
        Ok(tx
            .count_records(
                Entity::User,
                &[Condition::Eq("role", SqlValue::Text(name.to_string()))],
            )
            .await?)
    }

    /// Every role: the built-in ones first, then the custom ones by name
    /// (administrators).
    pub async fn list_roles(&self, p: &Principal) -> Result<Vec<RoleView>> {
        self.require_admin(p, "role.list").await?;
        let mut tx = self.inner.store.begin().await?;
        let mut out = Vec::new();
        for r in Role::ALL {
            out.push(RoleView {
                name: r.name().to_string(),
                label: r.label().to_string(),
                base: r,
                builtin: true,
                permissions: Permissions::builtin(r),
                users: self.holders(tx.as_mut(), r.name()).await?,
            });
        }
        for (key, raw) in tx.list_settings(PREFIX).await? {
            let name = key.trim_start_matches(PREFIX).to_string();
            let s = parse(&raw)?;
            let users = self.holders(tx.as_mut(), &name).await?;
            out.push(RoleView {
                name,
                label: s.label,
                base: s.base,
                builtin: false,
                permissions: s.permissions,
                users,
            });
        }
        Ok(out)
    }

    /// One role by name (administrators).
    pub async fn get_role(&self, p: &Principal, name: &str) -> Result<RoleView> {
        self.list_roles(p)
            .await?
            .into_iter()
            .find(|r| r.name == name)
            .ok_or(ServiceError::NotFound("role"))
    }

    /// Creates (`create`) or changes a custom role. Needs a recent second
    /// factor; the change is audited with what the role now grants. Users
    /// holding the role get the new permissions on their next request.
    pub async fn save_role(
        &self,
        p: &Principal,
        input: RoleInput,
        create: bool,
    ) -> Result<RoleView> {
        let action = if create { "role.create" } else { "role.update" };
        self.require_admin(p, action).await?;
        check_input(&input)?;
        self.require_step_up(p, action).await?;
        let key = format!("{PREFIX}{}", input.name);
        let mut tx = self.inner.store.begin().await?;
        let exists = tx.get_setting(&key).await?.is_some();
        if create && exists {
            return Err(ServiceError::Conflict(format!(
                "a role named {} already exists",
                input.name
            )));
        }
        if !create && !exists {
            return Err(ServiceError::NotFound("role"));
        }
        let stored = Stored {
            label: input.label.trim().to_string(),
            base: input.base,
            permissions: input.permissions,
        };
        let json =
            serde_json::to_string(&stored).map_err(|e| ServiceError::Internal(e.to_string()))?;
        tx.put_setting(&key, &json).await?;
        let mut ev = Event::new(p, action).detail(format!("role={}", input.name));
        for d in describe(stored.base, &stored.permissions) {
            ev = ev.detail(d);
        }
        self.append(tx.as_mut(), ev).await?;
        let users = self.holders(tx.as_mut(), &input.name).await?;
        tx.commit().await?;
        Ok(RoleView {
            name: input.name,
            label: stored.label,
            base: stored.base,
            builtin: false,
            permissions: stored.permissions,
            users,
        })
    }

    /// Deletes a custom role nobody holds (administrators, with step-up).
    pub async fn delete_role(&self, p: &Principal, name: &str) -> Result<()> {
        self.require_admin(p, "role.delete").await?;
        if Role::from_name(name).is_some() {
            return Err(ServiceError::Conflict(
                "built-in roles cannot be deleted".into(),
            ));
        }
        self.require_step_up(p, "role.delete").await?;
        let mut tx = self.inner.store.begin().await?;
        let key = format!("{PREFIX}{name}");
        if tx.get_setting(&key).await?.is_none() {
            return Err(ServiceError::NotFound("role"));
        }
        let n = self.holders(tx.as_mut(), name).await?;
        if n > 0 {
            return Err(ServiceError::Conflict(format!(
                "{n} user(s) hold this role; give them another role first"
            )));
        }
        tx.delete_setting(&key).await?;
        self.append(
            tx.as_mut(),
            Event::new(p, "role.delete").detail(format!("role={name}")),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Changes a user's role and team (administrators, with step-up). The
    /// user's sessions continue under the new permissions.
    pub async fn set_user_role(
        &self,
        p: &Principal,
        user: Uuid,
        role: &str,
        team: Option<&str>,
    ) -> Result<()> {
        let mut input = serde_json::json!({ "role": role });
        input["team"] = match team.map(str::trim).filter(|t| !t.is_empty()) {
            Some(t) => serde_json::Value::String(t.to_string()),
            None => serde_json::Value::Null,
        };
        self.update(p, Entity::User, user, &input).await.map(|_| ())
    }
}

//! Settings kept in the database: the deal pipeline.

use crate::ledger::audit::Event;
use crate::{Custos, Principal, Result, ServiceError};
use custos_domain::inventory::{self, FieldKind};
use custos_domain::validate::{DEFAULT_STAGES, ValidationContext};
use custos_domain::{Entity, Role};
use custos_store::{Condition, SqlValue, Tx};

const STAGES_KEY: &str = "pipeline.stages";

impl Custos {
    pub(crate) async fn ensure_defaults(&self) -> Result<()> {
        let mut tx = self.inner.store.begin().await?;
        if tx.get_setting(STAGES_KEY).await?.is_none() {
            let json = serde_json::to_string(&DEFAULT_STAGES)
                .map_err(|e| ServiceError::Internal(e.to_string()))?;
            tx.put_setting(STAGES_KEY, &json).await?;
        }
        self.ensure_auth_defaults(tx.as_mut()).await?;
        tx.commit().await?;
        Ok(())
    }

    pub(crate) async fn stages_in(tx: &mut dyn Tx) -> Result<Vec<String>> {
        let raw = tx.get_setting(STAGES_KEY).await?.unwrap_or_default();
        Ok(serde_json::from_str(&raw)
            .unwrap_or_else(|_| DEFAULT_STAGES.iter().map(|s| s.to_string()).collect()))
    }

    /// What validating `entity`'s values needs from the settings: the deal
    /// stages, read only for an entity with a stage field.
    pub(crate) async fn validation_context(
        tx: &mut dyn Tx,
        entity: Entity,
    ) -> Result<ValidationContext> {
        let stages = if inventory::fields(entity).any(|f| f.kind == FieldKind::Stage) {
            Self::stages_in(tx).await?
        } else {
            Vec::new()
        };
        let not_collected = Self::not_collected_in(tx, entity).await?;
        Ok(ValidationContext {
            stages,
            not_collected,
        })
    }

    /// The deal pipeline's stages, in order. Any signed-in user may read them.
    pub async fn pipeline_stages(&self, _p: &Principal) -> Result<Vec<String>> {
        let mut tx = self.inner.store.begin().await?;
        Self::stages_in(tx.as_mut()).await
    }

    /// Replaces the pipeline's stages (admins and managers). A stage still used by
    /// a deal cannot be removed.
    pub async fn set_pipeline_stages(
        &self,
        p: &Principal,
        stages: Vec<String>,
    ) -> Result<Vec<String>> {
        if !matches!(p.role, Role::Admin | Role::Manager) {
            let msg = "only admins and managers change the pipeline".to_string();
            return Err(self.refuse(p, "pipeline.update", msg).await);
        }
        let mut cleaned: Vec<String> = Vec::new();
        for s in &stages {
            let s = s.trim().to_lowercase();
            let ok = (1..=40).contains(&s.len())
                && s.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-'
                });
            if !ok {
                return Err(ServiceError::invalid(
                    "stages",
                    "each stage must be 1 to 40 lowercase letters, digits, dashes or underscores",
                ));
            }
            if cleaned.contains(&s) {
                return Err(ServiceError::invalid(
                    "stages",
                    format!("stage {s} appears twice"),
                ));
            }
            cleaned.push(s);
        }
        if cleaned.is_empty() || cleaned.len() > 20 {
            return Err(ServiceError::invalid("stages", "give 1 to 20 stages"));
        }
        let mut tx = self.inner.store.begin().await?;
        for old in Self::stages_in(tx.as_mut()).await? {
            if !cleaned.contains(&old) {
                let n = tx
                    .count_records(
                        Entity::Deal,
                        &[Condition::Eq("stage", SqlValue::Text(old.clone()))],
                    )
                    .await?;
                if n > 0 {
                    return Err(ServiceError::Conflict(format!(
                        "stage {old} is used by {n} deal(s); move them to another stage first"
                    )));
                }
            }
        }
        let json =
            serde_json::to_string(&cleaned).map_err(|e| ServiceError::Internal(e.to_string()))?;
        tx.put_setting(STAGES_KEY, &json).await?;
        self.append(
            tx.as_mut(),
            Event::new(p, "pipeline.update").detail(format!("stages={}", cleaned.len())),
        )
        .await?;
        tx.commit().await?;
        Ok(cleaned)
    }
}

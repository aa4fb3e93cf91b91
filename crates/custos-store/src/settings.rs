//! Named secrets (wrapped or sealed by the service) and settings, written
//! once for every backend.

use crate::exec::Exec;
use crate::sql::Query;
use crate::{ColumnType, Result};
use async_trait::async_trait;

/// Secrets and settings.
#[async_trait]
pub trait SettingsTx: Send {
    /// Reads a named secret (wrapped or sealed by the service).
    async fn get_secret(&mut self, name: &str) -> Result<Option<Vec<u8>>>;
    /// Stores a named secret, replacing any previous value.
    async fn put_secret(&mut self, name: &str, value: &[u8], now_ms: i64) -> Result<()>;
    /// Reads a setting.
    async fn get_setting(&mut self, name: &str) -> Result<Option<String>>;
    /// Stores a setting.
    async fn put_setting(&mut self, name: &str, value: &str) -> Result<()>;
    /// Every setting whose name starts with `prefix`, by name.
    async fn list_settings(&mut self, prefix: &str) -> Result<Vec<(String, String)>>;
    /// Deletes a setting; false when there was none.
    async fn delete_setting(&mut self, name: &str) -> Result<bool>;
}

#[async_trait]
impl<T: Exec> SettingsTx for T {
    async fn get_secret(&mut self, name: &str) -> Result<Option<Vec<u8>>> {
        let q = Query::written("SELECT value FROM secrets WHERE name = $1").text(name);
        match self.fetch_optional(q, &[ColumnType::Blob]).await? {
            Some(r) => Ok(Some(r.blob(0)?)),
            None => Ok(None),
        }
    }

    async fn put_secret(&mut self, name: &str, value: &[u8], now_ms: i64) -> Result<()> {
        let q = Query::written(
            "INSERT INTO secrets (name, value, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
        )
        .text(name)
        .blob(value)
        .int(now_ms);
        self.execute(q).await?;
        Ok(())
    }

    async fn get_setting(&mut self, name: &str) -> Result<Option<String>> {
        let q = Query::written("SELECT value FROM settings WHERE name = $1").text(name);
        match self.fetch_optional(q, &[ColumnType::Text]).await? {
            Some(r) => Ok(Some(r.text(0)?)),
            None => Ok(None),
        }
    }

    async fn put_setting(&mut self, name: &str, value: &str) -> Result<()> {
        let q = Query::written(
            "INSERT INTO settings (name, value) VALUES ($1, $2) \
             ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        )
        .text(name)
        .text(value);
        self.execute(q).await?;
        Ok(())
    }

    async fn list_settings(&mut self, prefix: &str) -> Result<Vec<(String, String)>> {
        let q = Query::written(
            "SELECT name, value FROM settings WHERE substr(name, 1, length($1)) = $1 ORDER BY name",
        )
        .text(prefix);
        self.fetch(q, &[ColumnType::Text, ColumnType::Text])
            .await?
            .iter()
            .map(|r| Ok((r.text(0)?, r.text(1)?)))
            .collect()
    }

    async fn delete_setting(&mut self, name: &str) -> Result<bool> {
        let q = Query::written("DELETE FROM settings WHERE name = $1").text(name);
        Ok(self.execute(q).await? > 0)
    }
}

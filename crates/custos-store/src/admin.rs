//! The store-admin interface: what the operator's tools do to a database
//! outside the use cases of `custos-service`. Everything that reads or
//! changes personal data goes through the service (authorise → open → act →
//! audit); this module holds the few things that cannot, each with the tool
//! that needs it:
//!
//! - [`transfer`]: `custos migrate-store` copies a deployment from SQLite to
//!   PostgreSQL table by table, the sealed bytes as they are, and checks the
//!   copy.
//! - [`crate::PostgresStore::create_database`] and [`crate::PostgresStore::drop_database`]:
//!   `custos bench` and the test suite make a scratch database and drop it.
//! - [`Baseline`]: `custos bench` measures the cost of privacy against rows
//!   written without it. It writes only into the scratch database of a bench
//!   run, never into a deployment, and deletes its rows again.
//!
//! Nothing here is reachable from the web crate.

pub use crate::transfer;

use crate::{Result, SqlValue, Store, StoredRow};
use custos_domain::Entity;
use uuid::Uuid;

/// Contact rows written the plain way, as a database without Custos would:
/// the personal fields in the clear, no data key, no blind index, no ledger
/// leaf. The baseline of `custos bench`'s first figure.
pub struct Baseline {
    store: Box<dyn Store>,
}

impl Baseline {
    /// A baseline writer on a scratch store of a bench run.
    pub fn new(store: Box<dyn Store>) -> Baseline {
        Baseline { store }
    }

    /// Writes one plain contact row (`n` makes its name and email unique),
    /// in a transaction of its own as a create would be; returns its id.
    pub async fn insert_contact(&self, n: u64, now_ms: i64) -> Result<Uuid> {
        let id = Uuid::now_v7();
        let text = |s: String| SqlValue::Blob(s.into_bytes());
        let row = StoredRow {
            id,
            subject_id: Some(id),
            columns: vec![
                ("first_name", text("Bench".into())),
                ("last_name", text(format!("Plain{n}"))),
                ("email", text(format!("plain{n}@example.com"))),
                ("phone", text("+44 20 7946 0000".into())),
                ("created_at", SqlValue::Int(now_ms)),
                ("updated_at", SqlValue::Int(now_ms)),
            ],
        };
        let mut tx = self.store.begin().await?;
        tx.insert_record(Entity::Contact, &row).await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Deletes the rows [`Baseline::insert_contact`] wrote.
    pub async fn delete_contacts(&self, ids: &[Uuid]) -> Result<()> {
        let mut tx = self.store.begin().await?;
        for id in ids {
            tx.delete_record(Entity::Contact, *id).await?;
        }
        tx.commit().await
    }

    /// Closes the store.
    pub async fn close(&self) {
        self.store.close().await;
    }
}

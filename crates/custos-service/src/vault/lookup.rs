//! Finding records by an exact sealed value: the blind index narrows the
//! search to a few rows without opening any, and opening confirms each (a
//! blind index may collide, and it is keyed per field, not per value).

use crate::{Custos, Result, ServiceError};
use custos_crypto::normalize;
use custos_domain::{Entity, Record};
use custos_store::{Condition, ListQuery, Sort, StoredRow, Tx};

impl Custos {
    /// The records of `entity` whose `email` field is `email` (compared
    /// normalised: case and surrounding space do not matter), oldest first,
    /// at most `limit`. Records whose person was erased are passed over.
    /// Users (sign-in, invitations) and contacts (data-subject requests,
    /// opt-outs) are found this one way.
    pub(crate) async fn find_by_email(
        &self,
        tx: &mut dyn Tx,
        entity: Entity,
        email: &str,
        limit: u32,
    ) -> Result<Vec<(StoredRow, Record)>> {
        let norm = normalize::email(email);
        if norm.is_empty() {
            return Ok(Vec::new());
        }
        let hash = self.inner.keys.blind_term(entity, "email", &norm);
        let q = ListQuery {
            entity,
            conditions: vec![Condition::Blind {
                field: "email",
                hash,
            }],
            sort: Sort {
                field: "created_at",
                descending: false,
            },
            after: None,
            limit,
        };
        let mut out = Vec::new();
        for row in tx.list_records(&q).await? {
            match self.open_internal(tx, entity, &row).await {
                Ok(rec)
                    if rec.get("email").as_text().map(normalize::email).as_deref()
                        == Some(norm.as_str()) =>
                {
                    out.push((row, rec))
                }
                Ok(_) | Err(ServiceError::Gone(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }
}

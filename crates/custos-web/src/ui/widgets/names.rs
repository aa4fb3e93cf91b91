//! Names of the records a page refers to, read through the service.

use crate::AppState;
use crate::ui::fields;
use custos_domain::inventory::{FieldDecl, FieldKind};
use custos_domain::{Entity, Value};
use custos_service::{Principal, RecordView};
use std::collections::HashMap;
use uuid::Uuid;

/// Names of referenced records, each read once per page through the service
/// (so every person named on a page is on the audit record).
pub struct Names<'a> {
    st: &'a AppState,
    p: &'a Principal,
    cache: HashMap<Uuid, Option<String>>,
}

impl<'a> Names<'a> {
    /// A cache for one page.
    pub fn new(st: &'a AppState, p: &'a Principal) -> Names<'a> {
        Names {
            st,
            p,
            cache: HashMap::new(),
        }
    }

    /// Remembers names already read (e.g. the records of a list).
    pub fn know(&mut self, view: &RecordView) {
        self.cache.insert(view.id(), Some(fields::title(view)));
    }

    /// Reads the records that these views name in these fields (the
    /// companies and contacts a page shows) and that are not known yet: one
    /// read of each kind for the whole page, not one per row. Only the
    /// fields shown: every name read is on the audit record as a read.
    pub async fn preload(&mut self, views: &[RecordView], shown: &[&'static FieldDecl]) {
        let mut wanted: Vec<(Entity, Vec<Uuid>)> = Vec::new();
        for v in views {
            for f in shown {
                if let (FieldKind::Ref { entity }, Value::Uuid(id)) = (f.kind, v.record.get(f.name))
                    && entity != Entity::User
                    && !self.cache.contains_key(id)
                {
                    match wanted.iter_mut().find(|(e, _)| *e == entity) {
                        Some((_, ids)) => ids.push(*id),
                        None => wanted.push((entity, vec![*id])),
                    }
                }
            }
        }
        for (entity, mut ids) in wanted {
            ids.sort();
            ids.dedup();
            // A failure leaves the names to be read one by one.
            let Ok(found) = self.st.custos.get_many(self.p, entity, &ids).await else {
                continue;
            };
            for v in &found {
                self.know(v);
            }
            // The others cannot be read by this caller.
            for id in ids {
                self.cache.entry(id).or_insert(None);
            }
        }
    }

    /// The name of a record, or "Contact not available" (and the like) when
    /// it cannot be read.
    pub async fn name_or_unavailable(&mut self, entity: Entity, id: Uuid) -> String {
        self.name(entity, id)
            .await
            .unwrap_or_else(|| format!("{} not available", entity.label()))
    }

    /// The name of a record, or `None` when it cannot be read.
    pub async fn name(&mut self, entity: Entity, id: Uuid) -> Option<String> {
        if let Some(n) = self.cache.get(&id) {
            return n.clone();
        }
        let n = match self.st.custos.get(self.p, entity, id).await {
            Ok(v) => Some(fields::title(&v)),
            Err(_) => None,
        };
        self.cache.insert(id, n.clone());
        n
    }
}

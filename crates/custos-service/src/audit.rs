//! Appending to the audit ledger and reading it back. Every use case appends
//! its event through [`Custos::append`] inside its own transaction.

use crate::{Custos, Principal, RequestMeta, Result, ServiceError};
use custos_domain::value::{format_timestamp, to_unix_ms};
use custos_domain::{DataCategory, Entity, Role};
use custos_ledger::event::AuditEvent;
use custos_ledger::merkle::Appender;
use custos_ledger::verify::LogVerifier;
use custos_store::{LeafRow, LedgerHead, Tx};
use uuid::Uuid;

/// An event being recorded. Holds ids and categories only, never values.
#[derive(Debug, Clone)]
pub(crate) struct Event {
    actor: String,
    action: String,
    subject: Option<Uuid>,
    record: Option<String>,
    categories: Vec<String>,
    outcome: &'static str,
    client: Option<String>,
    request_id: Option<String>,
    detail: Vec<String>,
}

impl Event {
    pub(crate) fn new(p: &Principal, action: impl Into<String>) -> Event {
        Event {
            actor: p.actor(),
            action: action.into(),
            subject: None,
            record: None,
            categories: Vec::new(),
            outcome: "success",
            client: p.client.clone(),
            request_id: p.request_id.clone(),
            detail: vec![p.via_detail()],
        }
    }

    pub(crate) fn anonymous(meta: &RequestMeta, action: impl Into<String>) -> Event {
        Event {
            actor: "anonymous".into(),
            action: action.into(),
            subject: None,
            record: None,
            categories: Vec::new(),
            outcome: "success",
            client: meta.client.clone(),
            request_id: meta.request_id.clone(),
            detail: Vec::new(),
        }
    }

    pub(crate) fn actor(mut self, actor: String) -> Event {
        self.actor = actor;
        self
    }

    pub(crate) fn subject(mut self, s: Option<Uuid>) -> Event {
        self.subject = s;
        self
    }

    pub(crate) fn record(mut self, entity: Entity, id: Uuid) -> Event {
        self.record = Some(format!("{}:{id}", entity.name()));
        self
    }

    pub(crate) fn categories(mut self, cats: impl IntoIterator<Item = DataCategory>) -> Event {
        self.categories
            .extend(cats.into_iter().map(|c| c.name().to_string()));
        self
    }

    pub(crate) fn outcome(mut self, o: &'static str) -> Event {
        self.outcome = o;
        self
    }

    pub(crate) fn detail(mut self, d: impl Into<String>) -> Event {
        self.detail.push(d.into());
        self
    }
}

/// A decoded ledger leaf.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AuditEntry {
    /// Leaf index.
    pub index: u64,
    /// The event.
    #[serde(flatten)]
    pub event: AuditEvent,
}

/// The current size and root of the ledger.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LedgerStatus {
    /// Number of leaves.
    pub size: u64,
    /// Root hash, hex.
    pub root_hex: String,
}

/// Outcome of recomputing the whole ledger.
#[derive(Debug, Clone)]
pub enum VerifyReport {
    /// Every leaf hashed as stored and the root matches the stored head.
    Ok {
        /// Leaves checked.
        size: u64,
        /// Recomputed root, hex.
        root_hex: String,
    },
    /// The first problem found.
    Tampered {
        /// First bad index.
        index: u64,
        /// What is wrong.
        reason: String,
    },
}

impl Custos {
    /// Appends one event to the ledger in `tx`; returns its leaf index.
    pub(crate) async fn append(&self, tx: &mut dyn Tx, e: Event) -> Result<u64> {
        let now = self.inner.clock.now();
        let detail = if e.detail.is_empty() {
            None
        } else {
            Some(e.detail.join(" "))
        };
        let event = AuditEvent {
            v: 1,
            time: format_timestamp_ms(now),
            actor: e.actor,
            action: e.action,
            subject_id: e.subject.map(|s| s.to_string()),
            record: e.record,
            categories: e.categories,
            purpose: None,
            outcome: e.outcome.to_string(),
            client: e.client,
            request_id: e.request_id,
            detail,
        };
        let data = event
            .encode()
            .map_err(|err| ServiceError::Internal(format!("audit event: {err}")))?;
        let hash = custos_ledger::leaf_hash(&data);
        let head = tx.ledger_head().await?;
        let mut app = Appender::from_frontier(head.size, head.frontier)
            .map_err(|err| ServiceError::Internal(format!("ledger head: {err}")))?;
        let index = app.size();
        let nodes = app.push(hash);
        let new_head = LedgerHead {
            size: app.size(),
            frontier: app.frontier().to_vec(),
        };
        let index_row = custos_store::LeafIndex {
            time_ms: to_unix_ms(now),
            actor: event.actor.clone(),
            action: event.action.clone(),
            subject_id: event.subject_id.clone(),
            record: event.record.clone(),
            outcome: event.outcome.clone(),
        };
        let leaf = LeafRow {
            index,
            data,
            leaf_hash: hash.to_vec(),
        };
        tx.append_leaf(&leaf, &index_row, &nodes, &new_head).await?;
        Ok(index)
    }

    /// Records an event in a transaction of its own (refusals, failed sign-ins):
    /// the refused action changed nothing, but the attempt is still on record.
    pub(crate) async fn append_alone(&self, e: Event) -> Result<()> {
        let mut tx = self.inner.store.begin().await?;
        self.append(tx.as_mut(), e).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Records a refusal in the ledger and returns the error to give the caller.
    pub(crate) async fn refuse(
        &self,
        p: &Principal,
        action: &str,
        message: String,
    ) -> ServiceError {
        match self
            .append_alone(Event::new(p, action).outcome("denied"))
            .await
        {
            Ok(()) => ServiceError::Forbidden(message),
            Err(e) => e,
        }
    }

    /// Records a refusal in an open transaction that has written nothing else yet,
    /// commits it, and returns the error to give the caller.
    pub(crate) async fn refuse_in(
        &self,
        mut tx: Box<dyn Tx>,
        p: &Principal,
        action: &str,
        message: String,
    ) -> ServiceError {
        let r = async {
            self.append(tx.as_mut(), Event::new(p, action).outcome("denied"))
                .await?;
            tx.commit().await.map_err(ServiceError::from)
        };
        match r.await {
            Ok(()) => ServiceError::Forbidden(message),
            Err(e) => e,
        }
    }

    /// Records that a record was asked for and not found, then returns NotFound.
    pub(crate) async fn not_found_in(
        &self,
        mut tx: Box<dyn Tx>,
        p: &Principal,
        entity: Entity,
        action: &str,
        id: Uuid,
    ) -> ServiceError {
        let r = async {
            self.append(
                tx.as_mut(),
                Event::new(p, action)
                    .record(entity, id)
                    .outcome("not_found"),
            )
            .await?;
            tx.commit().await.map_err(ServiceError::from)
        };
        match r.await {
            Ok(()) => ServiceError::NotFound(entity.name()),
            Err(e) => e,
        }
    }

    pub(crate) async fn require_ledger_reader(&self, p: &Principal) -> Result<()> {
        if matches!(p.role, Role::Admin | Role::Auditor | Role::PrivacyOfficer) {
            Ok(())
        } else {
            let msg = "reading the audit ledger needs the admin, auditor or privacy officer role"
                .to_string();
            Err(self.refuse(p, "audit.read", msg).await)
        }
    }

    /// The ledger's size and root.
    pub async fn ledger_status(&self, p: &Principal) -> Result<LedgerStatus> {
        self.require_ledger_reader(p).await?;
        let mut tx = self.inner.store.begin().await?;
        let head = tx.ledger_head().await?;
        let app = Appender::from_frontier(head.size, head.frontier)
            .map_err(|err| ServiceError::Internal(format!("ledger head: {err}")))?;
        Ok(LedgerStatus {
            size: app.size(),
            root_hex: hex::encode(app.root()),
        })
    }

    /// Decoded events `start <= index < end` (at most 1,000).
    pub async fn audit_entries(
        &self,
        p: &Principal,
        start: u64,
        end: u64,
    ) -> Result<Vec<AuditEntry>> {
        self.require_ledger_reader(p).await?;
        let end = end.min(start.saturating_add(1000));
        let mut tx = self.inner.store.begin().await?;
        let leaves = tx.ledger_leaves(start, end).await?;
        leaves
            .into_iter()
            .map(|l| {
                let event = AuditEvent::decode(&l.data)
                    .map_err(|err| ServiceError::Internal(format!("leaf {}: {err}", l.index)))?;
                Ok(AuditEntry {
                    index: l.index,
                    event,
                })
            })
            .collect()
    }

    /// Events about one subject, newest first (at most `limit`), scanning the
    /// ledger. The ledger issue adds an index; this is the simple form.
    pub async fn audit_events_for_subject(
        &self,
        p: &Principal,
        subject: Uuid,
        limit: usize,
    ) -> Result<Vec<AuditEntry>> {
        self.require_ledger_reader(p).await?;
        let needle = subject.to_string();
        let mut tx = self.inner.store.begin().await?;
        let size = tx.ledger_head().await?.size;
        let mut out = Vec::new();
        let mut end = size;
        while end > 0 && out.len() < limit {
            let start = end.saturating_sub(5000);
            let mut batch = tx.ledger_leaves(start, end).await?;
            batch.reverse();
            for l in batch {
                if let Ok(event) = AuditEvent::decode(&l.data) {
                    if event.subject_id.as_deref() == Some(needle.as_str()) {
                        out.push(AuditEntry {
                            index: l.index,
                            event,
                        });
                        if out.len() >= limit {
                            break;
                        }
                    }
                }
            }
            end = start;
        }
        Ok(out)
    }

    /// Recomputes every leaf hash and the root from storage and compares the root
    /// with the stored head. `progress` is called with (done, total).
    pub async fn audit_verify(&self, mut progress: impl FnMut(u64, u64)) -> Result<VerifyReport> {
        let mut tx = self.inner.store.begin().await?;
        let head = tx.ledger_head().await?;
        let mut verifier = LogVerifier::new();
        let batch = 20_000;
        let mut start = 0;
        loop {
            let leaves = tx.ledger_leaves(start, start + batch).await?;
            let got = leaves.len() as u64;
            for l in leaves {
                let stored: Option<[u8; 32]> = l.leaf_hash.as_slice().try_into().ok();
                if let Err(e) = verifier.push(l.index, &l.data, stored.as_ref()) {
                    return Ok(VerifyReport::Tampered {
                        index: e.index,
                        reason: e.kind.to_string(),
                    });
                }
            }
            start += batch;
            progress(verifier.size(), head.size);
            if got == 0 && start > head.size {
                break;
            }
        }
        let size = verifier.size();
        let root = verifier.root();
        let expected = Appender::from_frontier(head.size, head.frontier)
            .map_err(|err| ServiceError::Internal(format!("ledger head: {err}")))?;
        if size != expected.size() {
            return Ok(VerifyReport::Tampered {
                index: size.min(expected.size()),
                reason: format!(
                    "the log holds {size} leaves but its head records {}",
                    expected.size()
                ),
            });
        }
        if root != expected.root() {
            return Ok(VerifyReport::Tampered {
                index: 0,
                reason: "recomputed root differs from the stored head".into(),
            });
        }
        Ok(VerifyReport::Ok {
            size,
            root_hex: hex::encode(root),
        })
    }
}

/// RFC 3339 with milliseconds always present, as the ledger's canonical time.
fn format_timestamp_ms(t: time::OffsetDateTime) -> String {
    let s = format_timestamp(t);
    if s.contains('.') {
        s
    } else {
        s.replacen('Z', ".000Z", 1)
    }
}

impl Custos {
    fn note_signer(&self) -> Result<custos_ledger::checkpoint::NoteSigner> {
        custos_ledger::checkpoint::NoteSigner::from_seed(
            &self.inner.config.ledger_origin,
            self.inner.keys.signing_seed(),
        )
        .map_err(|e| ServiceError::Internal(format!("ledger signing key: {e}")))
    }

    /// The note verifier key of the ledger (`name+keyid+base64(0x01‖pubkey)`).
    pub fn ledger_verifier_key(&self) -> Result<String> {
        Ok(self.note_signer()?.verifier_key())
    }

    /// A checkpoint of the current tree, signed with the ledger key (C2SP
    /// tlog-checkpoint in a signed note).
    pub async fn ledger_checkpoint(&self) -> Result<String> {
        let mut tx = self.inner.store.begin().await?;
        let head = tx.ledger_head().await?;
        drop(tx);
        let app = Appender::from_frontier(head.size, head.frontier)
            .map_err(|err| ServiceError::Internal(format!("ledger head: {err}")))?;
        let cp = custos_ledger::checkpoint::Checkpoint {
            origin: self.inner.config.ledger_origin.clone(),
            size: app.size(),
            root: app.root(),
        };
        self.note_signer()?
            .sign(&cp)
            .map_err(|e| ServiceError::Internal(format!("signing: {e}")))
    }
}

impl Custos {
    /// Raw leaf bytes `start <= index < end` (at most 1,000), for outside verifiers.
    pub async fn audit_leaf_bytes(
        &self,
        p: &Principal,
        start: u64,
        end: u64,
    ) -> Result<Vec<(u64, Vec<u8>)>> {
        self.require_ledger_reader(p).await?;
        let end = end.min(start.saturating_add(1000));
        let mut tx = self.inner.store.begin().await?;
        Ok(tx
            .ledger_leaves(start, end)
            .await?
            .into_iter()
            .map(|l| (l.index, l.data))
            .collect())
    }
}

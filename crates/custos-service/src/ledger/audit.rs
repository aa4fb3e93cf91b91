//! Appending to the audit ledger and reading it back. Every use case appends
//! its event through [`Custos::append`] inside its own transaction; reads,
//! which change nothing else, append theirs through [`Custos::append_read`],
//! which writes the leaves of reads arriving together in one transaction
//! (group commit) and returns once the caller's leaves are durable.

use crate::{Custos, Principal, RequestMeta, Result, ServiceError};
use custos_domain::value::{format_timestamp, to_unix_ms};
use custos_domain::{DataCategory, Entity};
use custos_ledger::event::AuditEvent;
use custos_ledger::merkle::Appender;
use custos_store::{LeafRow, LedgerHead, Tx};
use uuid::Uuid;

/// The leaves of reads waiting to be written, and the turn to write them.
#[derive(Default)]
pub(crate) struct ReadAudit {
    /// Waiting events, each group with who to tell when it is durable.
    queue: std::sync::Mutex<Vec<(Vec<Event>, ReadDone)>>,
    /// Held by whoever writes the queue; the others wait their turn, by
    /// which time their leaves are usually written.
    writer: tokio::sync::Mutex<()>,
}

type ReadDone = tokio::sync::oneshot::Sender<std::result::Result<(), String>>;

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
        let bytes = head.bytes + data.len() as u64;
        let mut app = Appender::from_frontier(head.size, head.frontier)
            .map_err(|err| ServiceError::Internal(format!("ledger head: {err}")))?;
        let index = app.size();
        let nodes = app.push(hash);
        let new_head = LedgerHead {
            size: app.size(),
            frontier: app.frontier().to_vec(),
            bytes,
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
    /// Records reads: appends `events` to the ledger and returns once they
    /// are committed, so a read's data leaves only after its leaves are
    /// durable (invariant 2). Reads arriving while a commit is under way are
    /// written together by the next one: one transaction and one fsync for
    /// many requests instead of one each. Call it after the read's own
    /// transaction is closed, so waiting holds no connection.
    pub(crate) async fn append_read(&self, events: Vec<Event>) -> Result<()> {
        let (done, mut wait) = tokio::sync::oneshot::channel();
        let reads = &self.inner.reads;
        reads
            .queue
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((events, done));
        let turn = reads.writer.lock().await;
        // Whoever had the turn before may have written these leaves with
        // theirs; only if not, this caller writes everything queued.
        let outcome = match wait.try_recv() {
            Err(tokio::sync::oneshot::error::TryRecvError::Empty) => {
                let batch =
                    std::mem::take(&mut *reads.queue.lock().unwrap_or_else(|e| e.into_inner()));
                // Spawned, so a caller that goes away mid-write does not
                // abandon the others' leaves.
                let me = self.clone();
                let _ = tokio::spawn(async move { me.write_reads(batch).await }).await;
                drop(turn);
                wait.await.ok()
            }
            Ok(r) => Some(r),
            Err(tokio::sync::oneshot::error::TryRecvError::Closed) => None,
        };
        match outcome {
            Some(Ok(())) => Ok(()),
            Some(Err(msg)) => Err(ServiceError::Internal(msg)),
            None => Err(ServiceError::Internal(
                "the read's audit leaf was not written".into(),
            )),
        }
    }

    /// Writes queued reads' leaves in one transaction and tells each caller.
    async fn write_reads(&self, batch: Vec<(Vec<Event>, ReadDone)>) {
        let mut waiting = Vec::with_capacity(batch.len());
        let started = std::time::Instant::now();
        let n = batch.len();
        let result = async {
            let mut tx = self.inner.store.begin().await?;
            for (events, done) in batch {
                for e in events {
                    self.append(tx.as_mut(), e).await?;
                }
                waiting.push(done);
            }
            tx.commit().await?;
            Ok::<(), ServiceError>(())
        }
        .await
        .map_err(|e| format!("recording the read failed: {e}"));
        tracing::debug!(
            reads = n,
            micros = started.elapsed().as_micros() as u64,
            "read leaves committed"
        );
        for done in waiting {
            let _ = done.send(result.clone());
        }
    }

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
        if tx.is_read_only() {
            drop(tx);
            return self.refuse(p, action, message).await;
        }
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
        if tx.is_read_only() {
            drop(tx);
            let ev = Event::new(p, action)
                .record(entity, id)
                .outcome("not_found");
            return match self.append_read(vec![ev]).await {
                Ok(()) => ServiceError::NotFound(entity.name()),
                Err(e) => e,
            };
        }
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
        if crate::ledger::reads_ledger(p.role) {
            Ok(())
        } else {
            let msg = "reading the audit ledger needs the admin, auditor or privacy officer role"
                .to_string();
            Err(self.refuse(p, "audit.read", msg).await)
        }
    }
}

/// RFC 3339 with milliseconds always present, as the ledger's canonical time.
pub(crate) fn format_timestamp_ms(t: time::OffsetDateTime) -> String {
    let s = format_timestamp(t);
    if s.contains('.') {
        s
    } else {
        s.replacen('Z', ".000Z", 1)
    }
}

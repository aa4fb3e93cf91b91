//! Legal holds on a person: while one is in force the retention purge skips
//! the person's records and erasure (by request or directly) is refused,
//! with the reason given. Each hold has a reason (sealed under the person's
//! data key: it may name them), an owner and a review date; placing and
//! lifting are audited. The `legal_hold` processing flag is in force while
//! any hold on the person is, so every check of flags sees it.

use crate::ledger::audit::{Event, format_timestamp_ms};
use crate::privacy::retention::time_of;
use crate::{Custos, Principal, Result, ServiceError};
use custos_domain::Entity;
use custos_domain::dsar::Flag;
use custos_store::LegalHoldRow;
use custos_store::prelude::*;
use serde::Serialize;
use serde_json::Value as Json;
use uuid::Uuid;

/// The longest reason.
pub const HOLD_REASON_MAX: usize = 500;
const REASON_FIELD: &str = "hold_reason";

/// A legal hold as shown to the privacy officer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HoldView {
    /// The hold.
    pub id: Uuid,
    /// The person held (a contact id).
    pub subject_id: Uuid,
    /// Why; `None` once it cannot be opened (the person was erased after
    /// the hold was lifted).
    pub reason: Option<String>,
    /// The staff user who reviews it.
    pub owner_id: Option<Uuid>,
    /// When to review it (YYYY-MM-DD).
    pub review_on: String,
    /// Whether the review date has passed while it is in force.
    pub review_overdue: bool,
    /// Placed (RFC 3339).
    pub placed_at: String,
    /// Who placed it.
    pub placed_by: String,
    /// Lifted (RFC 3339), if lifted.
    pub lifted_at: Option<String>,
    /// Who lifted it.
    pub lifted_by: Option<String>,
}

fn text_field<'a>(input: &'a Json, name: &str) -> Result<Option<&'a str>> {
    match input.get(name) {
        None | Some(Json::Null) => Ok(None),
        Some(Json::String(s)) => Ok(Some(s.as_str())),
        Some(_) => Err(ServiceError::invalid(name, "must be a string")),
    }
}

impl Custos {
    async fn holds_refused(&self, p: &Principal, action: &str) -> ServiceError {
        let msg = "legal holds are placed and lifted by the privacy officer".to_string();
        self.refuse(p, action, msg).await
    }

    async fn hold_view(&self, tx: &mut dyn Tx, h: &LegalHoldRow) -> HoldView {
        let reason = self
            .open_for_subject(tx, "contact", h.subject_id, REASON_FIELD, h.id, &h.reason)
            .await;
        HoldView {
            id: h.id,
            subject_id: h.subject_id,
            reason,
            owner_id: h.owner_id,
            review_on: time_of(h.review_at).date().to_string(),
            review_overdue: h.lifted_at.is_none() && h.review_at < self.now_ms(),
            placed_at: format_timestamp_ms(time_of(h.placed_at)),
            placed_by: h.placed_by.clone(),
            lifted_at: h.lifted_at.map(|t| format_timestamp_ms(time_of(t))),
            lifted_by: h.lifted_by.clone(),
        }
    }

    /// Places a legal hold on a person: `{"subject_id", "reason",
    /// "review_on": "YYYY-MM-DD" (default: a year from today), "owner_id"
    /// (default: the caller)}`.
    pub async fn hold_place(&self, p: &Principal, input: &Json) -> Result<HoldView> {
        if !Self::require_privacy(p) {
            return Err(self.holds_refused(p, "hold.place").await);
        }
        if !input.is_object() {
            return Err(ServiceError::invalid("body", "must be a JSON object"));
        }
        let subject = text_field(input, "subject_id")?
            .and_then(|s| Uuid::parse_str(s.trim()).ok())
            .ok_or_else(|| ServiceError::invalid("subject_id", "must be a contact id"))?;
        let reason = text_field(input, "reason")?.unwrap_or_default().trim();
        if reason.is_empty() {
            return Err(ServiceError::invalid(
                "reason",
                "say why the records must be kept (e.g. the matter or claim)",
            ));
        }
        if reason.chars().count() > HOLD_REASON_MAX {
            return Err(ServiceError::invalid(
                "reason",
                format!("at most {HOLD_REASON_MAX} characters"),
            ));
        }
        let today = self.now().date();
        let review = match text_field(input, "review_on")? {
            None | Some("") => today.replace_year(today.year() + 1).unwrap_or(today),
            Some(s) => custos_domain::validate::parse_date(s.trim()).ok_or_else(|| {
                ServiceError::invalid("review_on", "must be a date such as 2027-06-30")
            })?,
        };
        if review <= today {
            return Err(ServiceError::invalid(
                "review_on",
                "must be after today: it is when the hold is looked at again",
            ));
        }
        let owner = match text_field(input, "owner_id")? {
            None | Some("") => (p.user_id != Uuid::nil()).then_some(p.user_id),
            Some(s) => Some(
                Uuid::parse_str(s.trim())
                    .map_err(|_| ServiceError::invalid("owner_id", "must be a user id"))?,
            ),
        };
        let mut tx = self.inner.store.begin().await?;
        if let Some(o) = owner
            && tx.get_record(Entity::User, o).await?.is_none()
        {
            return Err(ServiceError::invalid("owner_id", "no such user"));
        }
        if tx.get_record(Entity::Contact, subject).await?.is_none() {
            let keys = tx.get_subject_keys(subject).await?;
            return Err(if keys.is_empty() {
                ServiceError::invalid("subject_id", "no contact has this id")
            } else {
                ServiceError::Gone("person")
            });
        }
        let id = Uuid::now_v7();
        let sealed = self
            .seal_for_subject(
                tx.as_mut(),
                "contact",
                subject,
                REASON_FIELD,
                id,
                reason.as_bytes(),
            )
            .await?;
        let review_at = custos_domain::value::to_unix_ms(review.midnight().assume_utc());
        let row = LegalHoldRow {
            id,
            subject_id: subject,
            reason: sealed,
            owner_id: owner,
            review_at,
            placed_at: self.now_ms(),
            placed_by: p.actor(),
            lifted_at: None,
            lifted_by: None,
        };
        tx.insert_legal_hold(&row).await?;
        tx.set_flag(subject, Flag::LegalHold.as_str(), None, self.now_ms())
            .await?;
        self.append(
            tx.as_mut(),
            Event::new(p, "hold.place")
                .subject(Some(subject))
                .detail(format!("hold={id} review={review}")),
        )
        .await?;
        let view = self.hold_view(tx.as_mut(), &row).await;
        tx.commit().await?;
        Ok(view)
    }

    /// Lifts a hold. The person's `legal_hold` flag is lifted with their
    /// last hold in force.
    pub async fn hold_lift(&self, p: &Principal, id: Uuid) -> Result<HoldView> {
        if !Self::require_privacy(p) {
            return Err(self.holds_refused(p, "hold.lift").await);
        }
        let mut tx = self.inner.store.begin().await?;
        let hold = tx
            .get_legal_hold(id)
            .await?
            .ok_or(ServiceError::NotFound("legal hold"))?;
        if hold.lifted_at.is_some() {
            return Err(ServiceError::Conflict(
                "this hold was lifted already".into(),
            ));
        }
        let now = self.now_ms();
        tx.lift_legal_hold(id, now, &p.actor()).await?;
        let others = tx
            .legal_holds_of(hold.subject_id)
            .await?
            .iter()
            .any(|h| h.lifted_at.is_none());
        if !others {
            tx.lift_flag(hold.subject_id, Flag::LegalHold.as_str(), now)
                .await?;
        }
        self.append(
            tx.as_mut(),
            Event::new(p, "hold.lift")
                .subject(Some(hold.subject_id))
                .detail(format!("hold={id} last={}", !others)),
        )
        .await?;
        let lifted = tx
            .get_legal_hold(id)
            .await?
            .ok_or(ServiceError::NotFound("legal hold"))?;
        let view = self.hold_view(tx.as_mut(), &lifted).await;
        tx.commit().await?;
        Ok(view)
    }

    /// The holds in force, the first to review first (at most 500). Their
    /// reasons are opened, so each person's is an audited read.
    pub async fn holds_in_force(&self, p: &Principal) -> Result<Vec<HoldView>> {
        if !Self::require_privacy(p) {
            return Err(self.holds_refused(p, "hold.list").await);
        }
        let mut tx = self.inner.store.begin().await?;
        let rows = tx.legal_holds_in_force(500).await?;
        self.hold_views(tx, p, rows).await
    }

    /// Every hold on one person, newest first.
    pub async fn holds_of(&self, p: &Principal, subject: Uuid) -> Result<Vec<HoldView>> {
        if !Self::require_privacy(p) {
            return Err(self.holds_refused(p, "hold.list").await);
        }
        let mut tx = self.inner.store.begin().await?;
        let rows = tx.legal_holds_of(subject).await?;
        self.hold_views(tx, p, rows).await
    }

    async fn hold_views(
        &self,
        mut tx: Box<dyn Tx>,
        p: &Principal,
        rows: Vec<LegalHoldRow>,
    ) -> Result<Vec<HoldView>> {
        let mut out = Vec::with_capacity(rows.len());
        let mut seen = std::collections::HashSet::new();
        for h in &rows {
            out.push(self.hold_view(tx.as_mut(), h).await);
            if seen.insert(h.subject_id) {
                self.append(
                    tx.as_mut(),
                    Event::new(p, "hold.read").subject(Some(h.subject_id)),
                )
                .await?;
            }
        }
        tx.commit().await?;
        Ok(out)
    }

    /// How many holds in force are past their review date.
    pub async fn holds_due_for_review(&self, p: &Principal) -> Result<u64> {
        if !Self::require_privacy(p) {
            return Err(self.holds_refused(p, "hold.list").await);
        }
        let mut tx = self.inner.store.begin_read().await?;
        let now = self.now_ms();
        Ok(tx
            .legal_holds_in_force(500)
            .await?
            .iter()
            .filter(|h| h.review_at < now)
            .count() as u64)
    }
}

//! The privacy section of a contact's page: consent now and its history, the
//! processing flags in force, and recording a consent.

use super::*;
use crate::AppState;
use crate::ui::fields::{self};
use crate::ui::shell::{Ctx, redirect_with_flash};
use crate::ui::widgets::purpose_label;
use axum::Form;
use axum::extract::{Path, State};
use axum::response::Response;
use custos_domain::Entity;
use custos_domain::dsar::CONSENT_PURPOSES;
use custos_domain::policy::Operation;
use custos_service::ServiceError;
use serde_json::json;
use uuid::Uuid;

/// A consent purpose's current state.
#[derive(Debug, Clone)]
pub struct ConsentNow {
    /// The purpose in words.
    pub purpose: &'static str,
    /// The state in words.
    pub state: &'static str,
    /// Badge class.
    pub class: String,
    /// Since when.
    pub since: String,
}

/// One entry of the consent ledger with its receipt.
#[derive(Debug, Clone)]
pub struct ConsentEntry {
    /// When.
    pub when: String,
    /// When (RFC 3339).
    pub iso: String,
    /// The purpose in words.
    pub purpose: &'static str,
    /// Given or withdrawn.
    pub state: &'static str,
    /// How.
    pub method: &'static str,
    /// The notice version shown.
    pub notice: String,
    /// Who recorded it.
    pub by: String,
    /// Evidence given.
    pub evidence: String,
    /// The ISO/IEC 27560 receipt fields (name, value).
    pub receipt: Vec<(String, String)>,
}

/// The consent and processing-flags section of a contact's page.
#[derive(Debug, Clone)]
pub struct ContactPrivacy {
    /// The contact.
    pub contact_id: String,
    /// Flags in force, in words.
    pub flags: Vec<&'static str>,
    /// Current state per purpose.
    pub current: Vec<ConsentNow>,
    /// The ledger, newest first.
    pub entries: Vec<ConsentEntry>,
    /// Purposes for the form.
    pub purposes: Vec<(String, String)>,
    /// Whether the form is shown.
    pub can_record: bool,
    /// The privacy notice version recorded with new entries.
    pub notice_version: &'static str,
    /// For the privacy officer: the legal holds in force on the person
    /// (reason, review date) and where to place one.
    pub holds: Option<(Vec<(String, String)>, String)>,
}

/// The section for a contact's page, for roles that may record consent.
pub async fn contact_section(st: &AppState, ctx: &Ctx, contact: Uuid) -> Option<ContactPrivacy> {
    if !ctx.may(Operation::Create, Entity::Consent) {
        return None;
    }
    let p = &ctx.caller.principal;
    let h = st.custos.consent_history(p, contact).await.ok()?;
    let flags = h.processing_flags.iter().map(|f| flag_label(*f)).collect();
    let current = CONSENT_PURPOSES
        .iter()
        .map(|pu| {
            let c = h.current.get(pu);
            let state = c.map(|c| c.state.as_str()).unwrap_or_default();
            ConsentNow {
                purpose: purpose_label(pu),
                state: consent_state_label(state),
                class: format!("badge badge-consent-{}", state.replace('_', "-")),
                since: c
                    .and_then(|c| c.since.as_deref())
                    .map(when_text)
                    .unwrap_or_default(),
            }
        })
        .collect();
    let entries = h
        .entries
        .iter()
        .map(|e| {
            let s = |k: &str| e.text(k).unwrap_or_default();
            let by = match e.view.record.get("recorded_by").as_uuid() {
                Some(u) if u == p.user_id => "You".to_string(),
                Some(_) => "A colleague".to_string(),
                None => "The person".to_string(),
            };
            let receipt = e
                .receipt
                .rows()
                .into_iter()
                .map(|(k, text)| (fields::humanize(k), text))
                .collect();
            ConsentEntry {
                when: when_text(&s("recorded_at")),
                iso: s("recorded_at"),
                purpose: purpose_label(&s("purpose")),
                state: consent_state_label(&s("state")),
                method: method_label(&s("method")),
                notice: s("notice_version"),
                by,
                evidence: s("evidence"),
                receipt,
            }
        })
        .collect();
    Some(ContactPrivacy {
        contact_id: contact.to_string(),
        flags,
        current,
        entries,
        purposes: CONSENT_PURPOSES
            .iter()
            .map(|p| (p.to_string(), purpose_label(p).to_string()))
            .collect(),
        can_record: ctx.may(Operation::Create, Entity::Consent),
        notice_version: custos_service::NOTICE_VERSION,
        holds: holds_of(st, ctx, contact).await,
    })
}

pub(super) async fn record_consent(
    State(st): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    Form(form): Form<Pairs>,
) -> Response {
    if let Err(r) = ctx.check_form(&st, &form).await {
        return r;
    }
    let Some(id) = parse_id(&id) else {
        return ctx.error(&st, ServiceError::NotFound("contact")).await;
    };
    let mut body = json!({
        "contact_id": id,
        "purpose": get_pair(&form, "purpose").unwrap_or_default(),
        "state": get_pair(&form, "state").unwrap_or_default(),
        "method": get_pair(&form, "method").unwrap_or_default(),
    });
    if let Some(e) = get_pair(&form, "evidence").filter(|e| !e.trim().is_empty()) {
        body["evidence"] = json!(e.trim());
    }
    let to = format!("/app/contacts/{id}#consent");
    match st.custos.consent_record(&ctx.caller.principal, &body).await {
        Ok(_) => redirect_with_flash(&to, "privacy.consent"),
        Err(ServiceError::Invalid(_)) => redirect_with_flash(&to, "privacy.consent_bad"),
        Err(e) => ctx.error(&st, e).await,
    }
}

/// The holds in force on a person, for those who place them.
async fn holds_of(
    st: &AppState,
    ctx: &Ctx,
    contact: Uuid,
) -> Option<(Vec<(String, String)>, String)> {
    use custos_domain::Role;
    if !matches!(ctx.role(), Role::Admin | Role::PrivacyOfficer) {
        return None;
    }
    let holds = st
        .custos
        .holds_of(&ctx.caller.principal, contact)
        .await
        .ok()?;
    let in_force = holds
        .iter()
        .filter(|h| h.lifted_at.is_none())
        .map(|h| (h.reason.clone().unwrap_or_default(), h.review_on.clone()))
        .collect();
    Some((
        in_force,
        format!("/app/privacy/retention?subject={contact}#hold"),
    ))
}

//! The consent ledger and the exports it governs. Entries are only added,
//! never changed; the current state of a person's consent for a purpose is the
//! newest entry. Every export consults it, and the processing flags set by
//! data-subject requests, before a person is included.

use crate::crm::records::RecordView;
use crate::ledger::audit::Event;
use crate::privacy::dsar::flags_in_force;
use crate::privacy::outcome::{
    ConsentEntry, ConsentHistory, ConsentReceipt, ConsentRecorded, ConsentState,
};
use crate::{Custos, Principal, RequestMeta, Result, ServiceError};
use custos_crypto::normalize;
use custos_domain::dsar::{CONSENT_PURPOSES, Flag, NoticeVersion, needs_opt_in};
use custos_domain::policy::{self, Operation};
use custos_domain::value::format_timestamp;
use custos_domain::{DataCategory, Entity, Value};
use custos_store::{Condition, ListQuery, Sort, SqlValue, Tx};
use serde_json::Value as Json;
use std::collections::{BTreeMap, BTreeSet};
use uuid::Uuid;

/// The name of the privacy notice in force ([`NoticeVersion::CURRENT`]);
/// recorded with every consent.
pub const NOTICE_VERSION: &str = NoticeVersion::CURRENT.as_str();

/// What an export left out, and why.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Exclusions {
    /// Processing restricted (GDPR Art. 18).
    pub restricted: u64,
    /// No consent given for an opt-in purpose, or consent withdrawn.
    pub no_consent: u64,
    /// Opted out of sale/sharing (CCPA, or Global Privacy Control).
    pub opted_out: u64,
    /// Objected to marketing or profiling (GDPR Art. 21).
    pub objected: u64,
    /// Limited the use of sensitive information (CPRA).
    pub limited: u64,
}

/// An export and what it left out.
#[derive(Debug, Clone)]
pub struct Export {
    /// The people included.
    pub items: Vec<RecordView>,
    /// The people left out, by reason.
    pub excluded: Exclusions,
}

impl Custos {
    /// The newest consent state per purpose for these people.
    pub(crate) async fn consent_states(
        &self,
        tx: &mut dyn Tx,
        contact: Uuid,
    ) -> Result<BTreeMap<String, (String, String)>> {
        let q = ListQuery {
            entity: Entity::Consent,
            conditions: vec![Condition::Eq(
                "contact_id",
                SqlValue::Text(contact.to_string()),
            )],
            sort: Sort {
                field: "recorded_at",
                descending: true,
            },
            after: None,
            limit: 500,
        };
        let mut out = BTreeMap::new();
        for row in tx.list_records(&q).await? {
            let rec = match self.open_internal(tx, Entity::Consent, &row).await {
                Ok(r) => r,
                Err(ServiceError::Gone(_)) => continue,
                Err(e) => return Err(e),
            };
            let purpose = rec.get("purpose").as_text().unwrap_or_default().to_string();
            let state = rec.get("state").as_text().unwrap_or_default().to_string();
            let at = match rec.get("recorded_at") {
                Value::Timestamp(t) => format_timestamp(*t),
                _ => String::new(),
            };
            out.entry(purpose).or_insert((state, at));
        }
        Ok(out)
    }

    /// Records consent given or withdrawn by staff or an API client.
    /// `input`: `{contact_id, purpose, state, method?, evidence?}`.
    pub async fn consent_record(&self, p: &Principal, input: &Json) -> Result<ConsentRecorded> {
        if !policy::allows(p.role, Operation::Create, Entity::Consent) {
            let msg = format!("the {} role may not record consent", p.role_name);
            return Err(self.refuse(p, "consent.create", msg).await);
        }
        let obj = input
            .as_object()
            .ok_or_else(|| ServiceError::invalid("", "the body must be a JSON object"))?;
        let mut errors = Vec::new();
        for k in obj.keys() {
            if !["contact_id", "purpose", "state", "method", "evidence"].contains(&k.as_str()) {
                errors.push(custos_domain::FieldError::new(k, "unknown field"));
            }
        }
        let contact = obj
            .get("contact_id")
            .and_then(Json::as_str)
            .and_then(|s| Uuid::parse_str(s).ok());
        if contact.is_none() {
            errors.push(custos_domain::FieldError::new(
                "contact_id",
                "must be a contact id (a UUID)",
            ));
        }
        let purpose = obj
            .get("purpose")
            .and_then(Json::as_str)
            .unwrap_or_default();
        if !CONSENT_PURPOSES.contains(&purpose) {
            errors.push(custos_domain::FieldError::new(
                "purpose",
                format!("must be one of: {}", CONSENT_PURPOSES.join(", ")),
            ));
        }
        let state = obj.get("state").and_then(Json::as_str).unwrap_or_default();
        if !["given", "withdrawn"].contains(&state) {
            errors.push(custos_domain::FieldError::new(
                "state",
                "must be given or withdrawn",
            ));
        }
        let method = obj.get("method").and_then(Json::as_str).unwrap_or("api");
        if !["form", "import", "api", "staff"].contains(&method) {
            errors.push(custos_domain::FieldError::new(
                "method",
                "must be form, import, api or staff",
            ));
        }
        let evidence = obj
            .get("evidence")
            .and_then(Json::as_str)
            .unwrap_or_default();
        if evidence.chars().count() > 2000 {
            errors.push(custos_domain::FieldError::new(
                "evidence",
                "must be at most 2,000 characters",
            ));
        }
        if !errors.is_empty() {
            return Err(ServiceError::Invalid(errors));
        }
        let contact = contact.ok_or_else(|| ServiceError::invalid("contact_id", "is required"))?;
        let mut tx = self.inner.store.begin().await?;
        if tx.get_record(Entity::Contact, contact).await?.is_none() {
            return Err(ServiceError::invalid(
                "contact_id",
                "no contact has this id",
            ));
        }
        let id = match self
            .consent_in(
                tx.as_mut(),
                Some(p),
                contact,
                purpose,
                state,
                method,
                evidence,
            )
            .await
        {
            Err(ServiceError::Gone(_)) => return Err(ServiceError::Gone("contact")),
            other => other?,
        };
        let states = self.consent_states(tx.as_mut(), contact).await?;
        tx.commit().await?;
        Ok(ConsentRecorded {
            id,
            contact_id: contact,
            purpose: purpose.to_string(),
            state: state.to_string(),
            method: method.to_string(),
            notice_version: NOTICE_VERSION,
            current: current_states(&states),
        })
    }

    /// The full consent history of a person (newest first), the current
    /// state per purpose, and the processing flags in force (restricted,
    /// objected, opted out of sale/sharing, limited, legal hold).
    pub async fn consent_history(&self, p: &Principal, contact: Uuid) -> Result<ConsentHistory> {
        let params = crate::ListParams::parse(
            Entity::Consent,
            &[
                ("contact_id".into(), contact.to_string()),
                ("sort".into(), "-recorded_at".into()),
                ("limit".into(), "500".into()),
            ],
        )?;
        let page = self.list(p, Entity::Consent, &params).await?;
        let mut tx = self.inner.store.begin().await?;
        let states = self.consent_states(tx.as_mut(), contact).await?;
        let flags: BTreeSet<Flag> = flags_in_force(tx.as_mut(), &[contact])
            .await?
            .into_iter()
            .map(|(_, f)| f)
            .collect();
        drop(tx);
        let entries = page
            .items
            .into_iter()
            .map(|view| ConsentEntry {
                receipt: ConsentReceipt::of(&view),
                view,
            })
            .collect();
        Ok(ConsentHistory {
            contact_id: contact,
            current: current_states(&states),
            entries,
            processing_flags: flags,
        })
    }

    /// Contacts for an export. `purpose` (a consent purpose) applies the
    /// consent ledger and the objection and opt-out flags; every export leaves
    /// out restricted people. Each person exported is audited.
    pub async fn export_contacts(&self, p: &Principal, purpose: Option<&str>) -> Result<Export> {
        if let Some(pu) = purpose
            && !CONSENT_PURPOSES.contains(&pu)
        {
            return Err(ServiceError::invalid(
                "purpose",
                format!("must be one of: {}", CONSENT_PURPOSES.join(", ")),
            ));
        }
        if !policy::allows(p.role, Operation::Export, Entity::Contact)
            || !p.can_export(DataCategory::Identity)
            || !p.can_export(DataCategory::ContactDetails)
            || !p.has_scope("export")
        {
            let msg = format!(
                "the {} role may not export contacts' names and contact details",
                p.role_name
            );
            return Err(self.refuse(p, "contact.export", msg).await);
        }
        // Step-up (issue 4): exporting is sensitive (API tokens are exempt).
        self.require_step_up(p, "contact.export").await?;
        let mut tx = self.inner.store.begin().await?;
        let ids = self
            .ids_where(
                tx.as_mut(),
                Entity::Contact,
                Condition::And(
                    crate::crm::records::scope_condition(p, Entity::Contact)
                        .into_iter()
                        .collect(),
                ),
            )
            .await?;
        let mut flagged: BTreeMap<Uuid, BTreeSet<Flag>> = BTreeMap::new();
        for (s, f) in flags_in_force(tx.as_mut(), &ids).await? {
            flagged.entry(s).or_default().insert(f);
        }
        let mut ex = Exclusions::default();
        let mut items = Vec::new();
        for id in ids {
            let f = flagged.get(&id);
            let has = |flag: Flag| f.is_some_and(|s| s.contains(&flag));
            if has(Flag::Restricted) {
                ex.restricted += 1;
                continue;
            }
            if let Some(pu) = purpose {
                if matches!(pu, "marketing_email" | "profiling") && has(Flag::Objected) {
                    ex.objected += 1;
                    continue;
                }
                if matches!(pu, "sale_share" | "sharing_partners") && has(Flag::OptedOutSale) {
                    ex.opted_out += 1;
                    continue;
                }
                if matches!(pu, "profiling" | "sharing_partners") && has(Flag::LimitSensitive) {
                    ex.limited += 1;
                    continue;
                }
                let states = match self.consent_states(tx.as_mut(), id).await {
                    Ok(s) => s,
                    Err(ServiceError::Gone(_)) => continue,
                    Err(e) => return Err(e),
                };
                let current = states.get(pu).map(|(s, _)| s.as_str());
                let allowed = if needs_opt_in(pu) {
                    current == Some("given")
                } else {
                    current != Some("withdrawn")
                };
                if !allowed {
                    if pu == "sale_share" {
                        ex.opted_out += 1;
                    } else {
                        ex.no_consent += 1;
                    }
                    continue;
                }
            }
            let Some(row) = tx.get_record(Entity::Contact, id).await? else {
                continue;
            };
            let opened = match self.open_row(tx.as_mut(), p, Entity::Contact, &row).await {
                Ok(o) => o,
                Err(ServiceError::Gone(_)) => continue,
                Err(e) => return Err(e),
            };
            let view = opened.view;
            let ev = Event::new(p, "contact.export")
                .subject(Some(id))
                .record(Entity::Contact, id)
                .categories(opened.categories.iter().copied())
                .detail(format!("purpose={}", purpose.unwrap_or("general")));
            self.append(tx.as_mut(), ev).await?;
            items.push(view);
        }
        tx.commit().await?;
        Ok(Export {
            items,
            excluded: ex,
        })
    }

    /// A consent withdrawal sent through the public privacy portal: records
    /// `withdrawn` for `purpose` for every contact with this email. Withdrawing
    /// needs no proof of identity (it only ever stops processing); the caller
    /// answers the same whether or not the email is known, so the count is
    /// for tests and logs only. `sale_share` is the opt-out of sale/sharing and
    /// also sets its flag (see [`Custos::record_opt_out`]).
    pub async fn withdraw_consent_by_email(
        &self,
        meta: &RequestMeta,
        email: &str,
        purpose: &str,
    ) -> Result<u64> {
        if !CONSENT_PURPOSES.contains(&purpose) {
            return Err(ServiceError::invalid(
                "purpose",
                format!("must be one of: {}", CONSENT_PURPOSES.join(", ")),
            ));
        }
        if purpose == "sale_share" {
            return self.record_opt_out(meta, email, "portal").await;
        }
        if normalize::email(email).is_empty() {
            return Ok(0);
        }
        let mut tx = self.inner.store.begin().await?;
        let contacts = self.match_contacts(tx.as_mut(), email).await?;
        for contact in &contacts {
            self.consent_in(
                tx.as_mut(),
                None,
                *contact,
                purpose,
                "withdrawn",
                "portal",
                "privacy portal consent withdrawal form",
            )
            .await?;
        }
        // One event whatever the outcome, so the ledger shows the portal was
        // used without saying whether the email is a customer's.
        let ev = crate::ledger::audit::Event::anonymous(meta, "consent.withdraw")
            .detail(format!("purpose={purpose} channel=portal"));
        self.append(tx.as_mut(), ev).await?;
        tx.commit().await?;
        Ok(contacts.len() as u64)
    }

    /// Global Privacy Control or a portal opt-out: records the opt-out of
    /// sale/sharing for every contact with this email, as the person asked.
    pub async fn record_opt_out(
        &self,
        meta: &RequestMeta,
        email: &str,
        signal: &str,
    ) -> Result<u64> {
        let norm = normalize::email(email);
        if norm.is_empty() {
            return Ok(0);
        }
        let mut tx = self.inner.store.begin().await?;
        let mut n = 0;
        for contact in self.match_contacts(tx.as_mut(), &norm).await? {
            let method = if signal == "gpc" { "gpc" } else { "portal" };
            let evidence = if signal == "gpc" {
                "Sec-GPC: 1"
            } else {
                "privacy portal opt-out form"
            };
            self.consent_in(
                tx.as_mut(),
                None,
                contact,
                "sale_share",
                "withdrawn",
                method,
                evidence,
            )
            .await?;
            tx.set_flag(contact, Flag::OptedOutSale.as_str(), None, self.now_ms())
                .await?;
            let ev = crate::ledger::audit::Event::anonymous(meta, "subject.flag")
                .subject(Some(contact))
                .detail(format!("flag={} signal={signal}", Flag::OptedOutSale));
            self.append(tx.as_mut(), ev).await?;
            n += 1;
        }
        tx.commit().await?;
        Ok(n)
    }
}

/// The state of consent to each purpose, from the newest entry of each.
fn current_states(
    states: &BTreeMap<String, (String, String)>,
) -> BTreeMap<&'static str, ConsentState> {
    CONSENT_PURPOSES
        .iter()
        .map(|pu| {
            let state = match states.get(*pu) {
                Some((s, at)) => ConsentState {
                    state: s.clone(),
                    since: Some(at.clone()),
                },
                None => ConsentState {
                    state: if needs_opt_in(pu) {
                        "not_given"
                    } else {
                        "not_opted_out"
                    }
                    .into(),
                    since: None,
                },
            };
            (*pu, state)
        })
        .collect()
}

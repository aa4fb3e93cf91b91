//! Retention: what each policy of the inventory keeps and for how long, what
//! is due now (the dry-run preview: counts and the first records, ids and
//! dates only), running the purge after a confirmation, the runs with their
//! purge certificates (printable, and as JSON for the offline verifier), and
//! the legal holds in force, placed from a contact's page and lifted here.

use super::*;
use crate::AppState;
use crate::ui::fields::FormField;
use crate::ui::shell::{Ctx, Section, Shell, redirect_with_flash};
use crate::ui::widgets::Names;
use crate::ui::widgets::request_form::place_errors;
use askama::Template;
use axum::Form;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use custos_domain::Entity;
use custos_domain::inventory::Disposal;
use custos_domain::retention::Policy;
use custos_service::{HoldView, PurgeCertificate, RunOptions, ServiceError};
use serde_json::json;
use uuid::Uuid;

/// One policy as the page shows it.
#[derive(Debug, Clone)]
pub struct PolicyRow {
    /// Its name (`orders.completed_at.2y`).
    pub name: String,
    /// Its page, to see its versions and change its period.
    pub href: String,
    /// The version in force.
    pub version: u32,
    /// The entity in words (`Orders`).
    pub what: String,
    /// The period in words.
    pub period: String,
    /// What happens then, in words.
    pub then: String,
    /// Due now.
    pub due: u64,
    /// Due but held.
    pub held: u64,
    /// The first due records: (record href, date, held).
    pub first: Vec<(String, String, bool)>,
}

/// One past run.
#[derive(Debug, Clone)]
pub struct RunRow {
    /// Its certificate page.
    pub href: String,
    /// When it started.
    pub when: String,
    /// When (RFC 3339).
    pub iso: String,
    /// Who started it.
    pub by: String,
    /// Records purged.
    pub purged: u64,
    /// Records held.
    pub held: u64,
    /// Whether it finished.
    pub finished: bool,
}

/// One hold in force.
#[derive(Debug, Clone)]
pub struct HoldRow {
    /// The hold.
    pub id: String,
    /// The person's page.
    pub person_href: String,
    /// The person's name.
    pub person: String,
    /// Why.
    pub reason: String,
    /// Review date.
    pub review_on: String,
    /// Whether the review date has passed.
    pub overdue: bool,
    /// When it was placed.
    pub placed: String,
}

/// The form to place a hold on one person.
#[derive(Debug, Clone)]
pub struct HoldForm {
    /// The person.
    pub subject_id: String,
    /// Their name.
    pub person: String,
    /// The reason and review date fields.
    pub fields: Vec<FormField>,
    /// The error summary.
    pub summary: Vec<(String, String)>,
}

#[derive(Template)]
#[template(path = "privacy_retention.html")]
pub(super) struct RetentionPage {
    shell: Shell,
    as_of: String,
    policies: Vec<PolicyRow>,
    due_total: u64,
    runs: Vec<RunRow>,
    holds: Vec<HoldRow>,
    hold_form: Option<HoldForm>,
    confirm_error: bool,
}

#[derive(Template)]
#[template(path = "privacy_hold_lift.html")]
pub(super) struct LiftPage {
    shell: Shell,
    hold: HoldRow,
    person: String,
    last: bool,
}

#[derive(Template)]
#[template(path = "privacy_certificate.html")]
pub(super) struct CertificatePage {
    shell: Shell,
    id: String,
    cert: PurgeCertificate,
    /// Per policy: name, version, then (words), cut-off (words), purged, held.
    rows: Vec<(String, u32, &'static str, String, u64, u64)>,
    by: String,
    started: String,
    finished: String,
    verify: String,
}

pub(super) fn entity_words(e: Entity) -> String {
    let mut s = e.plural().replace('_', " ");
    if let Some(first) = s.get_mut(0..1) {
        first.make_ascii_uppercase();
    }
    match e {
        Entity::Request => "Privacy requests (answered)".to_string(),
        _ => s,
    }
}

pub(super) fn then_words(p: &Policy) -> String {
    match p.then {
        Disposal::Delete => "Deleted".to_string(),
        Disposal::Anonymise => {
            let names = |fs: Vec<&str>| fs.join(", ");
            format!(
                "Anonymised: {} destroyed; {} kept",
                names(p.erased().map(|f| f.label).collect()),
                names(p.kept().map(|f| f.label).collect())
            )
        }
        Disposal::Erase => "The person is erased: their data key is destroyed, as for an erasure request; orders keep their amounts, anonymised".to_string(),
    }
}

pub(super) fn period_words(p: &Policy) -> String {
    if p.after_last_activity {
        let years = if p.years == 1 { "year" } else { "years" };
        return format!(
            "{} {years} after the last activity, unless a deal is open or an order is within its period",
            p.years
        );
    }
    let anchor = match p.anchor {
        "completed_at" => "completion".to_string(),
        "closed_at" => "the answer".to_string(),
        "occurred_at" => "they happened".to_string(),
        other => custos_domain::inventory::field(p.entity, other)
            .map(|f| f.label.to_lowercase())
            .unwrap_or_else(|| other.to_string()),
    };
    let years = if p.years == 1 { "year" } else { "years" };
    format!("{} {years} after {anchor}", p.years)
}

fn record_href(entity: Entity, id: Uuid) -> String {
    match entity {
        Entity::Request => format!("/app/privacy/requests/{id}"),
        e => format!("/app/{}/{id}", e.plural()),
    }
}

fn hold_fields() -> Vec<FormField> {
    vec![
        form_field(
            "reason",
            "Reason",
            "The matter, claim or order that requires the records to be kept. It is sealed like the person's own data.",
            "textarea",
            true,
            custos_service::HOLD_REASON_MAX,
        ),
        form_field(
            "review_on",
            "Review on",
            "When to look at the hold again. Leave empty for one year from today.",
            "date",
            false,
            10,
        ),
    ]
}

fn subject_param(query: &Option<String>) -> Option<Uuid> {
    let pairs: Pairs = serde_urlencoded::from_str(query.as_deref()?).ok()?;
    get_pair(&pairs, "subject").and_then(|v| Uuid::parse_str(v).ok())
}

pub(super) async fn retention(
    State(st): State<AppState>,
    ctx: Ctx,
    RawQuery(query): RawQuery,
) -> Response {
    let hold_form = match subject_param(&query) {
        Some(subject) => Some(HoldForm {
            subject_id: subject.to_string(),
            person: Names::new(&st, &ctx.caller.principal)
                .name_or_unavailable(Entity::Contact, subject)
                .await,
            fields: hold_fields(),
            summary: Vec::new(),
        }),
        None => None,
    };
    retention_page(&st, &ctx, hold_form, false, StatusCode::OK).await
}

async fn retention_page(
    st: &AppState,
    ctx: &Ctx,
    hold_form: Option<HoldForm>,
    confirm_error: bool,
    status: StatusCode,
) -> Response {
    let p = &ctx.caller.principal;
    let preview = match st.custos.retention_preview(p).await {
        Ok(v) => v,
        Err(e) => return ctx.error(st, e).await,
    };
    let runs = match st.custos.retention_runs(p, 20).await {
        Ok(v) => v,
        Err(e) => return ctx.error(st, e).await,
    };
    let holds = match st.custos.holds_in_force(p).await {
        Ok(v) => v,
        Err(e) => return ctx.error(st, e).await,
    };
    let periods = match st.custos.retention_periods().await {
        Ok(v) => v,
        Err(e) => return ctx.error(st, e).await,
    };
    let policies_of = periods.policies();
    let policies: Vec<PolicyRow> = preview
        .policies
        .iter()
        .filter_map(|pp| {
            let pol = policies_of.iter().find(|x| x.name() == pp.outcome.policy)?;
            Some(PolicyRow {
                name: pp.outcome.policy.clone(),
                href: format!("/app/privacy/retention/policies/{}", pol.key()),
                version: pol.version,
                what: entity_words(pol.entity),
                period: period_words(pol),
                then: then_words(pol),
                due: pp.outcome.purged,
                held: pp.outcome.held,
                first: pp
                    .first
                    .iter()
                    .map(|r| (record_href(pol.entity, r.id), when_text(&r.anchor), r.held))
                    .collect(),
            })
        })
        .collect();
    let due_total = policies.iter().map(|r| r.due).sum();
    let runs = runs
        .iter()
        .map(|r| RunRow {
            href: format!("/app/privacy/retention/runs/{}", r.id),
            when: when_text(&r.started_at),
            iso: r.started_at.clone(),
            by: actor_words(&r.actor, p.user_id),
            purged: r.purged,
            held: r.held,
            finished: r.finished_at.is_some(),
        })
        .collect();
    let holds = hold_rows(st, ctx, &holds).await;
    let page = RetentionPage {
        shell: ctx
            .shell(st, "Retention", Section::Privacy("/app/privacy/retention"))
            .await,
        as_of: when_text(&preview.at),
        policies,
        due_total,
        runs,
        holds,
        hold_form,
        confirm_error,
    };
    ctx.page(&page, status)
}

pub(super) fn actor_words(actor: &str, me: Uuid) -> String {
    match actor {
        "system" => "The daily schedule".to_string(),
        "cli" => "The command line".to_string(),
        a if a == format!("user:{me}") => "You".to_string(),
        _ => "A colleague".to_string(),
    }
}

async fn hold_rows(st: &AppState, ctx: &Ctx, holds: &[HoldView]) -> Vec<HoldRow> {
    let mut names = Names::new(st, &ctx.caller.principal);
    let mut out = Vec::with_capacity(holds.len());
    for h in holds {
        out.push(HoldRow {
            id: h.id.to_string(),
            person_href: format!("/app/contacts/{}", h.subject_id),
            person: names
                .name_or_unavailable(Entity::Contact, h.subject_id)
                .await,
            reason: h.reason.clone().unwrap_or_default(),
            review_on: h.review_on.clone(),
            overdue: h.review_overdue,
            placed: when_text(&h.placed_at),
        });
    }
    out
}

pub(super) async fn run(State(st): State<AppState>, ctx: Ctx, Form(form): Form<Pairs>) -> Response {
    if let Err(r) = ctx.check_form(&st, &form).await {
        return r;
    }
    if get_pair(&form, "confirm") != Some("yes") {
        return retention_page(&st, &ctx, None, true, StatusCode::UNPROCESSABLE_ENTITY).await;
    }
    match st
        .custos
        .retention_run(&ctx.caller.principal, RunOptions::default(), |_, _| {})
        .await
    {
        Ok(r) => redirect_with_flash(
            &format!("/app/privacy/retention/runs/{}", r.id),
            "privacy.purged",
        ),
        Err(e) => ctx.error(&st, e).await,
    }
}

/// The certificate of the run named in the path, or the error page.
async fn certificate_of(
    st: &AppState,
    ctx: &Ctx,
    id: &str,
) -> Result<(Uuid, PurgeCertificate), Response> {
    let Some(id) = parse_id(id) else {
        return Err(ctx.error(st, ServiceError::NotFound("retention run")).await);
    };
    match st
        .custos
        .retention_certificate(&ctx.caller.principal, id)
        .await
    {
        Ok(c) => Ok((id, c)),
        Err(e) => Err(ctx.error(st, e).await),
    }
}

pub(super) async fn certificate_page(
    State(st): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Response {
    let (id, cert) = match certificate_of(&st, &ctx, &id).await {
        Ok(found) => found,
        Err(r) => return r,
    };
    let page = CertificatePage {
        shell: ctx
            .shell(
                &st,
                "Purge certificate",
                Section::Privacy("/app/privacy/retention"),
            )
            .await,
        id: id.to_string(),
        rows: cert
            .policies
            .iter()
            .map(|p| {
                let then = match p.disposal.as_str() {
                    "delete" => "Deleted",
                    "erase" => "Erased",
                    _ => "Anonymised",
                };
                (
                    p.policy.clone(),
                    p.version,
                    then,
                    when_text(&p.cutoff),
                    p.purged,
                    p.held,
                )
            })
            .collect(),
        by: actor_words(&cert.actor, ctx.caller.principal.user_id),
        started: when_text(&cert.started_at),
        finished: when_text(&cert.finished_at),
        verify: format!(
            "python3 examples/auditor/verify_certificate.py certificate-{id}.json --key '{}'",
            cert.ledger.verifier_key
        ),
        cert,
    };
    ctx.page(&page, StatusCode::OK)
}

pub(super) async fn certificate_json(
    State(st): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Response {
    match certificate_of(&st, &ctx, &id).await {
        Ok((id, c)) => attachment(
            "application/json",
            format!("certificate-{id}.json"),
            serde_json::to_string_pretty(&c).unwrap_or_default(),
        ),
        Err(r) => r,
    }
}

pub(super) async fn place_hold(
    State(st): State<AppState>,
    ctx: Ctx,
    Form(form): Form<Pairs>,
) -> Response {
    if let Err(r) = ctx.check_form(&st, &form).await {
        return r;
    }
    let subject = get_pair(&form, "subject_id").unwrap_or_default();
    let reason = form
        .iter()
        .find(|(k, _)| k == "reason")
        .map(|(_, v)| v.as_str())
        .unwrap_or_default();
    let review = get_pair(&form, "review_on").unwrap_or_default();
    let body = json!({"subject_id": subject, "reason": reason, "review_on": review});
    match st.custos.hold_place(&ctx.caller.principal, &body).await {
        Ok(h) => redirect_with_flash(
            &format!("/app/contacts/{}#consent", h.subject_id),
            "privacy.held",
        ),
        Err(ServiceError::Invalid(errs)) => {
            let mut fields = hold_fields();
            for f in &mut fields {
                f.value = match f.name {
                    "reason" => reason.to_string(),
                    _ => review.to_string(),
                };
            }
            let summary = place_errors(&mut fields, &errs);
            let person = match Uuid::parse_str(subject) {
                Ok(s) => {
                    Names::new(&st, &ctx.caller.principal)
                        .name_or_unavailable(Entity::Contact, s)
                        .await
                }
                Err(_) => String::new(),
            };
            let form = HoldForm {
                subject_id: subject.to_string(),
                person,
                fields,
                summary,
            };
            retention_page(
                &st,
                &ctx,
                Some(form),
                false,
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await
        }
        Err(e) => ctx.error(&st, e).await,
    }
}

pub(super) async fn lift_page(
    State(st): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Response {
    let Some(id) = parse_id(&id) else {
        return ctx.error(&st, ServiceError::NotFound("legal hold")).await;
    };
    let p = &ctx.caller.principal;
    let in_force = match st.custos.holds_in_force(p).await {
        Ok(v) => v,
        Err(e) => return ctx.error(&st, e).await,
    };
    let Some(hold) = in_force.iter().find(|h| h.id == id) else {
        return ctx
            .message(
                &st,
                StatusCode::NOT_FOUND,
                "No such hold in force",
                "This legal hold does not exist or was lifted already.",
            )
            .await;
    };
    let last = in_force
        .iter()
        .filter(|h| h.subject_id == hold.subject_id)
        .count()
        == 1;
    let Some(row) = hold_rows(&st, &ctx, std::slice::from_ref(hold)).await.pop() else {
        return ctx.error(&st, ServiceError::NotFound("legal hold")).await;
    };
    let page = LiftPage {
        shell: ctx
            .shell(
                &st,
                "Lift a legal hold",
                Section::Privacy("/app/privacy/retention"),
            )
            .await,
        person: row.person.clone(),
        hold: row,
        last,
    };
    ctx.page(&page, StatusCode::OK)
}

pub(super) async fn lift_hold(
    State(st): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    Form(form): Form<Pairs>,
) -> Response {
    if let Err(r) = ctx.check_form(&st, &form).await {
        return r;
    }
    let Some(id) = parse_id(&id) else {
        return ctx.error(&st, ServiceError::NotFound("legal hold")).await;
    };
    match st.custos.hold_lift(&ctx.caller.principal, id).await {
        Ok(_) => redirect_with_flash("/app/privacy/retention#holds", "privacy.hold_lifted"),
        Err(e) => ctx.error(&st, e).await,
    }
}

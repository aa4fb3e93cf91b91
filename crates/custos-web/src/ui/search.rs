//! Global search from the top bar. The box may hold an email or a phone number,
//! so it is posted (with the CSRF token) rather than put in a URL.

use super::fields;
use super::shell::{Ctx, Section, Shell};
use super::widgets::Names;
use crate::AppState;
use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::{Form, Router};
use custos_domain::{Entity, Value};
use custos_service::{SearchKind, ServiceError};

/// The search routes.
pub fn routes(r: Router<AppState>) -> Router<AppState> {
    r.route("/app/search", get(empty).post(search))
}

/// One record found.
#[derive(Debug, Clone)]
pub struct Hit {
    /// Its name.
    pub title: String,
    /// Its page.
    pub href: String,
    /// A few facts (email, company, stage…).
    pub facts: String,
}

/// The results of one kind.
#[derive(Debug, Clone)]
pub struct Group {
    /// Heading, e.g. "Contacts".
    pub heading: String,
    /// How they were matched.
    pub matched_by: &'static str,
    /// The records.
    pub hits: Vec<Hit>,
    /// Why not searched.
    pub refused: Option<String>,
    /// The list to post to for all matches (personal filters are posted).
    pub more_action: Option<String>,
    /// The hidden fields of that form.
    pub more_fields: Vec<(String, String)>,
    /// A link for all matches, when the filter is not personal.
    pub more_href: Option<String>,
}

#[derive(Template)]
#[template(path = "search.html")]
struct SearchPage {
    shell: Shell,
    q: String,
    how: String,
    groups: Vec<Group>,
    total: usize,
    error: Option<String>,
}

async fn empty(State(st): State<AppState>, ctx: Ctx) -> Response {
    let page = SearchPage {
        shell: ctx.shell(&st, "Search", Section::Search).await,
        q: String::new(),
        how: String::new(),
        groups: Vec::new(),
        total: 0,
        error: None,
    };
    ctx.page(&page, StatusCode::OK)
}

async fn search(
    State(st): State<AppState>,
    ctx: Ctx,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    if let Err(r) = ctx.check_form(&st, &form).await {
        return r;
    }
    let p = &ctx.caller.principal;
    let q = form
        .iter()
        .find(|(k, _)| k == "q")
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_default();
    let mut page = SearchPage {
        shell: ctx.shell(&st, "Search", Section::Search).await,
        q: q.clone(),
        how: String::new(),
        groups: Vec::new(),
        total: 0,
        error: None,
    };
    let results = match st.custos.search(p, &q).await {
        Ok(r) => r,
        Err(ServiceError::Invalid(errs)) => {
            page.error = errs.first().map(|e| format!("Search {}.", e.message));
            return ctx.page(&page, StatusCode::UNPROCESSABLE_ENTITY);
        }
        Err(e) => return ctx.error(&st, e).await,
    };
    page.how = match results.kind {
        SearchKind::Email => "Read as an email address: contacts whose email is exactly this (emails are encrypted, so only exact matches are found).",
        SearchKind::Phone => "Read as a phone number: contacts whose phone is exactly this, and companies and deals whose names contain it.",
        SearchKind::Words => "Read as words: contacts by whole first or last name or by company, companies by name or domain, deals by title.",
    }
    .to_string();
    page.total = results.total();
    let mut names = Names::new(&st, p);
    for g in &results.groups {
        let mut hits = Vec::new();
        for v in &g.items {
            names.know(v);
        }
        for v in &g.items {
            let r = &v.record;
            let mut facts = Vec::new();
            let shown = |f: &str| !v.masked.contains(&f) && !r.get(f).is_null();
            match g.entity {
                Entity::Contact => {
                    for f in ["email", "phone"] {
                        if shown(f) {
                            facts.push(r.get(f).display());
                        }
                    }
                }
                Entity::Company if shown("domain") => {
                    facts.push(r.get("domain").display());
                }
                Entity::Deal => {
                    facts.push(fields::humanize(&r.get("stage").display()));
                    if shown("amount")
                        && let Some(f) = custos_domain::inventory::field(Entity::Deal, "amount")
                    {
                        facts.push(fields::display(f, r));
                    }
                }
                _ => {}
            }
            if let Value::Uuid(c) = r.get("company_id")
                && let Some(n) = names.name(Entity::Company, *c).await
            {
                facts.push(n);
            }
            hits.push(Hit {
                title: fields::title(v),
                href: format!("/app/{}/{}", g.entity.plural(), v.id()),
                facts: facts.join(" · "),
            });
        }
        let personal = g.entity == Entity::Contact;
        let base = format!("/app/{}", g.entity.plural());
        let (more_action, more_fields, more_href) = if !g.more {
            (None, Vec::new(), None)
        } else if personal {
            (Some(format!("{base}/find")), g.list_query.clone(), None)
        } else {
            let q = serde_urlencoded::to_string(&g.list_query).unwrap_or_default();
            (None, Vec::new(), Some(format!("{base}?{q}")))
        };
        page.groups.push(Group {
            heading: match g.entity {
                Entity::Contact => "Contacts",
                Entity::Company => "Companies",
                Entity::Deal => "Deals",
                _ => "Records",
            }
            .to_string(),
            matched_by: g.matched_by,
            hits,
            refused: g.refused.clone(),
            more_action,
            more_fields,
            more_href,
        });
    }
    ctx.page(&page, StatusCode::OK)
}

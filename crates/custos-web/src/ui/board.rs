//! The deals board: one column per pipeline stage, in order, with its total.
//! Each card moves through a small form (a stage select and a button) that
//! posts to the server; `board.js` adds drag and drop on top when scripts run.

use super::fields;
use super::shell::{Ctx, Section, Shell, redirect_with_flash};
use super::widgets::Names;
use crate::AppState;
use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Form, Router};
use custos_domain::inventory;
use custos_domain::policy::Operation;
use custos_domain::{Entity, Value};
use custos_service::{Amounts, ListParams, ServiceError};
use uuid::Uuid;

/// At most this many deals are placed on the board (the list has them all).
const BOARD_LIMIT: usize = 1000;

/// The board's routes.
pub fn routes(r: Router<AppState>) -> Router<AppState> {
    r.route("/app/deals/board", get(board))
        .route("/app/deals/{id}/stage", post(move_deal))
}

/// A deal on the board.
#[derive(Debug, Clone)]
pub struct Card {
    /// Deal id.
    pub id: String,
    /// Title.
    pub title: String,
    /// Company name, if any.
    pub company: String,
    /// Amount with currency, or empty.
    pub amount: String,
    /// Close date, or empty.
    pub close: String,
}

/// A stage column.
#[derive(Debug, Clone)]
pub struct Column {
    /// Stage name.
    pub stage: String,
    /// Stage label.
    pub label: String,
    /// Number of deals.
    pub count: usize,
    /// Total value, per currency.
    pub total: String,
    /// Its deals.
    pub cards: Vec<Card>,
}

#[derive(Template)]
#[template(path = "board.html")]
struct BoardPage {
    shell: Shell,
    columns: Vec<Column>,
    stages: Vec<(String, String)>,
    can_move: bool,
    can_create: bool,
    truncated: bool,
}

async fn board(State(st): State<AppState>, ctx: Ctx) -> Response {
    let p = &ctx.caller.principal;
    let stages = match st.custos.pipeline_stages(p).await {
        Ok(s) => s,
        Err(e) => return ctx.error(&st, e).await,
    };
    let mut deals = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut pairs = vec![
            ("limit".to_string(), "500".to_string()),
            ("sort".to_string(), "-updated_at".to_string()),
        ];
        if let Some(c) = &cursor {
            pairs.push(("cursor".into(), c.clone()));
        }
        let page = match ListParams::parse(Entity::Deal, &pairs) {
            Ok(params) => st.custos.list(p, Entity::Deal, &params).await,
            Err(e) => Err(e),
        };
        let page = match page {
            Ok(page) => page,
            Err(e) => return ctx.error(&st, e).await,
        };
        deals.extend(page.items);
        cursor = page.next_cursor;
        if cursor.is_none() || deals.len() >= BOARD_LIMIT {
            break;
        }
    }
    let truncated = cursor.is_some();
    let mut names = Names::new(&st, p);
    let company = inventory::field(Entity::Deal, "company_id");
    names.preload(&deals, company.as_slice()).await;
    let mut columns: Vec<Column> = stages
        .iter()
        .map(|s| Column {
            stage: s.clone(),
            label: fields::humanize(s),
            count: 0,
            total: String::new(),
            cards: Vec::new(),
        })
        .collect();
    let mut totals: Vec<Amounts> = vec![Amounts::new(); columns.len()];
    let mut hidden_money = false;
    for d in &deals {
        let stage = d.record.get("stage").display();
        let i = match columns.iter().position(|c| c.stage == stage) {
            Some(i) => i,
            None => {
                columns.push(Column {
                    label: fields::humanize(&stage),
                    stage: stage.clone(),
                    count: 0,
                    total: String::new(),
                    cards: Vec::new(),
                });
                totals.push(Amounts::new());
                columns.len() - 1
            }
        };
        let company = match d.record.get("company_id") {
            Value::Uuid(id) => names.name(Entity::Company, *id).await.unwrap_or_default(),
            _ => String::new(),
        };
        let amount = if d.masked.contains(&"amount") {
            hidden_money = true;
            "Amount hidden".to_string()
        } else {
            if let Value::Money(m) = d.record.get("amount") {
                let c = d.record.get("currency").as_text().map(str::to_string);
                *totals[i].entry(c).or_default() += m;
            }
            custos_domain::inventory::field(Entity::Deal, "amount")
                .map(|f| fields::display(f, &d.record))
                .unwrap_or_default()
        };
        let close = d.record.get("close_date").display();
        columns[i].count += 1;
        columns[i].cards.push(Card {
            id: d.id().to_string(),
            title: fields::title(d),
            company,
            amount,
            close,
        });
    }
    for (c, t) in columns.iter_mut().zip(&totals) {
        c.total = if hidden_money {
            "Total hidden".into()
        } else if t.is_empty() {
            "No amounts".into()
        } else {
            t.iter()
                .map(|(cur, v)| {
                    format!("{} {}", fields::money(*v), cur.as_deref().unwrap_or(""))
                        .trim()
                        .to_string()
                })
                .collect::<Vec<_>>()
                .join(" + ")
        };
    }
    let page = BoardPage {
        shell: ctx.shell(&st, "Deals board", Section::Board).await,
        stages: stages
            .iter()
            .map(|s| (s.clone(), fields::humanize(s)))
            .collect(),
        columns,
        can_move: ctx.may(Operation::Update, Entity::Deal),
        can_create: ctx.may(Operation::Create, Entity::Deal),
        truncated,
    };
    ctx.page(&page, StatusCode::OK)
}

async fn move_deal(
    State(st): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    if let Err(r) = ctx.check_form(&st, &form).await {
        return r;
    }
    let Ok(id) = Uuid::parse_str(&id) else {
        return ctx.error(&st, ServiceError::NotFound("deal")).await;
    };
    let stage = form
        .iter()
        .find(|(k, _)| k == "stage")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    let back = match form
        .iter()
        .find(|(k, _)| k == "return_to")
        .map(|(_, v)| v.as_str())
    {
        Some("deal") => format!("/app/deals/{id}"),
        _ => format!("/app/deals/board#deal-{id}"),
    };
    let body = serde_json::json!({ "stage": stage });
    match st
        .custos
        .update(&ctx.caller.principal, Entity::Deal, id, &body)
        .await
    {
        Ok(_) => redirect_with_flash(&back, "deal.moved"),
        Err(ServiceError::Invalid(_)) => redirect_with_flash(&back, "error.stage"),
        Err(e) => ctx.error(&st, e).await,
    }
}

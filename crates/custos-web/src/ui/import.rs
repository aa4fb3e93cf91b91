//! Import from the web UI: upload a CSV file, see a preview (how each column
//! is read, the first rows, every rejected row with its reason), then import,
//! with a progress bar while it runs. The same service use case as
//! `custos import` checks, writes and audits.
//!
//! Between the preview and the import, the file's rows wait in this process's
//! memory (never on disk: they hold personal data), bound to the user who
//! uploaded them, for at most [`PENDING_TTL`]. Behind a load balancer with
//! several `custos serve` processes, the confirmation must reach the same
//! process (sticky sessions); otherwise the page asks to upload again.

use super::shell::{Ctx, Section, Shell};
use crate::AppState;
use askama::Template;
use axum::extract::{DefaultBodyLimit, Multipart, Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use custos_domain::Entity;
use custos_domain::policy::{self, Operation};
use custos_service::{ImportReport, ImportStage, RowError};
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// Largest file accepted from the browser (bigger imports: `custos import`).
pub const MAX_FILE: usize = 20 * 1024 * 1024;
/// Most data rows accepted from the browser.
pub const MAX_ROWS: usize = 200_000;
/// How long an uploaded file waits for its confirmation.
pub const PENDING_TTL: Duration = Duration::from_secs(30 * 60);
/// Rows shown in the preview.
const PREVIEW_ROWS: usize = 10;
/// Rejected rows listed on a page (all of them are in the CSV report).
const LISTED_ERRORS: usize = 100;

/// The import routes.
pub fn routes(r: Router<AppState>) -> Router<AppState> {
    r.route("/app/import", get(upload_page))
        .route(
            "/app/import/preview",
            post(preview).layer(DefaultBodyLimit::max(MAX_FILE + 64 * 1024)),
        )
        .route("/app/import/{id}", get(job_page).post(start))
        .route("/app/import/{id}/rejected.csv", get(rejected_csv))
}

enum State_ {
    /// Checked, waiting for the confirmation.
    Checked,
    /// Importing: which pass, rows done of total.
    Running(ImportStage, u64, u64),
    /// Finished.
    Done(ImportReport),
    /// Failed with this message.
    Failed(String),
}

struct Job {
    user: Uuid,
    entity: Entity,
    file_name: String,
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
    check: ImportReport,
    state: State_,
    touched: Instant,
}

type Jobs = Mutex<HashMap<Uuid, Job>>;

fn jobs() -> &'static Jobs {
    static JOBS: OnceLock<Jobs> = OnceLock::new();
    JOBS.get_or_init(Default::default)
}

fn lock() -> std::sync::MutexGuard<'static, HashMap<Uuid, Job>> {
    // A panic while holding the lock cannot leave the map inconsistent.
    let mut g = jobs().lock().unwrap_or_else(|e| e.into_inner());
    g.retain(|_, j| j.touched.elapsed() < PENDING_TTL || matches!(j.state, State_::Running(..)));
    g
}

fn entity_of(what: &str) -> Option<Entity> {
    match what {
        "contacts" => Some(Entity::Contact),
        "companies" => Some(Entity::Company),
        "orders" => Some(Entity::Order),
        _ => None,
    }
}

#[derive(Template)]
#[template(path = "import_upload.html")]
struct UploadPage {
    shell: Shell,
    what: String,
    error: Option<String>,
    max_mb: usize,
    max_rows: usize,
}

/// One column of the preview: the header and the field it fills.
pub struct MappedColumn {
    header: String,
    field: String,
}

#[derive(Template)]
#[template(path = "import_job.html")]
struct JobPage {
    shell: Shell,
    c: JobContent,
}

/// What the import page shows.
struct JobContent {
    id: Uuid,
    what: &'static str,
    file_name: String,
    /// `checked`, `running`, `done` or `failed`.
    state: &'static str,
    rows: u64,
    valid: u64,
    columns: Vec<MappedColumn>,
    sample: Vec<Vec<String>>,
    errors: Vec<RowError>,
    more_errors: usize,
    rejected: usize,
    /// While running: the rows are being checked again (nothing written yet).
    checking: bool,
    done: u64,
    total: u64,
    percent: u64,
    imported: u64,
    companies_created: u64,
    committed: bool,
    failure: String,
    list_href: String,
}

fn may_import(ctx: &Ctx, entity: Entity) -> bool {
    policy::allows(ctx.role(), Operation::Create, entity)
}

async fn upload_form(
    st: &AppState,
    ctx: &Ctx,
    what: &str,
    error: Option<String>,
    status: StatusCode,
) -> Response {
    let page = UploadPage {
        shell: ctx.shell(st, "Import", Section::Import).await,
        what: what.to_string(),
        error,
        max_mb: MAX_FILE / (1024 * 1024),
        max_rows: MAX_ROWS,
    };
    ctx.page(&page, status)
}

async fn upload_page(
    State(st): State<AppState>,
    ctx: Ctx,
    axum::extract::Query(q): axum::extract::Query<Vec<(String, String)>>,
) -> Response {
    if !may_import(&ctx, Entity::Contact) && !may_import(&ctx, Entity::Company) {
        return ctx
            .message(
                &st,
                StatusCode::FORBIDDEN,
                "Not allowed",
                "Your role may not create records, so it may not import them.",
            )
            .await;
    }
    let what = q
        .iter()
        .find(|(k, _)| k == "what")
        .map(|(_, v)| v.as_str())
        .filter(|w| entity_of(w).is_some())
        .unwrap_or("contacts");
    upload_form(&st, &ctx, what, None, StatusCode::OK).await
}

/// Reads the upload: the CSRF token, what to import and the file.
async fn read_upload(mut mp: Multipart) -> Result<(String, String, String, Vec<u8>), String> {
    let (mut csrf, mut what, mut name, mut bytes) =
        (String::new(), String::new(), String::new(), Vec::new());
    loop {
        let field = match mp.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => return Err(format!("The upload could not be read ({e}).")),
        };
        match field.name().unwrap_or_default() {
            "csrf" => csrf = field.text().await.map_err(|e| e.to_string())?,
            "what" => what = field.text().await.map_err(|e| e.to_string())?,
            "file" => {
                name = field.file_name().unwrap_or("upload.csv").to_string();
                bytes = field
                    .bytes()
                    .await
                    .map_err(|_| {
                        format!(
                            "The file is larger than {} MB; import it with `custos import` on the server.",
                            MAX_FILE / (1024 * 1024)
                        )
                    })?
                    .to_vec();
            }
            _ => {}
        }
    }
    Ok((csrf, what, name, bytes))
}

/// Parses CSV text: the header and the data rows.
fn parse_csv(bytes: &[u8]) -> Result<(Vec<String>, Vec<Vec<String>>), String> {
    let text = std::str::from_utf8(bytes)
        .map_err(|_| "The file is not UTF-8 text. Save it as “CSV UTF-8” and try again.")?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut r = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_reader(text.as_bytes());
    let headers: Vec<String> = r
        .headers()
        .map_err(|e| format!("The header row cannot be read: {e}"))?
        .iter()
        .map(str::to_string)
        .collect();
    if headers.iter().all(|h| h.trim().is_empty()) {
        return Err("The file is empty or has no header row.".into());
    }
    let mut rows = Vec::new();
    for (i, rec) in r.records().enumerate() {
        let rec = rec.map_err(|e| format!("Line {} cannot be read: {e}", i + 2))?;
        rows.push(rec.iter().map(str::to_string).collect());
        if rows.len() > MAX_ROWS {
            return Err(format!(
                "The file has more than {MAX_ROWS} rows; import it with `custos import` on the server."
            ));
        }
    }
    if rows.is_empty() {
        return Err("The file has a header row but no data rows.".into());
    }
    Ok((headers, rows))
}

async fn preview(State(st): State<AppState>, ctx: Ctx, mp: Multipart) -> Response {
    let (csrf, what, name, bytes) = match read_upload(mp).await {
        Ok(u) => u,
        Err(msg) => {
            return upload_form(&st, &ctx, "contacts", Some(msg), StatusCode::BAD_REQUEST).await;
        }
    };
    if let Err(r) = ctx.check_form(&st, &[("csrf".to_string(), csrf)]).await {
        return r;
    }
    let Some(entity) = entity_of(&what) else {
        let msg = "Choose what the file holds: contacts, companies or orders.".to_string();
        return upload_form(
            &st,
            &ctx,
            "contacts",
            Some(msg),
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
    };
    if bytes.is_empty() {
        let msg = "Choose a CSV file to import.".to_string();
        return upload_form(
            &st,
            &ctx,
            &what,
            Some(msg),
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
    }
    let (headers, rows) = match parse_csv(&bytes) {
        Ok(x) => x,
        Err(msg) => {
            return upload_form(
                &st,
                &ctx,
                &what,
                Some(msg),
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await;
        }
    };
    let p = &ctx.caller.principal;
    let check = match st.custos.import_check(p, entity, &headers, &rows).await {
        Ok(c) => c,
        Err(custos_service::ServiceError::Invalid(errors)) => {
            let msg = format!(
                "The header row has columns Custos cannot read: {}.",
                errors
                    .iter()
                    .map(|e| format!("“{}” {}", e.field, e.message))
                    .collect::<Vec<_>>()
                    .join("; ")
            );
            return upload_form(
                &st,
                &ctx,
                &what,
                Some(msg),
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await;
        }
        Err(e) => return ctx.error(&st, e).await,
    };
    let Ok(random) = custos_crypto::random_bytes::<16>() else {
        return (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response();
    };
    // Unguessable: the id is all the page needs to find the rows.
    let id = uuid::Builder::from_random_bytes(random).into_uuid();
    lock().insert(
        id,
        Job {
            user: p.user_id,
            entity,
            file_name: name,
            headers,
            rows,
            check,
            state: State_::Checked,
            touched: Instant::now(),
        },
    );
    Redirect::to(&format!("/app/import/{id}")).into_response()
}

async fn gone(st: &AppState, ctx: &Ctx) -> Response {
    ctx.message(
        st,
        StatusCode::NOT_FOUND,
        "Import not found",
        "This import is no longer here: previews are kept for 30 minutes, and only for the person who uploaded the file. Upload it again from the Import page.",
    )
    .await
}

fn job_id(raw: &str) -> Option<Uuid> {
    Uuid::parse_str(raw).ok()
}

async fn job_page(State(st): State<AppState>, ctx: Ctx, Path(id): Path<String>) -> Response {
    let user = ctx.caller.principal.user_id;
    let found = job_id(&id).and_then(|id| {
        let mut g = lock();
        let job = g.get_mut(&id).filter(|j| j.user == user)?;
        job.touched = Instant::now();
        Some(build_page(id, job))
    });
    let Some(page) = found else {
        return gone(&st, &ctx).await;
    };
    let title = match page.state {
        "checked" => "Check the import",
        "running" => "Importing…",
        "done" => "Import finished",
        _ => "Import failed",
    };
    let page = JobPage {
        shell: ctx.shell(&st, title, Section::Import).await,
        c: page,
    };
    ctx.page(&page, StatusCode::OK)
}

/// The page's content (the shell is filled in by the caller).
fn build_page(id: Uuid, job: &Job) -> JobContent {
    let (state, done, total, report) = match &job.state {
        State_::Checked => ("checked", 0, job.check.rows, &job.check),
        State_::Running(_, d, t) => ("running", *d, *t, &job.check),
        State_::Done(r) => ("done", r.rows, r.rows, r),
        State_::Failed(_) => ("failed", 0, job.check.rows, &job.check),
    };
    let failure = match &job.state {
        State_::Failed(m) => m.clone(),
        _ => String::new(),
    };
    JobContent {
        id,
        what: job.entity.plural(),
        file_name: job.file_name.clone(),
        state,
        rows: job.check.rows,
        valid: job.check.valid,
        columns: job
            .check
            .columns
            .iter()
            .map(|(h, f)| MappedColumn {
                header: h.clone(),
                field: custos_domain::inventory::field(job.entity, f)
                    .map(|d| d.label.to_string())
                    .unwrap_or_else(|| match f.as_str() {
                        "company" => "Company (by name; created if new)".to_string(),
                        "contact_email" => "Contact (by email)".to_string(),
                        _ => "(ignored)".to_string(),
                    }),
            })
            .collect(),
        sample: job.rows.iter().take(PREVIEW_ROWS).cloned().collect(),
        errors: report
            .rejected
            .iter()
            .take(LISTED_ERRORS)
            .cloned()
            .collect(),
        more_errors: report.rejected.len().saturating_sub(LISTED_ERRORS),
        rejected: report.rejected.len(),
        checking: matches!(job.state, State_::Running(ImportStage::Checking, ..)),
        done,
        total,
        percent: (done * 100).checked_div(total).unwrap_or(0),
        imported: report.imported,
        companies_created: report.companies_created,
        committed: report.committed,
        failure,
        list_href: format!("/app/{}", job.entity.plural()),
    }
}

async fn start(
    State(st): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    if let Err(r) = ctx.check_form(&st, &form).await {
        return r;
    }
    let skip_invalid = form.iter().any(|(k, v)| k == "skip_invalid" && v == "on");
    let user = ctx.caller.principal.user_id;
    let Some(id) = job_id(&id) else {
        return gone(&st, &ctx).await;
    };
    // Some(Ok(..)): start it; Some(Err(())): already started; None: not found.
    let taken = {
        let mut g = lock();
        match g.get_mut(&id).filter(|j| j.user == user) {
            Some(job) if matches!(job.state, State_::Checked) => {
                job.state = State_::Running(ImportStage::Checking, 0, job.rows.len() as u64);
                job.touched = Instant::now();
                Some(Ok((
                    job.entity,
                    job.headers.clone(),
                    std::mem::take(&mut job.rows),
                )))
            }
            Some(_) => Some(Err(())),
            None => None,
        }
    };
    let (entity, headers, rows) = match taken {
        Some(Ok(t)) => t,
        Some(Err(())) => return Redirect::to(&format!("/app/import/{id}")).into_response(),
        None => return gone(&st, &ctx).await,
    };
    let custos = st.custos.clone();
    let p = ctx.caller.principal.clone();
    tokio::spawn(async move {
        let result = custos
            .import(
                &p,
                entity,
                &headers,
                &rows,
                skip_invalid,
                |stage, done, total| {
                    if let Some(j) = lock().get_mut(&id) {
                        j.state = State_::Running(stage, done, total);
                    }
                },
            )
            .await;
        if let Some(j) = lock().get_mut(&id) {
            j.touched = Instant::now();
            j.state = match result {
                Ok(r) => State_::Done(r),
                Err(e) => State_::Failed(e.to_string()),
            };
        }
    });
    Redirect::to(&format!("/app/import/{id}")).into_response()
}

/// Every rejected row, as CSV (line, field, reason): the same report
/// `custos import` writes next to the file.
async fn rejected_csv(State(st): State<AppState>, ctx: Ctx, Path(id): Path<String>) -> Response {
    let user = ctx.caller.principal.user_id;
    let body = job_id(&id).and_then(|id| {
        let g = lock();
        let job = g.get(&id).filter(|j| j.user == user)?;
        let report = match &job.state {
            State_::Done(r) => r,
            _ => &job.check,
        };
        let mut w = csv::Writer::from_writer(Vec::new());
        w.write_record(["line", "field", "reason"]).ok()?;
        for e in &report.rejected {
            w.write_record([e.line.to_string(), e.field.clone(), e.reason.clone()])
                .ok()?;
        }
        w.into_inner().ok()
    });
    let Some(body) = body else {
        return gone(&st, &ctx).await;
    };
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"rejected-rows.csv\"",
            ),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}

//! Scale: every page and list reads through indexes. The test signs in, opens
//! every CRM page (lists in every sort order and direction, their second
//! pages, detail pages, the dashboard, search, the pipeline board, the audit
//! log and the privacy pages) and every API list, records each SQL statement
//! the server runs (sqlx reports them through `tracing`), and asks SQLite for
//! each statement's query plan. A statement on a table that grows with the
//! customer base (contacts, activities, orders, the ledger, …) must find its
//! rows through an index: a full scan, or a walk of a whole index with no
//! LIMIT to stop it (a COUNT of every row, a sort of every row), is what
//! makes a page slow at a million contacts and ten million activities, and
//! fails the test with the page and the plan.
//!
//! Plans are checked on SQLite, whose planner works from the schema alone
//! (Custos never runs ANALYZE), so a small database gives the plans of a big
//! one. PostgreSQL plans by table statistics and picks sequential scans on
//! small tables whatever the indexes; its schema carries the same indexes.

#![allow(clippy::unwrap_used)]

mod common;

use common::browser::{api_get, api_post as post};
use custos_domain::inventory::FieldKind;
use custos_domain::{Entity, Role, inventory};
use custos_testkit::{Backend, TestServer, backend};
use serde_json::{Value, json};
use sqlx::{Connection, Row};
use std::sync::{Arc, Mutex, OnceLock};
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::SubscriberExt;

/// Tables that grow with the number of people, records or events.
const GROWING: &[&str] = &[
    "contacts",
    "companies",
    "deals",
    "activities",
    "orders",
    "blind_index",
    "subject_keys",
    "ledger_leaves",
    "ledger_nodes",
    "ledger_index",
    "ledger_checkpoints",
    "requests",
    "consents",
    "processing_flags",
    "erasures",
];

type Log = Arc<Mutex<Vec<String>>>;

/// The statements sqlx reported since the last [`take`].
fn log() -> &'static Log {
    static LOG: OnceLock<Log> = OnceLock::new();
    LOG.get_or_init(|| {
        let log: Log = Arc::default();
        let layer = Capture(log.clone());
        // sqlx runs SQLite statements on a thread of its own: the
        // subscriber must be the process's, not this thread's.
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::set_global_default(subscriber).unwrap();
        log
    })
}

fn take() -> Vec<String> {
    std::mem::take(&mut *log().lock().unwrap())
}

struct Capture(Log);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Capture {
    fn enabled(
        &self,
        metadata: &tracing::Metadata<'_>,
        _: tracing_subscriber::layer::Context<'_, S>,
    ) -> bool {
        metadata.target() == "sqlx::query"
    }

    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        if event.metadata().target() != "sqlx::query" {
            return;
        }
        let mut v = Statement::default();
        event.record(&mut v);
        // sqlx logs a short statement as its summary, a long one's summary
        // cut short with the whole text in `db.statement`.
        let sql = match v.statement.filter(|s| !s.trim().is_empty()) {
            Some(s) => s,
            None => v.summary.unwrap_or_default(),
        };
        if !sql.trim().is_empty() {
            self.0.lock().unwrap().push(sql.trim().to_string());
        }
    }
}

#[derive(Default)]
struct Statement {
    summary: Option<String>,
    statement: Option<String>,
}

impl Visit for Statement {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "summary" => self.summary = Some(value.to_string()),
            "db.statement" => self.statement = Some(value.to_string()),
            _ => {}
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        // A String field arrives quoted and escaped as by Debug, which for
        // SQL text reads back as a JSON string.
        let text = format!("{value:?}");
        let text = serde_json::from_str::<String>(&text).unwrap_or(text);
        self.record_str(field, &text);
    }
}

/// What is wrong with a statement's plan, if anything.
fn problems(sql: &str, plan: &[String]) -> Vec<String> {
    let upper = sql.to_uppercase();
    let limited = upper.contains(" LIMIT ");
    let ordered = upper.contains(" ORDER BY ");
    let filtered = upper.contains(" WHERE ");
    let sorts_all = plan.iter().any(|d| d.starts_with("USE TEMP B-TREE"));
    let mut out = Vec::new();
    for d in plan {
        let Some(rest) = d.strip_prefix("SCAN ") else {
            continue;
        };
        let name = rest.split_whitespace().next().unwrap_or("");
        let Some(table) = table_of(sql, name) else {
            continue;
        };
        if !GROWING.contains(&table.as_str()) {
            continue;
        }
        // A walk that a LIMIT stops is a page: in the order asked for (of
        // an index, or of the table by its integer key), or of rows that
        // all count (no filter to pass over the others). Anything else
        // reads every row.
        // The dashboard's pipeline totals count and sum every deal by stage,
        // close date and currency: one walk of an index that holds those
        // columns (a covering index), never of the deals' rows. Its cost
        // grows with the number of deals, an index entry each.
        let totals = upper.contains(" GROUP BY ") && d.contains("USING COVERING INDEX");
        let a_page = limited && (ordered || !filtered) && !sorts_all || totals;
        if !a_page {
            out.push(format!("reads every row of {table}: {d}"));
        }
    }
    // A page found through the index of a column of few values (a status, a
    // kind, a stage) and then sorted: it sorts every row of that value, a
    // million orders of one status.
    if sorts_all {
        for d in plan {
            if let Some(col) = broad_search(d) {
                out.push(format!("sorts every row of one {col}: {d}"));
            }
        }
    }
    out
}

/// The column of few values a plan line searches by, as in
/// "SEARCH orders USING INDEX orders_status (status=?)".
fn broad_search(line: &str) -> Option<String> {
    let rest = line.strip_prefix("SEARCH ")?;
    let table = rest.split_whitespace().next()?;
    let entity = Entity::ALL.into_iter().find(|e| e.plural() == table)?;
    let inside = &rest[rest.find('(')? + 1..];
    let col = inside.split(['=', ' ', '>', '<', ')']).next()?;
    custos_store::sql::broad(entity, col).then(|| col.to_string())
}

/// The table a name in a plan stands for: the table itself, or the table an
/// alias in the statement names.
fn table_of(sql: &str, name: &str) -> Option<String> {
    if GROWING.contains(&name) {
        return Some(name.to_string());
    }
    let words: Vec<String> = sql
        .split(|c: char| c.is_whitespace() || c == ',' || c == '(' || c == ')')
        .filter(|w| !w.is_empty())
        .map(|w| w.trim_matches('"').to_string())
        .collect();
    words
        .windows(2)
        .find_map(|w| (w[1] == name && GROWING.contains(&w[0].as_str())).then(|| w[0].clone()))
}

/// Asks SQLite for the plan of every reading statement; returns the problems
/// found, each with the page that ran it, and how many plans were read.
async fn check(db: &std::path::Path, page: &str, statements: &[String]) -> (Vec<String>, usize) {
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}?mode=ro", db.display()))
        .await
        .unwrap();
    let mut out = Vec::new();
    let mut explained = 0;
    for sql in statements {
        let head = sql.trim_start().to_uppercase();
        let reads = ["SELECT", "WITH", "UPDATE", "DELETE"]
            .iter()
            .any(|k| head.starts_with(k));
        // Batches of several statements are writes of new rows.
        if !reads || sql.contains(";\n") {
            continue;
        }
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!("EXPLAIN QUERY PLAN {sql}")))
            .fetch_all(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("{page}: cannot explain {sql}: {e}"));
        let plan: Vec<String> = rows.iter().map(|r| r.get::<String, _>(3)).collect();
        explained += 1;
        for p in problems(sql, &plan) {
            out.push(format!("{page}\n  {p}\n  {sql}\n  plan: {plan:?}"));
        }
    }
    conn.close().await.unwrap();
    (out, explained)
}

/// Checks the statements run since the last visit.
async fn visit(
    db: &std::path::Path,
    page: &str,
    found: &mut Vec<String>,
    explained: &mut usize,
) -> usize {
    let statements = take();
    let (problems, n) = check(db, page, &statements).await;
    // The plans just asked for are statements too: not the next page's.
    take();
    found.extend(problems);
    *explained += n;
    statements.len()
}

/// A user of a custom role based on sales whose record scope is their own
/// records, signed in to the web UI.
async fn own_records_user(s: &TestServer) -> reqwest::Client {
    let cli = custos_service::Principal::cli();
    let mut permissions = custos_domain::Permissions::builtin(Role::Sales);
    permissions.scope = custos_domain::RecordScope::Own;
    s.custos
        .save_role(
            &cli,
            custos_service::RoleInput {
                name: "own_sales".into(),
                label: "Own sales".into(),
                base: Role::Sales,
                permissions,
            },
            true,
        )
        .await
        .unwrap();
    let email = "own-plans@staff.example";
    let invitation = s
        .custos
        .invite_user(&cli, email, "own_sales", None, None)
        .await
        .unwrap();
    s.custos
        .accept_invitation(
            secrecy::ExposeSecret::expose_secret(&invitation.token),
            &secrecy::SecretString::from(custos_testkit::PASSWORD),
            &custos_service::RequestMeta::default(),
        )
        .await
        .unwrap();
    common::ui::sign_in_existing(s, email).await.0
}

fn id(v: &Value) -> String {
    v["id"].as_str().unwrap().to_string()
}

/// Two of every kind of record (so every list has a second page at
/// `limit=1`), tasks due, a consent and a data-subject request.
async fn seed(s: &TestServer, token: &str, owner: &str, round: u32) -> Vec<(Entity, String)> {
    let mut out = Vec::new();
    for n in 0..2 {
        let company = post(
            s,
            token,
            "/api/v1/companies",
            json!({"name": format!("Engines {n} Ltd"), "domain": format!("engines{n}.example")}),
        )
        .await;
        let contact = post(s, token, "/api/v1/contacts", json!({"first_name": "Ada", "last_name": format!("Lovelace{n}"), "email": format!("ada{n}{}@engines.example", if round == 0 { String::new() } else { format!(".{round}") }), "phone": "+44 20 7946 0001", "company_id": id(&company), "owner_id": owner, "tags": ["vip"]})).await;
        let deal = post(s, token, "/api/v1/deals", json!({"title": format!("Engine {n}"), "stage": "proposal", "amount": "12500.00", "currency": "GBP", "company_id": id(&company), "contact_id": id(&contact), "owner_id": owner})).await;
        let activity = post(s, token, "/api/v1/activities", json!({"contact_id": id(&contact), "kind": "task", "body": "Send the notes", "occurred_at": "2026-01-31T09:00:00Z", "due_at": "2026-12-02T09:00:00Z", "done": false, "owner_id": owner})).await;
        let order = post(s, token, "/api/v1/orders", json!({"contact_id": id(&contact), "status": "paid", "total": "99.90", "currency": "GBP", "placed_at": "2026-01-30T10:00:00Z", "owner_id": owner})).await;
        out.extend([
            (Entity::Company, id(&company)),
            (Entity::Contact, id(&contact)),
            (Entity::Deal, id(&deal)),
            (Entity::Activity, id(&activity)),
            (Entity::Order, id(&order)),
        ]);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_and_list_finds_its_rows_through_indexes() {
    if backend() != Backend::Sqlite {
        eprintln!("query plans are checked in the SQLite run (see the module comment)");
        return;
    }
    log();
    let s = TestServer::start_sqlite().await;
    let db = s.data_dir().join("custos.db");
    let admin = s.token_for(Role::Admin).await;
    let po = s.token_for(Role::PrivacyOfficer).await;
    let sales_email = "sales-plans@staff.example";
    let sales = s.token_for_email(Role::Sales, sales_email).await;
    let me = api_get(&s, &sales, "/api/v1/me").await;
    let owner = me["id"].as_str().expect("the user's id").to_string();
    let (sales_ui, _) = common::ui::sign_in_existing(&s, sales_email).await;
    let records = seed(&s, &admin, &owner, 0).await;
    let request = post(
        &s,
        &po,
        "/api/v1/dsar",
        json!({"kind": "access", "regime": "gdpr", "subject_email": "ada0@engines.example"}),
    )
    .await;
    let request = id(&request);
    let (admin_ui, _) = common::ui::sign_in_new(&s, Role::Admin).await;
    let (po_ui, _) = common::ui::sign_in_new(&s, Role::PrivacyOfficer).await;
    // A custom role that sees only its own records: every list and total
    // is then filtered by owner.
    let own_ui = own_records_user(&s).await;
    take();

    let mut found = Vec::new();
    let mut explained = 0;
    let mut statements_of: Vec<(String, usize)> = Vec::new();
    let mut pages = 0;

    // The API lists: every sortable field, both directions, the first page
    // and the next one (the keyset condition).
    for entity in [
        Entity::Contact,
        Entity::Company,
        Entity::Deal,
        Entity::Activity,
        Entity::Order,
    ] {
        let plural = entity.plural();
        for f in inventory::fields(entity).filter(|f| f.sortable) {
            for sort in [f.name.to_string(), format!("-{}", f.name)] {
                let first = format!("/api/v1/{plural}?sort={sort}&limit=1");
                let page = api_get(&s, &admin, &first).await;
                let cursor = page["next_cursor"].as_str().expect("a second page");
                let next = format!("{first}&cursor={cursor}");
                api_get(&s, &admin, &next).await;
                visit(&db, &next, &mut found, &mut explained).await;
                pages += 1;
            }
        }
        for (e, rid) in records.iter().filter(|(e, _)| *e == entity) {
            let path = format!("/api/v1/{}/{rid}", e.plural());
            api_get(&s, &admin, &path).await;
            visit(&db, &path, &mut found, &mut explained).await;
            pages += 1;
        }
    }
    let contact = &records
        .iter()
        .find(|(e, _)| *e == Entity::Contact)
        .unwrap()
        .1;
    for path in [
        format!("/api/v1/activities?contact_id={contact}"),
        format!("/api/v1/orders?contact_id={contact}"),
        format!("/api/v1/deals?contact_id={contact}"),
        "/api/v1/contacts?email=ada1@engines.example".to_string(),
        "/api/v1/deals?stage=proposal".to_string(),
        "/api/v1/audit/events?limit=20".to_string(),
        format!("/api/v1/audit/events?subject_id={contact}"),
        "/api/v1/audit/events?action=contact.read".to_string(),
        "/api/v1/dsar".to_string(),
        format!("/api/v1/dsar/{request}"),
    ] {
        let token = if path.contains("dsar") || path.contains("audit") {
            &po
        } else {
            &admin
        };
        api_get(&s, token, &path).await;
        visit(&db, &path, &mut found, &mut explained).await;
        pages += 1;
    }

    // The web pages, as an administrator, a salesperson (lists scoped to
    // what they own) and a privacy officer.
    let mut ui: Vec<String> = vec![
        "/app".into(),
        "/app/deals/board".into(),
        "/app/search?q=ada1%40engines.example".into(),
        "/app/search?q=Engines".into(),
        "/app/import".into(),
        "/app/security".into(),
        "/app/admin/users".into(),
        "/app/admin/sessions".into(),
        "/app/admin/tokens".into(),
        "/app/admin/roles".into(),
        "/privacy".into(),
    ];
    for (e, rid) in &records {
        ui.push(format!("/app/{}", e.plural()));
        ui.push(format!("/app/{}/{rid}", e.plural()));
        ui.push(format!("/app/{}/{rid}/edit", e.plural()));
    }
    for entity in [
        Entity::Contact,
        Entity::Company,
        Entity::Deal,
        Entity::Activity,
        Entity::Order,
    ] {
        for f in inventory::fields(entity).filter(|f| f.sortable) {
            for sort in [f.name.to_string(), format!("-{}", f.name)] {
                ui.push(format!("/app/{}?sort={sort}", entity.plural()));
            }
        }
        // The filter selects (a status, a kind, a stage, yes or no) and the
        // API's currency filter, in the default order, sorted by that
        // column, and in another order.
        for f in inventory::fields(entity) {
            let value = match f.kind {
                FieldKind::Enum { values } => values[0],
                FieldKind::Stage => "proposal",
                FieldKind::Bool => "true",
                FieldKind::Currency => "EUR",
                _ => continue,
            };
            let base = format!("/app/{}?{}={value}", entity.plural(), f.name);
            ui.push(base.clone());
            ui.push(format!("{base}&sort=-updated_at"));
            if f.sortable {
                ui.push(format!("{base}&sort={}", f.name));
            }
        }
    }
    ui.push("/app/activities?kind=task&sort=due_at".into());
    ui.push("/app/activities?kind=task&sort=-due_at".into());
    ui.push("/app/companies?q=engines".into());
    ui.push("/app/deals?q=renewal".into());
    ui.push("/app/contacts?q=Engines".into());
    let privacy = [
        "/app/audit".to_string(),
        format!("/app/audit?subject_id={contact}"),
        "/app/audit?action=contact.read".to_string(),
        "/app/privacy".into(),
        "/app/privacy/requests".into(),
        format!("/app/privacy/requests/{request}"),
        "/app/privacy/retention".into(),
        "/app/privacy/map".into(),
        "/app/privacy/processing".into(),
        "/app/privacy/processors".into(),
    ];
    for (who, client, paths) in [
        ("admin", &admin_ui, ui.as_slice()),
        ("sales", &sales_ui, ui.as_slice()),
        ("own records", &own_ui, ui.as_slice()),
        ("privacy officer", &po_ui, privacy.as_slice()),
    ] {
        for path in paths {
            let r = client.get(s.url(path)).send().await.unwrap();
            let status = r.status();
            assert!(
                status == 200 || (who != "admin" && status == 403),
                "{who} {path}: {status}"
            );
            let label = format!("{who}: {path}");
            let n = visit(&db, &label, &mut found, &mut explained).await;
            if who == "admin" {
                statements_of.push((path.clone(), n));
            }
            pages += 1;
        }
    }

    // No page runs a statement per row it shows: with six times the
    // records (and a contact with a dozen activities and orders), every
    // page runs as many statements as before, give or take the odd
    // housekeeping write.
    for round in 1..=5 {
        seed(&s, &admin, &owner, round).await;
    }
    for _ in 0..10 {
        post(&s, &admin, "/api/v1/activities", json!({"contact_id": contact, "kind": "call", "body": "Called", "occurred_at": "2026-02-01T09:00:00Z"})).await;
        post(&s, &admin, "/api/v1/orders", json!({"contact_id": contact, "status": "paid", "total": "10.00", "currency": "GBP", "placed_at": "2026-02-01T10:00:00Z"})).await;
    }
    take();
    let mut grew = Vec::new();
    for (path, before) in &statements_of {
        let r = admin_ui.get(s.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        let after = take().len();
        if after > before + 3 {
            grew.push(format!("{path}: {before} statements, then {after}"));
        }
    }
    assert!(
        grew.is_empty(),
        "pages whose statements grew with their rows:\n{}",
        grew.join("\n")
    );

    // Writes find what they change through indexes too: an update, the
    // deletion of an activity and of a contact with its activities and
    // blind-index entries, and an erasure through a data-subject request.
    let extra = post(
        &s,
        &admin,
        "/api/v1/contacts",
        json!({"first_name": "Temp", "last_name": "Orary", "email": "temp@engines.example"}),
    )
    .await;
    let activity = post(&s, &admin, "/api/v1/activities", json!({"contact_id": id(&extra), "kind": "note", "body": "x", "occurred_at": "2026-01-31T09:00:00Z"})).await;
    take();
    let writes = [
        (
            "PATCH",
            format!("/api/v1/contacts/{}", id(&extra)),
            Some(json!({"last_name": "Changed"})),
        ),
        (
            "DELETE",
            format!("/api/v1/activities/{}", id(&activity)),
            None,
        ),
        ("DELETE", format!("/api/v1/contacts/{}", id(&extra)), None),
    ];
    for (method, path, body) in writes {
        let mut r = s
            .client()
            .request(method.parse().unwrap(), s.url(&path))
            .bearer_auth(&admin);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let r = r.send().await.unwrap();
        assert!(r.status().is_success(), "{method} {path}: {}", r.status());
        visit(&db, &format!("{method} {path}"), &mut found, &mut explained).await;
        pages += 1;
    }
    let erase = post(
        &s,
        &po,
        "/api/v1/dsar",
        json!({"kind": "erasure", "regime": "gdpr", "subject_email": "ada1@engines.example"}),
    )
    .await;
    let rid = id(&erase);
    for (step, body) in [
        (
            "verify",
            json!({"method": "operator_attested", "reason": "called back on the number we hold"}),
        ),
        ("fulfil", json!({})),
    ] {
        let path = format!("/api/v1/dsar/{rid}/{step}");
        let r = s
            .client()
            .post(s.url(&path))
            .bearer_auth(&po)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{path}: {}", r.text().await.unwrap());
        visit(&db, &format!("POST {path}"), &mut found, &mut explained).await;
        pages += 1;
    }

    assert!(pages > 100, "only {pages} pages were checked");
    // Every page reads something: statements that were not seen would pass.
    assert!(
        explained >= pages,
        "only {explained} statements were explained for {pages} pages"
    );
    found.dedup();
    assert!(
        found.is_empty(),
        "{} statements read more than their page needs:\n\n{}",
        found.len(),
        found.join("\n\n")
    );
}

#[test]
fn a_full_scan_or_an_unbounded_index_walk_is_a_problem_and_a_search_is_not() {
    let sql = "SELECT * FROM contacts r WHERE r.\"id\" = ?1";
    assert!(
        problems(
            sql,
            &["SEARCH r USING INDEX sqlite_autoindex_contacts_1 (id=?)".into()]
        )
        .is_empty()
    );
    assert_eq!(
        problems(sql, &["SCAN r".into()]).len(),
        1,
        "alias of contacts"
    );
    let count = "SELECT COUNT(*) FROM activities WHERE done IS NULL";
    assert_eq!(
        problems(
            count,
            &["SCAN activities USING COVERING INDEX activities_subject".into()]
        )
        .len(),
        1
    );
    let page = "SELECT * FROM orders ORDER BY created_at DESC LIMIT ?";
    assert!(problems(page, &["SCAN orders USING INDEX orders_created".into()]).is_empty());
    assert_eq!(
        problems(
            page,
            &["SCAN orders".into(), "USE TEMP B-TREE FOR ORDER BY".into()]
        )
        .len(),
        1
    );
    assert!(problems("SELECT * FROM settings", &["SCAN settings".into()]).is_empty());
}

//! `custos migrate-store`: a SQLite deployment moved to PostgreSQL with the
//! real binary. Its data must read back the same over the API, its ledger must
//! verify with the same root, every table must hold as many rows, and a second
//! run into the now-used database must be refused without changing it. Runs in
//! the PostgreSQL pass only (`CUSTOS_TEST_POSTGRES_URL`): it prints "skipped: …"
//! without one, and fails in CI without one.

#![allow(clippy::unwrap_used)]

mod common;

use custos_store::transfer::TableRows;
use custos_store::{PostgresStore, SqliteStore};
use custos_testkit::{TestDatabase, postgres_or_skip};
use serde_json::{Value, json};
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn command(dir: &Path, database: Option<&str>) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_custos"));
    cmd.arg("--data-dir")
        .arg(dir)
        .env_remove("CUSTOS_MASTER_KEY")
        .env_remove("CUSTOS_DATABASE_URL")
        .env_remove("CUSTOS_PASSPHRASE_FILE")
        .env("CUSTOS_LOG", "warn");
    if let Some(db) = database {
        cmd.arg("--database").arg(db);
    }
    cmd
}

fn run(dir: &Path, database: Option<&str>, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = command(dir, database)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    child.wait_with_output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).trim().to_string()
}

#[track_caller]
fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "stdout: {}\nstderr: {}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// A refusal: non-zero exit and one line on stderr that contains `needle`.
#[track_caller]
fn refused(out: &Output, needle: &str) {
    let err = text(&out.stderr);
    assert!(!out.status.success(), "expected a refusal, got: {err}");
    assert_eq!(err.lines().count(), 1, "one line expected: {err}");
    assert!(err.contains(needle), "{err:?} should say {needle:?}");
}

/// A running `custos serve` and the API token the test uses on it.
struct Serve {
    s: common::serve::Serve,
    token: String,
}

impl Serve {
    fn start(dir: &Path, database: Option<&str>, token: &str) -> Serve {
        Serve {
            s: common::serve::start(command(dir, database), dir),
            token: token.to_string(),
        }
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        let r = self
            .s
            .client
            .get(format!("{}{path}", self.s.base))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        let r = self
            .s
            .client
            .post(format!("{}{path}", self.s.base))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let v: Value = r.json().await.unwrap_or(Value::Null);
        assert!((200..300).contains(&status), "POST {path}: {status} {v}");
        v
    }

    /// Stops it the way an operator would, and waits until it is gone.
    fn stop(mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.s.child.id().to_string())
            .status();
        let _ = self.s.child.wait();
    }
}

async fn sqlite_rows(dir: &Path) -> Vec<TableRows> {
    let store = SqliteStore::open(&dir.join("custos.db")).await.unwrap();
    let rows = store.table_rows().await.unwrap();
    custos_store::Store::close(&store).await;
    rows
}

async fn postgres_rows(url: &str, tables: &[String]) -> Vec<TableRows> {
    let store = PostgresStore::connect(url).await.unwrap();
    let rows = store.table_rows(tables).await.unwrap();
    custos_store::Store::close(&store).await;
    rows
}

fn count(rows: &[TableRows], table: &str) -> u64 {
    rows.iter().find(|t| t.table == table).unwrap().rows
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_deployment_moves_to_postgres_whole_and_only_into_an_empty_database() {
    let Some(server) = postgres_or_skip("migrate_store") else {
        return;
    };
    let db = TestDatabase::postgres(&server).await;
    let url = db.url();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");

    // A SQLite deployment with a bit of everything.
    ok(&run(&dir, None, &["init"], None));
    ok(&run(
        &dir,
        None,
        &[
            "user",
            "add",
            "--email",
            "po@move.example",
            "--role",
            "admin",
            "--password-stdin",
        ],
        Some("a long enough passphrase\n"),
    ));
    let token = ok(&run(
        &dir,
        None,
        &[
            "token",
            "create",
            "--email",
            "po@move.example",
            "--name",
            "move",
        ],
        None,
    ));
    ok(&run(&dir, None, &["seed", "--contacts", "40"], None));
    let sqlite = Serve::start(&dir, None, &token);
    let contact = sqlite
        .post(
            "/api/v1/contacts",
            json!({"first_name": "Zoë", "last_name": "Ångström", "email": "zoe@move.example",
                   "phone": "+46 8 123 456", "tags": ["vip", "newsletter"]}),
        )
        .await;
    let id = contact["id"].as_str().unwrap().to_string();
    sqlite
        .post(
            "/api/v1/activities",
            json!({"contact_id": id, "kind": "call", "body": "Talked about the move",
                   "occurred_at": "2026-01-10T10:00:00Z"}),
        )
        .await;
    sqlite
        .post(
            "/api/v1/orders",
            json!({"contact_id": id, "status": "completed", "total": "120.00", "currency": "SEK",
                   "shipping_address": "Drottninggatan 1, Stockholm",
                   "placed_at": "2026-01-10T10:00:00Z", "completed_at": "2026-01-11T10:00:00Z"}),
        )
        .await;
    sqlite
        .post(
            "/api/v1/consents",
            json!({"contact_id": id, "purpose": "marketing_email", "state": "given", "method": "form"}),
        )
        .await;
    sqlite
        .post(
            "/api/v1/dsar",
            json!({"kind": "access", "regime": "gdpr", "subject_email": "zoe@move.example"}),
        )
        .await;
    let (st, before) = sqlite.get(&format!("/api/v1/contacts/{id}")).await;
    assert_eq!(st, 200, "{before}");
    sqlite.stop();

    let verified_sqlite = ok(&run(&dir, None, &["audit", "verify"], None));
    assert!(
        verified_sqlite.starts_with("ledger OK"),
        "{verified_sqlite}"
    );
    let source = sqlite_rows(&dir).await;
    for table in [
        "contacts",
        "activities",
        "orders",
        "consents",
        "requests",
        "users",
        "ledger_leaves",
        "blind_index",
    ] {
        assert!(count(&source, table) > 0, "{table} should hold rows");
    }

    // Refusals that change nothing.
    refused(
        &run(
            &dir,
            None,
            &["migrate-store", "--to", "mysql://x@h/db"],
            None,
        ),
        "postgres://",
    );
    refused(
        &run(
            &tmp.path().join("nowhere"),
            None,
            &["migrate-store", "--to", &url],
            None,
        ),
        "no SQLite database",
    );

    // The move.
    let moved = ok(&run(&dir, None, &["migrate-store", "--to", &url], None));
    assert!(moved.contains("Row counts match"), "{moved}");
    assert!(moved.contains("master key"), "{moved}");
    assert!(moved.contains("custos serve"), "{moved}");
    let names: Vec<String> = source.iter().map(|t| t.table.clone()).collect();
    let target = postgres_rows(&url, &names).await;
    assert_eq!(source, target, "every table holds as many rows");

    // The same ledger: same size, same root, and it verifies on PostgreSQL.
    let verified_pg = ok(&run(&dir, Some(&url), &["audit", "verify"], None));
    assert_eq!(verified_pg, verified_sqlite);
    assert!(
        moved.contains(
            verified_sqlite
                .split(", root ")
                .nth(1)
                .unwrap()
                .split(',')
                .next()
                .unwrap()
        ),
        "the summary names the root: {moved}"
    );

    // The same data, read through the server on PostgreSQL with the same key
    // and the same API token.
    let pg = Serve::start(&dir, Some(&url), &token);
    let (st, after) = pg.get(&format!("/api/v1/contacts/{id}")).await;
    assert_eq!(st, 200, "{after}");
    assert_eq!(after, before);
    for field in ["first_name", "last_name", "email", "phone", "tags"] {
        assert_eq!(after[field], contact[field], "{field}");
    }
    let (st, found) = pg.get("/api/v1/contacts?email=ZOE@move.example").await;
    assert_eq!(st, 200, "{found}");
    assert_eq!(found["items"][0]["id"], json!(id), "blind index moved too");
    pg.stop();

    // A second run into the now-used database is refused and changes nothing.
    let used = postgres_rows(&url, &names).await;
    refused(
        &run(&dir, None, &["migrate-store", "--to", &url], None),
        "already holds data",
    );
    assert_eq!(postgres_rows(&url, &names).await, used);
}

//! Several `custos serve` processes on one PostgreSQL database: each has a data
//! directory of its own (TLS files, pid file) holding the same master key, and
//! all write to one database; the audit ledger must stay one ordered, verifiable
//! log. Runs in the PostgreSQL pass only (`CUSTOS_TEST_POSTGRES_URL`): it
//! prints "skipped: …" without one, and fails in CI without one.

#![allow(clippy::unwrap_used)]

mod common;

use common::serve::Serve;
use custos_testkit::{TestDatabase, postgres_or_skip};
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Instant;

/// The binary with a data directory, the shared database and the shared key.
fn command(dir: &Path, database: &str, key: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_custos"));
    cmd.arg("--data-dir")
        .arg(dir)
        .arg("--database")
        .arg(database)
        .env("CUSTOS_MASTER_KEY", key)
        .env_remove("CUSTOS_DATABASE_URL")
        .env_remove("CUSTOS_PASSPHRASE_FILE")
        .env("CUSTOS_LOG", "warn");
    cmd
}

fn run(dir: &Path, database: &str, key: &str, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = command(dir, database, key)
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

#[track_caller]
fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Starts `custos serve` and waits until it prints that it serves.
fn serve(dir: &Path, database: &str, key: &str) -> Serve {
    common::serve::start(command(dir, database, key), dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_serve_processes_on_one_database_keep_one_verifiable_ledger() {
    let Some(server) = postgres_or_skip("two_serve_processes_on_one_database") else {
        return;
    };
    let db = TestDatabase::postgres(&server).await;
    let url = db.url();
    let key = custos_crypto::MasterKey::generate(1).unwrap().to_base64();
    let key = key.expose_secret();
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());

    // Both start at once on the empty database: migrations and the first
    // installation happen once, whichever process gets there first.
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| serve(a_dir.path(), &url, key));
        let b = s.spawn(|| serve(b_dir.path(), &url, key));
        (a.join().unwrap(), b.join().unwrap())
    });

    // A user and token made through one process's data directory work on both.
    ok(&run(
        a_dir.path(),
        &url,
        key,
        &[
            "user",
            "add",
            "--email",
            "admin@shared.example",
            "--role",
            "admin",
            "--password-stdin",
        ],
        Some("a long shared passphrase\n"),
    ));
    let token = ok(&run(
        b_dir.path(),
        &url,
        key,
        &[
            "token",
            "create",
            "--email",
            "admin@shared.example",
            "--name",
            "two-processes",
        ],
        None,
    ));

    // 2 × 50 contact creations, all in flight at once.
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (n, s) in [&a, &b].into_iter().enumerate() {
        for i in 0..50 {
            let client = s.client.clone();
            let url = format!("{}/api/v1/contacts", s.base);
            let token = token.clone();
            tasks.push(tokio::spawn(async move {
                let body = json!({
                    "first_name": format!("Proc{n}"),
                    "last_name": format!("Writer{i}"),
                    "email": format!("p{n}-{i}@shared.example"),
                });
                let r = client
                    .post(url)
                    .bearer_auth(token)
                    .json(&body)
                    .send()
                    .await
                    .unwrap();
                let status = r.status();
                let v: Value = r.json().await.unwrap();
                assert_eq!(status, 201, "{v}");
                v["id"].as_str().unwrap().to_string()
            }));
        }
    }
    let mut ids = Vec::new();
    for t in tasks {
        ids.push(t.await.unwrap());
    }
    eprintln!(
        "100 creations over two processes in {:?}",
        started.elapsed()
    );
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 100);

    // Each process sees every contact, including the other's.
    for s in [&a, &b] {
        let r = s
            .client
            .get(format!(
                "{}/api/v1/contacts?email=p1-49@shared.example",
                s.base
            ))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        let page: Value = r.json().await.unwrap();
        assert_eq!(page["items"].as_array().unwrap().len(), 1, "{page}");
    }
    drop((a, b));

    // One log, every leaf in order, verified from a third data directory.
    let c_dir = tempfile::tempdir().unwrap();
    let out = ok(&run(c_dir.path(), &url, key, &["audit", "verify"], None));
    assert!(out.starts_with("ledger OK"), "{out}");
    let size: u64 = out
        .split_whitespace()
        .nth(2)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no size in {out:?}"));
    // One leaf per creation, plus the user, the token and the two searches.
    assert!(size >= 104, "{out}");
    drop(db);
}

#[test]
fn backup_create_on_postgres_says_to_use_pg_dump() {
    let Some(server) = postgres_or_skip("backup_create_on_postgres") else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let db = rt.block_on(TestDatabase::postgres(&server));
    let url = db.url();
    let key = custos_crypto::MasterKey::generate(1).unwrap().to_base64();
    let key = key.expose_secret();
    let dir = tempfile::tempdir().unwrap();
    ok(&run(dir.path(), &url, key, &["init"], None));
    let out = run(
        dir.path(),
        &url,
        key,
        &[
            "backup",
            "create",
            dir.path().join("b.bak").to_str().unwrap(),
        ],
        None,
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("pg_dump"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(!dir.path().join("b.bak").exists());
    drop(db);
}

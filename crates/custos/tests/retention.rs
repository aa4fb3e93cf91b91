//! `custos retention run` as an operator runs it, on the suite's backend
//! (SQLite, or PostgreSQL in the PostgreSQL pass): a run killed with SIGKILL
//! between batches is finished by the next run, to the same end state: every
//! due record purged exactly once, the counts whole, the ledger intact.

#![allow(clippy::unwrap_used)]

mod common;

use custos_testkit::TestDatabase;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn custos(dir: &Path, db: &TestDatabase) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_custos"));
    cmd.arg("--data-dir")
        .arg(dir)
        .args(["--database", &db.url()])
        .env_remove("CUSTOS_MASTER_KEY")
        .env_remove("CUSTOS_PASSPHRASE_FILE")
        .stdin(Stdio::null());
    cmd
}

fn ok(out: Output) -> String {
    let said = format!(
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{said}");
    String::from_utf8_lossy(&out.stdout).to_string()
}

fn write_csv(path: &Path, header: &str, rows: impl Iterator<Item = String>) {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    writeln!(f, "{header}").unwrap();
    for r in rows {
        writeln!(f, "{r}").unwrap();
    }
}

/// The purged count of one policy in a certificate.
fn purged(cert: &serde_json::Value, policy: &str) -> u64 {
    cert["policies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["policy"] == policy)
        .unwrap()["purged"]
        .as_u64()
        .unwrap()
}

/// Imports 50 contacts and their orders: `due` completed in 2020 (long
/// past their two years) and `recent` completed a month ago.
fn seed_orders(dir: &Path, db: &TestDatabase, tmp: &Path, due: u64, recent_n: u64) {
    let contacts = tmp.join("contacts.csv");
    write_csv(
        &contacts,
        "first_name,last_name,email",
        (0..50).map(|i| format!("P{i},Shopper,p{i}@example.org")),
    );
    ok(custos(dir, db)
        .args(["import", "contacts"])
        .arg(&contacts)
        .output()
        .unwrap());
    let orders = tmp.join("orders.csv");
    // The binary runs on the system clock: "last month" is by that clock.
    let recent = custos_domain::Clock::now(&custos_domain::SystemClock) - time::Duration::days(30);
    let recent = recent
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    write_csv(
        &orders,
        "contact_email,status,total,currency,shipping_address,placed_at,completed_at",
        (0..due + recent_n).map(|i| {
            let done = if i < due {
                format!("2020-03-{:02}T10:00:00Z", 1 + i % 28)
            } else {
                recent.clone()
            };
            format!(
                "p{}@example.org,completed,10.00,EUR,{i} Old Street,2020-01-01T00:00:00Z,{done}",
                i % 50
            )
        }),
    );
    ok(custos(dir, db)
        .args(["import", "orders"])
        .arg(&orders)
        .output()
        .unwrap());
}

#[test]
fn a_run_killed_between_batches_is_finished_by_the_next() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let db = rt.block_on(TestDatabase::new());
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    ok(custos(&dir, &db).arg("init").output().unwrap());
    // 1,500 orders completed in 2020 (long due) and 20 completed last month.
    const DUE: u64 = 1500;
    seed_orders(&dir, &db, tmp.path(), DUE, 20);
    let dry = ok(custos(&dir, &db)
        .args(["retention", "run", "--dry-run"])
        .output()
        .unwrap());
    assert!(dry.contains(&format!("{DUE}")), "{dry}");

    // A run of one record per batch, paced so that it is still running
    // when killed once some batches are in.
    let mut child = custos(&dir, &db)
        .args(["retention", "run", "--batch", "1", "--pause-ms", "20"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    loop {
        let runs = ok(custos(&dir, &db)
            .args(["retention", "runs"])
            .output()
            .unwrap());
        let purged_so_far: u64 = runs
            .split_whitespace()
            .skip_while(|w| *w != "purged")
            .nth(1)
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        if purged_so_far >= 20 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the run made no progress: {runs}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let runs = ok(custos(&dir, &db)
        .args(["retention", "runs"])
        .output()
        .unwrap());
    assert!(
        runs.contains("UNFINISHED"),
        "the run finished before it was killed: give it more records\n{runs}"
    );

    // The next run finishes it.
    let out = ok(custos(&dir, &db)
        .args(["retention", "run"])
        .output()
        .unwrap());
    assert!(
        out.contains("Finished the run a crash had stopped"),
        "{out}"
    );
    let id = out
        .split("Purge certificate: run ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .unwrap()
        .to_string();
    let cert: serde_json::Value = serde_json::from_str(&ok(custos(&dir, &db)
        .args(["retention", "certificate", &id])
        .output()
        .unwrap()))
    .unwrap();
    assert_eq!(
        purged(&cert, "orders.completed_at.2y"),
        DUE,
        "every due order once"
    );
    let runs = ok(custos(&dir, &db)
        .args(["retention", "runs"])
        .output()
        .unwrap());
    assert!(!runs.contains("UNFINISHED"), "{runs}");
    // Nothing is left to purge, and the ledger verifies.
    let dry = ok(custos(&dir, &db)
        .args(["retention", "run", "--dry-run"])
        .output()
        .unwrap());
    let line = dry
        .lines()
        .find(|l| l.starts_with("orders.completed_at.2y"))
        .unwrap();
    assert_eq!(line.split_whitespace().nth(3), Some("0"), "{dry}");
    let verified = ok(custos(&dir, &db)
        .args(["audit", "verify"])
        .output()
        .unwrap());
    assert!(verified.contains("ledger OK"), "{verified}");
    // Bad input: a wrong run id is one clear line and a failure.
    let bad = custos(&dir, &db)
        .args(["retention", "certificate", "not-a-run"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("is not a run id"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
}

/// `custos serve` runs retention on its schedule (at start, then daily by
/// default), as the system, and /healthz shows the job; a restart within
/// the period does not run it again.
#[test]
fn serve_runs_retention_on_its_schedule() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let db = rt.block_on(TestDatabase::new());
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    ok(custos(&dir, &db).arg("init").output().unwrap());
    seed_orders(&dir, &db, tmp.path(), 30, 5);
    let serve = common::serve::start(custos(&dir, &db), &dir);
    let started = Instant::now();
    let runs = loop {
        let runs = ok(custos(&dir, &db)
            .args(["retention", "runs"])
            .output()
            .unwrap());
        if runs.contains("finished") {
            break runs;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no scheduled run: {runs}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(runs.contains("system"), "{runs}");
    assert!(runs.contains("purged       30"), "{runs}");
    let health: serde_json::Value = rt.block_on(async {
        serve
            .client
            .get(format!("{}/healthz", serve.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    });
    let job = health["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["name"] == "retention")
        .cloned()
        .unwrap_or_default();
    assert_eq!(job["every_seconds"], 86_400, "{health}");
    drop(serve);
    let serve = common::serve::start(custos(&dir, &db), &dir);
    std::thread::sleep(Duration::from_millis(500));
    drop(serve);
    let runs = ok(custos(&dir, &db)
        .args(["retention", "runs"])
        .output()
        .unwrap());
    assert_eq!(runs.lines().count(), 1, "{runs}");
}

//! `custos bench --quick` with the real binary: the table names every figure
//! of the scale goals, each with a number, and the run leaves nothing behind.
//! Not a timing test: no figure is compared with its goal here.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Output};

const FIGURES: [&str; 13] = [
    "1. create contact: full privacy vs plain insert",
    "2. bulk import",
    "3. exact search by email",
    "4. GET contact over HTTPS",
    "5. ledger verify vs raw SHA-256",
    "6. subject access export",
    "7. erasure",
    "8. server memory",
    "9. list page",
    "10. filtered list page",
    "11. dashboard",
    "12. retention dry run",
    "13. retention purge",
];

fn bench(tmp: &Path, database: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_custos"));
    // The data directory given must not be used: the bench has its own.
    cmd.arg("--data-dir")
        .arg(tmp.join("untouched"))
        .env("TMPDIR", tmp)
        .env_remove("CUSTOS_MASTER_KEY")
        .env_remove("CUSTOS_DATABASE_URL")
        .env("CUSTOS_LOG", "error");
    if let Some(db) = database {
        cmd.arg("--database").arg(db);
    }
    cmd.args(["bench", "--quick"]).output().unwrap()
}

#[track_caller]
fn assert_nothing_left(dir: &Path) {
    let left: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

/// The first number in a table cell.
fn first_number(cell: &str) -> Option<f64> {
    let start = cell.find(|c: char| c.is_ascii_digit())?;
    let rest = &cell[start..];
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

#[track_caller]
fn check_table(out: &Output, backend: &str) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "stdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains(backend), "{stdout}");
    assert!(stdout.contains("| figure | result | goal |"), "{stdout}");
    for name in FIGURES {
        let row = stdout
            .lines()
            .find(|l| l.starts_with(&format!("| {name}")))
            .unwrap_or_else(|| panic!("no row for {name:?} in:\n{stdout}"));
        let cells: Vec<&str> = row.split(" | ").collect();
        assert!(cells.len() >= 3, "{row}");
        let n = first_number(cells[1]).unwrap_or_else(|| panic!("no number in {row}"));
        assert!(n.is_finite() && n > 0.0, "{row}");
        assert!(!cells[2].trim().is_empty(), "no goal column in {row}");
    }
    // In number order, 10 to 13 after 9.
    let at: Vec<usize> = FIGURES
        .iter()
        .map(|name| stdout.find(&format!("| {name}")).unwrap_or(0))
        .collect();
    assert!(at.windows(2).all(|w| w[0] < w[1]), "{stdout}");
    // --quick: 200 contacts, 400 activities and 20 more for the exported
    // person; the export is of one person among all the activities.
    let export = stdout
        .lines()
        .find(|l| l.contains("6. subject access export"))
        .unwrap();
    assert!(export.contains("among 420"), "{export}");
    let http = stdout
        .lines()
        .find(|l| l.contains("4. GET contact"))
        .unwrap();
    assert!(
        http.contains("wrk") || http.contains("built-in client"),
        "names the load generator: {http}"
    );
}

#[test]
fn quick_bench_prints_every_figure_and_cleans_up() {
    let tmp = tempfile::tempdir().unwrap();
    let out = bench(tmp.path(), None);
    check_table(&out, "SQLite");
    assert_nothing_left(tmp.path());
}

#[test]
fn quick_bench_on_postgres_uses_a_scratch_database_and_drops_it() {
    let Some(server) = custos_testkit::postgres_or_skip("bench on PostgreSQL") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let out = bench(tmp.path(), Some(&server));
    check_table(&out, "PostgreSQL");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let left: i64 = rt.block_on(async {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(&server).await.unwrap();
        sqlx::query_scalar("SELECT COUNT(*) FROM pg_database WHERE datname LIKE 'custos_bench_%'")
            .fetch_one(&mut conn)
            .await
            .unwrap()
    });
    assert_eq!(left, 0, "the scratch database was dropped");
}

#[test]
fn an_interrupted_bench_removes_its_scratch_data() {
    use std::io::BufRead;
    let tmp = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_custos"))
        .arg("--data-dir")
        .arg(tmp.path().join("untouched"))
        .env("TMPDIR", tmp.path())
        .env_remove("CUSTOS_MASTER_KEY")
        .env_remove("CUSTOS_DATABASE_URL")
        .env("CUSTOS_LOG", "error")
        // Big enough to be still running when interrupted.
        .args(["bench", "--contacts", "2000000"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    while !line.contains("importing") {
        line.clear();
        assert!(err.read_line(&mut line).unwrap() > 0, "bench ended early");
    }
    let made: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().flatten().collect();
    assert_eq!(made.len(), 1, "the scratch directory exists while running");
    // Ctrl-C, as a person at the terminal would.
    let killed = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    assert!(
        !status.success(),
        "an interrupted bench does not report success"
    );
    assert_nothing_left(tmp.path());
}

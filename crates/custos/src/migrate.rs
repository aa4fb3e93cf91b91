//! `custos migrate-store`: move a deployment from the embedded SQLite database
//! to PostgreSQL, and prove the copy is whole before anyone uses it.

use crate::setup::{self, Backend, Paths};
use anyhow::{Context, Result, anyhow, bail};
use custos_service::VerifyReport;
use custos_store::admin::transfer::{self, TableRows};
use custos_store::postgres::{is_postgres_url, redact_url};
use custos_store::{PostgresStore, SqliteStore, Store};
use std::process::ExitCode;

/// The ledger's size and root, from a full verification.
async fn verified_ledger(paths: &Paths, which: &str) -> Result<(u64, String)> {
    let (custos, _) = setup::open(paths, false).await?;
    let bar = crate::cli::progress_bar("ledger entries");
    let report = custos
        .audit_verify(|done, total| {
            if let Some(b) = &bar {
                b.set_length(total);
                b.set_position(done);
            }
        })
        .await;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    custos.close().await;
    match report? {
        VerifyReport::Ok { size, root_hex, .. } => Ok((size, root_hex)),
        VerifyReport::Tampered { index, reason } => Err(anyhow!(
            "the audit ledger in {which} fails verification at entry {index}: {reason}"
        )),
    }
}

/// `custos migrate-store --to postgres://…`
pub async fn migrate_store(paths: &Paths, to: &str, batch: usize) -> Result<ExitCode> {
    if !is_postgres_url(to) {
        bail!("--to must be a PostgreSQL URL: postgres://USER:PASSWORD@HOST:PORT/DATABASE");
    }
    let target = redact_url(to);
    let db = match paths.backend()? {
        Backend::Sqlite(db) => db,
        Backend::Postgres(_) => bail!(
            "migrate-store copies from the embedded SQLite database: leave out --database (and unset CUSTOS_DATABASE_URL)"
        ),
    };
    if !db.exists() {
        bail!(
            "no SQLite database at {}: nothing to migrate (is --data-dir right?)",
            db.display()
        );
    }
    if let Some(pid) = crate::ops::server_running(paths) {
        bail!(
            "custos serve is running on this data directory (pid {pid}); stop it first so no change is left behind"
        );
    }
    // Refuse before anything is written there, migrations included.
    match PostgresStore::first_table_with_rows(to).await {
        Ok(None) => {}
        Ok(Some(table)) => bail!(
            "the PostgreSQL database {target} already holds data (table {table} is not empty); migrate-store only copies into an empty database; nothing was changed"
        ),
        Err(e) => return Err(anyhow!("cannot open the PostgreSQL database {target}: {e}")),
    }

    // The source's ledger must be whole before it is copied: a copy of a
    // broken ledger would only move the problem.
    let (size, root) = verified_ledger(paths, "SQLite")
        .await
        .map_err(|e| anyhow!("{e}; nothing was copied (run `custos audit verify` for details)"))?;

    let src = SqliteStore::open(&db)
        .await
        .with_context(|| format!("cannot open {}", db.display()))?;
    let dst = match PostgresStore::connect(to).await {
        Ok(d) => d,
        Err(e) => {
            src.close().await;
            return Err(anyhow!("cannot open the PostgreSQL database {target}: {e}"));
        }
    };
    let bar = crate::cli::progress_bar("rows");
    let copied = transfer::copy_sqlite_to_postgres(&src, &dst, batch, |done, total| {
        if let Some(b) = &bar {
            b.set_length(total);
            b.set_position(done);
        }
    })
    .await;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let copied = match copied {
        Ok(c) => c,
        Err(e) => {
            src.close().await;
            dst.close().await;
            bail!("copying into {target} failed, nothing was committed there: {e}");
        }
    };
    // Counted again, outside the copy's transaction: what others now see.
    let names: Vec<String> = copied.iter().map(|t| t.table.clone()).collect();
    let landed = dst.table_rows(&names).await;
    src.close().await;
    dst.close().await;
    let landed = landed?;
    let mismatched: Vec<String> = copied
        .iter()
        .zip(&landed)
        .filter(|(a, b)| a != b)
        .map(|(a, b)| format!("{} ({} vs {})", a.table, a.rows, b.rows))
        .collect();
    if !mismatched.is_empty() {
        bail!(
            "row counts differ after the copy: {}; do not use {target}: drop and re-create it, then run again",
            mismatched.join(", ")
        );
    }

    let pg_paths = Paths {
        database: Some(to.to_string()),
        ..paths.clone()
    };
    let (pg_size, pg_root) = verified_ledger(&pg_paths, "PostgreSQL")
        .await
        .map_err(|e| anyhow!("{e}; do not use {target}: drop and re-create it, then run again"))?;
    if (pg_size, pg_root.as_str()) != (size, root.as_str()) {
        bail!(
            "the ledger on PostgreSQL ({pg_size} entries, root {pg_root}) differs from SQLite's ({size} entries, root {root}); do not use {target}"
        );
    }
    print_summary(paths, &db, &target, &copied, size, &root)?;
    Ok(ExitCode::SUCCESS)
}

fn print_summary(
    paths: &Paths,
    db: &std::path::Path,
    target: &str,
    copied: &[TableRows],
    size: u64,
    root: &str,
) -> Result<()> {
    let total: u64 = copied.iter().map(|t| t.rows).sum();
    println!(
        "Copied {total} rows in {} tables from {} to {target}:",
        copied.len(),
        db.display()
    );
    for t in copied.iter().filter(|t| t.rows > 0) {
        println!("  {:<22} {:>12}", t.table, t.rows);
    }
    println!("Row counts match in every table.");
    println!(
        "Audit ledger verified on PostgreSQL: {size} entries, root {root} (the same as in SQLite)."
    );
    let key = setup::provider(paths)?.describe();
    println!();
    println!(
        "The master key ({key}) is still needed: the copied data is sealed under it. Keep the data directory {} (master key, TLS certificate, erasure journal) with the server and back the key up.",
        paths.data_dir.display()
    );
    println!(
        "The SQLite database was not changed; keep it until you have checked the new deployment."
    );
    println!("Next, serve from PostgreSQL:");
    println!(
        "  custos serve --data-dir {} --database '{target}'",
        paths.data_dir.display()
    );
    Ok(())
}

//! `custos retention …`: the retention purge from the command line.

use crate::cli::{RetentionCommand, progress_bar};
use crate::setup::{self, Paths};
use anyhow::{Result, anyhow};
use custos_service::{PolicyOutcome, Principal, RunOptions};
use std::process::ExitCode;

fn table(rows: &[PolicyOutcome], verb: &str) {
    println!(
        "{:<28} {:<10} {:<25} {:>10} {:>8}",
        "policy", "then", "due before", verb, "held"
    );
    for o in rows {
        println!(
            "{:<28} {:<10} {:<25} {:>10} {:>8}",
            o.policy, o.disposal, o.cutoff, o.purged, o.held
        );
    }
}

fn options(batch: u32, pause_ms: u64) -> RunOptions {
    RunOptions {
        batch,
        pause: std::time::Duration::from_millis(pause_ms),
        scheduled: false,
    }
}

/// `custos retention …`
pub async fn command(paths: &Paths, cmd: RetentionCommand) -> Result<ExitCode> {
    let (custos, _) = setup::open(paths, false).await?;
    let cli = Principal::cli();
    let result = match cmd {
        RetentionCommand::Run { dry_run: true, .. } => {
            custos.retention_preview(&cli).await.map(|preview| {
                println!("Dry run at {}: nothing was changed.", preview.at);
                let rows: Vec<PolicyOutcome> =
                    preview.policies.iter().map(|p| p.outcome.clone()).collect();
                table(&rows, "would purge");
                for p in &preview.policies {
                    if p.first.is_empty() {
                        continue;
                    }
                    println!();
                    println!("first due under {}:", p.outcome.policy);
                    for r in &p.first {
                        let held = if r.held { "  (held)" } else { "" };
                        println!("  {}  {}{held}", r.id, r.anchor);
                    }
                }
            })
        }
        RetentionCommand::Run {
            dry_run: false,
            batch,
            pause_ms,
        } => {
            let bar = progress_bar("records");
            let report = custos
                .retention_run(&cli, options(batch, pause_ms), |done, total| {
                    if let Some(b) = &bar {
                        b.set_length(total);
                        b.set_position(done);
                    }
                })
                .await;
            if let Some(b) = bar {
                b.finish_and_clear();
            }
            report.map(|r| {
                if r.resumed {
                    println!("Finished the run a crash had stopped.");
                }
                table(&r.certificate.policies, "purged");
                println!();
                println!(
                    "Purge certificate: run {} (ledger entries {} to {}, signed checkpoint of {}).",
                    r.id,
                    r.certificate.ledger.first_index,
                    r.certificate.ledger.last_index,
                    r.certificate.ledger.tree_size
                );
                println!("  custos retention certificate {} > certificate.json", r.id);
            })
        }
        RetentionCommand::Runs => custos.retention_runs(&cli, 50).await.map(|runs| {
            if runs.is_empty() {
                println!("No retention runs yet. Start one with `custos retention run`.");
            }
            for r in runs {
                println!(
                    "{}  {}  {:<8} purged {:>8}  held {:>6}  {}",
                    r.id,
                    r.started_at,
                    r.actor,
                    r.purged,
                    r.held,
                    if r.finished_at.is_some() {
                        "finished"
                    } else {
                        "UNFINISHED (run `custos retention run` to finish it)"
                    }
                );
            }
        }),
        RetentionCommand::Certificate { id } => {
            let id = uuid::Uuid::parse_str(id.trim())
                .map_err(|_| anyhow!("{id:?} is not a run id (see `custos retention runs`)"))?;
            custos
                .retention_certificate(&cli, id)
                .await
                .and_then(|c| {
                    serde_json::to_string_pretty(&c)
                        .map_err(|e| custos_service::ServiceError::Internal(e.to_string()))
                })
                .map(|json| println!("{json}"))
        }
    };
    custos.close().await;
    result?;
    Ok(ExitCode::SUCCESS)
}

//! Bulk work from the command line: CSV import and fake-data seeding.

use crate::setup::{self, Paths};
use anyhow::{Context, Result, anyhow, bail};
use custos_domain::Entity;
use custos_service::Principal;
use std::path::Path;
use std::process::ExitCode;

/// Where the rejected-rows report of an input file goes.
pub fn rejected_path(file: &Path) -> std::path::PathBuf {
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| "import".into());
    let stem = name.strip_suffix(".csv").unwrap_or(&name).to_string();
    file.with_file_name(format!("{stem}.rejected.csv"))
}

/// `custos import contacts|companies|orders FILE`.
pub async fn import(
    paths: &Paths,
    what: &str,
    file: &Path,
    skip_invalid: bool,
) -> Result<ExitCode> {
    let entity = match what {
        "contacts" => Entity::Contact,
        "companies" => Entity::Company,
        "orders" => Entity::Order,
        other => bail!("cannot import {other}: use contacts, companies or orders"),
    };
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::None)
        .from_path(file)
        .with_context(|| format!("cannot read {}", file.display()))?;
    let headers: Vec<String> = reader
        .headers()
        .map_err(|e| anyhow!("{}: the header row is not valid CSV ({e})", file.display()))?
        .iter()
        .map(str::to_string)
        .collect();
    let mut rows = Vec::new();
    for (i, rec) in reader.records().enumerate() {
        let rec =
            rec.map_err(|e| anyhow!("{} line {}: not valid CSV ({e})", file.display(), i + 2))?;
        rows.push(rec.iter().map(str::to_string).collect::<Vec<_>>());
    }
    let (custos, _) = setup::open(paths, false).await?;
    let progress = crate::cli::progress_bar("rows");
    let report = custos
        .import(
            &Principal::cli(),
            entity,
            &headers,
            &rows,
            skip_invalid,
            |done, total| {
                if let Some(b) = &progress {
                    b.set_length(total);
                    b.set_position(done);
                }
            },
        )
        .await;
    if let Some(b) = progress {
        b.finish_and_clear();
    }
    custos.close().await;
    let report = report?;
    let rejected = rejected_path(file);
    if !report.rejected.is_empty() {
        let mut w = csv::Writer::from_path(&rejected)
            .with_context(|| format!("cannot write {}", rejected.display()))?;
        w.write_record(["line", "field", "reason"])?;
        for r in &report.rejected {
            w.write_record([r.line.to_string(), r.field.clone(), r.reason.clone()])?;
        }
        w.flush()?;
    }
    let bad_lines: std::collections::BTreeSet<u64> =
        report.rejected.iter().map(|r| r.line).collect();
    if !report.committed {
        bail!(
            "{} of {} rows are invalid; nothing was imported (reasons in {}; use --skip-invalid to import the valid rows)",
            bad_lines.len(),
            report.rows,
            rejected.display()
        );
    }
    println!("imported {} of {} {what}", report.imported, report.rows);
    if report.companies_created > 0 {
        println!(
            "created {} companies named in the company column",
            report.companies_created
        );
    }
    if !bad_lines.is_empty() {
        println!(
            "rejected {} rows; reasons in {}",
            bad_lines.len(),
            rejected.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `custos seed --contacts N`.
pub async fn seed(paths: &Paths, contacts: u64) -> Result<ExitCode> {
    if contacts == 0 || contacts > 10_000_000 {
        bail!("--contacts must be from 1 to 10,000,000");
    }
    let (custos, _) = setup::open(paths, true).await?;
    let progress = crate::cli::progress_bar("contacts");
    let report = custos
        .seed(&Principal::cli(), contacts, |done, total| {
            if let Some(b) = &progress {
                b.set_length(total);
                b.set_position(done);
            }
        })
        .await;
    if let Some(b) = progress {
        b.finish_and_clear();
    }
    custos.close().await;
    let r = report?;
    println!(
        "seeded {} contacts, {} companies, {} deals, {} activities, {} orders",
        r.contacts, r.companies, r.deals, r.activities, r.orders
    );
    Ok(ExitCode::SUCCESS)
}

//! Bulk work from the command line: CSV import and fake-data seeding.

use crate::setup::{self, Paths};
use anyhow::{Context, Result, anyhow, bail};
use custos_domain::Entity;
use custos_service::{ImportSource, ImportStage, Principal};
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

/// A CSV file read a chunk at a time, twice (once to check, once to write):
/// the import never holds the whole file.
struct CsvRows {
    path: std::path::PathBuf,
    headers: Vec<String>,
    rows: u64,
    reader: csv::Reader<std::fs::File>,
    record: csv::StringRecord,
    /// The line of the next row (the header is line 1).
    line: u64,
}

impl CsvRows {
    fn reader(path: &Path) -> Result<(csv::Reader<std::fs::File>, Vec<String>)> {
        let mut reader = csv::ReaderBuilder::new()
            .flexible(true)
            .trim(csv::Trim::None)
            .from_path(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let headers = reader
            .headers()
            .map_err(|e| anyhow!("{}: the header row is not valid CSV ({e})", path.display()))?
            .iter()
            .map(str::to_string)
            .collect();
        Ok((reader, headers))
    }

    /// Opens `path` and reads it through once, so that a file that is not
    /// valid CSV is refused before anything starts and the progress bar
    /// knows its length.
    fn open(path: &Path) -> Result<CsvRows> {
        let (mut reader, headers) = Self::reader(path)?;
        let mut record = csv::StringRecord::new();
        let mut rows = 0u64;
        loop {
            match reader.read_record(&mut record) {
                Ok(true) => rows += 1,
                Ok(false) => break,
                Err(e) => bail!("{} line {}: not valid CSV ({e})", path.display(), rows + 2),
            }
        }
        // At the end of the file: the import rewinds before each reading.
        Ok(CsvRows {
            path: path.to_path_buf(),
            headers,
            rows,
            reader,
            record,
            line: rows + 2,
        })
    }
}

impl ImportSource for CsvRows {
    fn row_count(&self) -> u64 {
        self.rows
    }

    fn rewind(&mut self) -> std::result::Result<(), String> {
        let (reader, headers) = Self::reader(&self.path).map_err(|e| e.to_string())?;
        if headers != self.headers {
            return Err(format!(
                "{}: the header row changed while importing",
                self.path.display()
            ));
        }
        self.reader = reader;
        self.line = 2;
        Ok(())
    }

    fn next_row(&mut self) -> Option<std::result::Result<Vec<String>, String>> {
        match self.reader.read_record(&mut self.record) {
            Ok(true) => {
                self.line += 1;
                Some(Ok(self.record.iter().map(str::to_string).collect()))
            }
            Ok(false) => None,
            Err(e) => Some(Err(format!(
                "{} line {}: not valid CSV ({e})",
                self.path.display(),
                self.line
            ))),
        }
    }
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
    let mut source = CsvRows::open(file)?;
    let headers = source.headers.clone();
    let (custos, _) = setup::open(paths, false).await?;
    let progress = crate::cli::progress_bar("rows");
    let mut last_stage = None;
    let report = custos
        .import_from(
            &Principal::cli(),
            entity,
            &headers,
            &mut source,
            skip_invalid,
            |stage, done, total| {
                if let Some(b) = &progress {
                    if last_stage != Some(stage) {
                        // A new pass: its own rate and time left.
                        last_stage = Some(stage);
                        b.reset();
                        b.set_message(match stage {
                            ImportStage::Checking => " checked",
                            ImportStage::Writing => " imported",
                        });
                    }
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

//! Import from a source read twice (once to check, once to write): rows that
//! differ between the readings, a row that cannot be read, and the rows that
//! pass written once each with their leaves.

use crate::common::{Env, TestResult};
use custos_domain::Entity;
use custos_service::{ImportSource, ImportStage, ServiceError};

/// Rows from a list, with a different list for the second reading, and an
/// optional read failure.
struct TwoReadings {
    first: Vec<Vec<String>>,
    second: Vec<Vec<String>>,
    readings: u32,
    next: usize,
    /// Fails at this row of every reading.
    broken_at: Option<usize>,
}

impl TwoReadings {
    fn new(first: Vec<Vec<String>>, second: Vec<Vec<String>>) -> Self {
        TwoReadings {
            first,
            second,
            readings: 0,
            next: 0,
            broken_at: None,
        }
    }

    fn current(&self) -> &[Vec<String>] {
        if self.readings <= 1 {
            &self.first
        } else {
            &self.second
        }
    }
}

impl ImportSource for TwoReadings {
    fn row_count(&self) -> u64 {
        self.first.len() as u64
    }

    fn rewind(&mut self) -> Result<(), String> {
        self.readings += 1;
        self.next = 0;
        Ok(())
    }

    fn next_row(&mut self) -> Option<Result<Vec<String>, String>> {
        if self.broken_at == Some(self.next) {
            return Some(Err(format!("row {} cannot be read", self.next + 1)));
        }
        let row = self.current().get(self.next)?.clone();
        self.next += 1;
        Some(Ok(row))
    }
}

fn headers() -> Vec<String> {
    ["first_name", "last_name", "email"]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

/// `n` valid contact rows, emails `p{i}@import.example`; CHUNK is 500, so
/// 1,200 rows are three chunks.
fn rows(n: usize) -> Vec<Vec<String>> {
    (0..n)
        .map(|i| {
            vec![
                format!("Ann{i}"),
                "Lee".into(),
                format!("p{i}@import.example"),
            ]
        })
        .collect()
}

/// Imports contacts from `source` as the administrator, without progress.
async fn import_contacts(
    env: &Env,
    source: &mut TwoReadings,
    skip_invalid: bool,
) -> Result<custos_service::ImportReport, ServiceError> {
    env.custos
        .import_from(
            &env.admin,
            Entity::Contact,
            &headers(),
            source,
            skip_invalid,
            |_, _, _| {},
        )
        .await
}

async fn contacts(env: &Env) -> TestResult<u64> {
    Ok(env
        .table_counts()
        .await?
        .iter()
        .find(|(e, _)| *e == Entity::Contact)
        .map_or(0, |(_, n)| *n))
}

#[tokio::test]
async fn rows_that_change_between_the_readings_import_nothing() -> TestResult {
    let env = Env::new().await?;
    // One email edited in the last chunk, one row more, one row fewer: each
    // is seen only when the rows are read the second time.
    let mut edited = rows(1200);
    edited[1100][2] = "someone.else@import.example".into();
    let mut longer = rows(1200);
    longer.push(vec![
        "Extra".into(),
        "Row".into(),
        "extra@import.example".into(),
    ]);
    let mut shorter = rows(1200);
    shorter.pop();
    for second in [edited, longer, shorter] {
        let before = env.ledger_size().await?;
        let mut source = TwoReadings::new(rows(1200), second);
        let got = import_contacts(&env, &mut source, false).await;
        assert!(
            matches!(&got, Err(ServiceError::Conflict(m)) if m.contains("changed")),
            "{got:?}"
        );
        assert_eq!(source.readings, 2, "both readings were made");
        assert_eq!(contacts(&env).await?, 0, "nothing was imported");
        assert_eq!(env.ledger_size().await?, before, "no leaf was kept");
    }
    Ok(())
}

#[tokio::test]
async fn a_row_that_cannot_be_read_stops_the_import_with_its_reason() -> TestResult {
    let env = Env::new().await?;
    let mut source = TwoReadings::new(rows(1200), rows(1200));
    source.broken_at = Some(700);
    let got = import_contacts(&env, &mut source, true).await;
    match got {
        Err(ServiceError::Invalid(errors)) => {
            assert_eq!(errors[0].field, "file");
            assert!(
                errors[0].message.contains("row 701 cannot be read"),
                "{errors:?}"
            );
        }
        other => panic!("expected the read error, got {other:?}"),
    }
    assert_eq!(contacts(&env).await?, 0);
    Ok(())
}

#[tokio::test]
async fn each_passing_row_is_written_once_with_progress_for_both_passes() -> TestResult {
    let env = Env::new().await?;
    let mut input = rows(1200);
    // Line 12 (row 10) is a duplicate of line 2, line 1002 has no last name.
    input[10][2] = "p0@import.example".into();
    input[1000][1] = String::new();
    let before = env.ledger_size().await?;
    let mut source = TwoReadings::new(input.clone(), input);
    let mut seen: Vec<(ImportStage, u64, u64)> = Vec::new();
    let report = env
        .custos
        .import_from(
            &env.admin,
            Entity::Contact,
            &headers(),
            &mut source,
            true,
            |s, d, t| seen.push((s, d, t)),
        )
        .await?;
    assert!(report.committed);
    assert_eq!(
        (report.rows, report.valid, report.imported),
        (1200, 1198, 1198)
    );
    let lines: Vec<u64> = report.rejected.iter().map(|e| e.line).collect();
    assert_eq!(lines, vec![12, 1002]);
    assert_eq!(contacts(&env).await?, 1198);
    // One leaf per contact, and the import's own.
    assert_eq!(env.ledger_size().await? - before, 1198 + 1);
    assert_eq!(
        env.find_by(Entity::Contact, "email", "p0@import.example")
            .await?
            .len(),
        1
    );
    assert_eq!(
        env.find_by(Entity::Contact, "email", "p10@import.example")
            .await?
            .len(),
        0
    );
    assert_eq!(
        env.find_by(Entity::Contact, "email", "p1199@import.example")
            .await?
            .len(),
        1
    );
    // Checking counts up to every row, then writing to every row.
    let checking: Vec<u64> = seen
        .iter()
        .filter(|s| s.0 == ImportStage::Checking)
        .map(|s| s.1)
        .collect();
    assert_eq!(checking, vec![500, 1000, 1200]);
    assert!(seen.iter().all(|s| s.2 == 1200), "{seen:?}");
    assert_eq!(seen.last(), Some(&(ImportStage::Writing, 1200, 1200)));
    let first_write = seen.iter().position(|s| s.0 == ImportStage::Writing);
    assert!(first_write.is_some_and(|i| seen[..i].iter().all(|s| s.0 == ImportStage::Checking)));
    Ok(())
}

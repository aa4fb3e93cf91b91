//! The schema's migrations: one list for both backends. Each version has a
//! file in `migrations/sqlite` and one in `migrations/postgres` (the SQL
//! differs in types and in what each database can alter); a test checks
//! that both folders hold exactly the versions listed here.

use crate::exec::Driver;
use crate::sql::{Dialect, Query};
use crate::{ColumnType, Result, StoreError};

/// One version of the schema.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Migration {
    /// The version it brings the schema to.
    pub(crate) version: i64,
    /// Its name, as in its files' names.
    pub(crate) name: &'static str,
    /// Its SQL for SQLite.
    pub(crate) sqlite: &'static str,
    /// Its SQL for PostgreSQL.
    pub(crate) postgres: &'static str,
}

/// Every migration, oldest first.
pub(crate) const ALL: &[Migration] = &[
    Migration {
        version: 1,
        name: "initial",
        sqlite: include_str!("../migrations/sqlite/0001_initial.sql"),
        postgres: include_str!("../migrations/postgres/0001_initial.sql"),
    },
    Migration {
        version: 2,
        name: "ledger_checkpoints",
        sqlite: include_str!("../migrations/sqlite/0002_ledger_checkpoints.sql"),
        postgres: include_str!("../migrations/postgres/0002_ledger_checkpoints.sql"),
    },
    Migration {
        version: 3,
        name: "subject_key_versions",
        sqlite: include_str!("../migrations/sqlite/0003_subject_key_versions.sql"),
        postgres: include_str!("../migrations/postgres/0003_subject_key_versions.sql"),
    },
    Migration {
        version: 4,
        name: "identity",
        sqlite: include_str!("../migrations/sqlite/0004_identity.sql"),
        postgres: include_str!("../migrations/postgres/0004_identity.sql"),
    },
    Migration {
        version: 10,
        name: "dsar_consent",
        sqlite: include_str!("../migrations/sqlite/0010_dsar_consent.sql"),
        postgres: include_str!("../migrations/postgres/0010_dsar_consent.sql"),
    },
    Migration {
        version: 11,
        name: "ledger_bytes",
        sqlite: include_str!("../migrations/sqlite/0011_ledger_bytes.sql"),
        postgres: include_str!("../migrations/postgres/0011_ledger_bytes.sql"),
    },
    Migration {
        version: 12,
        name: "blind_index_key",
        sqlite: include_str!("../migrations/sqlite/0012_blind_index_key.sql"),
        postgres: include_str!("../migrations/postgres/0012_blind_index_key.sql"),
    },
    Migration {
        version: 13,
        name: "sort_indexes",
        sqlite: include_str!("../migrations/sqlite/0013_sort_indexes.sql"),
        postgres: include_str!("../migrations/postgres/0013_sort_indexes.sql"),
    },
    Migration {
        version: 14,
        name: "owner_indexes",
        sqlite: include_str!("../migrations/sqlite/0014_owner_indexes.sql"),
        postgres: include_str!("../migrations/postgres/0014_owner_indexes.sql"),
    },
    Migration {
        version: 15,
        name: "dashboard_and_filter_indexes",
        sqlite: include_str!("../migrations/sqlite/0015_dashboard_and_filter_indexes.sql"),
        postgres: include_str!("../migrations/postgres/0015_dashboard_and_filter_indexes.sql"),
    },
    Migration {
        version: 16,
        name: "won_undated_index",
        sqlite: include_str!("../migrations/sqlite/0016_won_undated_index.sql"),
        postgres: include_str!("../migrations/postgres/0016_won_undated_index.sql"),
    },
    Migration {
        version: 17,
        name: "flags_in_force_index",
        sqlite: include_str!("../migrations/sqlite/0017_flags_in_force_index.sql"),
        postgres: include_str!("../migrations/postgres/0017_flags_in_force_index.sql"),
    },
    Migration {
        version: 18,
        name: "retention_runs",
        sqlite: include_str!("../migrations/sqlite/0018_retention_runs.sql"),
        postgres: include_str!("../migrations/postgres/0018_retention_runs.sql"),
    },
    Migration {
        version: 19,
        name: "retention_policy_versions",
        sqlite: include_str!("../migrations/sqlite/0019_retention_policy_versions.sql"),
        postgres: include_str!("../migrations/postgres/0019_retention_policy_versions.sql"),
    },
];

/// The migrations of one backend as (version, name, SQL), oldest first.
pub(crate) fn list(d: Dialect) -> Vec<(i64, &'static str, &'static str)> {
    ALL.iter()
        .map(|m| {
            let sql = match d {
                Dialect::Sqlite => m.sqlite,
                Dialect::Postgres => m.postgres,
            };
            (m.version, m.name, sql)
        })
        .collect()
}

/// The version the newest migration brings the schema to.
pub(crate) fn latest() -> i64 {
    ALL.iter().map(|m| m.version).max().unwrap_or(0)
}

/// The schema version a database is at (0 when new), refused when it is
/// newer than this Custos knows: an older binary must not write to it.
pub(crate) async fn current<DB>(conn: &mut DB::Connection) -> Result<i64>
where
    DB: Driver,
{
    let q = Query::written("SELECT COALESCE(MAX(version), 0) FROM schema_migrations");
    let rows = DB::fetch(&mut *conn, q, &[ColumnType::Int]).await?;
    let current = match rows.first() {
        Some(row) => row.int(0)?,
        None => 0,
    };
    let latest = latest();
    if current > latest {
        return Err(StoreError::Corrupt(format!(
            "the database is at schema version {current}, newer than this Custos ({latest}): upgrade Custos"
        )));
    }
    Ok(current)
}

/// Applies one migration on a connection (in the caller's transaction)
/// unless the database has it already. Versions need not be contiguous:
/// each one missing is applied. `upgrade` says the database held a schema
/// before: on millions of rows a new index takes minutes, so an upgrade
/// says what the pause at start-up is.
pub(crate) async fn apply<DB>(
    conn: &mut DB::Connection,
    (version, name, sql): (i64, &'static str, &'static str),
    upgrade: bool,
) -> Result<()>
where
    DB: Driver,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
{
    let q = Query::written("SELECT version FROM schema_migrations WHERE version = $1").int(version);
    if !DB::fetch(&mut *conn, q, &[ColumnType::Int])
        .await?
        .is_empty()
    {
        return Ok(());
    }
    if upgrade {
        tracing::info!(version, name, "applying database migration");
    }
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
        .execute(&mut *conn)
        .await?;
    let q = Query::written("INSERT INTO schema_migrations (version, name) VALUES ($1, $2)")
        .int(version)
        .text(name);
    DB::execute(&mut *conn, q).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both folders hold the same versions, each one listed here, in order.
    #[test]
    fn both_folders_hold_the_listed_versions() {
        let listed: Vec<String> = ALL
            .iter()
            .map(|m| format!("{:04}_{}.sql", m.version, m.name))
            .collect();
        for backend in ["sqlite", "postgres"] {
            let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("migrations")
                .join(backend);
            let mut files: Vec<String> = std::fs::read_dir(&dir)
                .expect("the migrations folder")
                .map(|e| {
                    e.expect("an entry")
                        .file_name()
                        .to_string_lossy()
                        .into_owned()
                })
                .collect();
            files.sort();
            assert_eq!(files, listed, "migrations/{backend} against the list");
        }
        let versions: Vec<i64> = ALL.iter().map(|m| m.version).collect();
        let mut sorted = versions.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(versions, sorted, "versions rise, each once");
    }
}

//! Fresh databases for tests, on the backend the suite runs on.
//!
//! The suite runs on SQLite unless `CUSTOS_TEST_POSTGRES_URL` names a
//! PostgreSQL server (a URL of a database there the user may connect to, such
//! as `postgres://postgres@127.0.0.1:5432/postgres`; the user needs the
//! CREATEDB right). Then every [`crate::TestServer`], every [`test_store`] and
//! every [`TestDatabase`] gets a database of its own, `custos_test_<uuid>`,
//! dropped when the test is done with it. `CUSTOS_TEST_BACKEND=sqlite` forces
//! SQLite even when the URL is set (`scripts/test` runs the suite once that way
//! and once with `postgres`).

use async_trait::async_trait;
use custos_store::{PostgresStore, SqliteStore, Store, Tx};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Names the PostgreSQL server the tests may create databases on.
pub const POSTGRES_URL_VAR: &str = "CUSTOS_TEST_POSTGRES_URL";
/// `sqlite` or `postgres`: which backend the suite runs on (default: PostgreSQL
/// when [`POSTGRES_URL_VAR`] is set, else SQLite).
pub const BACKEND_VAR: &str = "CUSTOS_TEST_BACKEND";

/// The backend the suite runs on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    /// The embedded default.
    Sqlite,
    /// A PostgreSQL server, by the URL of a database to connect to for
    /// creating and dropping test databases.
    Postgres(String),
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// The backend chosen by the environment (see the module documentation).
///
/// # Panics
/// When `CUSTOS_TEST_BACKEND=postgres` but no server URL is given, or the
/// backend name is unknown: a misconfigured run must not pass on SQLite.
pub fn backend() -> Backend {
    let url = var(POSTGRES_URL_VAR);
    match var(BACKEND_VAR).as_deref() {
        Some("sqlite") => Backend::Sqlite,
        Some("postgres") => Backend::Postgres(url.unwrap_or_else(|| {
            panic!("{BACKEND_VAR}=postgres needs {POSTGRES_URL_VAR}=postgres://… naming a server")
        })),
        Some(other) => panic!("{BACKEND_VAR} must be sqlite or postgres, not {other:?}"),
        None => url.map_or(Backend::Sqlite, Backend::Postgres),
    }
}

/// The PostgreSQL server URL for a test that only makes sense on PostgreSQL,
/// or `None` after printing why it is skipped.
///
/// # Panics
/// In CI (`CI` set) when no PostgreSQL is configured at all, so a CI run
/// cannot silently skip the PostgreSQL tests. A run that chose SQLite on
/// purpose (`CUSTOS_TEST_BACKEND=sqlite`) skips them: the PostgreSQL pass runs
/// them.
pub fn postgres_or_skip(test: &str) -> Option<String> {
    match backend() {
        Backend::Postgres(url) => Some(url),
        Backend::Sqlite if var(BACKEND_VAR).is_some() => {
            eprintln!("skipped: {test} runs in the PostgreSQL pass ({BACKEND_VAR}=sqlite here)");
            None
        }
        Backend::Sqlite => {
            assert!(
                var("CI").is_none(),
                "{test} needs PostgreSQL: set {POSTGRES_URL_VAR} (.ci/run starts one)"
            );
            eprintln!("skipped: {test} needs PostgreSQL (set {POSTGRES_URL_VAR}=postgres://…)");
            None
        }
    }
}

/// A database of its own for one test: a SQLite file in a temporary folder,
/// or a new PostgreSQL database that is dropped with this value.
pub struct TestDatabase {
    place: Place,
}

enum Place {
    Sqlite(tempfile::TempDir),
    Postgres(Scratch),
}

impl std::fmt::Debug for TestDatabase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestDatabase")
            .field("url", &self.url())
            .finish()
    }
}

impl TestDatabase {
    /// A new, empty database on the suite's backend.
    pub async fn new() -> TestDatabase {
        match backend() {
            Backend::Sqlite => TestDatabase {
                place: Place::Sqlite(tempfile::tempdir().unwrap()),
            },
            Backend::Postgres(server) => Self::postgres(&server).await,
        }
    }

    /// A new, empty database on the PostgreSQL server named by `server_url`.
    pub async fn postgres(server_url: &str) -> TestDatabase {
        TestDatabase {
            place: Place::Postgres(Scratch::create(server_url).await),
        }
    }

    /// Opens a store on it (again, for tests of a restart): migrations run.
    pub async fn open(&self) -> Arc<dyn Store> {
        match &self.place {
            Place::Sqlite(dir) => {
                Arc::new(SqliteStore::open(&sqlite_file(dir.path())).await.unwrap())
            }
            Place::Postgres(db) => Arc::new(PostgresStore::connect(&db.url).await.unwrap()),
        }
    }

    /// The URL to give `custos --database`.
    pub fn url(&self) -> String {
        match &self.place {
            Place::Sqlite(dir) => format!("sqlite://{}", sqlite_file(dir.path()).display()),
            Place::Postgres(db) => db.url.clone(),
        }
    }

    /// Whether it is a PostgreSQL database.
    pub fn is_postgres(&self) -> bool {
        matches!(self.place, Place::Postgres(_))
    }
}

fn sqlite_file(dir: &Path) -> PathBuf {
    dir.join("custos.db")
}

/// A store over a fresh database on the suite's backend: in-memory SQLite, or
/// a new PostgreSQL database that is dropped when the last clone of the store
/// goes.
pub async fn test_store() -> Arc<dyn Store> {
    match backend() {
        Backend::Sqlite => Arc::new(SqliteStore::memory().await.unwrap()),
        Backend::Postgres(server) => {
            let db = Scratch::create(&server).await;
            let inner = PostgresStore::connect(&db.url).await.unwrap();
            Arc::new(ScratchStore { inner, _db: db })
        }
    }
}

/// A PostgreSQL database created for one test and dropped after it.
struct Scratch {
    server_url: String,
    name: String,
    url: String,
}

impl Scratch {
    async fn create(server_url: &str) -> Scratch {
        let name = format!("custos_test_{}", uuid::Uuid::now_v7().simple());
        let url = PostgresStore::create_database(server_url, &name)
            .await
            .unwrap_or_else(|e| panic!("cannot create a test database ({POSTGRES_URL_VAR}): {e}"));
        Scratch {
            server_url: server_url.to_string(),
            name,
            url,
        }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        // Drop cannot await, and may run inside the test's runtime: drop the
        // database from a thread with a runtime of its own. A failure only
        // leaves a database behind (throw-away clusters do not mind).
        let (server, name) = (self.server_url.clone(), self.name.clone());
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(PostgresStore::drop_database(&server, &name))
                .err()
        })
        .join();
        if let Ok(Some(e)) = dropped {
            eprintln!("could not drop test database {}: {e}", self.name);
        }
    }
}

/// A PostgreSQL store that owns its test database.
struct ScratchStore {
    inner: PostgresStore,
    _db: Scratch,
}

#[async_trait]
impl Store for ScratchStore {
    async fn begin(&self) -> custos_store::Result<Box<dyn Tx>> {
        self.inner.begin().await
    }
    async fn begin_read(&self) -> custos_store::Result<Box<dyn Tx>> {
        self.inner.begin_read().await
    }
    async fn begin_bulk(&self) -> custos_store::Result<Box<dyn Tx>> {
        self.inner.begin_bulk().await
    }
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }
    fn files(&self) -> Vec<PathBuf> {
        self.inner.files()
    }
    async fn close(&self) {
        self.inner.close().await;
    }
    async fn snapshot(&self, dest: &Path) -> custos_store::Result<()> {
        self.inner.snapshot(dest).await
    }
    async fn integrity_check(&self) -> custos_store::Result<()> {
        self.inner.integrity_check().await
    }
}

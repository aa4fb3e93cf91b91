//! Test fixtures: a real Custos server over HTTPS on a free port, with its own
//! data directory, and a client that trusts its certificate; fresh stores on
//! the backend the suite runs on (see [`backend`]).

#![allow(clippy::unwrap_used)] // a fixture that cannot start should fail the test loudly

mod database;

pub use database::{
    BACKEND_VAR, Backend, POSTGRES_URL_VAR, TestDatabase, backend, postgres_or_skip, test_store,
};

use custos_crypto::{MasterKey, MasterKeyring};
use custos_domain::{Clock, Role, SystemClock};
use custos_service::{Config, Custos, Principal};
use secrecy::{ExposeSecret, SecretString};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The password every fixture user gets.
pub const PASSWORD: &str = "correct horse battery staple";

/// A running server.
pub struct TestServer {
    /// Base URL, e.g. `https://localhost:43123`.
    pub base: String,
    /// The service behind it (for assertions that bypass HTTP, such as the ledger).
    pub custos: Custos,
    dir: tempfile::TempDir,
    // Dropped after the service: the PostgreSQL database goes with the server.
    _database: Option<TestDatabase>,
    handle: axum_server::Handle,
    client: reqwest::Client,
    cert_pem: Vec<u8>,
}

impl std::fmt::Debug for TestServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestServer")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl TestServer {
    /// Starts a server in a new temporary data directory, on the backend the
    /// suite runs on (SQLite in the data directory, or a new PostgreSQL
    /// database, see [`backend`]), with the MFA policy off ([`password_only`]):
    /// tests of CRM features sign in with a password or use API tokens. Tests
    /// of sign-in itself use [`TestServer::start_with`] and
    /// [`Config::default`], where every account needs a second factor.
    pub async fn start() -> TestServer {
        Self::start_with(password_only()).await
    }

    /// Starts a server with the given configuration, on the suite's backend.
    pub async fn start_with(config: Config) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let database = match backend() {
            Backend::Sqlite => None,
            Backend::Postgres(server) => Some(TestDatabase::postgres(&server).await),
        };
        Self::boot(dir, database, config).await
    }

    /// Starts a server on SQLite in its data directory, whatever the suite's
    /// backend: for tests of what the embedded database writes to disk.
    pub async fn start_sqlite() -> TestServer {
        Self::boot(tempfile::tempdir().unwrap(), None, password_only()).await
    }

    async fn boot(dir: tempfile::TempDir, database: Option<TestDatabase>, config: Config) -> Self {
        let store: Arc<dyn custos_store::Store> = match &database {
            Some(db) => db.open().await,
            None => Arc::new(
                custos_store::SqliteStore::open(&dir.path().join("custos.db"))
                    .await
                    .unwrap(),
            ),
        };
        let ring = MasterKeyring::new(vec![MasterKey::generate(1).unwrap()]).unwrap();
        let custos = Custos::open(store, Arc::new(SystemClock), ring, config)
            .await
            .unwrap();
        let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        custos_web::tls::generate_self_signed(&cert, &key, SystemClock.now()).unwrap();
        let tls = custos_web::tls::server_config(&cert, &key).unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let handle = axum_server::Handle::new();
        let state = custos_web::AppState {
            custos: custos.clone(),
            self_signed: true,
        };
        let h = handle.clone();
        tokio::spawn(async move {
            custos_web::serve(listener, tls, state, h).await.unwrap();
        });
        let cert_pem = std::fs::read(&cert).unwrap();
        let client = client_trusting(&cert_pem, false);
        let base = format!("https://localhost:{port}");
        // Wait until it answers.
        for _ in 0..100 {
            if client.get(format!("{base}/healthz")).send().await.is_ok() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        TestServer {
            base,
            custos,
            dir,
            _database: database,
            handle,
            client,
            cert_pem,
        }
    }

    /// The data directory (generated certificate; on SQLite the database and WAL).
    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// A client that trusts this server's certificate.
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// A new client with a cookie store (for the web UI).
    pub fn browser(&self) -> reqwest::Client {
        client_trusting(&self.cert_pem, true)
    }

    /// The full URL of a path.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Creates a user with `role` (email derived from the role unless given) and
    /// returns an API token for them.
    pub async fn token_for(&self, role: Role) -> String {
        let email = format!(
            "{}-{}@staff.example",
            role.name(),
            uuid::Uuid::now_v7().simple()
        );
        self.token_for_email(role, &email).await
    }

    /// Creates a user with this email and role and returns an API token.
    pub async fn token_for_email(&self, role: Role, email: &str) -> String {
        let cli = Principal::cli();
        self.custos
            .create_user(&cli, email, role, &SecretString::from(PASSWORD), None)
            .await
            .unwrap();
        let t = self
            .custos
            .create_api_token(&cli, email, "test", None)
            .await
            .unwrap();
        t.token.expose_secret().to_string()
    }

    /// Stops the server and closes the database (so the WAL is checkpointed);
    /// a PostgreSQL test database is dropped.
    pub async fn stop(self) -> tempfile::TempDir {
        self.handle
            .graceful_shutdown(Some(std::time::Duration::from_secs(2)));
        self.custos.close().await;
        drop(self._database);
        self.dir
    }
}

/// The default configuration with the MFA policy off.
pub fn password_only() -> Config {
    Config {
        mfa_required: false,
        ..Config::default()
    }
}

fn client_trusting(pem: &[u8], cookies: bool) -> reqwest::Client {
    let cert = reqwest::Certificate::from_pem(pem).unwrap();
    reqwest::Client::builder()
        .add_root_certificate(cert)
        .tls_built_in_root_certs(false)
        .cookie_store(cookies)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Every file under a directory, recursively.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// Whether `needle` occurs in `haystack`.
pub fn contains_bytes(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// Which of `needles` occur anywhere in the files under `dir` (one pass per
/// file, so thousands of needles stay fast). Returns (file, needle) pairs.
pub fn find_in_files(dir: &Path, needles: &[Vec<u8>]) -> Vec<(PathBuf, String)> {
    let ac = aho_corasick::AhoCorasick::new(needles).unwrap();
    let mut found = Vec::new();
    for f in files_under(dir) {
        let Ok(bytes) = std::fs::read(&f) else {
            continue;
        };
        for m in ac.find_overlapping_iter(&bytes) {
            let n = String::from_utf8_lossy(&needles[m.pattern().as_usize()]).to_string();
            found.push((f.clone(), n));
        }
    }
    found
}

/// The JSON a value is served as, for assertions on what the API answers
/// (`view.to_json()["email"]`): the same serialisation as the web crate's.
pub trait AsJson {
    /// The value serialised to JSON.
    fn to_json(&self) -> serde_json::Value;
}

impl<T: serde::Serialize> AsJson for T {
    fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("a service result serialises to JSON")
    }
}

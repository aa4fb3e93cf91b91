//! Wiring: the data directory, the master key, the store, the service.

use crate::keyprovider::{self, EnvKey, KeyFile, KeyProvider, Passphrase};
use anyhow::{Context, Result, anyhow, bail};
use custos_crypto::MasterKeyring;
use custos_domain::SystemClock;
use custos_service::{Config, Custos, ServiceError};
use custos_store::{PostgresStore, SqliteStore, Store};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// File names inside the data directory.
pub const DB_FILE: &str = "custos.db";
/// The master key file (mode 0600).
pub const KEY_FILE: &str = "master.key";
/// Holds the pid of a running `custos serve`.
pub const PID_FILE: &str = "custos.pid";
/// The passphrase-protected keyring, when that provider is used.
pub const ENC_KEY_FILE: &str = "master.key.enc";
/// Erasures journalled outside the database (subject ids and times only).
pub const ERASURE_JOURNAL: &str = "erasures.log";
/// TLS material.
pub const TLS_DIR: &str = "tls";

/// Where things are.
#[derive(Debug, Clone)]
pub struct Paths {
    /// The data directory.
    pub data_dir: PathBuf,
    /// The database URL, if not the default SQLite file.
    pub database: Option<String>,
    /// An explicit master key file.
    pub master_key_file: Option<PathBuf>,
    /// A file holding the passphrase of a passphrase-protected keyring.
    pub passphrase_file: Option<PathBuf>,
}

impl Paths {
    fn key_file(&self) -> PathBuf {
        self.master_key_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join(KEY_FILE))
    }

    /// The backend the database URL names. Chosen once, here: everything
    /// after `open` sees only the store trait.
    pub fn backend(&self) -> Result<Backend> {
        match &self.database {
            None => Ok(Backend::Sqlite(self.data_dir.join(DB_FILE))),
            Some(url) if url.starts_with("sqlite://") => {
                Ok(Backend::Sqlite(PathBuf::from(&url["sqlite://".len()..])))
            }
            Some(url) if custos_store::postgres::is_postgres_url(url) => {
                Ok(Backend::Postgres(url.clone()))
            }
            Some(_) => bail!("--database must be sqlite://PATH or postgres://…"),
        }
    }
}

/// Where the database lives.
#[derive(Debug, Clone)]
pub enum Backend {
    /// The embedded SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL database, by URL (which may hold a password: print it with
    /// [`Backend::describe`] only).
    Postgres(String),
}

impl Backend {
    /// For messages: the file, or the URL without its password.
    pub fn describe(&self) -> String {
        match self {
            Backend::Sqlite(p) => p.display().to_string(),
            Backend::Postgres(url) => custos_store::postgres::redact_url(url),
        }
    }
}

/// One readable line for an error, with the service's field errors spelled out.
pub fn describe(e: &anyhow::Error) -> String {
    if let Some(ServiceError::Invalid(errors)) = e.downcast_ref::<ServiceError>() {
        return errors
            .iter()
            .map(|f| format!("{}: {}", f.field, f.message))
            .collect::<Vec<_>>()
            .join("; ");
    }
    if let Some(ServiceError::Internal(detail)) = e.downcast_ref::<ServiceError>() {
        return detail.clone();
    }
    let mut s = e.to_string();
    for cause in e.chain().skip(1) {
        s.push_str(": ");
        s.push_str(&cause.to_string());
    }
    s
}

fn ensure_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("cannot restrict {}", dir.display()))?;
    }
    Ok(())
}

/// The master-key provider for these paths: `CUSTOS_MASTER_KEY` if set; a
/// passphrase-protected keyring if a passphrase file is given or the data
/// directory holds one; else the key file.
pub fn provider(paths: &Paths) -> Result<Arc<dyn KeyProvider>> {
    if let Some(env) = EnvKey::from_env() {
        return Ok(Arc::new(env));
    }
    let enc = paths.data_dir.join(ENC_KEY_FILE);
    if paths.passphrase_file.is_some() || enc.exists() {
        return Ok(Arc::new(Passphrase::read(
            enc,
            paths.passphrase_file.as_deref(),
        )?));
    }
    Ok(Arc::new(KeyFile {
        path: paths.key_file(),
    }))
}

/// Loads the master keyring. When `create` is set and none exists, a new one
/// is created; refuses to create one beside an existing database.
fn master_keyring(
    provider: &dyn KeyProvider,
    db_exists: bool,
    create: bool,
) -> Result<(MasterKeyring, bool)> {
    if provider.exists() {
        return Ok((provider.load()?, false));
    }
    if db_exists {
        bail!(
            "the master key ({}) is missing, but a database exists: restore it (or set CUSTOS_MASTER_KEY); without it the data cannot be read",
            provider.describe()
        );
    }
    if !create {
        bail!(
            "{} does not exist: run `custos init` first",
            provider.describe()
        );
    }
    Ok((keyprovider::create(provider)?, true))
}

/// What `open` did.
#[derive(Debug, Default)]
pub struct Opened {
    /// A new key file was written.
    pub created_key: bool,
    /// The database file was new.
    pub created_db: bool,
}

/// Opens (and with `create`, initialises) Custos in the data directory, on
/// the backend `--database` names. The data directory holds the master key and
/// TLS files whatever the backend.
pub async fn open(paths: &Paths, create: bool) -> Result<(Custos, Opened)> {
    open_with_clock(paths, create, Arc::new(SystemClock)).await
}

/// [`open`] with the clock Custos reads: the benchmark's retention figures
/// run on a clock set ahead, so the loaded history has records due.
pub async fn open_with_clock(
    paths: &Paths,
    create: bool,
    clock: Arc<dyn custos_domain::Clock>,
) -> Result<(Custos, Opened)> {
    if create {
        ensure_dir(&paths.data_dir)?;
    }
    let backend = paths.backend()?;
    let (store, provider, ring, created_key, db_exists): (Arc<dyn Store>, _, _, _, _) =
        match &backend {
            Backend::Sqlite(db) => {
                let db_exists = db.exists();
                if !db_exists && !create {
                    bail!(
                        "no database at {}: run `custos init` first (or pass --data-dir)",
                        db.display()
                    );
                }
                // The key comes first, so a refusal leaves no empty database file.
                let provider = provider(paths)?;
                let (ring, created_key) = master_keyring(provider.as_ref(), db_exists, create)?;
                let store = SqliteStore::open(db)
                    .await
                    .with_context(|| format!("cannot open {}", db.display()))?;
                (Arc::new(store), provider, ring, created_key, db_exists)
            }
            Backend::Postgres(url) => {
                // The database itself must exist (made by its administrator);
                // Custos creates its tables in it. Connecting first tells whether
                // it already holds an installation, which decides whether a new
                // master key may be made.
                let store = PostgresStore::connect(url).await.with_context(|| {
                    format!("cannot open the PostgreSQL database {}", backend.describe())
                })?;
                let initialised = store.is_initialised().await?;
                if !initialised && !create {
                    store.close().await;
                    bail!(
                        "the PostgreSQL database {} holds no Custos installation: run `custos init --database …` first",
                        backend.describe()
                    );
                }
                let keyring = provider(paths).and_then(|p| {
                    let (ring, created) = master_keyring(p.as_ref(), initialised, create)?;
                    Ok((p, ring, created))
                });
                let (provider, ring, created_key) = match keyring {
                    Ok(k) => k,
                    Err(e) => {
                        store.close().await;
                        return Err(e);
                    }
                };
                (Arc::new(store), provider, ring, created_key, initialised)
            }
        };
    let custos = Custos::open(store, clock, ring, Config::default()).await?;
    // A rotation by another process adds master versions this one must re-read.
    let reload = provider.clone();
    custos.set_key_reload(Arc::new(move || reload.load().map_err(|e| e.to_string())));
    let journal = paths.data_dir.join(ERASURE_JOURNAL);
    custos.set_erasure_journal(Arc::new(move |subject, at| {
        if let Err(e) = append_journal(&journal, subject, at) {
            tracing::error!(error = %e, "could not journal an erasure");
        }
    }));
    Ok((
        custos,
        Opened {
            created_key,
            created_db: !db_exists,
        },
    ))
}

/// Makes sure a TLS certificate exists (generating or renewing the self-signed
/// one); returns the cert and key paths and whether they are self-signed.
pub fn tls_files(
    paths: &Paths,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
) -> Result<(PathBuf, PathBuf, bool)> {
    use custos_domain::Clock;
    match (cert, key) {
        (Some(c), Some(k)) => Ok((c, k, false)),
        (None, None) => {
            let dir = paths.data_dir.join(TLS_DIR);
            ensure_dir(&dir)?;
            let (c, k) = (dir.join("cert.pem"), dir.join("key.pem"));
            let now = SystemClock.now();
            let renew = match custos_web::tls::days_left(&c, now) {
                Ok(days) => days < custos_web::tls::RENEW_DAYS,
                Err(_) => true,
            };
            if renew || !k.exists() {
                custos_web::tls::generate_self_signed(&c, &k, now).map_err(|e| anyhow!("{e}"))?;
                tracing::info!(cert = %c.display(), "generated a self-signed TLS certificate");
            }
            Ok((c, k, true))
        }
        _ => bail!("--tls-cert and --tls-key go together"),
    }
}

/// Appends one erasure to the journal (one line: subject id, Unix ms).
fn append_journal(path: &Path, subject: uuid::Uuid, at_ms: i64) -> std::io::Result<()> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    writeln!(f, "{subject} {at_ms}")?;
    f.sync_all()
}

/// Subjects in the erasure journal erased at or after `since_ms`.
pub fn journal_since(data_dir: &Path, since_ms: i64) -> Result<Vec<uuid::Uuid>> {
    let path = data_dir.join(ERASURE_JOURNAL);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(anyhow!("cannot read {}: {e}", path.display())),
    };
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let mut parts = line.split_whitespace();
        let (Some(id), Some(at)) = (parts.next(), parts.next()) else {
            bail!(
                "{} line {}: expected `<subject id> <time>`",
                path.display(),
                n + 1
            );
        };
        let id = uuid::Uuid::parse_str(id)
            .map_err(|_| anyhow!("{} line {}: bad subject id", path.display(), n + 1))?;
        let at: i64 = at
            .parse()
            .map_err(|_| anyhow!("{} line {}: bad time", path.display(), n + 1))?;
        if at >= since_ms {
            out.push(id);
        }
    }
    Ok(out)
}

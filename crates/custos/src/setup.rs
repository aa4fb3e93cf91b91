//! Wiring: the data directory, the master key, the store, the service.

use anyhow::{Context, Result, anyhow, bail};
use custos_crypto::{MasterKey, MasterKeyring};
use custos_domain::SystemClock;
use custos_service::{Config, Custos, ServiceError};
use custos_store::SqliteStore;
use secrecy::ExposeSecret;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// File names inside the data directory.
pub const DB_FILE: &str = "custos.db";
/// The master key file (mode 0600).
pub const KEY_FILE: &str = "master.key";
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
}

impl Paths {
    fn key_file(&self) -> PathBuf {
        self.master_key_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join(KEY_FILE))
    }

    fn sqlite_path(&self) -> Result<PathBuf> {
        match &self.database {
            None => Ok(self.data_dir.join(DB_FILE)),
            Some(url) if url.starts_with("sqlite://") => {
                Ok(PathBuf::from(&url["sqlite://".len()..]))
            }
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                bail!(
                    "the PostgreSQL backend is not in this build yet; use the embedded SQLite database (omit --database)"
                )
            }
            Some(_) => bail!("--database must be sqlite://PATH or postgres://…"),
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

/// Loads the master keyring: `CUSTOS_MASTER_KEY`, else the key file. When
/// `create` is set and neither exists, a new key file is written (mode 0600).
fn master_keyring(paths: &Paths, db_exists: bool, create: bool) -> Result<(MasterKeyring, bool)> {
    if let Ok(v) = std::env::var("CUSTOS_MASTER_KEY") {
        let ring = MasterKeyring::from_env_value(v.trim()).map_err(|e| {
            anyhow!("CUSTOS_MASTER_KEY is not a base64 key of 32 bytes (or N:base64): {e}")
        })?;
        return Ok((ring, false));
    }
    let file = paths.key_file();
    match std::fs::read_to_string(&file) {
        Ok(text) => {
            let ring = MasterKeyring::parse_key_file(&text)
                .map_err(|e| anyhow!("{}: {e}", file.display()))?;
            Ok((ring, false))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if db_exists {
                bail!(
                    "the master key file {} is missing, but a database exists: restore the key file (or set CUSTOS_MASTER_KEY); without it the data cannot be read",
                    file.display()
                );
            }
            if !create {
                bail!("{} does not exist: run `custos init` first", file.display());
            }
            let ring = MasterKeyring::new(vec![MasterKey::generate(1)?])?;
            custos_web::tls::write_private(&file, ring.to_key_file().expose_secret().as_bytes())
                .map_err(|e| anyhow!("{e}"))?;
            Ok((ring, true))
        }
        Err(e) => Err(anyhow!("cannot read {}: {e}", file.display())),
    }
}

/// What `open` did.
#[derive(Debug, Default)]
pub struct Opened {
    /// A new key file was written.
    pub created_key: bool,
    /// The database file was new.
    pub created_db: bool,
}

/// Opens (and with `create`, initialises) Custos in the data directory.
pub async fn open(paths: &Paths, create: bool) -> Result<(Custos, Opened)> {
    let db = paths.sqlite_path()?;
    let db_exists = db.exists();
    if !db_exists && !create {
        bail!(
            "no database at {}: run `custos init` first (or pass --data-dir)",
            db.display()
        );
    }
    if create {
        ensure_dir(&paths.data_dir)?;
    }
    let (ring, created_key) = master_keyring(paths, db_exists, create)?;
    let store = SqliteStore::open(&db)
        .await
        .with_context(|| format!("cannot open {}", db.display()))?;
    let custos = Custos::open(
        Arc::new(store),
        Arc::new(SystemClock),
        ring,
        Config::default(),
    )
    .await?;
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

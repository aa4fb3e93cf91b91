//! Where the master keyring comes from. Every provider gives the same thing, a
//! `MasterKeyring`, so the rest of Custos does not care which one is in use.
//!
//! Built in: a key file in the data directory (the default), the environment
//! variable `CUSTOS_MASTER_KEY` (containers), and a passphrase that unlocks an
//! encrypted keyring file (Argon2id-derived key). An external KMS (Vault
//! transit, a cloud KMS) fits the same trait: `load` asks the KMS to unwrap a
//! stored keyring blob, `save` asks it to wrap one. See docs/keys.md.

use anyhow::{Context, Result, anyhow, bail};
use base64::Engine;
use custos_crypto::{DataKey, MasterKey, MasterKeyring, SealContext, derive_key, open, seal};
use secrecy::{ExposeSecret, SecretString};
use std::path::{Path, PathBuf};

/// A source of the master keyring.
pub trait KeyProvider: Send + Sync {
    /// What it is, for status output (never key material).
    fn describe(&self) -> String;
    /// Whether a keyring exists there already.
    fn exists(&self) -> bool;
    /// Reads the keyring.
    fn load(&self) -> Result<MasterKeyring>;
    /// Stores a keyring (after rotation or retirement), replacing the old one
    /// atomically.
    fn save(&self, ring: &MasterKeyring) -> Result<()>;
}

/// Creates a new keyring with one fresh master key (version 1) and saves it.
pub fn create(provider: &dyn KeyProvider) -> Result<MasterKeyring> {
    let ring = MasterKeyring::new(vec![MasterKey::generate(1)?])?;
    provider.save(&ring)?;
    Ok(ring)
}

/// Writes `bytes` to `path` through a temporary file and a rename, mode 0600,
/// so a crash never leaves a half-written key file.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    custos_web::tls::write_private(&tmp, bytes).map_err(|e| anyhow!("{e}"))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot replace {}", path.display()))?;
    Ok(())
}

/// The default: a text key file (`<version> <base64>` lines), mode 0600.
pub struct KeyFile {
    /// Its path.
    pub path: PathBuf,
}

impl KeyProvider for KeyFile {
    fn describe(&self) -> String {
        format!("key file {}", self.path.display())
    }

    fn exists(&self) -> bool {
        self.path.exists()
    }

    fn load(&self) -> Result<MasterKeyring> {
        let text = std::fs::read_to_string(&self.path)
            .with_context(|| format!("cannot read {}", self.path.display()))?;
        MasterKeyring::parse_key_file(&text).map_err(|e| anyhow!("{}: {e}", self.path.display()))
    }

    fn save(&self, ring: &MasterKeyring) -> Result<()> {
        write_atomically(&self.path, ring.to_key_file().expose_secret().as_bytes())
    }
}

/// `CUSTOS_MASTER_KEY`: base64 of 32 bytes (version 1), or `1:b64,2:b64` for
/// several versions. Read-only: after a rotation the operator updates the variable.
pub struct EnvKey {
    value: SecretString,
}

impl EnvKey {
    /// The provider, if the variable is set.
    pub fn from_env() -> Option<EnvKey> {
        std::env::var("CUSTOS_MASTER_KEY").ok().map(|v| EnvKey {
            value: SecretString::from(v),
        })
    }
}

impl KeyProvider for EnvKey {
    fn describe(&self) -> String {
        "environment variable CUSTOS_MASTER_KEY".into()
    }

    fn exists(&self) -> bool {
        true
    }

    fn load(&self) -> Result<MasterKeyring> {
        MasterKeyring::from_env_value(self.value.expose_secret().trim()).map_err(|e| {
            anyhow!("CUSTOS_MASTER_KEY is not a base64 key of 32 bytes (or N:base64,…): {e}")
        })
    }

    fn save(&self, ring: &MasterKeyring) -> Result<()> {
        let _ = ring;
        bail!(
            "the master key comes from CUSTOS_MASTER_KEY, which Custos cannot change: use a key file (unset the variable) to rotate, or add the new version to the variable by hand"
        )
    }
}

/// A keyring file encrypted under a key derived from a passphrase (Argon2id,
/// 64 MiB, 3 passes). The file holds: a format line, the salt, the sealed keyring.
pub struct Passphrase {
    /// The encrypted keyring file.
    pub path: PathBuf,
    /// The passphrase.
    pub passphrase: SecretString,
}

const ENC_HEADER: &str = "custos-keyring-v1";

fn keyring_ctx() -> SealContext<'static> {
    SealContext {
        tenant: "",
        entity: "keyring",
        field: "master",
        record_id: "",
        subject_id: "",
    }
}

impl Passphrase {
    /// Reads the passphrase from a file (first line) or, on a terminal, asks for it.
    pub fn read(path: PathBuf, passphrase_file: Option<&Path>) -> Result<Passphrase> {
        let passphrase = match passphrase_file {
            Some(f) => {
                let text = std::fs::read_to_string(f)
                    .with_context(|| format!("cannot read {}", f.display()))?;
                text.lines().next().unwrap_or_default().to_string()
            }
            None => rpassword::prompt_password("Custos master passphrase: ")
                .context("no passphrase: give --passphrase-file or run on a terminal")?,
        };
        if passphrase.chars().count() < 12 {
            bail!("the master passphrase must be at least 12 characters");
        }
        Ok(Passphrase {
            path,
            passphrase: SecretString::from(passphrase),
        })
    }
}

impl KeyProvider for Passphrase {
    fn describe(&self) -> String {
        format!("passphrase-protected keyring {}", self.path.display())
    }

    fn exists(&self) -> bool {
        self.path.exists()
    }

    fn load(&self) -> Result<MasterKeyring> {
        let text = std::fs::read_to_string(&self.path)
            .with_context(|| format!("cannot read {}", self.path.display()))?;
        let mut lines = text.lines();
        if lines.next() != Some(ENC_HEADER) {
            bail!("{} is not a Custos encrypted keyring", self.path.display());
        }
        let b64 = base64::engine::general_purpose::STANDARD;
        let salt = b64
            .decode(lines.next().unwrap_or_default())
            .context("keyring salt")?;
        let sealed = b64
            .decode(lines.next().unwrap_or_default())
            .context("keyring body")?;
        let key = derive_key(&self.passphrase, &salt)?;
        let plain = open(&DataKey::from_bytes(1, *key), &keyring_ctx(), &sealed)
            .map_err(|_| anyhow!("wrong passphrase for {}", self.path.display()))?;
        let text = std::str::from_utf8(&plain).context("keyring body")?;
        Ok(MasterKeyring::parse_key_file(text)?)
    }

    fn save(&self, ring: &MasterKeyring) -> Result<()> {
        let salt: [u8; 16] = custos_crypto::random_bytes()?;
        let key = derive_key(&self.passphrase, &salt)?;
        let sealed = seal(
            &DataKey::from_bytes(1, *key),
            &keyring_ctx(),
            ring.to_key_file().expose_secret().as_bytes(),
        )?;
        let b64 = base64::engine::general_purpose::STANDARD;
        let text = format!(
            "{ENC_HEADER}\n{}\n{}\n",
            b64.encode(salt),
            b64.encode(sealed)
        );
        write_atomically(&self.path, text.as_bytes())
    }
}

//! Cryptography for Custos: the key hierarchy, sealed fields, blind indexes,
//! password hashing, tokens, TOTP and WebAuthn verification.
//!
//! The key hierarchy is: a versioned [`MasterKey`] (the key-encryption key, held in a
//! [`MasterKeyring`] so old versions can still be read during a rotation) wraps one
//! [`DataKey`] per data subject; a data key [`seal`]s that subject's personal fields
//! with AES-256-GCM, binding each ciphertext to its tenant, entity, field, record and
//! subject. A [`BlindIndexRoot`] derives one [`BlindIndexKey`] per field, giving
//! exact-match search over sealed values without decrypting them.
//!
//! Everything here is pure computation: the crate reads no files, no environment and no
//! clock, so the callers decide where keys come from and tests stay deterministic.
//! AES-GCM, HMAC, HKDF and SHA-256 come from `ring`; Argon2id from the `argon2` crate.

mod backup;
mod blind_index;
mod common_passwords;
mod keys;
pub mod normalize;
mod password;
mod seal;
mod token;
pub mod totp;
pub mod webauthn;

pub use backup::{BackupHeader, decrypt_backup, encrypt_backup};
pub use blind_index::{BlindIndexKey, BlindIndexRoot, blind_index_bits, hmac_sha256};
pub use common_passwords::{common_password_count, is_common_password};
pub use keys::{DataKey, MasterKey, MasterKeyring, wrapped_version};
pub use password::{
    derive_key, dummy_verify_password, hash_password, password_needs_rehash, verify_password,
};
pub use seal::{SealContext, aes256gcm_open, aes256gcm_seal, open, seal, sealed_key_version};
pub use token::{constant_time_eq, hash_token, new_token, random_bytes, sha256};

/// Length in bytes of every symmetric key in this crate (AES-256, HMAC-SHA-256 keys).
pub const KEY_LEN: usize = 32;

/// Everything that can go wrong in this crate.
///
/// Messages are static on purpose: an error must never carry key bytes, plaintext or
/// a password into a log line or a client response.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// Authentication failed: the wrong key, the wrong context, or the bytes were changed.
    /// Deliberately one variant so a caller cannot tell an attacker which one it was.
    #[error("sealed value failed to open (wrong key, wrong context or tampered)")]
    Open,
    /// The input does not have the expected layout (too short, unknown format version,
    /// bad encoding); the payload names what was malformed.
    #[error("malformed {0}")]
    Format(&'static str),
    /// The operating system's random number generator failed.
    #[error("random number generator failed")]
    Rng,
    /// Argon2 rejected its inputs or parameters.
    #[error("password hashing failed")]
    PasswordHash,
    /// A key had the wrong length or encoding, or a keyring was inconsistent.
    #[error("invalid key: {0}")]
    InvalidKey(&'static str),
    /// Reading or writing a stream failed (backups); the kind only, never data.
    #[error("I/O error: {0}")]
    Io(std::io::ErrorKind),
}

/// Result type of this crate.
pub type Result<T> = std::result::Result<T, CryptoError>;

/// Fills `buf` from the operating system's CSPRNG.
///
/// One place for randomness so every caller maps a failure to [`CryptoError::Rng`].
pub(crate) fn fill_random(buf: &mut [u8]) -> Result<()> {
    use ring::rand::SecureRandom;
    ring::rand::SystemRandom::new()
        .fill(buf)
        .map_err(|_| CryptoError::Rng)
}

//! Password hashing with Argon2id at OWASP's recommended parameters, as PHC strings.

use std::sync::OnceLock;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use secrecy::{ExposeSecret, SecretString};

use crate::{CryptoError, Result, fill_random};

/// Memory cost in KiB (19 MiB): OWASP's Password Storage Cheat Sheet minimum for
/// Argon2id with one pass over memory traded for two iterations.
const M_COST_KIB: u32 = 19_456;
/// Iterations.
const T_COST: u32 = 2;
/// Parallelism.
const P_COST: u32 = 1;
/// Hash output length in bytes.
const OUTPUT_LEN: usize = 32;
/// Salt length in bytes (128 bits, as RFC 9106 recommends).
const SALT_LEN: usize = 16;

/// The hasher with the current parameters.
fn argon2() -> Result<Argon2<'static>> {
    let params = Params::new(M_COST_KIB, T_COST, P_COST, Some(OUTPUT_LEN))
        .map_err(|_| CryptoError::PasswordHash)?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// Hashes a password with Argon2id (m = 19456 KiB, t = 2, p = 1) and a random 16-byte
/// salt; returns the PHC string (`$argon2id$v=19$m=19456,t=2,p=1$salt$hash`) to store.
pub fn hash_password(password: &SecretString) -> Result<String> {
    let mut salt = [0u8; SALT_LEN];
    fill_random(&mut salt)?;
    let salt = SaltString::encode_b64(&salt).map_err(|_| CryptoError::PasswordHash)?;
    argon2()?
        .hash_password(password.expose_secret().as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|_| CryptoError::PasswordHash)
}

/// Whether `password` matches the stored PHC string, using the parameters written in
/// it (so hashes made with older parameters still verify). False for a malformed PHC
/// string. The final comparison is constant-time.
pub fn verify_password(phc: &str, password: &SecretString) -> bool {
    let Ok(hash) = PasswordHash::new(phc) else {
        return false;
    };
    // The Argon2 instance only supplies the algorithm family; the variant, version and
    // costs are taken from the PHC string itself.
    Argon2::default()
        .verify_password(password.expose_secret().as_bytes(), &hash)
        .is_ok()
}

/// Whether a stored hash should be replaced at the next successful login: it is not
/// Argon2id version 0x13 with exactly the current costs and output length (or it
/// cannot be parsed at all).
pub fn password_needs_rehash(phc: &str) -> bool {
    let Ok(hash) = PasswordHash::new(phc) else {
        return true;
    };
    if hash.algorithm != argon2::ARGON2ID_IDENT || hash.version != Some(Version::V0x13 as u32) {
        return true;
    }
    let Ok(params) = Params::try_from(&hash) else {
        return true;
    };
    params.m_cost() != M_COST_KIB
        || params.t_cost() != T_COST
        || params.p_cost() != P_COST
        || hash.hash.map(|h| h.len()) != Some(OUTPUT_LEN)
}

/// A fixed hash to verify against when the account does not exist, computed once on
/// first use.
fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        // If hashing fails here it fails for real logins too; an empty string still
        // makes dummy_verify_password return, only faster.
        hash_password(&SecretString::from("custos-dummy-password")).unwrap_or_default()
    })
}

/// Does the same work as [`verify_password`] against a fixed hash and discards the
/// result, so a login for an unknown account takes as long as one for a known account
/// and response times do not reveal which accounts exist.
///
/// The first call also computes the fixed hash; call it once at start-up to warm it.
pub fn dummy_verify_password(password: &SecretString) {
    let _ = std::hint::black_box(verify_password(dummy_hash(), password));
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn hash_verify_and_rehash() {
        let password = SecretString::from("correct horse battery staple");
        let phc = hash_password(&password).unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(!phc.contains("correct horse"));
        assert!(verify_password(&phc, &password));
        assert!(!verify_password(
            &phc,
            &SecretString::from("correct horse battery stapl")
        ));
        assert!(!password_needs_rehash(&phc));
        // Fresh salt each time.
        assert_ne!(phc, hash_password(&password).unwrap());
    }

    #[test]
    fn older_parameters_verify_but_need_rehash() {
        // A hash made with weaker parameters (built with the argon2 crate directly, so
        // it is not our own output) still verifies and is flagged for rehash.
        let password = SecretString::from("pw");
        let weak = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(1024, 1, 1, None).unwrap(),
        );
        let salt = SaltString::encode_b64(&[9u8; 16]).unwrap();
        let phc = weak.hash_password(b"pw", &salt).unwrap().to_string();
        assert!(verify_password(&phc, &password));
        assert!(password_needs_rehash(&phc));

        let argon2i = Argon2::new(
            Algorithm::Argon2i,
            Version::V0x13,
            Params::new(M_COST_KIB, T_COST, P_COST, None).unwrap(),
        );
        let phc_i = argon2i.hash_password(b"pw", &salt).unwrap().to_string();
        assert!(password_needs_rehash(&phc_i));
    }

    #[test]
    fn malformed_phc() {
        let password = SecretString::from("pw");
        for phc in [
            "",
            "plaintext",
            "$argon2id$v=19$m=19456,t=2,p=1$",
            "$2b$12$abcdefghijklmnopqrstuv",
        ] {
            assert!(!verify_password(phc, &password), "{phc}");
            assert!(password_needs_rehash(phc), "{phc}");
        }
    }

    #[test]
    fn dummy_verify_runs() {
        dummy_verify_password(&SecretString::from("anything"));
        assert!(dummy_hash().starts_with("$argon2id$"));
        assert!(!password_needs_rehash(dummy_hash()));
    }
}

/// Memory cost (KiB) for deriving a key from a passphrase: a master key guards
/// everything, so it gets more than a login hash (RFC 9106's second choice).
const KDF_M_COST_KIB: u32 = 65_536;
/// Passes for passphrase key derivation.
const KDF_T_COST: u32 = 3;

/// Derives a 32-byte key from a passphrase and salt with Argon2id
/// (64 MiB, 3 passes), for the passphrase key provider.
pub fn derive_key(passphrase: &SecretString, salt: &[u8]) -> Result<zeroize::Zeroizing<[u8; 32]>> {
    use argon2::{Algorithm, Argon2, Params, Version};
    if salt.len() < 16 {
        return Err(CryptoError::InvalidKey("salt shorter than 16 bytes"));
    }
    let params = Params::new(KDF_M_COST_KIB, KDF_T_COST, 1, Some(32))
        .map_err(|_| CryptoError::PasswordHash)?;
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
    let mut out = zeroize::Zeroizing::new([0u8; 32]);
    argon
        .hash_password_into(
            secrecy::ExposeSecret::expose_secret(passphrase).as_bytes(),
            salt,
            out.as_mut(),
        )
        .map_err(|_| CryptoError::PasswordHash)?;
    Ok(out)
}

#[cfg(test)]
mod kdf_tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn derive_key_depends_on_passphrase_and_salt() {
        let pw = SecretString::from("correct horse battery staple");
        let a = derive_key(&pw, &[1u8; 16]).unwrap();
        assert_eq!(*a, *derive_key(&pw, &[1u8; 16]).unwrap());
        assert_ne!(*a, *derive_key(&pw, &[2u8; 16]).unwrap());
        assert_ne!(
            *a,
            *derive_key(&SecretString::from("another one entirely"), &[1u8; 16]).unwrap()
        );
        assert!(derive_key(&pw, &[1u8; 8]).is_err());
    }
}

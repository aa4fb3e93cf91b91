//! Random tokens (API tokens, session ids, reset links), hashing and comparison.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::digest;
use secrecy::SecretString;
use zeroize::Zeroizing;

use crate::{Result, fill_random};

/// A new bearer token: `prefix` followed by 32 random bytes (256 bits) in base64url
/// without padding, and the SHA-256 of the whole token string.
///
/// Store only the hash: a leaked table then gives nobody a usable token, and a lookup
/// by hash needs no constant-time comparison because the hash of a guess reveals
/// nothing about stored tokens. The prefix (e.g. `"cst_"`) lets secret scanners and
/// people recognise a Custos token.
pub fn new_token(prefix: &str) -> Result<(SecretString, [u8; 32])> {
    let mut raw = Zeroizing::new([0u8; 32]);
    fill_random(&mut raw[..])?;
    // Exact capacity so the secret string is never reallocated (no stray copies).
    let mut token = String::with_capacity(prefix.len() + 43);
    token.push_str(prefix);
    URL_SAFE_NO_PAD.encode_string(&raw[..], &mut token);
    let hash = hash_token(&token);
    Ok((SecretString::from(token), hash))
}

/// SHA-256 of a presented token string, to look it up by the stored hash.
pub fn hash_token(token: &str) -> [u8; 32] {
    sha256(token.as_bytes())
}

/// `N` bytes from the operating system's CSPRNG.
pub fn random_bytes<const N: usize>() -> Result<[u8; N]> {
    let mut out = [0u8; N];
    fill_random(&mut out)?;
    Ok(out)
}

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    let d = digest::digest(&digest::SHA256, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// Compares two byte strings in time that depends only on their lengths, not on where
/// they differ (for MACs, CSRF tokens, TOTP codes). Lengths are not secret.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    // black_box keeps the optimiser from turning the fold into an early exit.
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use secrecy::ExposeSecret;

    use super::*;

    #[test]
    fn token_shape_and_hash() {
        let (token, hash) = new_token("cst_").unwrap();
        let t = token.expose_secret();
        assert!(t.starts_with("cst_"));
        let body = &t[4..];
        assert_eq!(body.len(), 43);
        assert!(
            body.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        assert_eq!(URL_SAFE_NO_PAD.decode(body).unwrap().len(), 32);
        assert_eq!(hash, hash_token(t));
        assert_ne!(t, new_token("cst_").unwrap().0.expose_secret());
    }

    #[test]
    fn sha256_known_answers() {
        // FIPS 180-2 examples.
        assert_eq!(
            hex::encode(sha256(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            hex::encode(sha256(b"")),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(hash_token("abc"), sha256(b"abc"));
    }

    #[test]
    fn random_bytes_differ() {
        let a: [u8; 32] = random_bytes().unwrap();
        let b: [u8; 32] = random_bytes().unwrap();
        assert_ne!(a, b);
        assert_eq!(random_bytes::<0>().unwrap(), [0u8; 0]);
    }

    #[test]
    fn constant_time_eq_cases() {
        assert!(constant_time_eq(b"", b""));
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"bbc"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert!(!constant_time_eq(b"", b"a"));
    }
}

//! Time-based one-time passwords (RFC 6238 over RFC 4226 HOTP): HMAC-SHA-1,
//! 6 digits, 30-second steps, one step of clock drift either way. This is what
//! every authenticator app and `oathtool --totp` produce by default.
//!
//! Replay protection needs state (the last accepted step), so it lives with the
//! caller: [`verify`] returns the step a code matched and the caller refuses any
//! step not newer than the last one it accepted.

use base64::Engine as _;
use ring::hmac;
use zeroize::Zeroizing;

use crate::{CryptoError, Result, fill_random};

/// Seconds per step (RFC 6238 X).
pub const STEP_SECONDS: i64 = 30;
/// Digits per code.
pub const DIGITS: u32 = 6;
/// Bytes of a new secret: 160 bits, the HMAC-SHA-1 block-size recommendation of
/// RFC 4226 section 4.
pub const SECRET_LEN: usize = 20;

/// A new random TOTP secret.
pub fn new_secret() -> Result<Zeroizing<Vec<u8>>> {
    let mut s = Zeroizing::new(vec![0u8; SECRET_LEN]);
    fill_random(&mut s)?;
    Ok(s)
}

/// The RFC 4226 HOTP value of `counter` under `secret`, with `digits` digits
/// (generic over the HMAC so the RFC 6238 SHA-256/512 vectors can be checked).
fn hotp_with(alg: hmac::Algorithm, secret: &[u8], counter: u64, digits: u32) -> u32 {
    let key = hmac::Key::new(alg, secret);
    let mac = hmac::sign(&key, &counter.to_be_bytes());
    let m = mac.as_ref();
    // Dynamic truncation (RFC 4226 section 5.3).
    let offset = usize::from(m[m.len() - 1] & 0x0f);
    let bin = (u32::from(m[offset]) & 0x7f) << 24
        | u32::from(m[offset + 1]) << 16
        | u32::from(m[offset + 2]) << 8
        | u32::from(m[offset + 3]);
    bin % 10u32.pow(digits)
}

/// The HOTP code (HMAC-SHA-1, 6 digits) of `counter`, zero-padded.
pub fn hotp(secret: &[u8], counter: u64) -> String {
    format!(
        "{:06}",
        hotp_with(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret, counter, DIGITS)
    )
}

/// The time step of a Unix time in seconds.
pub fn step_of(unix_seconds: i64) -> i64 {
    unix_seconds.div_euclid(STEP_SECONDS)
}

/// The code an authenticator shows at `unix_seconds`.
pub fn code_at(secret: &[u8], unix_seconds: i64) -> String {
    hotp(secret, step_of(unix_seconds).max(0) as u64)
}

/// Checks a code typed at `unix_seconds`, allowing one step of drift either
/// way. Returns the step it matched (the caller rejects steps it has already
/// accepted), or `None`. Every candidate is compared in constant time.
pub fn verify(secret: &[u8], code: &str, unix_seconds: i64) -> Option<i64> {
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    if code.len() != DIGITS as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let now = step_of(unix_seconds);
    let mut found = None;
    for step in [now - 1, now, now + 1] {
        if step < 0 {
            continue;
        }
        let expected = hotp(secret, step as u64);
        if crate::constant_time_eq(expected.as_bytes(), code.as_bytes()) && found.is_none() {
            found = Some(step);
        }
    }
    found
}

/// RFC 4648 base32 without padding: how authenticator apps take a secret.
pub fn base32(secret: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::with_capacity(secret.len().div_ceil(5) * 8);
    let mut buffer: u32 = 0;
    let mut bits = 0;
    for &b in secret {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[((buffer >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((buffer << (5 - bits)) & 31) as usize]));
    }
    out
}

/// Decodes base32 (case-insensitive, spaces and padding ignored).
pub fn from_base32(s: &str) -> Result<Zeroizing<Vec<u8>>> {
    let mut out = Zeroizing::new(Vec::with_capacity(s.len() * 5 / 8));
    let mut buffer: u32 = 0;
    let mut bits = 0;
    for c in s.chars().filter(|c| !c.is_whitespace() && *c != '=') {
        let v = match c.to_ascii_uppercase() {
            c @ 'A'..='Z' => c as u32 - 'A' as u32,
            c @ '2'..='7' => c as u32 - '2' as u32 + 26,
            _ => return Err(CryptoError::Format("base32")),
        };
        buffer = (buffer << 5) | v;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
        }
    }
    Ok(out)
}

/// The `otpauth://` URI that authenticator apps read from a QR code
/// (Google Authenticator key-URI format). `issuer` and `account` are
/// percent-encoded.
pub fn otpauth_uri(secret: &[u8], issuer: &str, account: &str) -> String {
    let enc = |s: &str| {
        let mut o = String::new();
        for b in s.bytes() {
            if b.is_ascii_alphanumeric() || b"-._~@".contains(&b) {
                o.push(char::from(b));
            } else {
                o.push_str(&format!("%{b:02X}"));
            }
        }
        o
    };
    format!(
        "otpauth://totp/{}:{}?secret={}&issuer={}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECONDS}",
        enc(issuer),
        enc(account),
        base32(secret),
        enc(issuer)
    )
}

/// A recovery code: 10 characters from an alphabet without look-alikes
/// (about 50 bits), grouped `xxxxx-xxxxx` for reading aloud.
pub fn new_recovery_code() -> Result<String> {
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";
    let mut raw = Zeroizing::new([0u8; 10]);
    fill_random(&mut raw[..])?;
    let mut s = String::with_capacity(11);
    for (i, b) in raw.iter().enumerate() {
        if i == 5 {
            s.push('-');
        }
        // 256 is not a multiple of 31; the bias (< 1 bit over 10 chars) is harmless.
        s.push(char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]));
    }
    Ok(s)
}

/// The normalised form of a typed recovery code (lowercase, no spaces or
/// dashes), which is what gets hashed.
pub fn normalize_recovery_code(code: &str) -> String {
    code.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// Base64 of a secret, for sealing (kept apart from the base32 display form).
pub fn encode_secret(secret: &[u8]) -> Zeroizing<String> {
    Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(secret))
}

/// Inverse of [`encode_secret`].
pub fn decode_secret(s: &str) -> Result<Zeroizing<Vec<u8>>> {
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .map(Zeroizing::new)
        .map_err(|_| CryptoError::Format("totp secret"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 Appendix B: the seeds are the ASCII digits "1234567890"
    /// repeated to the hash's key length; 8-digit codes.
    #[test]
    fn rfc6238_appendix_b_vectors() {
        let sha1 = b"12345678901234567890".to_vec();
        let sha256 = b"12345678901234567890123456789012".to_vec();
        let sha512 = b"1234567890123456789012345678901234567890123456789012345678901234".to_vec();
        let table: [(i64, &str, &str, &str); 6] = [
            (59, "94287082", "46119246", "90693936"),
            (1111111109, "07081804", "68084774", "25091201"),
            (1111111111, "14050471", "67062674", "99943326"),
            (1234567890, "89005924", "91819424", "93441116"),
            (2000000000, "69279037", "90698825", "38618901"),
            (20000000000, "65353130", "77737706", "47863826"),
        ];
        for (t, c1, c256, c512) in table {
            let step = step_of(t) as u64;
            let got = |alg, key: &[u8]| format!("{:08}", hotp_with(alg, key, step, 8));
            assert_eq!(got(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, &sha1), c1, "{t}");
            assert_eq!(got(hmac::HMAC_SHA256, &sha256), c256, "{t}");
            assert_eq!(got(hmac::HMAC_SHA512, &sha512), c512, "{t}");
            // The 6-digit code is the last six digits of the 8-digit one.
            assert_eq!(code_at(&sha1, t), c1[2..], "{t}");
        }
    }

    /// RFC 4226 Appendix D.
    #[test]
    fn rfc4226_hotp_vectors() {
        let secret = b"12345678901234567890";
        let expected = [
            "755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583",
            "399871", "520489",
        ];
        for (i, e) in expected.iter().enumerate() {
            assert_eq!(hotp(secret, i as u64), *e);
        }
    }

    #[test]
    fn verify_accepts_one_step_of_drift_and_names_the_step() {
        let s = b"12345678901234567890";
        let t = 1_234_567_890;
        let now = step_of(t);
        assert_eq!(verify(s, &code_at(s, t), t), Some(now));
        assert_eq!(verify(s, &code_at(s, t - 30), t), Some(now - 1));
        assert_eq!(verify(s, &code_at(s, t + 30), t), Some(now + 1));
        assert_eq!(verify(s, &code_at(s, t + 60), t), None);
        assert_eq!(verify(s, &code_at(s, t - 60), t), None);
        assert_eq!(verify(s, "12345", t), None);
        assert_eq!(verify(s, "abcdef", t), None);
        let spaced = format!("{} {}", &code_at(s, t)[..3], &code_at(s, t)[3..]);
        assert_eq!(verify(s, &spaced, t), Some(now));
    }

    #[test]
    fn base32_round_trips_and_matches_rfc4648() {
        assert_eq!(base32(b"foobar"), "MZXW6YTBOI");
        assert_eq!(base32(b"f"), "MY");
        assert_eq!(
            base32(b"12345678901234567890"),
            "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
        );
        let s = new_secret().expect("rng");
        assert_eq!(*from_base32(&base32(&s)).expect("decode"), *s);
        assert_eq!(
            *from_base32("mzxw 6ytb oi==").expect("decode"),
            b"foobar".to_vec()
        );
        assert!(from_base32("MZ1").is_err());
    }

    #[test]
    fn otpauth_uri_names_issuer_account_and_parameters() {
        let u = otpauth_uri(b"12345678901234567890", "Custos", "jo@example.com");
        assert_eq!(
            u,
            "otpauth://totp/Custos:jo@example.com?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Custos&algorithm=SHA1&digits=6&period=30"
        );
    }

    #[test]
    fn recovery_codes_are_random_and_normalise() {
        let a = new_recovery_code().expect("rng");
        let b = new_recovery_code().expect("rng");
        assert_ne!(a, b);
        assert_eq!(a.len(), 11);
        assert_eq!(normalize_recovery_code(&a.to_uppercase()).len(), 10);
        assert_eq!(normalize_recovery_code(" AbCde-fGhjk "), "abcdefghjk");
    }
}

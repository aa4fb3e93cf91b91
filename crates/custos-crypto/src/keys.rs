//! The key hierarchy: master keys (KEKs) in a versioned keyring wrap data keys (DEKs).

use std::collections::BTreeMap;
use std::fmt;
use std::fmt::Write as _;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ring::aead::NONCE_LEN;
use secrecy::SecretString;
use zeroize::{ZeroizeOnDrop, Zeroizing};

use crate::seal::{TAG_LEN, aes256gcm_seal, open_zeroizing, read_u32_be};
use crate::{CryptoError, KEY_LEN, Result, fill_random};

/// Format version of a wrapped data key.
const WRAP_FORMAT_V1: u8 = 0x01;
/// Domain separation: a wrapped key can never be taken for a sealed field.
const WRAP_AAD_DOMAIN: &[u8] = b"custos/wrap/v1";
/// Format byte, master-key version, data-key version.
const WRAP_HEADER_LEN: usize = 1 + 4 + 4;
/// Every wrapped key has exactly this length: header, nonce, 32-byte key, tag.
const WRAPPED_LEN: usize = WRAP_HEADER_LEN + NONCE_LEN + KEY_LEN + TAG_LEN;

/// First line of a key file: what it is and why it matters, for whoever finds it.
const KEY_FILE_HEADER: &str = "# Custos master key file. Keep it secret and back it up: without it the data cannot be read.\n\
# One key per line: <version> <standard base64 of 32 bytes>. The highest version is active.\n";

/// Why a base64 key was refused; one message for every cause so nothing about the
/// input leaks.
const BAD_BASE64_KEY: &str = "expected standard base64 of exactly 32 bytes";

/// Decodes standard base64 of exactly 32 bytes without ever putting key bytes in an
/// unzeroized heap buffer.
fn decode_key(b64: &str) -> Result<Zeroizing<[u8; KEY_LEN]>> {
    // Room for a few bytes too many, so an over-long key is reported as such rather
    // than as a buffer error; longer inputs fail in decode_slice without writing.
    let mut buf = Zeroizing::new([0u8; KEY_LEN + 16]);
    let n = STANDARD
        .decode_slice(b64.trim(), &mut buf[..])
        .map_err(|_| CryptoError::InvalidKey(BAD_BASE64_KEY))?;
    if n != KEY_LEN {
        return Err(CryptoError::InvalidKey(BAD_BASE64_KEY));
    }
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    key.copy_from_slice(&buf[..KEY_LEN]);
    Ok(key)
}

/// 32 fresh random bytes in a buffer that is wiped on drop.
fn random_key() -> Result<Zeroizing<[u8; KEY_LEN]>> {
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    fill_random(&mut key[..])?;
    Ok(key)
}

/// A master key: the key-encryption key (KEK) that wraps data keys.
///
/// Versioned so a rotation can add a new one while the old ones still unwrap what they
/// wrapped. The bytes are wiped on drop and never printed; it is not `Clone`, so there
/// is one copy per key in memory.
pub struct MasterKey {
    version: u32,
    bytes: Zeroizing<[u8; KEY_LEN]>,
}

impl ZeroizeOnDrop for MasterKey {}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MasterKey")
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

impl MasterKey {
    /// A new random master key with the given version.
    pub fn generate(version: u32) -> Result<Self> {
        Ok(Self {
            version,
            bytes: random_key()?,
        })
    }

    /// A master key from raw bytes (e.g. derived from a passphrase with Argon2id).
    pub fn from_bytes(version: u32, bytes: [u8; KEY_LEN]) -> Self {
        Self {
            version,
            bytes: Zeroizing::new(bytes),
        }
    }

    /// A master key from standard base64 (with padding) of exactly 32 bytes;
    /// surrounding whitespace is ignored. Anything else is [`CryptoError::InvalidKey`].
    pub fn from_base64(version: u32, b64: &str) -> Result<Self> {
        Ok(Self {
            version,
            bytes: decode_key(b64)?,
        })
    }

    /// The key as standard base64, for writing a key file or an environment variable.
    pub fn to_base64(&self) -> SecretString {
        SecretString::from(STANDARD.encode(&self.bytes[..]))
    }

    /// This key's version.
    pub fn version(&self) -> u32 {
        self.version
    }

    /// Wraps (encrypts) a data key under this master key.
    ///
    /// Output (69 bytes): `0x01 ‖ kek_version (u32 BE) ‖ dek_version (u32 BE) ‖
    /// 12-byte random nonce ‖ AES-256-GCM(dek) ‖ tag`, with associated data
    /// `b"custos/wrap/v1" ‖ header ‖ label`. The label binds the wrapped key to its
    /// owner (e.g. the subject id): a wrapped key copied to another subject fails to
    /// unwrap.
    pub fn wrap(&self, dek: &DataKey, label: &[u8]) -> Result<Vec<u8>> {
        let mut header = [0u8; WRAP_HEADER_LEN];
        header[0] = WRAP_FORMAT_V1;
        header[1..5].copy_from_slice(&self.version.to_be_bytes());
        header[5..9].copy_from_slice(&dek.version().to_be_bytes());
        let mut nonce = [0u8; NONCE_LEN];
        fill_random(&mut nonce)?;
        let aad = wrap_aad(&header, label);
        let ct_and_tag = aes256gcm_seal(&self.bytes[..], &nonce, &aad, dek.bytes())?;

        let mut out = Vec::with_capacity(WRAPPED_LEN);
        out.extend_from_slice(&header);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct_and_tag);
        Ok(out)
    }

    /// Unwraps a data key made by [`MasterKey::wrap`] with the same label.
    ///
    /// Errors: [`CryptoError::Format`] if the bytes are not a wrapped key;
    /// [`CryptoError::Open`] if another master-key version wrapped it, the label
    /// differs, or the bytes were changed.
    pub fn unwrap(&self, wrapped: &[u8], label: &[u8]) -> Result<DataKey> {
        let kek_version = wrapped_version(wrapped)?;
        if kek_version != self.version {
            return Err(CryptoError::Open);
        }
        let (header, rest) = wrapped.split_at(WRAP_HEADER_LEN);
        let (nonce, ct_and_tag) = rest.split_at(NONCE_LEN);
        let dek_version = read_u32_be(&header[5..9]);
        let aad = wrap_aad(header, label);
        let plain = open_zeroizing(&self.bytes[..], nonce, &aad, ct_and_tag)?;
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        // Length is fixed by WRAPPED_LEN, but a checked copy costs nothing.
        if plain.len() != KEY_LEN {
            return Err(CryptoError::Format("wrapped key (wrong key length)"));
        }
        bytes.copy_from_slice(&plain);
        Ok(DataKey {
            version: dek_version,
            bytes,
        })
    }
}

/// Associated data of a wrapped key. The label is last and the header fixed-size, so
/// no length prefix is needed for the encoding to be unambiguous.
fn wrap_aad(header: &[u8], label: &[u8]) -> Vec<u8> {
    let mut aad = Vec::with_capacity(WRAP_AAD_DOMAIN.len() + header.len() + label.len());
    aad.extend_from_slice(WRAP_AAD_DOMAIN);
    aad.extend_from_slice(header);
    aad.extend_from_slice(label);
    aad
}

/// Reads which master-key version wrapped `wrapped`, so the right key can be chosen
/// (and so a rotation can find what still needs re-wrapping).
pub fn wrapped_version(wrapped: &[u8]) -> Result<u32> {
    if wrapped.len() != WRAPPED_LEN {
        return Err(CryptoError::Format("wrapped key (wrong length)"));
    }
    if wrapped[0] != WRAP_FORMAT_V1 {
        return Err(CryptoError::Format("wrapped key (unknown format version)"));
    }
    Ok(read_u32_be(&wrapped[1..5]))
}

/// A data key (DEK): the AES-256-GCM key that seals one subject's fields, or any other
/// 32-byte AES key (e.g. the one that seals the ledger's signing key).
///
/// `Clone` so a bounded cache can hand out copies; every copy is wiped on drop and
/// none is ever printed.
#[derive(Clone)]
pub struct DataKey {
    version: u32,
    bytes: Zeroizing<[u8; KEY_LEN]>,
}

impl ZeroizeOnDrop for DataKey {}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DataKey")
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

impl DataKey {
    /// A new random data key with the given version.
    pub fn generate(version: u32) -> Result<Self> {
        Ok(Self {
            version,
            bytes: random_key()?,
        })
    }

    /// A data key from raw bytes.
    pub fn from_bytes(version: u32, bytes: [u8; KEY_LEN]) -> Self {
        Self {
            version,
            bytes: Zeroizing::new(bytes),
        }
    }

    /// This key's version (written into every value it seals).
    pub fn version(&self) -> u32 {
        self.version
    }

    /// The raw key, for the AEAD calls inside this crate only.
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.bytes[..]
    }
}

/// The master keys a deployment knows: the active one (the highest version) wraps new
/// data keys; older ones only unwrap until they are retired with
/// [`MasterKeyring::retain_from`] (Vault's "minimum decryption version").
///
/// Built so it can never be empty: the active key is held apart from the older ones.
pub struct MasterKeyring {
    active: MasterKey,
    older: BTreeMap<u32, MasterKey>,
}

impl fmt::Debug for MasterKeyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MasterKeyring")
            .field("versions", &self.versions())
            .field("active", &self.active.version)
            .finish()
    }
}

impl MasterKeyring {
    /// A keyring from at least one key with pairwise distinct versions.
    pub fn new(keys: Vec<MasterKey>) -> Result<Self> {
        let mut keys = keys.into_iter();
        let first = keys.next().ok_or(CryptoError::InvalidKey(
            "a master keyring needs at least one key",
        ))?;
        let mut ring = Self {
            active: first,
            older: BTreeMap::new(),
        };
        for key in keys {
            ring.add(key)?;
        }
        Ok(ring)
    }

    /// The key that wraps new data keys: the one with the highest version.
    pub fn active(&self) -> &MasterKey {
        &self.active
    }

    /// The key with this version, if the keyring still holds it.
    pub fn get(&self, version: u32) -> Option<&MasterKey> {
        if version == self.active.version {
            Some(&self.active)
        } else {
            self.older.get(&version)
        }
    }

    /// All versions held, ascending (the last one is the active key).
    pub fn versions(&self) -> Vec<u32> {
        let mut versions: Vec<u32> = self.older.keys().copied().collect();
        versions.push(self.active.version);
        versions
    }

    /// Adds a key; it becomes the active one if its version is the highest.
    ///
    /// Refuses a version already present ([`CryptoError::InvalidKey`]): replacing a key
    /// silently would make everything it wrapped unreadable.
    pub fn add(&mut self, key: MasterKey) -> Result<()> {
        if self.get(key.version).is_some() {
            return Err(CryptoError::InvalidKey("duplicate master key version"));
        }
        let key = if key.version > self.active.version {
            std::mem::replace(&mut self.active, key)
        } else {
            key
        };
        self.older.insert(key.version, key);
        Ok(())
    }

    /// Retires (drops and wipes) every key older than `min_version`, after a rotation
    /// has re-wrapped what they wrapped. The active key is always kept, whatever
    /// `min_version` says, so the keyring stays usable.
    pub fn retain_from(&mut self, min_version: u32) {
        self.older.retain(|version, _| *version >= min_version);
    }

    /// Unwraps a data key with whichever held master key wrapped it.
    ///
    /// [`CryptoError::InvalidKey`] if that version is not (or no longer) held; else as
    /// [`MasterKey::unwrap`].
    pub fn unwrap(&self, wrapped: &[u8], label: &[u8]) -> Result<DataKey> {
        let version = wrapped_version(wrapped)?;
        self.get(version)
            .ok_or(CryptoError::InvalidKey(
                "no master key of the version that wrapped this data key",
            ))?
            .unwrap(wrapped, label)
    }

    /// Parses a key file: blank lines and lines starting with `#` are ignored; every
    /// other line is `<version> <standard base64 of 32 bytes>`.
    ///
    /// Errors name the problem but never the line's content (it may hold a key).
    pub fn parse_key_file(text: &str) -> Result<Self> {
        let mut keys = Vec::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut parts = line.split_whitespace();
            let (Some(version), Some(key), None) = (parts.next(), parts.next(), parts.next())
            else {
                return Err(CryptoError::Format(
                    "key file line (expected `<version> <base64 key>`)",
                ));
            };
            keys.push(MasterKey::from_base64(parse_version(version)?, key)?);
        }
        if keys.is_empty() {
            return Err(CryptoError::InvalidKey("the key file holds no key"));
        }
        Self::new(keys)
    }

    /// Writes the key file that [`MasterKeyring::parse_key_file`] reads: a two-line
    /// comment header, then one `<version> <base64>` line per key, ascending.
    pub fn to_key_file(&self) -> SecretString {
        let keys: Vec<&MasterKey> = self
            .older
            .values()
            .chain(std::iter::once(&self.active))
            .collect();
        // Exact capacity: growing the string would leave copies of keys in freed memory.
        const LINE_MAX: usize = 10 + 1 + 44 + 1; // u32 digits, space, base64, newline
        let mut out = String::with_capacity(KEY_FILE_HEADER.len() + keys.len() * LINE_MAX);
        out.push_str(KEY_FILE_HEADER);
        for key in keys {
            // Writing to a String cannot fail.
            let _ = write!(out, "{} ", key.version);
            STANDARD.encode_string(&key.bytes[..], &mut out);
            out.push('\n');
        }
        SecretString::from(out)
    }

    /// Reads a keyring from an environment variable's value: either a bare base64 key
    /// (version 1) or `N:base64`; several `N:base64` entries separated by commas hold
    /// several versions (for a rotation in a container).
    pub fn from_env_value(s: &str) -> Result<Self> {
        let s = s.trim();
        if !s.contains(':') {
            return Self::new(vec![MasterKey::from_base64(1, s)?]);
        }
        let mut keys = Vec::new();
        for entry in s.split(',') {
            let Some((version, key)) = entry.trim().split_once(':') else {
                return Err(CryptoError::Format(
                    "master key variable (expected `base64` or `N:base64[,N:base64…]`)",
                ));
            };
            keys.push(MasterKey::from_base64(parse_version(version.trim())?, key)?);
        }
        Self::new(keys)
    }
}

/// A key version: decimal digits only (no sign, no spaces), fitting a u32.
fn parse_version(s: &str) -> Result<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(CryptoError::Format(
            "key version (expected a decimal number)",
        ));
    }
    s.parse()
        .map_err(|_| CryptoError::Format("key version (too large for a u32)"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use secrecy::ExposeSecret;

    use super::*;

    const K1: [u8; 32] = [1u8; 32];
    const K2: [u8; 32] = [2u8; 32];

    fn b64(bytes: &[u8]) -> String {
        STANDARD.encode(bytes)
    }

    #[test]
    fn wrap_unwrap_round_trip() {
        let kek = MasterKey::generate(4).unwrap();
        let dek = DataKey::generate(9).unwrap();
        let wrapped = kek.wrap(&dek, b"subject-1").unwrap();
        assert_eq!(wrapped.len(), 69);
        assert_eq!(wrapped[0], 1);
        assert_eq!(&wrapped[1..9], &[0, 0, 0, 4, 0, 0, 0, 9]);
        assert_eq!(wrapped_version(&wrapped).unwrap(), 4);
        let back = kek.unwrap(&wrapped, b"subject-1").unwrap();
        assert_eq!(back.version(), 9);
        assert_eq!(back.bytes(), dek.bytes());
    }

    #[test]
    fn wrap_matches_the_documented_layout() {
        // Rebuild the AAD from the spec and open with the low-level primitive.
        let kek = MasterKey::from_bytes(2, K1);
        let dek = DataKey::from_bytes(5, K2);
        let wrapped = kek.wrap(&dek, b"label").unwrap();
        let mut aad = b"custos/wrap/v1".to_vec();
        aad.extend_from_slice(&[1, 0, 0, 0, 2, 0, 0, 0, 5]);
        aad.extend_from_slice(b"label");
        let pt = crate::aes256gcm_open(&K1, &wrapped[9..21], &aad, &wrapped[21..]).unwrap();
        assert_eq!(pt, K2);
    }

    #[test]
    fn unwrap_fails_on_wrong_label_key_version_or_tamper() {
        let kek = MasterKey::from_bytes(1, K1);
        let dek = DataKey::from_bytes(1, K2);
        let wrapped = kek.wrap(&dek, b"subject-1").unwrap();
        assert!(matches!(
            kek.unwrap(&wrapped, b"subject-2"),
            Err(CryptoError::Open)
        ));
        let other = MasterKey::from_bytes(1, K2);
        assert!(matches!(
            other.unwrap(&wrapped, b"subject-1"),
            Err(CryptoError::Open)
        ));
        let other_version = MasterKey::from_bytes(2, K1);
        assert!(matches!(
            other_version.unwrap(&wrapped, b"subject-1"),
            Err(CryptoError::Open)
        ));
        for i in 0..wrapped.len() {
            let mut bad = wrapped.clone();
            bad[i] ^= 0x80;
            assert!(kek.unwrap(&bad, b"subject-1").is_err(), "byte {i}");
        }
        assert!(matches!(
            kek.unwrap(&wrapped[..68], b"subject-1"),
            Err(CryptoError::Format(_))
        ));
    }

    #[test]
    fn base64_round_trip_and_rejects() {
        let key = MasterKey::from_base64(3, &b64(&K1)).unwrap();
        assert_eq!(key.version(), 3);
        assert_eq!(key.to_base64().expose_secret(), b64(&K1));
        // Whitespace around is fine (trailing newline from a file or a variable).
        assert!(MasterKey::from_base64(3, &format!("  {}\n", b64(&K1))).is_ok());
        for bad in [
            b64(&[1u8; 31]),
            b64(&[1u8; 33]),
            b64(&[1u8; 64]),
            b64(&[1u8; 1000]),
            "not base64!".to_owned(),
            String::new(),
            // URL-safe alphabet is not standard base64.
            base64::engine::general_purpose::URL_SAFE.encode([0xfbu8; 32]),
        ] {
            assert!(
                matches!(
                    MasterKey::from_base64(1, &bad),
                    Err(CryptoError::InvalidKey(_))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn debug_prints_no_key_material() {
        let bytes = [0xabu8; 32];
        let mk = MasterKey::from_bytes(7, bytes);
        let dk = DataKey::from_bytes(8, bytes);
        let ring = MasterKeyring::new(vec![MasterKey::from_bytes(7, bytes)]).unwrap();
        for text in [
            format!("{mk:?}"),
            format!("{dk:?}"),
            format!("{ring:?}"),
            format!("{mk:#?}"),
        ] {
            assert!(!text.contains(&b64(&bytes)), "{text}");
            assert!(!text.contains(&hex::encode(bytes)), "{text}");
            assert!(!text.contains("171"), "{text}"); // 0xab as a decimal array element
        }
        assert_eq!(format!("{mk:?}"), "MasterKey { version: 7, .. }");
        assert_eq!(format!("{dk:?}"), "DataKey { version: 8, .. }");
    }

    #[test]
    fn keyring_versions_and_active() {
        let mut ring = MasterKeyring::new(vec![
            MasterKey::from_bytes(2, K2),
            MasterKey::from_bytes(1, K1),
        ])
        .unwrap();
        assert_eq!(ring.active().version(), 2);
        assert_eq!(ring.versions(), vec![1, 2]);
        ring.add(MasterKey::from_bytes(5, K1)).unwrap();
        assert_eq!(ring.active().version(), 5);
        assert_eq!(ring.versions(), vec![1, 2, 5]);
        ring.add(MasterKey::from_bytes(3, K1)).unwrap();
        assert_eq!(ring.active().version(), 5);
        assert!(matches!(
            ring.add(MasterKey::from_bytes(2, K1)),
            Err(CryptoError::InvalidKey(_))
        ));
        assert!(ring.get(4).is_none());
        assert_eq!(ring.get(3).unwrap().version(), 3);
        ring.retain_from(3);
        assert_eq!(ring.versions(), vec![3, 5]);
        ring.retain_from(100);
        assert_eq!(ring.versions(), vec![5], "the active key is never dropped");
    }

    #[test]
    fn keyring_new_rejects_empty_and_duplicates() {
        assert!(matches!(
            MasterKeyring::new(vec![]),
            Err(CryptoError::InvalidKey(_))
        ));
        let dup = vec![MasterKey::from_bytes(1, K1), MasterKey::from_bytes(1, K2)];
        assert!(matches!(
            MasterKeyring::new(dup),
            Err(CryptoError::InvalidKey(_))
        ));
    }

    #[test]
    fn keyring_unwrap_picks_the_version() {
        let old = MasterKey::from_bytes(1, K1);
        let dek = DataKey::from_bytes(1, K2);
        let wrapped_old = old.wrap(&dek, b"s").unwrap();
        let mut ring = MasterKeyring::new(vec![old, MasterKey::from_bytes(2, K2)]).unwrap();
        let wrapped_new = ring.active().wrap(&dek, b"s").unwrap();
        assert_eq!(wrapped_version(&wrapped_new).unwrap(), 2);
        assert_eq!(ring.unwrap(&wrapped_old, b"s").unwrap().bytes(), &K2);
        assert_eq!(ring.unwrap(&wrapped_new, b"s").unwrap().bytes(), &K2);
        ring.retain_from(2);
        assert!(matches!(
            ring.unwrap(&wrapped_old, b"s"),
            Err(CryptoError::InvalidKey(_))
        ));
    }

    #[test]
    fn key_file_round_trip() {
        let ring = MasterKeyring::new(vec![
            MasterKey::from_bytes(10, K2),
            MasterKey::from_bytes(2, K1),
        ])
        .unwrap();
        let file = ring.to_key_file();
        let text = file.expose_secret();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4);
        assert!(lines[0].starts_with("# Custos master key file. Keep it secret and back it up"));
        assert!(lines[1].starts_with('#'));
        assert_eq!(lines[2], format!("2 {}", b64(&K1)));
        assert_eq!(lines[3], format!("10 {}", b64(&K2)));
        let back = MasterKeyring::parse_key_file(text).unwrap();
        assert_eq!(back.versions(), vec![2, 10]);
        assert_eq!(back.active().to_base64().expose_secret(), b64(&K2));
        assert_eq!(back.get(2).unwrap().to_base64().expose_secret(), b64(&K1));
    }

    #[test]
    fn key_file_tolerates_comments_blanks_and_spacing() {
        let text = format!(
            "\n# comment\n   \n  1   {}  \r\n\t# another\n3\t{}\n",
            b64(&K1),
            b64(&K2)
        );
        let ring = MasterKeyring::parse_key_file(&text).unwrap();
        assert_eq!(ring.versions(), vec![1, 3]);
    }

    #[test]
    fn key_file_errors_are_clear_and_secret_free() {
        let key = b64(&K1);
        let cases = [
            (String::new(), "invalid key: the key file holds no key"),
            (
                "# only comments\n".to_owned(),
                "invalid key: the key file holds no key",
            ),
            (
                key.clone(),
                "malformed key file line (expected `<version> <base64 key>`)",
            ),
            (
                format!("1 {key} extra"),
                "malformed key file line (expected `<version> <base64 key>`)",
            ),
            (
                format!("v1 {key}"),
                "malformed key version (expected a decimal number)",
            ),
            (
                format!("-1 {key}"),
                "malformed key version (expected a decimal number)",
            ),
            (
                format!("+1 {key}"),
                "malformed key version (expected a decimal number)",
            ),
            (
                format!("4294967296 {key}"),
                "malformed key version (too large for a u32)",
            ),
            (
                "1 AAAA".to_owned(),
                "invalid key: expected standard base64 of exactly 32 bytes",
            ),
            (
                format!("1 {key}\n1 {key}"),
                "invalid key: duplicate master key version",
            ),
        ];
        for (text, message) in cases {
            let err = MasterKeyring::parse_key_file(&text).unwrap_err();
            assert_eq!(err.to_string(), message, "{text:?}");
            assert!(!format!("{err:?}").contains(&key));
        }
    }

    #[test]
    fn env_value_forms() {
        let bare = MasterKeyring::from_env_value(&format!("{}\n", b64(&K1))).unwrap();
        assert_eq!(bare.versions(), vec![1]);
        let versioned = MasterKeyring::from_env_value(&format!("7:{}", b64(&K2))).unwrap();
        assert_eq!(versioned.versions(), vec![7]);
        assert_eq!(versioned.active().to_base64().expose_secret(), b64(&K2));
        let several =
            MasterKeyring::from_env_value(&format!("1:{}, 2:{}", b64(&K1), b64(&K2))).unwrap();
        assert_eq!(several.versions(), vec![1, 2]);
        for bad in [
            String::new(),
            format!("x:{}", b64(&K1)),
            format!(":{}", b64(&K1)),
            format!("1:{},{}", b64(&K1), b64(&K2)),
            "1:short".to_owned(),
        ] {
            assert!(MasterKeyring::from_env_value(&bad).is_err(), "{bad}");
        }
    }
}

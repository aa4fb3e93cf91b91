//! Blind indexes: keyed, truncated hashes of normalised values, so sealed fields can be
//! searched by exact match (and duplicates found) without decrypting them.

use std::fmt;

use ring::{hkdf, hmac};
use zeroize::{ZeroizeOnDrop, Zeroizing};

use crate::{KEY_LEN, Result, fill_random};

/// HKDF info prefix; versioned so a future derivation can never collide with this one.
const FIELD_KEY_INFO: &[u8] = b"custos/blind-index/v1";

/// The root secret from which every field's blind-index key is derived.
///
/// One root per deployment (stored sealed under the master key); per-field keys keep
/// the indexes of two fields unlinkable even when they hold the same value.
pub struct BlindIndexRoot {
    bytes: Zeroizing<[u8; KEY_LEN]>,
}

impl ZeroizeOnDrop for BlindIndexRoot {}

impl fmt::Debug for BlindIndexRoot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlindIndexRoot").finish_non_exhaustive()
    }
}

impl BlindIndexRoot {
    /// A new random root.
    pub fn generate() -> Result<Self> {
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        fill_random(&mut bytes[..])?;
        Ok(Self { bytes })
    }

    /// A root from raw bytes (e.g. after unsealing the stored one).
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        Self {
            bytes: Zeroizing::new(bytes),
        }
    }

    /// The raw bytes, to seal them for storage.
    pub fn to_bytes(&self) -> Zeroizing<[u8; KEY_LEN]> {
        Zeroizing::new(*self.bytes)
    }

    /// The key for one field's index: HKDF-SHA256 (RFC 5869) with an empty salt (the
    /// RFC's default, the root already being uniformly random), the root as input key
    /// material and info `b"custos/blind-index/v1" ‖ entity ‖ 0x00 ‖ field`.
    ///
    /// Entity names must not contain NUL, which keeps the info encoding unambiguous;
    /// they are identifiers from the data inventory, so they never do.
    pub fn field_key(&self, entity: &str, field: &str) -> BlindIndexKey {
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, &[]).extract(&self.bytes[..]);
        let info: [&[u8]; 4] = [FIELD_KEY_INFO, entity.as_bytes(), &[0u8], field.as_bytes()];
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        // HKDF_SHA256 as the output type asks for exactly 32 bytes, far below the
        // 255 × 32 limit, so neither call can fail.
        prk.expand(&info, hkdf::HKDF_SHA256)
            .and_then(|okm| okm.fill(&mut bytes[..]))
            .expect("32 bytes is within HKDF-SHA256's output limit");
        BlindIndexKey { bytes }
    }
}

/// The key of one field's blind index (derive it with [`BlindIndexRoot::field_key`]).
#[derive(Clone)]
pub struct BlindIndexKey {
    bytes: Zeroizing<[u8; KEY_LEN]>,
}

impl ZeroizeOnDrop for BlindIndexKey {}

impl fmt::Debug for BlindIndexKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlindIndexKey").finish_non_exhaustive()
    }
}

impl BlindIndexKey {
    /// The blind index of an already normalised value (see [`crate::normalize`]):
    /// HMAC-SHA-256 under this key, truncated to `bits` bits.
    ///
    /// `bits` is clamped to 8..=256. The result has `ceil(bits / 8)` bytes, and the
    /// unused low bits of the last byte are zero, so equal inputs give equal bytes that
    /// a database can compare directly. Choose `bits` with [`blind_index_bits`].
    pub fn index(&self, normalized: &str, bits: u32) -> Vec<u8> {
        let bits = bits.clamp(8, 256);
        let mac = hmac_sha256(&self.bytes[..], normalized.as_bytes());
        let len = bits.div_ceil(8) as usize;
        let mut out = mac[..len].to_vec();
        let spare = bits % 8;
        if spare != 0 {
            out[len - 1] &= 0xffu8 << (8 - spare);
        }
        out
    }
}

/// HMAC-SHA-256 (RFC 2104) of `msg` under `key` (any length).
pub fn hmac_sha256(key: &[u8], msg: &[u8]) -> [u8; 32] {
    let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), msg);
    let mut out = [0u8; 32];
    out.copy_from_slice(tag.as_ref());
    out
}

/// How many bits a field's blind index should keep for a table expected to hold
/// `expected_rows` rows, following CipherSweet's rule for a single index.
///
/// A blind index must not be unique per value, or it becomes a stable pseudonym that
/// pins down a row and leaks which rows share a value. CipherSweet's planner asks that
/// the expected number of coincidences, `R / 2^L`, stay at least 2. The largest such L
/// is `L = floor(log2 R) − 1` (for R ≥ 4; 1 below that), which gives between 2 and 4
/// coincidences: at the expected size a lookup returns about 2–4 candidate rows, and
/// the caller opens each and compares the plaintext to drop the false positives.
/// (CipherSweet's `recommendHigh` picks the smallest L with at most 2 coincidences,
/// one bit more unless R is a power of two; this rule errs towards privacy.)
///
/// The result is clamped to 8..=32 bits. The floor is the one byte that
/// [`BlindIndexKey::index`] always keeps; it means a table expected to stay under 512
/// rows gets fewer than 2 expected coincidences, i.e. less cover than the rule aims
/// for, in exchange for lookups that do not return a large share of the table. The
/// ceiling is only reached from 2^33 rows. Size for the table you expect to have, not
/// the one you have today: the bits cannot change without re-indexing.
pub fn blind_index_bits(expected_rows: u64) -> u32 {
    let bits = if expected_rows < 4 {
        1
    } else {
        // floor(log2 R) for R ≥ 1 is the index of the highest set bit.
        let floor_log2 = 63 - expected_rows.leading_zeros();
        floor_log2 - 1
    };
    bits.clamp(8, 32)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn root() -> BlindIndexRoot {
        BlindIndexRoot::from_bytes([0x42u8; 32])
    }

    #[test]
    fn bits_follow_the_rule() {
        // 1e6 rows: log2 = 19.93, floor 19, minus 1 = 18 → 1e6 / 2^18 ≈ 3.8 coincidences.
        assert_eq!(blind_index_bits(1_000_000), 18);
        // 2^20 rows: 20 − 1 = 19 → exactly 2 coincidences.
        assert_eq!(blind_index_bits(1 << 20), 19);
        // 100 000 rows: log2 = 16.6 → 15 → ≈ 3.05 coincidences.
        assert_eq!(blind_index_bits(100_000), 15);
        // 1024 rows: 10 − 1 = 9.
        assert_eq!(blind_index_bits(1024), 9);
        // Small tables hit the 8-bit floor.
        for rows in [0, 1, 3, 4, 100, 511, 512, 1023] {
            assert_eq!(blind_index_bits(rows), 8, "{rows}");
        }
        // Huge tables hit the 32-bit ceiling: 2^33 rows → 32, beyond stays 32.
        assert_eq!(blind_index_bits(1 << 33), 32);
        assert_eq!(blind_index_bits(1 << 40), 32);
        assert_eq!(blind_index_bits(u64::MAX), 32);
        assert_eq!(blind_index_bits((1 << 33) - 1), 31);
    }

    #[test]
    fn field_key_is_hkdf_sha256_as_documented() {
        // Rebuild HKDF by hand from HMAC (RFC 5869: empty salt = 32 zero bytes; one
        // block of output = HMAC(PRK, info ‖ 0x01)).
        let prk = hmac_sha256(&[0u8; 32], &[0x42u8; 32]);
        let mut info = b"custos/blind-index/v1".to_vec();
        info.extend_from_slice(b"contact\0email");
        info.push(0x01);
        let okm = hmac_sha256(&prk, &info);
        let key = root().field_key("contact", "email");
        assert_eq!(
            key.index("alice@example.com", 256),
            hmac_sha256(&okm, b"alice@example.com")
        );
    }

    #[test]
    fn deterministic_per_key_and_distinct_across_fields() {
        let email = root().field_key("contact", "email");
        assert_eq!(
            email.index("a@b.c", 32),
            root().field_key("contact", "email").index("a@b.c", 32)
        );
        assert_ne!(email.index("a@b.c", 64), email.index("a@b.d", 64));
        assert_ne!(
            email.index("a@b.c", 64),
            root().field_key("contact", "phone").index("a@b.c", 64)
        );
        assert_ne!(
            email.index("a@b.c", 64),
            root().field_key("company", "email").index("a@b.c", 64)
        );
        // The NUL separator keeps ("ab", "c") and ("a", "bc") apart.
        assert_ne!(
            root().field_key("ab", "c").index("x", 64),
            root().field_key("a", "bc").index("x", 64)
        );
        let other_root = BlindIndexRoot::from_bytes([0x43u8; 32]).field_key("contact", "email");
        assert_ne!(email.index("a@b.c", 64), other_root.index("a@b.c", 64));
    }

    #[test]
    fn truncation_masks_low_bits() {
        let key = root().field_key("contact", "email");
        let full = key.index("value", 256);
        assert_eq!(full.len(), 32);
        for bits in 8..=256u32 {
            let idx = key.index("value", bits);
            let len = bits.div_ceil(8) as usize;
            assert_eq!(idx.len(), len, "{bits}");
            // Every kept bit equals the full MAC's bit, every dropped bit is zero.
            for bit in 0..(len * 8) {
                let got = (idx[bit / 8] >> (7 - bit % 8)) & 1;
                let want = if (bit as u32) < bits {
                    (full[bit / 8] >> (7 - bit % 8)) & 1
                } else {
                    0
                };
                assert_eq!(got, want, "bits {bits}, bit {bit}");
            }
        }
        // Out-of-range sizes are clamped.
        assert_eq!(key.index("value", 0), key.index("value", 8));
        assert_eq!(key.index("value", 1000), full);
    }

    #[test]
    fn root_bytes_round_trip_and_debug_is_silent() {
        let r = root();
        assert_eq!(*r.to_bytes(), [0x42u8; 32]);
        assert_eq!(format!("{r:?}"), "BlindIndexRoot { .. }");
        assert_eq!(
            format!("{:?}", r.field_key("a", "b")),
            "BlindIndexKey { .. }"
        );
        let a = BlindIndexRoot::generate().unwrap();
        let b = BlindIndexRoot::generate().unwrap();
        assert_ne!(*a.to_bytes(), *b.to_bytes());
    }
}

//! Sealed fields: AES-256-GCM with the row's identity bound in as associated data.

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use zeroize::Zeroizing;

use crate::{CryptoError, DataKey, KEY_LEN, Result, fill_random};

/// Format version of a sealed field; bump it (and keep opening the old one) if the
/// layout or the associated data ever changes.
const FIELD_FORMAT_V1: u8 = 0x01;
/// Domain separation, so a sealed field can never be accepted as a wrapped key or
/// anything else sealed under the same key.
const FIELD_AAD_DOMAIN: &[u8] = b"custos/field/v1";
/// Format version byte plus the big-endian data-key version.
const FIELD_HEADER_LEN: usize = 1 + 4;
/// AES-GCM tag length.
pub(crate) const TAG_LEN: usize = 16;
/// Shortest possible sealed field: header, nonce and tag around an empty plaintext.
const SEALED_MIN_LEN: usize = FIELD_HEADER_LEN + NONCE_LEN + TAG_LEN;

/// Where a sealed value lives. Every part goes into the associated data, so a
/// ciphertext copied to another tenant, entity, field, record or subject fails to open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SealContext<'a> {
    /// Tenant id.
    pub tenant: &'a str,
    /// Entity (table) name, e.g. `"contact"`.
    pub entity: &'a str,
    /// Field (column) name, e.g. `"email"`.
    pub field: &'a str,
    /// Id of the record (row) that holds the value.
    pub record_id: &'a str,
    /// Id of the data subject whose data key sealed the value.
    pub subject_id: &'a str,
}

impl SealContext<'_> {
    /// The associated data: domain ‖ header ‖ each part length-prefixed.
    ///
    /// Length prefixes make the encoding injective: ("ab", "c") and ("a", "bc") differ.
    fn aad(&self, header: &[u8]) -> Result<Vec<u8>> {
        let parts = [
            self.tenant,
            self.entity,
            self.field,
            self.record_id,
            self.subject_id,
        ];
        let len = FIELD_AAD_DOMAIN.len()
            + header.len()
            + parts.iter().map(|p| 4 + p.len()).sum::<usize>();
        let mut aad = Vec::with_capacity(len);
        aad.extend_from_slice(FIELD_AAD_DOMAIN);
        aad.extend_from_slice(header);
        for part in parts {
            // Ids and names are far below 4 GiB; refusing a longer one keeps the
            // length prefix exact, hence the encoding injective.
            let part_len = u32::try_from(part.len())
                .map_err(|_| CryptoError::Format("seal context (a part is 4 GiB or longer)"))?;
            aad.extend_from_slice(&part_len.to_be_bytes());
            aad.extend_from_slice(part.as_bytes());
        }
        Ok(aad)
    }
}

/// Seals `plaintext` for the place described by `ctx` under `key`.
///
/// Output: `0x01 ‖ dek_version (u32 BE) ‖ 12-byte random nonce ‖ ciphertext ‖ 16-byte tag`.
/// The associated data is `b"custos/field/v1" ‖ the 5-byte header ‖` each of tenant,
/// entity, field, record id and subject id as a u32 BE length then its bytes.
/// Random nonces are safe here because each data key seals one subject's fields only,
/// far below the 2^32 messages at which 96-bit random nonces start to risk a repeat.
pub fn seal(key: &DataKey, ctx: &SealContext<'_>, plaintext: &[u8]) -> Result<Vec<u8>> {
    let mut header = [0u8; FIELD_HEADER_LEN];
    header[0] = FIELD_FORMAT_V1;
    header[1..].copy_from_slice(&key.version().to_be_bytes());
    let mut nonce = [0u8; NONCE_LEN];
    fill_random(&mut nonce)?;
    let aad = ctx.aad(&header)?;

    // Exact capacity so the buffer never reallocates and leaves a stray plaintext copy
    // in freed memory: the plaintext is encrypted in place.
    let mut out = Vec::with_capacity(SEALED_MIN_LEN + plaintext.len());
    out.extend_from_slice(&header);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(plaintext);
    let tag = gcm_key(key.bytes())?
        .seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(&aad),
            &mut out[FIELD_HEADER_LEN + NONCE_LEN..],
        )
        .map_err(|_| CryptoError::Format("plaintext (too long for AES-GCM)"))?;
    out.extend_from_slice(tag.as_ref());
    Ok(out)
}

/// Opens a value made by [`seal`] with the same key and context.
///
/// Errors: [`CryptoError::Format`] for a short input or an unknown format byte;
/// [`CryptoError::Open`] when the value was sealed under another data-key version,
/// for another context, or was modified.
pub fn open(key: &DataKey, ctx: &SealContext<'_>, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
    let version = sealed_key_version(sealed)?;
    if version != key.version() {
        // Reported as Open, not Format: to the caller it is simply the wrong key.
        return Err(CryptoError::Open);
    }
    let (header, rest) = sealed.split_at(FIELD_HEADER_LEN);
    let (nonce, ct_and_tag) = rest.split_at(NONCE_LEN);
    let aad = ctx.aad(header)?;
    open_zeroizing(key.bytes(), nonce, &aad, ct_and_tag)
}

/// Reads which data-key version sealed `sealed`, so the caller can fetch that key.
pub fn sealed_key_version(sealed: &[u8]) -> Result<u32> {
    if sealed.len() < SEALED_MIN_LEN {
        return Err(CryptoError::Format("sealed value (too short)"));
    }
    if sealed[0] != FIELD_FORMAT_V1 {
        return Err(CryptoError::Format("sealed value (unknown format version)"));
    }
    Ok(read_u32_be(&sealed[1..5]))
}

/// AES-256-GCM encryption with caller-chosen nonce; returns `ciphertext ‖ tag`.
///
/// The building block under [`seal`] and key wrapping, public so it can be checked
/// against external test vectors. The caller must never reuse a nonce with a key.
pub fn aes256gcm_seal(key: &[u8], nonce: &[u8], aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>> {
    let key = gcm_key(key)?;
    let nonce = gcm_nonce(nonce)?;
    let mut out = Vec::with_capacity(plaintext.len() + TAG_LEN);
    out.extend_from_slice(plaintext);
    key.seal_in_place_append_tag(nonce, Aad::from(aad), &mut out)
        .map_err(|_| CryptoError::Format("plaintext (too long for AES-GCM)"))?;
    Ok(out)
}

/// AES-256-GCM decryption of `ciphertext ‖ tag`; [`CryptoError::Open`] if the tag
/// does not verify (including inputs shorter than a tag).
pub fn aes256gcm_open(key: &[u8], nonce: &[u8], aad: &[u8], ct_and_tag: &[u8]) -> Result<Vec<u8>> {
    // Callers of this low-level function get a plain Vec; copy out of the zeroizing
    // buffer so the working copy is still wiped.
    open_zeroizing(key, nonce, aad, ct_and_tag).map(|pt| pt.to_vec())
}

/// Decrypts into a buffer that is wiped on drop, so plaintext never lingers.
pub(crate) fn open_zeroizing(
    key: &[u8],
    nonce: &[u8],
    aad: &[u8],
    ct_and_tag: &[u8],
) -> Result<Zeroizing<Vec<u8>>> {
    let key = gcm_key(key)?;
    let nonce = gcm_nonce(nonce)?;
    let mut buf = Zeroizing::new(ct_and_tag.to_vec());
    let plaintext_len = key
        .open_in_place(nonce, Aad::from(aad), &mut buf)
        .map_err(|_| CryptoError::Open)?
        .len();
    buf.truncate(plaintext_len);
    Ok(buf)
}

/// Builds a ring AES-256-GCM key; rejects any length but 32 bytes.
fn gcm_key(key: &[u8]) -> Result<LessSafeKey> {
    if key.len() != KEY_LEN {
        return Err(CryptoError::InvalidKey("AES-256-GCM needs a 32-byte key"));
    }
    UnboundKey::new(&AES_256_GCM, key)
        .map(LessSafeKey::new)
        .map_err(|_| CryptoError::InvalidKey("AES-256-GCM needs a 32-byte key"))
}

/// Builds a ring nonce; rejects any length but 12 bytes.
fn gcm_nonce(nonce: &[u8]) -> Result<Nonce> {
    Nonce::try_assume_unique_for_key(nonce)
        .map_err(|_| CryptoError::Format("nonce (must be 12 bytes)"))
}

/// Reads a big-endian u32 from exactly four bytes.
pub(crate) fn read_u32_be(bytes: &[u8]) -> u32 {
    let mut buf = [0u8; 4];
    buf.copy_from_slice(&bytes[..4]);
    u32::from_be_bytes(buf)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn ctx() -> SealContext<'static> {
        SealContext {
            tenant: "t1",
            entity: "contact",
            field: "email",
            record_id: "r1",
            subject_id: "s1",
        }
    }

    fn key(version: u32) -> DataKey {
        DataKey::from_bytes(version, [7u8; 32])
    }

    #[test]
    fn round_trip_and_layout() {
        let k = key(3);
        let sealed = seal(&k, &ctx(), b"alice@example.com").unwrap();
        assert_eq!(sealed.len(), 5 + 12 + 17 + 16);
        assert_eq!(sealed[0], 0x01);
        assert_eq!(&sealed[1..5], &[0, 0, 0, 3]);
        assert_eq!(sealed_key_version(&sealed).unwrap(), 3);
        assert_eq!(
            open(&k, &ctx(), &sealed).unwrap().as_slice(),
            b"alice@example.com"
        );
    }

    #[test]
    fn same_plaintext_seals_differently() {
        // Random nonces: equal plaintexts must not be linkable by their ciphertexts.
        let k = key(1);
        assert_ne!(
            seal(&k, &ctx(), b"x").unwrap(),
            seal(&k, &ctx(), b"x").unwrap()
        );
    }

    #[test]
    fn aad_matches_the_documented_layout() {
        // Independently rebuild the AAD from the spec and open with the low-level API.
        let k = key(0x0102_0304);
        let sealed = seal(&k, &ctx(), b"hello").unwrap();
        let mut aad = b"custos/field/v1".to_vec();
        aad.extend_from_slice(&[0x01, 1, 2, 3, 4]);
        for part in ["t1", "contact", "email", "r1", "s1"] {
            aad.extend_from_slice(&(part.len() as u32).to_be_bytes());
            aad.extend_from_slice(part.as_bytes());
        }
        let pt = aes256gcm_open(&[7u8; 32], &sealed[5..17], &aad, &sealed[17..]).unwrap();
        assert_eq!(pt, b"hello");
    }

    #[test]
    fn any_context_change_fails() {
        let k = key(1);
        let sealed = seal(&k, &ctx(), b"secret").unwrap();
        let variants = [
            SealContext {
                tenant: "t2",
                ..ctx()
            },
            SealContext {
                entity: "company",
                ..ctx()
            },
            SealContext {
                field: "phone",
                ..ctx()
            },
            SealContext {
                record_id: "r2",
                ..ctx()
            },
            SealContext {
                subject_id: "s2",
                ..ctx()
            },
            // Same concatenation, different split: length prefixes must tell them apart.
            SealContext {
                tenant: "t1c",
                entity: "ontact",
                ..ctx()
            },
        ];
        for other in variants {
            assert!(
                matches!(open(&k, &other, &sealed), Err(CryptoError::Open)),
                "{other:?}"
            );
        }
    }

    #[test]
    fn every_flipped_byte_fails() {
        let k = key(1);
        let sealed = seal(&k, &ctx(), b"secret").unwrap();
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 0x01;
            assert!(open(&k, &ctx(), &bad).is_err(), "byte {i}");
        }
    }

    #[test]
    fn other_key_or_version_fails() {
        let sealed = seal(&key(1), &ctx(), b"secret").unwrap();
        let other = DataKey::from_bytes(1, [8u8; 32]);
        assert!(matches!(
            open(&other, &ctx(), &sealed),
            Err(CryptoError::Open)
        ));
        // Same bytes, other version: refused before even trying.
        assert!(matches!(
            open(&key(2), &ctx(), &sealed),
            Err(CryptoError::Open)
        ));
    }

    #[test]
    fn malformed_inputs_are_format_errors() {
        let k = key(1);
        assert!(matches!(open(&k, &ctx(), &[]), Err(CryptoError::Format(_))));
        assert!(matches!(
            open(&k, &ctx(), &[1u8; 32]),
            Err(CryptoError::Format(_))
        ));
        let mut sealed = seal(&k, &ctx(), b"").unwrap();
        assert_eq!(sealed.len(), 33);
        assert_eq!(open(&k, &ctx(), &sealed).unwrap().len(), 0);
        sealed[0] = 0x02;
        assert!(matches!(
            open(&k, &ctx(), &sealed),
            Err(CryptoError::Format(_))
        ));
        assert!(matches!(
            sealed_key_version(&sealed),
            Err(CryptoError::Format(_))
        ));
    }

    #[test]
    fn low_level_rejects_bad_sizes() {
        assert!(matches!(
            aes256gcm_seal(&[0u8; 16], &[0u8; 12], b"", b""),
            Err(CryptoError::InvalidKey(_))
        ));
        assert!(matches!(
            aes256gcm_seal(&[0u8; 32], &[0u8; 16], b"", b""),
            Err(CryptoError::Format(_))
        ));
        assert!(matches!(
            aes256gcm_open(&[0u8; 31], &[0u8; 12], b"", &[0u8; 16]),
            Err(CryptoError::InvalidKey(_))
        ));
        assert!(matches!(
            aes256gcm_open(&[0u8; 32], &[0u8; 8], b"", &[0u8; 16]),
            Err(CryptoError::Format(_))
        ));
        assert!(matches!(
            aes256gcm_open(&[0u8; 32], &[0u8; 12], b"", &[0u8; 15]),
            Err(CryptoError::Open)
        ));
    }
}

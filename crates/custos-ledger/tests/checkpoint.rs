//! Signed checkpoints, checked against golang.org/x/mod/sumdb/note's test
//! vectors (an independent implementation of C2SP signed notes) and by
//! tampering with our own notes.
#![allow(clippy::unwrap_used)]

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use custos_ledger::checkpoint::{
    Checkpoint, CheckpointError, NoteSigner, verify_checkpoint, verify_note,
};
use custos_ledger::leaf_hash;

// From golang.org/x/mod/sumdb/note/note_test.go.
const PETER_VKEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
const PETER_SKEY_B64: &str = "AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"; // 0x01 ‖ seed
const ENOCH_VKEY: &str = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop";
const TEXT: &str = "If you think cryptography is the answer to your problem,\n\
                    then you don't know what your problem is.\n";
const PETER_SIG: &str = "\u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";
const ENOCH_SIG: &str = "\u{2014} EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ=\n";

fn peter_signer() -> NoteSigner {
    let raw = BASE64.decode(PETER_SKEY_B64).unwrap();
    assert_eq!(raw[0], 0x01);
    let seed: [u8; 32] = raw[1..].try_into().unwrap();
    NoteSigner::from_seed("PeterNeumann", &seed).unwrap()
}

fn note(sigs: &str) -> String {
    format!("{TEXT}\n{sigs}")
}

/// Inserts "ABCD" at byte 60 of a signature line, as the Go test does.
fn corrupt(sig: &str) -> String {
    format!("{}ABCD{}", &sig[..60], &sig[60..])
}

#[test]
fn go_vector_note_verifies() {
    assert_eq!(verify_note(&note(PETER_SIG), PETER_VKEY).unwrap(), TEXT);
    // The exact note from the brief.
    let brief = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n\n— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";
    assert_eq!(verify_note(brief, PETER_VKEY).unwrap(), TEXT);
    // Its signature part is accepted by verify_checkpoint; only the body,
    // which is not a checkpoint, is refused.
    assert!(matches!(
        verify_checkpoint(brief, PETER_VKEY),
        Err(CheckpointError::MalformedCheckpoint(_))
    ));
}

#[test]
fn our_signer_reproduces_the_go_signature_and_key() {
    let signer = peter_signer();
    assert_eq!(signer.verifier_key(), PETER_VKEY);
    assert_eq!(signer.key_id(), 0xc74f20a3);
    // Ed25519 is deterministic, so the whole note must match byte for byte.
    assert_eq!(signer.sign_note(TEXT).unwrap(), note(PETER_SIG));
}

#[test]
fn signatures_from_other_keys_are_ignored() {
    let both = note(&format!("{PETER_SIG}{ENOCH_SIG}"));
    assert_eq!(verify_note(&both, PETER_VKEY).unwrap(), TEXT);
    assert_eq!(verify_note(&both, ENOCH_VKEY).unwrap(), TEXT);
    assert_eq!(
        verify_note(&note(ENOCH_SIG), PETER_VKEY),
        Err(CheckpointError::NoMatchingSignature)
    );
    // Only the first signature by our key counts; later duplicates and
    // corrupt lines from unknown keys are ignored, as in Go.
    let messy = note(&format!(
        "{PETER_SIG}{PETER_SIG}{ENOCH_SIG}{ENOCH_SIG}{}",
        corrupt(ENOCH_SIG)
    ));
    assert_eq!(verify_note(&messy, PETER_VKEY).unwrap(), TEXT);
}

#[test]
fn a_bad_signature_from_the_key_rejects_the_note() {
    assert_eq!(
        verify_note(&note(&corrupt(PETER_SIG)), PETER_VKEY),
        Err(CheckpointError::InvalidSignature)
    );
    // Different text, same signature.
    let altered = PETER_SIG.to_owned();
    let text = TEXT.replace("problem,", "problem;");
    assert_eq!(
        verify_note(&format!("{text}\n{altered}"), PETER_VKEY),
        Err(CheckpointError::InvalidSignature)
    );
}

#[test]
fn malformed_notes_are_refused() {
    let bad = [
        TEXT.to_owned(),
        format!("{TEXT}\n"),
        format!("{TEXT}\n{}", &PETER_SIG[..PETER_SIG.len() - 1]),
        format!("\x01{TEXT}\n{PETER_SIG}"),
        format!(
            "{TEXT}\n\u{2014} Bad Name x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM="
        ),
        format!("{TEXT}\n{PETER_SIG}Unexpected line.\n"),
        format!("{TEXT}\n{}", PETER_SIG.replace('\u{2014}', "-")),
        format!("{TEXT}\n\u{2014} PeterNeumann \n"),
        format!("{TEXT}\n\u{2014} PeterNeumann AAAA\n"),
        format!("{TEXT}\n\u{2014} PeterNeumann not*base64\n"),
        format!("{TEXT}\n{}", PETER_SIG.replace('\n', "\r\n")),
    ];
    for msg in &bad {
        assert!(
            matches!(
                verify_note(msg, PETER_VKEY),
                Err(CheckpointError::MalformedNote(_))
            ),
            "accepted {msg:?}: {:?}",
            verify_note(msg, PETER_VKEY)
        );
    }
}

#[test]
fn signature_count_is_capped_at_100() {
    assert_eq!(
        verify_note(&note(&PETER_SIG.repeat(100)), PETER_VKEY).unwrap(),
        TEXT
    );
    assert_eq!(
        verify_note(&note(&PETER_SIG.repeat(101)), PETER_VKEY),
        Err(CheckpointError::MalformedNote("too many signatures"))
    );
}

#[test]
fn mangled_verifier_keys_are_refused() {
    // As Go's TestNewVerifier: every proper substring and every single-byte
    // change of the key must be refused.
    let b = PETER_VKEY.as_bytes();
    for i in 0..=b.len() {
        for j in i + 1..=b.len() {
            if i == 0 && j == b.len() {
                continue;
            }
            let part = &PETER_VKEY[i..j];
            assert!(
                verify_note(&note(PETER_SIG), part).is_err(),
                "accepted {part}"
            );
        }
    }
    for i in 0..b.len() {
        let mut m = b.to_vec();
        m[i] += 1;
        let mangled = String::from_utf8(m).unwrap();
        assert!(
            verify_note(&note(PETER_SIG), &mangled).is_err(),
            "accepted {mangled}"
        );
    }
    // Wrong key length and unknown algorithm, each with a matching key id.
    assert_eq!(
        verify_note(
            &note(PETER_SIG),
            "PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY=="
        ),
        Err(CheckpointError::MalformedVerifierKey)
    );
    assert_eq!(
        verify_note(
            &note(PETER_SIG),
            "PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
        ),
        Err(CheckpointError::UnsupportedAlgorithm(0x65))
    );
    assert_eq!(
        verify_note(
            &note(PETER_SIG),
            "PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
        ),
        Err(CheckpointError::VerifierKeyIdMismatch)
    );
}

fn checkpoint() -> Checkpoint {
    Checkpoint {
        origin: "custos.example.org/audit".into(),
        size: 1234,
        root: leaf_hash(b"root"),
    }
}

#[test]
fn checkpoint_round_trip() {
    let (signer, seed) = NoteSigner::generate("custos.example.org/audit").unwrap();
    assert_eq!(seed.len(), 32);
    let cp = checkpoint();
    let signed = signer.sign(&cp).unwrap();
    assert!(signed.starts_with(&format!(
        "custos.example.org/audit\n1234\n{}\n\n\u{2014} custos.example.org/audit ",
        BASE64.encode(cp.root)
    )));
    assert_eq!(
        verify_checkpoint(&signed, &signer.verifier_key()).unwrap(),
        cp
    );

    // The returned seed rebuilds the same key, through both constructors.
    let seed32: [u8; 32] = seed.as_slice().try_into().unwrap();
    let again = NoteSigner::from_seed("custos.example.org/audit", &seed32).unwrap();
    assert_eq!(again.verifier_key(), signer.verifier_key());
    assert_eq!(again.sign(&cp).unwrap(), signed);
    let again = NoteSigner::new("custos.example.org/audit", &seed).unwrap();
    assert_eq!(again.verifier_key(), signer.verifier_key());
    // Debug output shows the public verifier key only.
    assert!(format!("{signer:?}").contains(&signer.verifier_key()));
}

#[test]
fn pkcs8_keys_are_accepted() {
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = ring::signature::Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
    let signer = NoteSigner::new("log", pkcs8.as_ref()).unwrap();
    let signed = signer.sign(&checkpoint()).unwrap();
    assert_eq!(
        verify_checkpoint(&signed, &signer.verifier_key()).unwrap(),
        checkpoint()
    );
    assert_eq!(
        NoteSigner::new("log", &[0u8; 31]).unwrap_err(),
        CheckpointError::KeyRejected
    );
}

#[test]
fn tampered_checkpoints_are_refused() {
    let (signer, _) = NoteSigner::generate("custos.example.org/audit").unwrap();
    let vkey = signer.verifier_key();
    let cp = checkpoint();
    let signed = signer.sign(&cp).unwrap();

    let bigger = signed.replacen("\n1234\n", "\n1235\n", 1);
    assert_eq!(
        verify_checkpoint(&bigger, &vkey),
        Err(CheckpointError::InvalidSignature)
    );
    let other_root = signed.replacen(
        &BASE64.encode(cp.root),
        &BASE64.encode(leaf_hash(b"other")),
        1,
    );
    assert_eq!(
        verify_checkpoint(&other_root, &vkey),
        Err(CheckpointError::InvalidSignature)
    );
    let other_origin = signed.replacen("custos.example.org/audit\n", "evil.example/audit\n", 1);
    assert_eq!(
        verify_checkpoint(&other_origin, &vkey),
        Err(CheckpointError::InvalidSignature)
    );

    // Flip one bit of the signature itself, keeping valid base64.
    let (body, sig_line) = signed.rsplit_once("\n\n").unwrap();
    let b64 = sig_line.trim_end().rsplit_once(' ').unwrap().1;
    let mut raw = BASE64.decode(b64).unwrap();
    raw[10] ^= 0x01;
    let forged = format!(
        "{body}\n\n\u{2014} custos.example.org/audit {}\n",
        BASE64.encode(&raw)
    );
    assert_eq!(
        verify_checkpoint(&forged, &vkey),
        Err(CheckpointError::InvalidSignature)
    );
    // Dropping the signature leaves nothing to verify.
    assert!(verify_checkpoint(body, &vkey).is_err());
}

#[test]
fn wrong_keys_are_refused() {
    let (signer, _) = NoteSigner::generate("custos.example.org/audit").unwrap();
    let (same_name, _) = NoteSigner::generate("custos.example.org/audit").unwrap();
    let (other_name, _) = NoteSigner::generate("other.example/audit").unwrap();
    let signed = signer.sign(&checkpoint()).unwrap();
    assert_eq!(
        verify_checkpoint(&signed, &same_name.verifier_key()),
        Err(CheckpointError::NoMatchingSignature)
    );
    assert_eq!(
        verify_checkpoint(&signed, &other_name.verifier_key()),
        Err(CheckpointError::NoMatchingSignature)
    );
    // A key that claims our name and id but holds another public key fails
    // its own id check before anything is verified.
    let forged_vkey = format!(
        "custos.example.org/audit+{:08x}+{}",
        signer.key_id(),
        // base64 may itself contain '+': split off only name and id.
        same_name.verifier_key().splitn(3, '+').nth(2).unwrap()
    );
    assert_eq!(
        verify_checkpoint(&signed, &forged_vkey),
        Err(CheckpointError::VerifierKeyIdMismatch)
    );
}

#[test]
fn checkpoint_bodies_are_parsed_strictly() {
    let signer = NoteSigner::from_seed("log", &[9u8; 32]).unwrap();
    let vkey = signer.verifier_key();
    let root = BASE64.encode(leaf_hash(b"x"));
    let check = |body: &str| verify_checkpoint(&signer.sign_note(body).unwrap(), &vkey);

    assert_eq!(check(&format!("log\n0\n{root}\n")).unwrap().size, 0);
    // Extension lines are allowed.
    assert_eq!(
        check(&format!("log\n7\n{root}\nextension one\nanother\n"))
            .unwrap()
            .size,
        7
    );
    for bad in [
        format!("log\n07\n{root}\n"),
        format!("log\n-7\n{root}\n"),
        format!("log\n7 \n{root}\n"),
        format!("log\n\n{root}\n"),
        format!("\n7\n{root}\n"),
        "log\n7\n".to_owned(),
        format!("log\n7\n{}\n", BASE64.encode([1u8; 31])),
        format!("log\n7\n{}\n", root.trim_end_matches('=')),
        format!("log\n7\n{root}\n\n"),
        format!("log\n7\n{root}\next\n\nmore\n"),
        format!("log\n18446744073709551616\n{root}\n"),
    ] {
        assert!(
            matches!(check(&bad), Err(CheckpointError::MalformedCheckpoint(_))),
            "accepted {bad:?}: {:?}",
            check(&bad)
        );
    }
}

#[test]
fn invalid_names_and_origins_are_refused() {
    assert_eq!(
        NoteSigner::generate("has space").unwrap_err(),
        CheckpointError::InvalidKeyName
    );
    assert_eq!(
        NoteSigner::from_seed("a+b", &[1u8; 32]).unwrap_err(),
        CheckpointError::InvalidKeyName
    );
    assert_eq!(
        NoteSigner::from_seed("", &[1u8; 32]).unwrap_err(),
        CheckpointError::InvalidKeyName
    );
    let signer = NoteSigner::from_seed("log", &[1u8; 32]).unwrap();
    let mut cp = checkpoint();
    cp.origin = "two\nlines".into();
    assert!(signer.sign(&cp).is_err());
    cp.origin = String::new();
    assert!(signer.sign(&cp).is_err());
    assert!(signer.sign_note("no newline").is_err());
}

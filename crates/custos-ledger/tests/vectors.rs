//! RFC 9162 proof vectors from transparency-dev/merkle (see the README beside
//! them in ../shared/testdata/rfc9162-merkle): every file must give its
//! expected verdict.
#![allow(clippy::unwrap_used)]

use std::fs;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use custos_ledger::Hash;
use custos_ledger::merkle::{
    ProofError, verify_consistency, verify_consistency_bytes, verify_inclusion,
    verify_inclusion_bytes,
};
use serde::Deserialize;

const VECTORS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/testdata/rfc9162-merkle"
);
const EXPECTED_FILES: usize = 196;

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Inclusion {
    leaf_idx: u64,
    tree_size: u64,
    root: String,
    leaf_hash: String,
    proof: Option<Vec<String>>,
    desc: String,
    want_err: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Consistency {
    size1: u64,
    size2: u64,
    root1: String,
    root2: String,
    proof: Option<Vec<String>>,
    desc: String,
    #[serde(rename = "wantErr")]
    want_err: bool,
}

/// The vectors folder, or `None` (after saying so) when it is absent outside CI.
fn vectors_dir() -> Option<PathBuf> {
    let dir = PathBuf::from(VECTORS);
    if dir.is_dir() {
        return Some(dir);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "../shared/testdata not found at {VECTORS} and CI is set"
    );
    eprintln!("skipped: ../shared/testdata not found ({VECTORS})");
    None
}

fn json_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            json_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "json") {
            out.push(path);
        }
    }
}

fn b64(s: &str) -> Vec<u8> {
    BASE64.decode(s).unwrap()
}

fn as_hash(bytes: &[u8]) -> Option<Hash> {
    Hash::try_from(bytes).ok()
}

/// Runs one inclusion vector; returns whether the typed (`&Hash`) API could
/// also express it, in which case both verdicts must agree.
fn run_inclusion(path: &Path, v: &Inclusion) -> bool {
    let leaf = b64(&v.leaf_hash);
    let root = b64(&v.root);
    let proof: Vec<Vec<u8>> = v.proof.iter().flatten().map(|p| b64(p)).collect();
    let verdict = verify_inclusion_bytes(&leaf, v.leaf_idx, v.tree_size, &proof, &root);
    assert_eq!(
        verdict.is_err(),
        v.want_err,
        "{}: {} gave {verdict:?}",
        path.display(),
        v.desc
    );
    let typed_proof: Option<Vec<Hash>> = proof.iter().map(|p| as_hash(p)).collect();
    match (as_hash(&leaf), typed_proof, as_hash(&root)) {
        (Some(leaf), Some(proof), Some(root)) => {
            let typed = verify_inclusion(&leaf, v.leaf_idx, v.tree_size, &proof, &root);
            assert_eq!(typed, verdict, "{}: typed API disagrees", path.display());
            true
        }
        _ => {
            // Not expressible as 32-byte hashes: it must be a rejection.
            assert!(v.want_err, "{}: odd-length hashes accepted", path.display());
            false
        }
    }
}

fn run_consistency(path: &Path, v: &Consistency) -> bool {
    let root1 = b64(&v.root1);
    let root2 = b64(&v.root2);
    let proof: Vec<Vec<u8>> = v.proof.iter().flatten().map(|p| b64(p)).collect();
    let verdict = verify_consistency_bytes(v.size1, v.size2, &proof, &root1, &root2);
    assert_eq!(
        verdict.is_err(),
        v.want_err,
        "{}: {} gave {verdict:?}",
        path.display(),
        v.desc
    );
    let typed_proof: Option<Vec<Hash>> = proof.iter().map(|p| as_hash(p)).collect();
    match (as_hash(&root1), typed_proof, as_hash(&root2)) {
        (Some(r1), Some(proof), Some(r2)) => {
            let typed = verify_consistency(v.size1, v.size2, &proof, &r1, &r2);
            assert_eq!(typed, verdict, "{}: typed API disagrees", path.display());
            true
        }
        _ => false,
    }
}

#[test]
fn rfc9162_vectors_give_expected_verdicts() {
    let Some(dir) = vectors_dir() else { return };
    let mut files = Vec::new();
    json_files(&dir, &mut files);
    files.sort();
    assert_eq!(files.len(), EXPECTED_FILES, "vector file count");

    let (mut inclusion, mut consistency, mut typed, mut accepted) = (0, 0, 0, 0);
    for path in &files {
        let text = fs::read_to_string(path).unwrap();
        let rel = path.strip_prefix(&dir).unwrap();
        let want_err = if rel.starts_with("inclusion") {
            let v: Inclusion = serde_json::from_str(&text).unwrap();
            inclusion += 1;
            typed += usize::from(run_inclusion(path, &v));
            v.want_err
        } else if rel.starts_with("consistency") {
            let v: Consistency = serde_json::from_str(&text).unwrap();
            consistency += 1;
            typed += usize::from(run_consistency(path, &v));
            v.want_err
        } else {
            panic!("unexpected vector file {}", path.display());
        };
        accepted += usize::from(!want_err);
    }
    assert_eq!(inclusion + consistency, EXPECTED_FILES);
    eprintln!(
        "ran {} vectors: {inclusion} inclusion, {consistency} consistency, \
         {accepted} expected to verify, {typed} also through the typed API",
        files.len()
    );
}

/// The two strictness rules the vectors' README names, checked directly.
#[test]
fn strictness_rules() {
    let h = [7u8; 32];
    assert_eq!(
        verify_inclusion_bytes(&h[..31], 0, 1, &[] as &[Vec<u8>], &h),
        Err(ProofError::InvalidHashLength { len: 31 })
    );
    assert_eq!(
        verify_consistency(0, 0, &[], &h, &h),
        Err(ProofError::SizeOutOfRange)
    );
    assert_eq!(
        verify_consistency(0, 5, &[h], &h, &h),
        Err(ProofError::SizeOutOfRange)
    );
}

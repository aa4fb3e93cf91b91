//! The log verifier against a store that has been tampered with in each way
//! the design names: change, deletion, insertion, reordering, truncation.
#![allow(clippy::unwrap_used)]

use std::time::Instant;

use custos_ledger::checkpoint::Checkpoint;
use custos_ledger::event::AuditEvent;
use custos_ledger::merkle::{Appender, root};
use custos_ledger::verify::{LogVerifier, TamperError, TamperKind};
use custos_ledger::{Hash, empty_root, leaf_hash};

/// One stored row: claimed index, leaf bytes, stored leaf hash.
type Row = (u64, Vec<u8>, Hash);

const SIZE: u64 = 40;
const CHECKPOINT_SIZES: [u64; 3] = [10, 25, 40];

fn event(i: u64) -> AuditEvent {
    AuditEvent {
        v: 1,
        time: format!(
            "2026-11-30T02:{:02}:{:02}.{:03}Z",
            i / 60 % 60,
            i % 60,
            i % 1000
        ),
        actor: "system".into(),
        action: "contact.read".into(),
        subject_id: None,
        record: Some(format!("contact:{i}")),
        categories: vec!["identity".into()],
        purpose: None,
        outcome: "success".into(),
        client: None,
        request_id: Some(format!("req-{i}")),
        detail: None,
    }
}

fn row(index: u64, data: Vec<u8>) -> Row {
    let hash = leaf_hash(&data);
    (index, data, hash)
}

/// An honest log and the checkpoints it signed along the way.
fn honest() -> (Vec<Row>, Vec<Checkpoint>) {
    let mut rows = Vec::new();
    let mut tree = Appender::new();
    let mut checkpoints = Vec::new();
    for i in 0..SIZE {
        let r = row(i, event(i).encode().unwrap());
        tree.push(r.2);
        rows.push(r);
        if CHECKPOINT_SIZES.contains(&tree.size()) {
            checkpoints.push(Checkpoint {
                origin: "test/log".into(),
                size: tree.size(),
                root: tree.root(),
            });
        }
    }
    (rows, checkpoints)
}

/// Feeds rows to a verifier, then checks the checkpoints; the first problem wins.
fn verify(rows: &[Row], checkpoints: &[Checkpoint]) -> Result<(u64, Hash), TamperError> {
    let mut v = LogVerifier::with_checkpoints(checkpoints.iter().map(|c| c.size));
    for (index, data, hash) in rows {
        v.push(*index, data, Some(hash))?;
    }
    v.check_checkpoints(checkpoints)?;
    Ok(v.finish())
}

fn renumber(rows: &mut [Row]) {
    for (i, r) in rows.iter_mut().enumerate() {
        r.0 = i as u64;
    }
}

fn tamper(index: u64, kind: TamperKind) -> Result<(u64, Hash), TamperError> {
    Err(TamperError { index, kind })
}

#[test]
fn an_honest_log_verifies() {
    let (rows, checkpoints) = honest();
    let hashes: Vec<Hash> = rows.iter().map(|r| r.2).collect();
    assert_eq!(verify(&rows, &checkpoints), Ok((SIZE, root(&hashes))));
    // Without stored hashes, too.
    let mut v = LogVerifier::new();
    for (index, data, _) in &rows {
        v.push(*index, data, None).unwrap();
    }
    assert_eq!(v.root_at(SIZE), Some(root(&hashes)));
    assert_eq!(v.finish(), (SIZE, root(&hashes)));
}

#[test]
fn edited_leaf_with_old_hash_is_a_hash_mismatch() {
    let (mut rows, checkpoints) = honest();
    rows[17].1 = event(999).encode().unwrap();
    assert_eq!(
        verify(&rows, &checkpoints),
        tamper(17, TamperKind::HashMismatch)
    );
}

#[test]
fn edited_leaf_with_rewritten_hash_fails_the_next_checkpoint() {
    let (mut rows, checkpoints) = honest();
    rows[17] = row(17, event(999).encode().unwrap());
    assert_eq!(
        verify(&rows, &checkpoints),
        tamper(25, TamperKind::CheckpointMismatch)
    );
    // Checkpoint 10 still matches: the change lies in leaves 10..25.
    let v = feed(&rows);
    assert_eq!(v.check_checkpoint(&checkpoints[0]), Ok(()));
}

#[test]
fn edited_leaf_that_is_not_canonical_is_reported() {
    let (mut rows, checkpoints) = honest();
    let mut spaced = rows[17].1.clone();
    spaced.push(b' ');
    rows[17] = row(17, spaced);
    let err = verify(&rows, &checkpoints).unwrap_err();
    assert_eq!(err.index, 17);
    assert!(matches!(err.kind, TamperKind::BadEvent(_)), "{err}");
    rows[17] = row(17, b"not an event".to_vec());
    assert_eq!(verify(&rows, &checkpoints).unwrap_err().index, 17);
}

#[test]
fn deleted_leaf_is_a_gap() {
    let (mut rows, checkpoints) = honest();
    rows.remove(17);
    assert_eq!(
        verify(&rows, &checkpoints),
        tamper(17, TamperKind::Gap { found: 18 })
    );
    // The first leaf gone too.
    let (mut rows, _) = honest();
    rows.remove(0);
    assert_eq!(verify(&rows, &[]), tamper(0, TamperKind::Gap { found: 1 }));
}

#[test]
fn deleted_and_renumbered_leaf_fails_the_next_checkpoint() {
    let (mut rows, checkpoints) = honest();
    rows.remove(17);
    renumber(&mut rows);
    assert_eq!(
        verify(&rows, &checkpoints),
        tamper(25, TamperKind::CheckpointMismatch)
    );
}

#[test]
fn inserted_leaf_is_out_of_order() {
    let (mut rows, checkpoints) = honest();
    rows.insert(17, row(17, event(999).encode().unwrap()));
    assert_eq!(
        verify(&rows, &checkpoints),
        tamper(17, TamperKind::OutOfOrder { expected: 18 })
    );
}

#[test]
fn inserted_and_renumbered_leaf_fails_the_next_checkpoint() {
    let (mut rows, checkpoints) = honest();
    rows.insert(3, row(3, event(999).encode().unwrap()));
    renumber(&mut rows);
    assert_eq!(
        verify(&rows, &checkpoints),
        tamper(10, TamperKind::CheckpointMismatch)
    );
}

#[test]
fn reordered_rows_are_detected() {
    // Rows swapped in storage order, indices intact.
    let (mut rows, checkpoints) = honest();
    rows.swap(17, 18);
    assert_eq!(
        verify(&rows, &checkpoints),
        tamper(17, TamperKind::Gap { found: 18 })
    );
    // Contents swapped between two indices, hashes moved along.
    let (mut rows, checkpoints) = honest();
    rows.swap(17, 18);
    renumber(&mut rows);
    assert_eq!(
        verify(&rows, &checkpoints),
        tamper(25, TamperKind::CheckpointMismatch)
    );
    // Contents swapped, stored hashes left in place.
    let (mut rows, checkpoints) = honest();
    let (a, b) = (rows[17].1.clone(), rows[18].1.clone());
    rows[17].1 = b;
    rows[18].1 = a;
    assert_eq!(
        verify(&rows, &checkpoints),
        tamper(17, TamperKind::HashMismatch)
    );
}

#[test]
fn truncated_log_is_shorter_than_its_checkpoint() {
    let (mut rows, checkpoints) = honest();
    rows.truncate(30);
    assert_eq!(
        verify(&rows, &checkpoints),
        tamper(
            30,
            TamperKind::Truncated {
                checkpoint_size: 40
            }
        )
    );
    // Truncated to below the earlier checkpoints: the smallest one reports.
    let (mut rows, checkpoints) = honest();
    rows.truncate(5);
    assert_eq!(
        verify(&rows, &checkpoints),
        tamper(
            5,
            TamperKind::Truncated {
                checkpoint_size: 10
            }
        )
    );
}

#[test]
fn a_forged_checkpoint_root_is_a_mismatch() {
    let (rows, mut checkpoints) = honest();
    checkpoints[0].root = leaf_hash(b"forged");
    assert_eq!(
        verify(&rows, &checkpoints),
        tamper(10, TamperKind::CheckpointMismatch)
    );
}

#[test]
fn unregistered_sizes_are_not_silently_passed() {
    let (rows, checkpoints) = honest();
    let v = feed(&rows);
    assert_eq!(
        v.check_checkpoint(&Checkpoint {
            origin: "test/log".into(),
            size: 12,
            root: empty_root(),
        }),
        Err(TamperError {
            index: 12,
            kind: TamperKind::NotRecorded
        })
    );
    // The current size needs no registration.
    assert_eq!(v.check_checkpoint(&checkpoints[2]), Ok(()));
}

#[test]
fn empty_log() {
    let v = LogVerifier::with_checkpoints([0]);
    let cp = Checkpoint {
        origin: "test/log".into(),
        size: 0,
        root: empty_root(),
    };
    assert_eq!(v.check_checkpoint(&cp), Ok(()));
    assert_eq!(v.finish(), (0, empty_root()));
}

#[test]
fn a_failed_push_leaves_the_verifier_unchanged() {
    let (rows, _) = honest();
    let mut v = LogVerifier::new();
    v.push(0, &rows[0].1, Some(&rows[0].2)).unwrap();
    assert!(v.push(1, &rows[2].1, Some(&rows[1].2)).is_err());
    assert_eq!(v.size(), 1);
    v.push(1, &rows[1].1, Some(&rows[1].2)).unwrap();
    assert_eq!(v.size(), 2);
}

fn feed(rows: &[Row]) -> LogVerifier {
    let mut v = LogVerifier::with_checkpoints(CHECKPOINT_SIZES);
    for (index, data, hash) in rows {
        v.push(*index, data, Some(hash)).unwrap();
    }
    v
}

/// Run with `cargo test -p custos-ledger --release --test log_verifier -- --ignored --nocapture`.
#[test]
#[ignore = "timing; run in release"]
fn a_million_leaves() {
    const N: u64 = 1_000_000;
    let leaves: Vec<Vec<u8>> = (0..N).map(|i| event(i).encode().unwrap()).collect();

    let start = Instant::now();
    let mut tree = Appender::new();
    for data in &leaves {
        tree.push(leaf_hash(data));
    }
    let hashing = start.elapsed();

    let start = Instant::now();
    let mut v = LogVerifier::with_checkpoints([N / 2]);
    for (i, data) in leaves.iter().enumerate() {
        v.push(i as u64, data, None).unwrap();
    }
    let full = start.elapsed();
    assert_eq!(v.finish(), (N, tree.root()));
    eprintln!(
        "1M leaves: hashing + appending {hashing:?}; full verification with event decoding {full:?}"
    );
    assert!(hashing.as_secs_f64() < 1.0);
}

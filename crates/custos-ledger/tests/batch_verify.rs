//! `LogVerifier::push_batch` (checks spread over the cores) must reach the
//! same verdict as `push` leaf by leaf: the same root, the same first error,
//! and the same leaves taken before it. Batches are large enough here to take
//! the parallel path.
#![allow(clippy::unwrap_used)]

use custos_ledger::event::AuditEvent;
use custos_ledger::verify::{LogVerifier, StoredLeaf, TamperError};
use custos_ledger::{Hash, leaf_hash};

fn event(i: u64) -> Vec<u8> {
    AuditEvent {
        v: 1,
        time: format!("2026-11-30T02:13:{:02}.{:03}Z", (i / 1000) % 60, i % 1000),
        actor: "cli".into(),
        action: "contact.read".into(),
        subject_id: Some(format!("0192f0c1-0000-7000-8000-{i:012x}")),
        record: None,
        categories: vec!["identity".into()],
        purpose: None,
        outcome: "success".into(),
        client: Some("127.0.0.1".into()),
        request_id: None,
        detail: None,
    }
    .encode()
    .unwrap()
}

/// (index, data, stored hash) of each leaf.
type Log = Vec<(u64, Vec<u8>, Hash)>;

fn log(n: u64) -> Log {
    (0..n)
        .map(|i| {
            let d = event(i);
            let h = leaf_hash(&d);
            (i, d, h)
        })
        .collect()
}

fn one_by_one(log: &Log) -> (Result<(), TamperError>, u64, Hash) {
    let mut v = LogVerifier::new();
    let mut result = Ok(());
    for (i, d, h) in log {
        if let Err(e) = v.push(*i, d, Some(h)) {
            result = Err(e);
            break;
        }
    }
    (result, v.size(), v.root())
}

fn batched(log: &Log, batch: usize) -> (Result<(), TamperError>, u64, Hash) {
    let mut v = LogVerifier::new();
    let leaves: Vec<StoredLeaf<'_>> = log
        .iter()
        .map(|(i, d, h)| StoredLeaf {
            index: *i,
            data: d,
            leaf_hash: Some(h),
        })
        .collect();
    let mut result = Ok(());
    for chunk in leaves.chunks(batch) {
        if let Err(e) = v.push_batch(chunk) {
            result = Err(e);
            break;
        }
    }
    (result, v.size(), v.root())
}

#[track_caller]
fn same(log: &Log) {
    let expected = one_by_one(log);
    for batch in [5000, 20_000] {
        assert_eq!(batched(log, batch), expected, "batch {batch}");
    }
}

#[test]
fn batches_agree_with_one_by_one_on_good_and_tampered_logs() {
    let good = log(12_000);
    same(&good);
    assert!(one_by_one(&good).0.is_ok());

    // An edited leaf whose stored hash was not updated.
    let mut edited = good.clone();
    edited[7000].1[10] ^= 1;
    same(&edited);
    assert_eq!(one_by_one(&edited).0.unwrap_err().index, 7000);

    // A re-spelled (non-canonical) leaf with a matching stored hash.
    let mut respelled = good.clone();
    let mut text = String::from_utf8(respelled[6000].1.clone()).unwrap();
    text.insert(1, ' ');
    respelled[6000].1 = text.into_bytes();
    respelled[6000].2 = leaf_hash(&respelled[6000].1);
    same(&respelled);

    // A deleted leaf (a gap), and two problems where the earlier must win.
    let mut gap = good.clone();
    gap.remove(5000);
    same(&gap);
    let mut two = respelled.clone();
    two[3000].1[12] ^= 1;
    same(&two);
    assert_eq!(one_by_one(&two).0.unwrap_err().index, 3000);
    let mut late_hash = respelled.clone();
    late_hash[9000].1[12] ^= 1;
    same(&late_hash);
    assert_eq!(one_by_one(&late_hash).0.unwrap_err().index, 6000);
}

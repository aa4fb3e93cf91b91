//! Appending and verifying 1M ledger leaves, next to the raw SHA-256 rate over
//! the same bytes. Prints a table; never fails on time.
//!
//! Run: `cargo bench -p custos-ledger` (LEAVES=N to change the count).

use custos_ledger::event::AuditEvent;
use custos_ledger::merkle::Appender;
use custos_ledger::verify::{LogVerifier, StoredLeaf};
use std::time::Instant;

fn event(i: u64) -> Vec<u8> {
    let e = AuditEvent {
        v: 1,
        time: format!(
            "2026-11-30T02:{:02}:{:02}.{:03}Z",
            (i / 60_000) % 60,
            (i / 1000) % 60,
            i % 1000
        ),
        actor: "user:0196f3a2-7c1e-7d11-9a0b-3c4d5e6f7a8b".into(),
        action: ["contact.read", "contact.update", "deal.list", "auth.login"][(i % 4) as usize]
            .into(),
        subject_id: Some(format!("0196f3a2-7c1e-7d11-9a0b-{:012x}", i)),
        record: Some(format!("contact:0196f3a2-7c1e-7d11-9a0b-{:012x}", i)),
        categories: vec!["contact_details".into(), "identity".into()],
        purpose: None,
        outcome: "success".into(),
        client: Some("127.0.0.1".into()),
        request_id: Some(format!("0196f3a2-0000-7000-8000-{:012x}", i)),
        detail: Some("via=session:0196f3a2-7c1e-7d11-9a0b-3c4d5e6f7a8b".into()),
    };
    e.encode().expect("valid event")
}

fn rate(n: u64, bytes: u64, secs: f64) -> String {
    format!(
        "{:>10.0} leaves/s {:>8.1} MB/s {:>8.3} s",
        n as f64 / secs,
        bytes as f64 / secs / 1e6,
        secs
    )
}

fn main() {
    let n: u64 = std::env::var("LEAVES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let leaves: Vec<Vec<u8>> = (0..n).map(event).collect();
    let bytes: u64 = leaves.iter().map(|l| l.len() as u64).sum();
    println!(
        "custos-ledger benchmark: {n} leaves, {:.1} MB of canonical event bytes",
        bytes as f64 / 1e6
    );

    let t = Instant::now();
    let mut sink = 0u8;
    for l in &leaves {
        sink ^= ring::digest::digest(&ring::digest::SHA256, l).as_ref()[0];
    }
    let raw = t.elapsed().as_secs_f64();

    let t = Instant::now();
    let mut app = Appender::new();
    let mut nodes = 0usize;
    for l in &leaves {
        nodes += app.push(custos_ledger::leaf_hash(l)).len();
    }
    let append = t.elapsed().as_secs_f64();

    let t = Instant::now();
    let mut v = LogVerifier::new();
    for (i, l) in leaves.iter().enumerate() {
        v.push(i as u64, l, None).expect("untampered");
    }
    let (size, root) = v.finish();
    let verify_one = t.elapsed().as_secs_f64();
    assert_eq!(root, app.root());
    assert_eq!(size, n);

    // As `custos audit verify` runs it: batches of 20,000 stored leaves, each
    // checked against its stored leaf hash, the checks spread over the cores.
    let hashes: Vec<custos_ledger::Hash> =
        leaves.iter().map(|l| custos_ledger::leaf_hash(l)).collect();
    let t = Instant::now();
    let mut v = LogVerifier::new();
    let stored: Vec<StoredLeaf<'_>> = leaves
        .iter()
        .zip(&hashes)
        .enumerate()
        .map(|(i, (l, h))| StoredLeaf {
            index: i as u64,
            data: l,
            leaf_hash: Some(h),
        })
        .collect();
    for batch in stored.chunks(20_000) {
        v.push_batch(batch).expect("untampered");
    }
    let (size, root) = v.finish();
    let verify = t.elapsed().as_secs_f64();
    assert_eq!(root, app.root());
    assert_eq!(size, n);
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get());

    println!("| step | rate | vs raw SHA-256 |");
    println!("|---|---|---|");
    println!(
        "| raw SHA-256 of each leaf | {} | 1.00× |",
        rate(n, bytes, raw)
    );
    println!(
        "| append (leaf hash + tree, {nodes} nodes) | {} | {:.2}× |",
        rate(n, bytes, append),
        raw / append
    );
    println!(
        "| verify, one core (canonical check + leaf hash + tree) | {} | {:.2}× |",
        rate(n, bytes, verify_one),
        raw / verify_one
    );
    println!(
        "| verify, {cores} cores (as `custos audit verify`) | {} | {:.2}× |",
        rate(n, bytes, verify),
        raw / verify
    );
    println!("(checksum {sink})");
}

//! Property tests: the in-memory tree, the appender and the persisted-node
//! helpers agree, and every proof verifies until a single bit changes.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;

use custos_ledger::merkle::{
    Appender, NodeReader, ProofError, consistency_proof, consistency_proof_at, inclusion_proof,
    inclusion_proof_at, root, root_at, verify_consistency, verify_inclusion,
};
use custos_ledger::{Hash, empty_root, leaf_hash};
use proptest::prelude::*;

/// A node store holding exactly what `Appender::push` reported, counting reads.
#[derive(Default)]
struct MapReader {
    nodes: HashMap<(u32, u64), Hash>,
    reads: usize,
}

impl NodeReader for MapReader {
    fn perfect_node(&mut self, level: u32, index: u64) -> Result<Hash, ProofError> {
        self.reads += 1;
        self.nodes
            .get(&(level, index))
            .copied()
            .ok_or(ProofError::MissingNode { level, index })
    }
}

struct Log {
    leaves: Vec<Hash>,
    /// `roots[m]` = root of the first m leaves, as the appender saw it.
    roots: Vec<Hash>,
    reader: MapReader,
}

fn build(size: u64, salt: u64) -> Log {
    let leaves: Vec<Hash> = (0..size)
        .map(|i| leaf_hash(&[salt.to_be_bytes(), i.to_be_bytes()].concat()))
        .collect();
    let mut appender = Appender::new();
    let mut reader = MapReader::default();
    let mut roots = vec![appender.root()];
    for (i, leaf) in leaves.iter().enumerate() {
        let nodes = appender.push(*leaf);
        // The leaf itself comes first, at level 0 and its own index.
        assert_eq!(nodes[0], (0, i as u64, *leaf));
        for (level, index, hash) in nodes {
            assert!(
                reader.nodes.insert((level, index), hash).is_none(),
                "node reported twice"
            );
        }
        roots.push(appender.root());
    }
    assert_eq!(appender.size(), size);
    assert_eq!(appender.frontier().len(), size.count_ones() as usize);
    Log {
        leaves,
        roots,
        reader,
    }
}

/// ⌈log2(n+1)⌉: the depth bound that O(log² n) reads are measured against.
fn bits(n: u64) -> usize {
    (64 - n.leading_zeros()) as usize
}

fn flip(hash: &mut Hash, bit: usize) {
    hash[(bit / 8) % 32] ^= 1 << (bit % 8);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn roots_agree(size in 0u64..=300, salt in any::<u64>()) {
        let mut log = build(size, salt);
        for m in 0..=size {
            let prefix = &log.leaves[..m as usize];
            let expected = root(prefix);
            prop_assert_eq!(log.roots[m as usize], expected);
            log.reader.reads = 0;
            prop_assert_eq!(root_at(&mut log.reader, m).unwrap(), expected);
            prop_assert!(log.reader.reads <= bits(m));
        }
        if size == 0 {
            prop_assert_eq!(root(&[]), empty_root());
        }
    }

    #[test]
    fn inclusion_proofs_verify_and_bit_flips_fail(
        size in 1u64..=300,
        salt in any::<u64>(),
        bit in 0usize..256,
    ) {
        let mut log = build(size, salt);
        let tree_root = log.roots[size as usize];
        for i in 0..size {
            let leaf = log.leaves[i as usize];
            let proof = inclusion_proof(&log.leaves, i).unwrap();
            log.reader.reads = 0;
            let proof_at = inclusion_proof_at(&mut log.reader, i, size).unwrap();
            prop_assert_eq!(&proof, &proof_at);
            prop_assert!(log.reader.reads <= bits(size) * bits(size));
            prop_assert_eq!(verify_inclusion(&leaf, i, size, &proof, &tree_root), Ok(()));

            let mut bad_leaf = leaf;
            flip(&mut bad_leaf, bit);
            prop_assert!(verify_inclusion(&bad_leaf, i, size, &proof, &tree_root).is_err());
            let mut bad_root = tree_root;
            flip(&mut bad_root, bit);
            prop_assert!(verify_inclusion(&leaf, i, size, &proof, &bad_root).is_err());
            if !proof.is_empty() {
                let mut bad = proof.clone();
                let j = (bit + i as usize) % bad.len();
                flip(&mut bad[j], bit);
                prop_assert!(verify_inclusion(&leaf, i, size, &bad, &tree_root).is_err());
                prop_assert!(verify_inclusion(&leaf, i, size, &proof[1..], &tree_root).is_err());
            }
            let mut longer = proof.clone();
            longer.push(leaf);
            prop_assert!(verify_inclusion(&leaf, i, size, &longer, &tree_root).is_err());
        }
    }

    #[test]
    fn consistency_proofs_verify_and_bit_flips_fail(
        size in 1u64..=300,
        salt in any::<u64>(),
        bit in 0usize..256,
    ) {
        let mut log = build(size, salt);
        let root2 = log.roots[size as usize];
        for from in 1..=size {
            let root1 = log.roots[from as usize];
            let proof = consistency_proof(&log.leaves, from).unwrap();
            log.reader.reads = 0;
            let proof_at = consistency_proof_at(&mut log.reader, from, size).unwrap();
            prop_assert_eq!(&proof, &proof_at);
            prop_assert!(log.reader.reads <= bits(size) * bits(size));
            prop_assert_eq!(verify_consistency(from, size, &proof, &root1, &root2), Ok(()));

            let mut bad_root1 = root1;
            flip(&mut bad_root1, bit);
            prop_assert!(verify_consistency(from, size, &proof, &bad_root1, &root2).is_err());
            let mut bad_root2 = root2;
            flip(&mut bad_root2, bit);
            prop_assert!(verify_consistency(from, size, &proof, &root1, &bad_root2).is_err());
            if !proof.is_empty() {
                let mut bad = proof.clone();
                let j = (bit + from as usize) % bad.len();
                flip(&mut bad[j], bit);
                prop_assert!(verify_consistency(from, size, &bad, &root1, &root2).is_err());
                prop_assert!(
                    verify_consistency(from, size, &proof[..proof.len() - 1], &root1, &root2).is_err()
                );
            }
        }
    }

    /// Nodes persisted while the log grew to `size` serve proofs for any
    /// smaller tree size too, as the store needs for old checkpoints.
    #[test]
    fn persisted_nodes_serve_smaller_trees(
        size in 1u64..=300,
        salt in any::<u64>(),
        picks in prop::collection::vec((any::<u64>(), any::<u64>(), any::<u64>()), 1..16),
    ) {
        let mut log = build(size, salt);
        for (a, b, c) in picks {
            let m = 1 + a % size;
            let i = b % m;
            let from = 1 + c % m;
            let prefix = &log.leaves[..m as usize];
            prop_assert_eq!(
                inclusion_proof_at(&mut log.reader, i, m).unwrap(),
                inclusion_proof(prefix, i).unwrap()
            );
            prop_assert_eq!(
                consistency_proof_at(&mut log.reader, from, m).unwrap(),
                consistency_proof(prefix, from).unwrap()
            );
        }
    }
}

#[test]
fn persisted_helpers_refuse_bad_ranges_and_report_missing_nodes() {
    let mut log = build(6, 1);
    assert_eq!(
        inclusion_proof_at(&mut log.reader, 6, 6),
        Err(ProofError::IndexOutOfRange)
    );
    assert_eq!(
        consistency_proof_at(&mut log.reader, 0, 6),
        Err(ProofError::SizeOutOfRange)
    );
    assert_eq!(
        consistency_proof_at(&mut log.reader, 7, 6),
        Err(ProofError::SizeOutOfRange)
    );
    // Asking past what the store holds names the first node it lacks.
    assert_eq!(
        root_at(&mut log.reader, 8),
        Err(ProofError::MissingNode { level: 3, index: 0 })
    );
    log.reader.nodes.remove(&(1, 2));
    assert_eq!(
        root_at(&mut log.reader, 6),
        Err(ProofError::MissingNode { level: 1, index: 2 })
    );
}

#[test]
fn frontier_holds_one_hash_per_set_bit() {
    // The appender's memory is one hash per set bit of the size.
    let mut appender = Appender::new();
    for i in 0u64..(1 << 12) {
        appender.push(leaf_hash(&i.to_be_bytes()));
    }
    assert_eq!(appender.frontier().len(), 1);
    let resumed = Appender::from_frontier((1 << 20) - 1, vec![[0u8; 32]; 20]).unwrap();
    assert_eq!(resumed.frontier().len(), 20);
}

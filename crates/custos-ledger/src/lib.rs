//! The tamper-evident audit ledger of Custos.
//!
//! An append-only transparency log as in RFC 9162: every audit event becomes a
//! leaf, leaves are combined into a Merkle tree, and signed checkpoints (C2SP
//! `tlog-checkpoint` in a C2SP signed note, Ed25519) commit to the tree at a
//! given size. Inclusion and consistency proofs let an outside party check that
//! an event is in the log and that the log was only ever appended to.
//!
//! The crate does no I/O: the store persists leaves and perfect subtree nodes
//! and reads them back through [`merkle::NodeReader`].
//!
//! - [`merkle`]: tree hashing, proofs, verifiers, the O(log n) [`merkle::Appender`].
//! - [`event`]: the canonical leaf bytes of an [`event::AuditEvent`].
//! - [`checkpoint`]: signing and verifying checkpoints.
//! - [`verify`]: recomputing the whole tree from stored leaves to detect tampering.

#![forbid(unsafe_code)]

pub mod checkpoint;
pub mod event;
pub mod merkle;
pub mod verify;

pub use checkpoint::{Checkpoint, CheckpointError, NoteSigner, verify_checkpoint, verify_note};
pub use event::{AuditEvent, EventError};
pub use merkle::{Appender, NodeReader, ProofError};
pub use verify::{LogVerifier, StoredLeaf, TamperError, TamperKind};

use ring::digest::{Context, SHA256, digest};

/// A SHA-256 tree hash (leaf, interior node or root).
pub type Hash = [u8; 32];

/// Domain-separation prefix of leaf hashes (RFC 9162 §2.1.1), so a leaf can
/// never be passed off as an interior node (second-preimage protection).
const LEAF_PREFIX: u8 = 0x00;
/// Domain-separation prefix of interior node hashes (RFC 9162 §2.1.1).
const NODE_PREFIX: u8 = 0x01;

/// The hash of one leaf: SHA-256(0x00 ‖ data).
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut ctx = Context::new(&SHA256);
    ctx.update(&[LEAF_PREFIX]);
    ctx.update(data);
    to_hash(ctx.finish().as_ref())
}

/// The hash of an interior node: SHA-256(0x01 ‖ left ‖ right).
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    // One buffer and one update: this is the hot path of every tree operation.
    let mut buf = [0u8; 65];
    buf[0] = NODE_PREFIX;
    buf[1..33].copy_from_slice(left);
    buf[33..].copy_from_slice(right);
    to_hash(digest(&SHA256, &buf).as_ref())
}

/// The root of the empty tree: SHA-256 of the empty string (RFC 9162 §2.1.1).
pub fn empty_root() -> Hash {
    to_hash(digest(&SHA256, b"").as_ref())
}

/// Copies a SHA-256 output into a [`Hash`].
fn to_hash(bytes: &[u8]) -> Hash {
    let mut out = [0u8; 32];
    // SHA-256 output is always 32 bytes; copying by zip avoids a panicking path.
    for (o, b) in out.iter_mut().zip(bytes) {
        *o = *b;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(h: &Hash) -> String {
        h.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn empty_root_is_sha256_of_nothing() {
        assert_eq!(
            hex(&empty_root()),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn leaf_and_node_hashes_match_rfc6962_reference_values() {
        // Values from the RFC 6962 reference test data (certificate-transparency-go
        // merkle tests): leaf hash of the empty string and of 0x00.
        assert_eq!(
            hex(&leaf_hash(b"")),
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
        );
        assert_eq!(
            hex(&leaf_hash(&[0x00])),
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"
        );
        let l = leaf_hash(b"");
        let r = leaf_hash(&[0x00]);
        let mut manual = vec![0x01u8];
        manual.extend_from_slice(&l);
        manual.extend_from_slice(&r);
        assert_eq!(
            node_hash(&l, &r),
            to_hash(digest(&SHA256, &manual).as_ref())
        );
    }
}

//! Recomputing the tree from the stored leaves to detect tampering.
//!
//! The store is not trusted here: whoever can write the database can edit,
//! delete, insert or reorder rows, and rewrite the stored hashes to match. The
//! [`LogVerifier`] therefore takes every stored leaf in index order, checks the
//! indices run 0, 1, 2, … without gaps or repeats, that each leaf's bytes hash
//! to the stored leaf hash and decode as a canonical [`AuditEvent`], and
//! rebuilds the tree with an [`Appender`] (O(log n) memory, however long the
//! log). Rewrites that keep everything self-consistent change the root, which
//! the signed checkpoints held outside the store then expose.

use std::collections::{BTreeMap, BTreeSet};

use crate::checkpoint::Checkpoint;
use crate::event::{AuditEvent, EventError};
use crate::merkle::Appender;
use crate::{Hash, empty_root, leaf_hash};

/// Evidence of tampering: what is wrong and the first leaf index concerned.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("audit log tampered at leaf {index}: {kind}")]
pub struct TamperError {
    /// The first bad leaf index; for a checkpoint mismatch, the checkpoint size
    /// (the tampering lies somewhere below it).
    pub index: u64,
    /// What was found.
    pub kind: TamperKind,
}

/// The kinds of tampering the verifier detects.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum TamperKind {
    /// The leaf at `index` is absent: the next stored leaf claims index `found`
    /// (leaves deleted, or rows reordered).
    #[error("leaf missing, next stored leaf claims index {found}")]
    Gap {
        /// The index the next stored leaf carries.
        found: u64,
    },
    /// A stored leaf claims `index`, which was already seen: the next index
    /// expected was `expected` (a leaf inserted, duplicated or moved back).
    #[error("leaf index repeats or goes backwards, expected {expected}")]
    OutOfOrder {
        /// The index that should have come next.
        expected: u64,
    },
    /// The leaf bytes do not hash to the stored leaf hash (the leaf was edited).
    #[error("leaf bytes do not match the stored leaf hash")]
    HashMismatch,
    /// The leaf bytes are not a canonical audit event.
    #[error("leaf is not a canonical audit event: {0}")]
    BadEvent(EventError),
    /// The root recomputed at the checkpoint's size differs from the signed
    /// root: leaves below that size were changed, added or removed.
    #[error("recomputed root differs from the signed checkpoint")]
    CheckpointMismatch,
    /// The log is shorter than a signed checkpoint says it was (truncated);
    /// `index` is the first leaf that is gone.
    #[error("log is shorter than the signed checkpoint of size {checkpoint_size}")]
    Truncated {
        /// The size the checkpoint committed to.
        checkpoint_size: u64,
    },
    /// The root at this size was not kept, so the checkpoint cannot be checked
    /// (register the size with [`LogVerifier::with_checkpoints`]). Not proof of
    /// tampering, but the check did not pass either.
    #[error("root at the checkpoint size was not recorded during verification")]
    NotRecorded,
}

/// One stored leaf as read back from storage, for [`LogVerifier::push_batch`].
#[derive(Debug, Clone, Copy)]
pub struct StoredLeaf<'a> {
    /// The index the store claims for it.
    pub index: u64,
    /// Its bytes.
    pub data: &'a [u8],
    /// The leaf hash stored beside it, if the store keeps one.
    pub leaf_hash: Option<&'a Hash>,
}

/// Below this many leaves a batch is checked on the calling thread: starting
/// threads would cost more than it saves.
const PARALLEL_MIN: usize = 4096;

/// Hashes a leaf and checks it against its stored hash and the canonical
/// event form.
fn check_leaf(l: &StoredLeaf<'_>) -> Result<Hash, TamperKind> {
    let hash = leaf_hash(l.data);
    if l.leaf_hash.is_some_and(|stored| *stored != hash) {
        return Err(TamperKind::HashMismatch);
    }
    AuditEvent::check_canonical(l.data).map_err(TamperKind::BadEvent)?;
    Ok(hash)
}

/// Consumes the stored log in index order and recomputes its tree.
///
/// Stop at the first error: a failed [`LogVerifier::push`] leaves the verifier
/// as it was, so the same index is still expected next.
#[derive(Debug, Clone, Default)]
pub struct LogVerifier {
    tree: Appender,
    /// Sizes whose root must be kept for a later checkpoint comparison.
    wanted: BTreeSet<u64>,
    /// Roots kept at the wanted sizes reached so far.
    roots: BTreeMap<u64, Hash>,
}

impl LogVerifier {
    /// A verifier that keeps only the final root.
    pub fn new() -> Self {
        Self::default()
    }

    /// A verifier that also keeps the root at each of `sizes` (the sizes of the
    /// signed checkpoints to compare against), so memory stays proportional to
    /// the number of checkpoints, not leaves.
    pub fn with_checkpoints(sizes: impl IntoIterator<Item = u64>) -> Self {
        let mut verifier = Self {
            wanted: sizes.into_iter().collect(),
            ..Self::default()
        };
        if verifier.wanted.contains(&0) {
            verifier.roots.insert(0, empty_root());
        }
        verifier
    }

    /// Takes the next stored leaf: its claimed `index`, its bytes, and the leaf
    /// hash stored beside it (if the store keeps one).
    pub fn push(
        &mut self,
        index: u64,
        data: &[u8],
        stored_leaf_hash: Option<&Hash>,
    ) -> Result<(), TamperError> {
        let expected = self.tree.size();
        if index > expected {
            return Err(TamperError {
                index: expected,
                kind: TamperKind::Gap { found: index },
            });
        }
        if index < expected {
            return Err(TamperError {
                index,
                kind: TamperKind::OutOfOrder { expected },
            });
        }
        let hash = leaf_hash(data);
        if stored_leaf_hash.is_some_and(|stored| *stored != hash) {
            return Err(TamperError {
                index,
                kind: TamperKind::HashMismatch,
            });
        }
        AuditEvent::check_canonical(data).map_err(|e| TamperError {
            index,
            kind: TamperKind::BadEvent(e),
        })?;
        self.add(hash);
        Ok(())
    }

    fn add(&mut self, hash: Hash) {
        self.tree.append(hash, |_, _, _| {});
        let size = self.tree.size();
        if self.wanted.contains(&size) {
            self.roots.insert(size, self.tree.root());
        }
    }

    /// Takes the next stored leaves, in order: the same checks and the same
    /// first error as [`LogVerifier::push`] on each in turn, with the leaf
    /// hashing and canonical-form checks (the bulk of the work) spread over
    /// the machine's cores. On error, the leaves before the bad one have been
    /// taken and the bad one is expected next.
    pub fn push_batch(&mut self, leaves: &[StoredLeaf<'_>]) -> Result<(), TamperError> {
        let parallel = leaves.len() >= PARALLEL_MIN
            && std::thread::available_parallelism().map_or(1, |n| n.get()) >= 2;
        if !parallel {
            return self.push_checked(leaves, leaves.iter().map(check_leaf));
        }
        // Two halves of the work at once: another thread checks every leaf's
        // canonical form, while this one hashes the leaves and grows the
        // tree. The verdict is settled in index order afterwards; on a
        // problem the tree is rebuilt from its state before the batch up to
        // the first bad leaf, exactly as `push` would have left it.
        let before = self.clone();
        let (canonical, mine) = std::thread::scope(|scope| {
            let worker = scope.spawn(|| {
                leaves.iter().enumerate().find_map(|(i, l)| {
                    AuditEvent::check_canonical(l.data)
                        .err()
                        .map(|e| (i, TamperKind::BadEvent(e)))
                })
            });
            let mut hashes = Vec::with_capacity(leaves.len());
            let mut failed = None;
            for (i, leaf) in leaves.iter().enumerate() {
                if let Err(e) = self.check_index(leaf.index) {
                    failed = Some((i, e));
                    break;
                }
                let hash = leaf_hash(leaf.data);
                if leaf.leaf_hash.is_some_and(|stored| *stored != hash) {
                    let e = TamperError {
                        index: leaf.index,
                        kind: TamperKind::HashMismatch,
                    };
                    failed = Some((i, e));
                    break;
                }
                self.add(hash);
                hashes.push(hash);
            }
            let canonical = match worker.join() {
                Ok(found) => found,
                Err(panic) => std::panic::resume_unwind(panic),
            };
            (canonical, (hashes, failed))
        });
        let (hashes, failed) = mine;
        // The first problem in index order; at the same leaf, the index and
        // hash checks come first, as in `push`.
        let first = match (failed, canonical) {
            (Some((i, e)), Some((j, _))) if i <= j => Some((i, e)),
            (_, Some((j, kind))) => Some((
                j,
                TamperError {
                    index: leaves[j].index,
                    kind,
                },
            )),
            (Some((i, e)), None) => Some((i, e)),
            (None, None) => None,
        };
        let Some((at, error)) = first else {
            return Ok(());
        };
        *self = before;
        for hash in &hashes[..at] {
            self.add(*hash);
        }
        Err(error)
    }

    /// Adds leaves already hashed and checked (`checked`, in order), after
    /// checking their indices.
    fn push_checked(
        &mut self,
        leaves: &[StoredLeaf<'_>],
        checked: impl Iterator<Item = Result<Hash, TamperKind>>,
    ) -> Result<(), TamperError> {
        for (leaf, checked) in leaves.iter().zip(checked) {
            self.check_index(leaf.index)?;
            let hash = checked.map_err(|kind| TamperError {
                index: leaf.index,
                kind,
            })?;
            self.add(hash);
        }
        Ok(())
    }

    /// Whether `index` is the one expected next.
    fn check_index(&self, index: u64) -> Result<(), TamperError> {
        let expected = self.tree.size();
        if index > expected {
            return Err(TamperError {
                index: expected,
                kind: TamperKind::Gap { found: index },
            });
        }
        if index < expected {
            return Err(TamperError {
                index,
                kind: TamperKind::OutOfOrder { expected },
            });
        }
        Ok(())
    }

    /// The number of leaves verified so far.
    pub fn size(&self) -> u64 {
        self.tree.size()
    }

    /// The root of the leaves verified so far.
    pub fn root(&self) -> Hash {
        self.tree.root()
    }

    /// The recomputed root at `size`, if that is the current size or a size
    /// registered with [`LogVerifier::with_checkpoints`] and already reached.
    pub fn root_at(&self, size: u64) -> Option<Hash> {
        if size == self.tree.size() {
            return Some(self.tree.root());
        }
        self.roots.get(&size).copied()
    }

    /// Compares one signed checkpoint (already signature-checked) with the
    /// recomputed tree. Call it after the last [`LogVerifier::push`].
    pub fn check_checkpoint(&self, checkpoint: &Checkpoint) -> Result<(), TamperError> {
        let size = self.tree.size();
        if checkpoint.size > size {
            return Err(TamperError {
                index: size,
                kind: TamperKind::Truncated {
                    checkpoint_size: checkpoint.size,
                },
            });
        }
        match self.root_at(checkpoint.size) {
            Some(root) if root == checkpoint.root => Ok(()),
            Some(_) => Err(TamperError {
                index: checkpoint.size,
                kind: TamperKind::CheckpointMismatch,
            }),
            None => Err(TamperError {
                index: checkpoint.size,
                kind: TamperKind::NotRecorded,
            }),
        }
    }

    /// Checks every checkpoint, smallest size first, and reports the first
    /// failure; when it is a mismatch, the tampering lies between the last
    /// checkpoint that matched and the reported size.
    pub fn check_checkpoints(&self, checkpoints: &[Checkpoint]) -> Result<(), TamperError> {
        let mut ordered: Vec<&Checkpoint> = checkpoints.iter().collect();
        ordered.sort_by_key(|c| c.size);
        ordered
            .into_iter()
            .try_for_each(|c| self.check_checkpoint(c))
    }

    /// The final size and root.
    pub fn finish(self) -> (u64, Hash) {
        (self.tree.size(), self.tree.root())
    }
}

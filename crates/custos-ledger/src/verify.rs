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
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

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

/// Whether a stored leaf claiming `index` is the one `expected` there.
fn check_index(expected: u64, index: u64) -> Result<(), TamperError> {
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

/// Leaves per chunk of a batch checked on two threads: small enough that
/// neither thread waits long for the other at the end of a batch, large
/// enough that handing chunks out costs nothing.
const CHUNK: usize = 256;

/// A chunk of leaves checked: the hashes of its leaves up to the first
/// problem, and that problem.
struct Checked {
    hashes: Vec<Hash>,
    error: Option<TamperError>,
}

/// Checks a chunk of leaves whose first should carry index `first`, in
/// order, up to its first problem.
fn check_chunk(first: u64, leaves: &[StoredLeaf<'_>]) -> Checked {
    let mut hashes = Vec::with_capacity(leaves.len());
    for (expected, leaf) in (first..).zip(leaves) {
        let checked = check_index(expected, leaf.index).and_then(|()| {
            check_leaf(leaf).map_err(|kind| TamperError {
                index: leaf.index,
                kind,
            })
        });
        match checked {
            Ok(hash) => hashes.push(hash),
            Err(error) => {
                return Checked {
                    hashes,
                    error: Some(error),
                };
            }
        }
    }
    Checked {
        hashes,
        error: None,
    }
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
        self.check_index(index)?;
        let leaf = StoredLeaf {
            index,
            data,
            leaf_hash: stored_leaf_hash,
        };
        let hash = check_leaf(&leaf).map_err(|kind| TamperError { index, kind })?;
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
        // The batch is cut into chunks that this thread and one more take in
        // turn, each checking a whole chunk (index, leaf hash, canonical
        // form). This thread also grows the tree from the chunks done so
        // far, in index order, between its own chunks, so the two threads
        // share all the work rather than one waiting on the other. A leaf's
        // expected index follows from its place in the batch, so chunks can
        // be checked in any order; the first problem in index order stops
        // the tree there, exactly as `push` would have.
        let start = self.tree.size();
        let chunks: Vec<&[StoredLeaf<'_>]> = leaves.chunks(CHUNK).collect();
        let done: Vec<OnceLock<Checked>> = chunks.iter().map(|_| OnceLock::new()).collect();
        let next = AtomicUsize::new(0);
        let stop = AtomicBool::new(false);
        // Checks the next chunk nobody has taken; false when none is left
        // (or a problem was found, after which later chunks do not matter:
        // every earlier chunk was taken before it).
        let work = || {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(chunk) = chunks.get(i) else {
                return false;
            };
            if stop.load(Ordering::Relaxed) {
                return false;
            }
            let checked = check_chunk(start + (i * CHUNK) as u64, chunk);
            if checked.error.is_some() {
                stop.store(true, Ordering::Relaxed);
            }
            // Each chunk index is handed out once, so the cell is empty.
            let _ = done[i].set(checked);
            true
        };
        std::thread::scope(|scope| {
            let worker = scope.spawn(|| while work() {});
            let mut taken = 0;
            let mut more = true;
            while more {
                more = work();
                if let Some(error) = self.take_done(&done, &mut taken) {
                    // The worker finishes its chunk and stops; the scope
                    // waits for it.
                    return Err(error);
                }
            }
            if let Err(panic) = worker.join() {
                std::panic::resume_unwind(panic);
            }
            if let Some(error) = self.take_done(&done, &mut taken) {
                return Err(error);
            }
            // Every chunk up to a problem is done by now; should one not
            // be, its leaves are checked here, one by one.
            let rest = leaves.get(taken * CHUNK..).unwrap_or_default();
            self.push_checked(rest, rest.iter().map(check_leaf))
        })
    }

    /// Grows the tree from the chunks done so far, in order from chunk
    /// `taken`, up to the first that is not done yet or holds a problem
    /// (returned, with the leaves before it taken).
    fn take_done(&mut self, done: &[OnceLock<Checked>], taken: &mut usize) -> Option<TamperError> {
        while let Some(checked) = done.get(*taken).and_then(OnceLock::get) {
            for hash in &checked.hashes {
                self.add(*hash);
            }
            *taken += 1;
            if let Some(error) = &checked.error {
                return Some(error.clone());
            }
        }
        None
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
        check_index(self.tree.size(), index)
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

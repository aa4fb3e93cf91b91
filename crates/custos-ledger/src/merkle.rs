//! RFC 9162 §2.1 Merkle tree: roots, inclusion and consistency proofs, their
//! verifiers, and an O(log n) appender.
//!
//! Two families of helpers compute the same things:
//!
//! - in-memory ([`root`], [`inclusion_proof`], [`consistency_proof`]) over a
//!   slice of leaf hashes, for tests and small trees;
//! - persisted ([`root_at`], [`inclusion_proof_at`], [`consistency_proof_at`])
//!   over a [`NodeReader`] that serves the perfect subtrees the store saved
//!   when [`Appender::push`] reported them. They read O(log² n) nodes at most,
//!   so proofs stay cheap however long the log grows.
//!
//! Both families share one transcription of the RFC's recursive definitions
//! (`PATH` and `SUBPROOF`); only the way a subtree root is obtained differs.

use crate::{Hash, empty_root, node_hash};

/// Why a proof could not be built or did not verify.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ProofError {
    /// The leaf index is not inside the tree (index ≥ size).
    #[error("leaf index is outside the tree")]
    IndexOutOfRange,
    /// The tree sizes are not usable: a consistency proof needs
    /// 0 < first size ≤ second size, and a proof cannot reach past the log.
    #[error("tree size out of range")]
    SizeOutOfRange,
    /// The proof has more or fewer hashes than the tree shape requires.
    #[error("proof has the wrong number of hashes for these tree sizes")]
    WrongProofLength,
    /// The proof is well-formed but does not lead to the expected root(s).
    #[error("proof does not match the root hash")]
    RootMismatch,
    /// A hash given as bytes (leaf hash or proof element) is not 32 bytes long.
    #[error("hash is {len} bytes long, expected 32")]
    InvalidHashLength {
        /// The length that was given.
        len: usize,
    },
    /// The node store lacks a perfect subtree node that the tree size implies.
    #[error("tree node at level {level}, index {index} is missing")]
    MissingNode {
        /// Height of the missing subtree (0 = leaf).
        level: u32,
        /// Position of the subtree among those of its level.
        index: u64,
    },
    /// A frontier does not have one hash per set bit of the tree size.
    #[error("frontier for size {size} needs {expected} hashes, got {got}")]
    FrontierMismatch {
        /// The tree size the frontier claims to describe.
        size: u64,
        /// How many hashes that size requires.
        expected: u32,
        /// How many hashes were given.
        got: usize,
    },
    /// The node store failed for a reason of its own (I/O, database).
    #[error("node storage failed: {0}")]
    Storage(String),
}

/// Read access to the persisted perfect subtrees of the log.
///
/// A perfect subtree at `level` and `index` covers the 2^level leaves starting
/// at leaf `index * 2^level`; level 0 holds the leaf hashes themselves. Once
/// complete such a subtree never changes, so a store can keep exactly the nodes
/// [`Appender::push`] reports and serve every later tree size from them.
pub trait NodeReader {
    /// The hash of the perfect subtree at `level`, `index`, or
    /// [`ProofError::MissingNode`] when the store does not have it.
    fn perfect_node(&mut self, level: u32, index: u64) -> Result<Hash, ProofError>;
}

/// The largest power of two strictly smaller than `n` (the RFC's `k`); `n ≥ 2`.
fn split_point(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1u64 << (63 - (n - 1).leading_zeros())
}

/// How a proof builder obtains `MTH(D[start:end])` for the subtrees the RFC
/// recursion asks for. Every such range is either a perfect, aligned subtree or
/// ends at the right edge of the tree.
trait SubtreeRoots {
    fn subtree_root(&mut self, start: u64, end: u64) -> Result<Hash, ProofError>;
}

/// Subtree roots computed directly from all leaf hashes.
struct InMemory<'a>(&'a [Hash]);

impl SubtreeRoots for InMemory<'_> {
    fn subtree_root(&mut self, start: u64, end: u64) -> Result<Hash, ProofError> {
        // Callers only pass ranges inside the slice, so the conversions are lossless.
        let slice = self
            .0
            .get(start as usize..end as usize)
            .ok_or(ProofError::SizeOutOfRange)?;
        Ok(root(slice))
    }
}

/// Subtree roots assembled from persisted perfect nodes.
struct Persisted<'a, R: ?Sized>(&'a mut R);

impl<R: NodeReader + ?Sized> SubtreeRoots for Persisted<'_, R> {
    fn subtree_root(&mut self, start: u64, end: u64) -> Result<Hash, ProofError> {
        range_root(self.0, start, end)
    }
}

/// `MTH(D[start:end])` from perfect nodes: the range splits into one perfect
/// subtree per set bit of its size, largest first (that is exactly how the RFC
/// recursion splits a right-edge subtree), folded from the right. Reads at most
/// 64 nodes, in practice popcount(end - start).
fn range_root<R: NodeReader + ?Sized>(
    reader: &mut R,
    start: u64,
    end: u64,
) -> Result<Hash, ProofError> {
    if end <= start {
        return Err(ProofError::SizeOutOfRange);
    }
    let mut parts: Vec<Hash> = Vec::with_capacity((end - start).count_ones() as usize);
    let mut pos = start;
    while pos < end {
        let mut level = 63 - (end - pos).leading_zeros();
        // RFC ranges are aligned so this never lowers the level; it keeps a
        // misuse from asking the store for a node that cannot exist.
        if pos != 0 {
            level = level.min(pos.trailing_zeros());
        }
        parts.push(reader.perfect_node(level, pos >> level)?);
        pos += 1u64 << level;
    }
    let mut iter = parts.iter().rev();
    let mut acc = *iter.next().ok_or(ProofError::SizeOutOfRange)?;
    for left in iter {
        acc = node_hash(left, &acc);
    }
    Ok(acc)
}

/// RFC 9162 §2.1.3.1 `PATH(m, D[start:end])`, appended leaf-to-root to `out`.
fn path<S: SubtreeRoots>(
    s: &mut S,
    m: u64,
    start: u64,
    end: u64,
    out: &mut Vec<Hash>,
) -> Result<(), ProofError> {
    let n = end - start;
    if n <= 1 {
        return Ok(());
    }
    let k = split_point(n);
    if m < k {
        path(s, m, start, start + k, out)?;
        out.push(s.subtree_root(start + k, end)?);
    } else {
        path(s, m - k, start + k, end, out)?;
        out.push(s.subtree_root(start, start + k)?);
    }
    Ok(())
}

/// RFC 9162 §2.1.4.1 `SUBPROOF(m, D[start:end], b)`.
fn subproof<S: SubtreeRoots>(
    s: &mut S,
    m: u64,
    start: u64,
    end: u64,
    complete: bool,
    out: &mut Vec<Hash>,
) -> Result<(), ProofError> {
    let n = end - start;
    if m == n {
        if !complete {
            out.push(s.subtree_root(start, end)?);
        }
        return Ok(());
    }
    let k = split_point(n);
    if m <= k {
        subproof(s, m, start, start + k, complete, out)?;
        out.push(s.subtree_root(start + k, end)?);
    } else {
        subproof(s, m - k, start + k, end, false, out)?;
        out.push(s.subtree_root(start, start + k)?);
    }
    Ok(())
}

fn build_inclusion<S: SubtreeRoots>(
    s: &mut S,
    index: u64,
    size: u64,
) -> Result<Vec<Hash>, ProofError> {
    if index >= size {
        return Err(ProofError::IndexOutOfRange);
    }
    let mut out = Vec::with_capacity(64);
    path(s, index, 0, size, &mut out)?;
    Ok(out)
}

fn build_consistency<S: SubtreeRoots>(
    s: &mut S,
    from: u64,
    to: u64,
) -> Result<Vec<Hash>, ProofError> {
    // A proof from the empty tree proves nothing and verifiers refuse it
    // (see `verify_consistency`), so do not hand one out either.
    if from == 0 || from > to {
        return Err(ProofError::SizeOutOfRange);
    }
    let mut out = Vec::with_capacity(64);
    subproof(s, from, 0, to, true, &mut out)?;
    Ok(out)
}

/// The Merkle tree hash `MTH` of `leaves` (RFC 9162 §2.1.1); the empty tree has
/// [`empty_root`].
pub fn root(leaves: &[Hash]) -> Hash {
    match leaves {
        [] => empty_root(),
        [one] => *one,
        _ => {
            let k = split_point(leaves.len() as u64) as usize;
            let (left, right) = leaves.split_at(k);
            node_hash(&root(left), &root(right))
        }
    }
}

/// The inclusion proof of leaf `index` in the tree made of `leaves`.
pub fn inclusion_proof(leaves: &[Hash], index: u64) -> Result<Vec<Hash>, ProofError> {
    build_inclusion(&mut InMemory(leaves), index, leaves.len() as u64)
}

/// The consistency proof from the tree of the first `from` leaves to the tree of
/// all `leaves`. Refuses `from == 0` and `from > leaves.len()`.
pub fn consistency_proof(leaves: &[Hash], from: u64) -> Result<Vec<Hash>, ProofError> {
    build_consistency(&mut InMemory(leaves), from, leaves.len() as u64)
}

/// The root of the persisted tree at `size` leaves; reads popcount(size) nodes.
pub fn root_at<R: NodeReader + ?Sized>(reader: &mut R, size: u64) -> Result<Hash, ProofError> {
    if size == 0 {
        return Ok(empty_root());
    }
    range_root(reader, 0, size)
}

/// The inclusion proof of leaf `index` in the persisted tree at `size` leaves.
pub fn inclusion_proof_at<R: NodeReader + ?Sized>(
    reader: &mut R,
    index: u64,
    size: u64,
) -> Result<Vec<Hash>, ProofError> {
    build_inclusion(&mut Persisted(reader), index, size)
}

/// The consistency proof from the persisted tree at `from` leaves to the one at
/// `to` leaves. Refuses `from == 0` and `from > to`.
pub fn consistency_proof_at<R: NodeReader + ?Sized>(
    reader: &mut R,
    from: u64,
    to: u64,
) -> Result<Vec<Hash>, ProofError> {
    build_consistency(&mut Persisted(reader), from, to)
}

/// A compact range over the leaves appended so far: one hash per set bit of the
/// size (the perfect subtrees along the right edge, largest first). Appending
/// is O(log n) time and memory, and the root is available at any size.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Appender {
    size: u64,
    frontier: Vec<Hash>,
}

impl Appender {
    /// An appender for the empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Resumes from a saved frontier (as returned by [`Appender::frontier`]).
    /// Refuses a frontier whose length is not the number of set bits of `size`.
    pub fn from_frontier(size: u64, frontier: Vec<Hash>) -> Result<Self, ProofError> {
        let expected = size.count_ones();
        if frontier.len() != expected as usize {
            return Err(ProofError::FrontierMismatch {
                size,
                expected,
                got: frontier.len(),
            });
        }
        Ok(Self { size, frontier })
    }

    /// Appends one leaf hash and returns every perfect subtree it completed as
    /// `(level, index, hash)`, the leaf itself first (level 0, index = its leaf
    /// index). Persisting exactly these is what a [`NodeReader`] needs.
    pub fn push(&mut self, leaf_hash: Hash) -> Vec<(u32, u64, Hash)> {
        let mut completed = Vec::with_capacity(1 + self.size.trailing_ones() as usize);
        self.append(leaf_hash, |level, index, hash| {
            completed.push((level, index, hash));
        });
        completed
    }

    /// Appends one leaf hash, reporting completed nodes to `sink`; the
    /// allocation-free path used when nobody needs the nodes.
    pub(crate) fn append(&mut self, leaf_hash: Hash, mut sink: impl FnMut(u32, u64, Hash)) {
        let mut hash = leaf_hash;
        let mut level = 0u32;
        let mut index = self.size;
        sink(level, index, hash);
        // Each trailing one bit of the old size is a perfect subtree of equal
        // height just left of the new one: merge them pairwise up the tree.
        while self.size.checked_shr(level).unwrap_or(0) & 1 == 1 {
            let Some(left) = self.frontier.pop() else {
                // Unreachable while the frontier matches the size, which both
                // constructors guarantee; stop merging rather than panic.
                break;
            };
            hash = node_hash(&left, &hash);
            level += 1;
            index >>= 1;
            sink(level, index, hash);
        }
        self.frontier.push(hash);
        self.size += 1;
    }

    /// The number of leaves appended.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The perfect subtree roots along the right edge, largest (leftmost) first;
    /// save it with [`Appender::size`] to resume with [`Appender::from_frontier`].
    pub fn frontier(&self) -> &[Hash] {
        &self.frontier
    }

    /// The root of the tree of all leaves appended so far.
    pub fn root(&self) -> Hash {
        let mut iter = self.frontier.iter().rev();
        let Some(last) = iter.next() else {
            return empty_root();
        };
        let mut acc = *last;
        for left in iter {
            acc = node_hash(left, &acc);
        }
        acc
    }
}

/// Checks that `proof` shows leaf `leaf_hash` at `index` in the tree of `size`
/// leaves with root `root` (RFC 9162 §2.1.3.2).
pub fn verify_inclusion(
    leaf_hash: &Hash,
    index: u64,
    size: u64,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), ProofError> {
    inclusion_core(leaf_hash, index, size, proof, root)
}

/// Checks that `proof` shows the tree of `size1` leaves with root `root1` is a
/// prefix of the tree of `size2` leaves with root `root2` (RFC 9162 §2.1.4.2).
///
/// Stricter than the RFC in one place: `size1 == 0` is refused even though any
/// tree extends the empty one, because such a "proof" commits to nothing and
/// accepting it would let a caller skip the check by passing 0.
pub fn verify_consistency(
    size1: u64,
    size2: u64,
    proof: &[Hash],
    root1: &Hash,
    root2: &Hash,
) -> Result<(), ProofError> {
    consistency_core(size1, size2, proof, root1, root2)
}

/// [`verify_inclusion`] for hashes that arrive as bytes (decoded base64 from an
/// API or a file): a leaf hash or proof element that is not 32 bytes is refused
/// with [`ProofError::InvalidHashLength`]; a root of another length simply
/// cannot match.
pub fn verify_inclusion_bytes<P: AsRef<[u8]>>(
    leaf_hash: &[u8],
    index: u64,
    size: u64,
    proof: &[P],
    root: &[u8],
) -> Result<(), ProofError> {
    let leaf = hash_from_bytes(leaf_hash)?;
    let proof = proof_from_bytes(proof)?;
    inclusion_core(&leaf, index, size, &proof, root)
}

/// [`verify_consistency`] for hashes that arrive as bytes. Proof elements must
/// be 32 bytes; roots are compared as given, so two equal roots of equal sizes
/// agree whatever their length, and a root of another length cannot match a
/// computed one.
pub fn verify_consistency_bytes<P: AsRef<[u8]>>(
    size1: u64,
    size2: u64,
    proof: &[P],
    root1: &[u8],
    root2: &[u8],
) -> Result<(), ProofError> {
    let proof = proof_from_bytes(proof)?;
    consistency_core(size1, size2, &proof, root1, root2)
}

fn hash_from_bytes(bytes: &[u8]) -> Result<Hash, ProofError> {
    Hash::try_from(bytes).map_err(|_| ProofError::InvalidHashLength { len: bytes.len() })
}

fn proof_from_bytes<P: AsRef<[u8]>>(proof: &[P]) -> Result<Vec<Hash>, ProofError> {
    proof.iter().map(|p| hash_from_bytes(p.as_ref())).collect()
}

/// RFC 9162 §2.1.3.2, step for step; `root` is bytes so the byte-level entry
/// point shares it.
fn inclusion_core(
    leaf_hash: &Hash,
    index: u64,
    size: u64,
    proof: &[Hash],
    root: &[u8],
) -> Result<(), ProofError> {
    if index >= size {
        return Err(ProofError::IndexOutOfRange);
    }
    let mut fnode = index;
    let mut snode = size - 1;
    let mut r = *leaf_hash;
    for p in proof {
        if snode == 0 {
            return Err(ProofError::WrongProofLength);
        }
        if fnode & 1 == 1 || fnode == snode {
            r = node_hash(p, &r);
            while fnode & 1 == 0 && fnode != 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    if snode != 0 {
        return Err(ProofError::WrongProofLength);
    }
    if r.as_slice() != root {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

/// RFC 9162 §2.1.4.2, step for step, after the edge cases the RFC leaves to
/// the caller (equal sizes, empty first tree).
fn consistency_core(
    size1: u64,
    size2: u64,
    proof: &[Hash],
    root1: &[u8],
    root2: &[u8],
) -> Result<(), ProofError> {
    if size1 == 0 || size1 > size2 {
        return Err(ProofError::SizeOutOfRange);
    }
    if size1 == size2 {
        if !proof.is_empty() {
            return Err(ProofError::WrongProofLength);
        }
        if root1 != root2 {
            return Err(ProofError::RootMismatch);
        }
        return Ok(());
    }
    // Step 1.
    let Some((first, rest)) = proof.split_first() else {
        return Err(ProofError::WrongProofLength);
    };
    // Step 2: for a power-of-two first tree the proof omits its root, which
    // the verifier knows; prepending it means starting from it.
    let (start, path) = if size1.is_power_of_two() {
        let Ok(r1) = Hash::try_from(root1) else {
            return Err(ProofError::RootMismatch);
        };
        (r1, proof)
    } else {
        (*first, rest)
    };
    // Steps 3 and 4.
    let mut fnode = size1 - 1;
    let mut snode = size2 - 1;
    while fnode & 1 == 1 {
        fnode >>= 1;
        snode >>= 1;
    }
    // Steps 5 and 6.
    let mut fr = start;
    let mut sr = start;
    for c in path {
        if snode == 0 {
            return Err(ProofError::WrongProofLength);
        }
        if fnode & 1 == 1 || fnode == snode {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while fnode & 1 == 0 && fnode != 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    // Step 7.
    if snode != 0 {
        return Err(ProofError::WrongProofLength);
    }
    if fr.as_slice() != root1 || sr.as_slice() != root2 {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::leaf_hash;

    fn leaves(n: u64) -> Vec<Hash> {
        (0..n).map(|i| leaf_hash(&i.to_be_bytes())).collect()
    }

    #[test]
    fn split_point_is_largest_power_of_two_below() {
        assert_eq!(split_point(2), 1);
        assert_eq!(split_point(3), 2);
        assert_eq!(split_point(4), 2);
        assert_eq!(split_point(5), 4);
        assert_eq!(split_point(8), 4);
        assert_eq!(split_point(9), 8);
        assert_eq!(split_point(u64::MAX), 1 << 63);
    }

    #[test]
    fn root_matches_hand_built_tree_of_three() {
        let l = leaves(3);
        let expected = node_hash(&node_hash(&l[0], &l[1]), &l[2]);
        assert_eq!(root(&l), expected);
    }

    #[test]
    fn appender_reports_completed_nodes() {
        let l = leaves(4);
        let mut a = Appender::new();
        assert_eq!(a.push(l[0]), vec![(0, 0, l[0])]);
        let n01 = node_hash(&l[0], &l[1]);
        assert_eq!(a.push(l[1]), vec![(0, 1, l[1]), (1, 0, n01)]);
        assert_eq!(a.push(l[2]), vec![(0, 2, l[2])]);
        let n23 = node_hash(&l[2], &l[3]);
        let n03 = node_hash(&n01, &n23);
        assert_eq!(a.push(l[3]), vec![(0, 3, l[3]), (1, 1, n23), (2, 0, n03)]);
        assert_eq!(a.frontier(), &[n03]);
        assert_eq!(a.root(), n03);
    }

    #[test]
    fn from_frontier_checks_the_count() {
        assert!(Appender::from_frontier(0, vec![]).is_ok());
        assert_eq!(
            Appender::from_frontier(5, vec![[0u8; 32]]),
            Err(ProofError::FrontierMismatch {
                size: 5,
                expected: 2,
                got: 1
            })
        );
        // Resuming gives the same tree as never stopping.
        let l = leaves(11);
        let mut full = Appender::new();
        for h in &l[..7] {
            full.push(*h);
        }
        let mut resumed = match Appender::from_frontier(full.size(), full.frontier().to_vec()) {
            Ok(a) => a,
            Err(e) => panic!("{e}"),
        };
        for h in &l[7..] {
            full.push(*h);
            resumed.push(*h);
        }
        assert_eq!(resumed.root(), root(&l));
        assert_eq!(full, resumed);
    }

    #[test]
    fn proof_builders_refuse_bad_ranges() {
        let l = leaves(5);
        assert_eq!(inclusion_proof(&l, 5), Err(ProofError::IndexOutOfRange));
        assert_eq!(inclusion_proof(&[], 0), Err(ProofError::IndexOutOfRange));
        assert_eq!(consistency_proof(&l, 0), Err(ProofError::SizeOutOfRange));
        assert_eq!(consistency_proof(&l, 6), Err(ProofError::SizeOutOfRange));
        assert_eq!(consistency_proof(&l, 5), Ok(vec![]));
    }

    #[test]
    fn bytes_entry_points_check_lengths() {
        let l = leaves(2);
        let r = root(&l);
        assert_eq!(
            verify_inclusion_bytes(&l[0][..31], 0, 2, &[l[1]], &r),
            Err(ProofError::InvalidHashLength { len: 31 })
        );
        assert_eq!(
            verify_inclusion_bytes(&l[0], 0, 2, &[&l[1][..]], &r),
            Ok(())
        );
        assert_eq!(
            verify_inclusion_bytes(&l[0], 0, 2, &[Vec::new()], &r),
            Err(ProofError::InvalidHashLength { len: 0 })
        );
    }
}

//! Ledger appends of one transaction, written in batches.
//!
//! Every use case appends audit leaves, and bulk work (imports, seeding)
//! appends one per record: written one statement at a time, the leaf, its
//! index row, its tree nodes and the new head cost four or more round trips
//! per record, which dominated bulk writes. The backends keep them here and
//! write them as a few multi-row statements when enough are pending, before
//! any ledger table is read in the transaction, and before it commits. Nothing
//! changes for what commits: the same rows, in the same transaction (a
//! rollback drops the pending ones with the rest).

use crate::sql::{Dialect, Query};
use crate::{LeafIndex, LeafRow, LedgerHead, SqlValue};

/// Leaves kept before they are written (7 parameters per leaf in the widest
/// statement). The statements use plain placeholders on SQLite
/// ([`Query::bulk`]), whose binding cost grows linearly. More than an
/// import's chunk of 500 records, so a chunk's leaves go with its rows.
const MAX_PENDING: usize = 512;

/// Appended but not yet written.
#[derive(Debug, Default)]
pub(crate) struct PendingLedger {
    leaves: Vec<(LeafRow, LeafIndex)>,
    nodes: Vec<(u32, u64, [u8; 32])>,
    head: Option<LedgerHead>,
}

impl PendingLedger {
    /// Keeps one append; true when it is time to write.
    pub(crate) fn push(
        &mut self,
        leaf: &LeafRow,
        index: &LeafIndex,
        nodes: &[(u32, u64, [u8; 32])],
        head: &LedgerHead,
    ) -> bool {
        self.leaves.push((leaf.clone(), index.clone()));
        self.nodes.extend_from_slice(nodes);
        self.head = Some(head.clone());
        self.leaves.len() >= MAX_PENDING
    }

    /// The statements writing everything pending (none when nothing is), in
    /// order; the buffer is empty afterwards.
    pub(crate) fn take(&mut self, d: Dialect) -> Vec<Query> {
        let new = || Query::bulk(d);
        let mut out = Vec::new();
        let leaves = std::mem::take(&mut self.leaves);
        if !leaves.is_empty() {
            let mut q = new();
            let mut rows = Vec::new();
            for (leaf, index) in &leaves {
                let marks = [
                    q.push(SqlValue::Int(leaf.index as i64)),
                    q.push(SqlValue::Blob(leaf.data.clone())),
                    q.push(SqlValue::Blob(leaf.leaf_hash.clone())),
                    q.push(SqlValue::Int(index.time_ms)),
                ];
                rows.push(format!("({})", marks.join(", ")));
            }
            q.sql = format!(
                "INSERT INTO ledger_leaves (idx, data, leaf_hash, created_at) VALUES {}",
                rows.join(", ")
            );
            out.push(q);
            let text = |s: &Option<String>| s.clone().map_or(SqlValue::Null, SqlValue::Text);
            let mut q = new();
            let mut rows = Vec::new();
            for (leaf, index) in &leaves {
                let marks = [
                    q.push(SqlValue::Int(leaf.index as i64)),
                    q.push(SqlValue::Int(index.time_ms)),
                    q.push(SqlValue::Text(index.actor.clone())),
                    q.push(SqlValue::Text(index.action.clone())),
                    q.push(text(&index.subject_id)),
                    q.push(text(&index.record)),
                    q.push(SqlValue::Text(index.outcome.clone())),
                ];
                rows.push(format!("({})", marks.join(", ")));
            }
            q.sql = format!(
                "INSERT INTO ledger_index (idx, time_ms, actor, action, subject_id, record, outcome) VALUES {}",
                rows.join(", ")
            );
            out.push(q);
        }
        for chunk in std::mem::take(&mut self.nodes).chunks(MAX_PENDING * 2) {
            let mut q = new();
            let mut rows = Vec::new();
            for (level, idx, hash) in chunk {
                let marks = [
                    q.push(SqlValue::Int(i64::from(*level))),
                    q.push(SqlValue::Int(*idx as i64)),
                    q.push(SqlValue::Blob(hash.to_vec())),
                ];
                rows.push(format!("({})", marks.join(", ")));
            }
            q.sql = format!(
                "INSERT INTO ledger_nodes (level, idx, hash) VALUES {}",
                rows.join(", ")
            );
            out.push(q);
        }
        if let Some(head) = self.head.take() {
            let mut q = new();
            let size = q.push(SqlValue::Int(head.size as i64));
            let frontier = q.push(SqlValue::Blob(
                head.frontier.iter().flatten().copied().collect(),
            ));
            let bytes = q.push(SqlValue::Int(head.bytes as i64));
            q.sql = format!(
                "INSERT INTO ledger_head (id, size, frontier, bytes) VALUES (1, {size}, {frontier}, {bytes}) \
                 ON CONFLICT (id) DO UPDATE SET size = excluded.size, frontier = excluded.frontier, bytes = excluded.bytes"
            );
            out.push(q);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_appends_become_multi_row_statements_and_the_last_head() {
        let mut p = PendingLedger::default();
        assert!(p.take(Dialect::Sqlite).is_empty());
        for i in 0..3u64 {
            let leaf = LeafRow {
                index: i,
                data: vec![1],
                leaf_hash: vec![2],
            };
            let head = LedgerHead {
                size: i + 1,
                frontier: vec![[0; 32]],
                bytes: i + 1,
            };
            assert!(!p.push(&leaf, &LeafIndex::default(), &[(1, i, [3; 32])], &head));
        }
        let qs = p.take(Dialect::Postgres);
        assert_eq!(qs.len(), 4);
        assert_eq!(qs[0].binds.len(), 12);
        assert!(qs[0].sql.ends_with("($9, $10, $11, $12)"), "{}", qs[0].sql);
        assert_eq!(qs[1].binds.len(), 21);
        assert_eq!(qs[2].binds.len(), 9);
        assert_eq!(qs[3].binds[0], SqlValue::Int(3));
        assert!(p.take(Dialect::Postgres).is_empty(), "emptied");
    }
}

-- The ledger's total leaf bytes, kept with the head so its status does not
-- sum every leaf.
ALTER TABLE ledger_head ADD COLUMN bytes INTEGER NOT NULL DEFAULT 0;
UPDATE ledger_head SET bytes = (SELECT COALESCE(SUM(LENGTH(data)), 0) FROM ledger_leaves);

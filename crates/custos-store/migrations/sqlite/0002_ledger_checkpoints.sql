-- Signed checkpoints of the audit ledger, and an index of leaves by the ids
-- they name (no values), so auditors can search events without a full scan.

CREATE TABLE ledger_checkpoints (
    size INTEGER PRIMARY KEY NOT NULL,
    root BLOB NOT NULL,
    note TEXT NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE TABLE ledger_index (
    idx INTEGER PRIMARY KEY NOT NULL,
    time_ms INTEGER NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    subject_id TEXT,
    record TEXT,
    outcome TEXT NOT NULL
);
CREATE INDEX ledger_index_subject ON ledger_index (subject_id, idx);
CREATE INDEX ledger_index_actor ON ledger_index (actor, idx);
CREATE INDEX ledger_index_action ON ledger_index (action, idx);
CREATE INDEX ledger_index_time ON ledger_index (time_ms, idx);
CREATE INDEX ledger_index_record ON ledger_index (record, idx);

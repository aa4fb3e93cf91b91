-- Signed checkpoints of the audit ledger, and an index of leaves by the ids
-- they name (no values), so auditors can search events without a full scan.

CREATE TABLE ledger_checkpoints (
    size BIGINT PRIMARY KEY NOT NULL,
    root BYTEA NOT NULL,
    note TEXT COLLATE "C" NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE ledger_index (
    idx BIGINT PRIMARY KEY NOT NULL,
    time_ms BIGINT NOT NULL,
    actor TEXT COLLATE "C" NOT NULL,
    action TEXT COLLATE "C" NOT NULL,
    subject_id TEXT COLLATE "C",
    record TEXT COLLATE "C",
    outcome TEXT COLLATE "C" NOT NULL
);
CREATE INDEX ledger_index_subject ON ledger_index (subject_id, idx);
CREATE INDEX ledger_index_actor ON ledger_index (actor, idx);
CREATE INDEX ledger_index_action ON ledger_index (action, idx);
CREATE INDEX ledger_index_time ON ledger_index (time_ms, idx);
CREATE INDEX ledger_index_record ON ledger_index (record, idx);

-- Runs of the retention purge (issue 21). A run saves its progress (per
-- policy: the position reached and the counts, ids and numbers only) with
-- every batch it commits, so a run stopped by a crash is finished by the
-- next; a finished run keeps its purge certificate.
CREATE TABLE retention_runs (
    id TEXT PRIMARY KEY,
    started_at BIGINT NOT NULL,
    finished_at BIGINT,
    actor TEXT NOT NULL,
    first_leaf BIGINT NOT NULL,
    state TEXT NOT NULL,
    certificate TEXT
);
CREATE INDEX retention_runs_started ON retention_runs (started_at, id);
CREATE INDEX retention_runs_unfinished ON retention_runs (started_at, id) WHERE finished_at IS NULL;

-- Legal holds on a person: while one is in force, the purge skips the
-- person's records and erasure is refused. The reason is sealed under the
-- person's data key (it may name them); placing and lifting are audited.
-- The `legal_hold` processing flag is in force while any hold is.
CREATE TABLE legal_holds (
    id TEXT PRIMARY KEY,
    subject_id TEXT NOT NULL,
    reason BLOB NOT NULL,
    owner_id TEXT,
    review_at BIGINT NOT NULL,
    placed_at BIGINT NOT NULL,
    placed_by TEXT NOT NULL,
    lifted_at BIGINT,
    lifted_by TEXT
);
CREATE INDEX legal_holds_subject ON legal_holds (subject_id, lifted_at);
CREATE INDEX legal_holds_in_force ON legal_holds (review_at, id) WHERE lifted_at IS NULL;

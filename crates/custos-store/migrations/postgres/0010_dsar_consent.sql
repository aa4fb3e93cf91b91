-- Data-subject requests, the consent ledger and processing flags (PostgreSQL;
-- the same tables as migrations/sqlite/0010_dsar_consent.sql).

CREATE TABLE requests (
    id TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    subject_id TEXT COLLATE "C" NOT NULL,
    kind TEXT COLLATE "C" NOT NULL,
    regime TEXT COLLATE "C" NOT NULL,
    state TEXT COLLATE "C" NOT NULL,
    channel TEXT COLLATE "C" NOT NULL,
    requester_email BYTEA,
    details BYTEA,
    contact_id TEXT COLLATE "C",
    received_at BIGINT NOT NULL,
    due_at BIGINT NOT NULL,
    extension_reason BYTEA,
    verification TEXT COLLATE "C",
    verified_at BIGINT,
    verification_reason BYTEA,
    secrets BYTEA,
    result BYTEA,
    closed_at BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX requests_created ON requests (created_at, id);
CREATE INDEX requests_updated ON requests (updated_at, id);
CREATE INDEX requests_due ON requests (due_at, id);
CREATE INDEX requests_received ON requests (received_at, id);
CREATE INDEX requests_state ON requests (state, id);
CREATE INDEX requests_contact ON requests (contact_id);

CREATE TABLE consents (
    id TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    subject_id TEXT COLLATE "C" NOT NULL,
    contact_id TEXT COLLATE "C" NOT NULL,
    purpose TEXT COLLATE "C" NOT NULL,
    state BYTEA,
    method TEXT COLLATE "C" NOT NULL,
    notice_version TEXT COLLATE "C" NOT NULL,
    recorded_by TEXT COLLATE "C",
    recorded_at BIGINT NOT NULL,
    evidence BYTEA,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX consents_created ON consents (created_at, id);
CREATE INDEX consents_updated ON consents (updated_at, id);
CREATE INDEX consents_recorded ON consents (recorded_at, id);
CREATE INDEX consents_contact ON consents (contact_id, purpose, recorded_at);

-- Active flags per data subject; lifted flags keep their history.
CREATE TABLE processing_flags (
    subject_id TEXT COLLATE "C" NOT NULL,
    flag TEXT COLLATE "C" NOT NULL,
    set_at BIGINT NOT NULL,
    lifted_at BIGINT,
    request_id TEXT COLLATE "C"
);
CREATE INDEX processing_flags_subject ON processing_flags (subject_id, flag);

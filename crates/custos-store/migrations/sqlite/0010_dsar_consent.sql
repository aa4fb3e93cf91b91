-- Data-subject requests, the consent ledger, and processing flags
-- (restriction, objection, legal hold) that the service enforces.

CREATE TABLE requests (
    id TEXT PRIMARY KEY NOT NULL,
    subject_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    regime TEXT NOT NULL,
    state TEXT NOT NULL,
    channel TEXT NOT NULL,
    requester_email BLOB,
    details BLOB,
    contact_id TEXT,
    received_at INTEGER NOT NULL,
    due_at INTEGER NOT NULL,
    extension_reason BLOB,
    verification TEXT,
    verified_at INTEGER,
    verification_reason BLOB,
    secrets BLOB,
    result BLOB,
    closed_at INTEGER,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX requests_created ON requests (created_at, id);
CREATE INDEX requests_updated ON requests (updated_at, id);
CREATE INDEX requests_due ON requests (due_at, id);
CREATE INDEX requests_received ON requests (received_at, id);
CREATE INDEX requests_state ON requests (state, id);
CREATE INDEX requests_contact ON requests (contact_id);

CREATE TABLE consents (
    id TEXT PRIMARY KEY NOT NULL,
    subject_id TEXT NOT NULL,
    contact_id TEXT NOT NULL,
    purpose TEXT NOT NULL,
    state BLOB,
    method TEXT NOT NULL,
    notice_version TEXT NOT NULL,
    recorded_by TEXT,
    recorded_at INTEGER NOT NULL,
    evidence BLOB,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX consents_created ON consents (created_at, id);
CREATE INDEX consents_updated ON consents (updated_at, id);
CREATE INDEX consents_recorded ON consents (recorded_at, id);
CREATE INDEX consents_contact ON consents (contact_id, purpose, recorded_at);

-- Active flags per data subject; lifted flags keep their history.
CREATE TABLE processing_flags (
    subject_id TEXT NOT NULL,
    flag TEXT NOT NULL,
    set_at INTEGER NOT NULL,
    lifted_at INTEGER,
    request_id TEXT
);
CREATE INDEX processing_flags_subject ON processing_flags (subject_id, flag);

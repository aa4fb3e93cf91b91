-- Custos schema v1 (SQLite). Personal fields are BLOB columns holding sealed
-- values; every column of an entity table is declared in the data inventory
-- (a test checks both directions).

CREATE TABLE contacts (
    id TEXT PRIMARY KEY NOT NULL,
    subject_id TEXT NOT NULL,
    first_name BLOB,
    last_name BLOB,
    email BLOB,
    phone BLOB,
    company_id TEXT,
    owner_id TEXT,
    tags BLOB,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX contacts_created ON contacts (created_at, id);
CREATE INDEX contacts_updated ON contacts (updated_at, id);
CREATE INDEX contacts_company ON contacts (company_id);
CREATE INDEX contacts_owner ON contacts (owner_id);

CREATE TABLE companies (
    id TEXT PRIMARY KEY NOT NULL,
    subject_id TEXT,
    name TEXT NOT NULL,
    domain TEXT,
    owner_id TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX companies_created ON companies (created_at, id);
CREATE INDEX companies_updated ON companies (updated_at, id);
CREATE INDEX companies_name ON companies (name, id);
CREATE INDEX companies_domain ON companies (domain);

CREATE TABLE deals (
    id TEXT PRIMARY KEY NOT NULL,
    subject_id TEXT,
    title TEXT NOT NULL,
    company_id TEXT,
    contact_id TEXT,
    stage TEXT NOT NULL,
    amount INTEGER,
    currency TEXT,
    close_date TEXT,
    owner_id TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX deals_created ON deals (created_at, id);
CREATE INDEX deals_updated ON deals (updated_at, id);
CREATE INDEX deals_stage ON deals (stage, id);
CREATE INDEX deals_company ON deals (company_id);
CREATE INDEX deals_contact ON deals (contact_id);

CREATE TABLE activities (
    id TEXT PRIMARY KEY NOT NULL,
    subject_id TEXT NOT NULL,
    contact_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    body BLOB,
    occurred_at INTEGER NOT NULL,
    due_at INTEGER,
    done BOOLEAN,
    owner_id TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX activities_created ON activities (created_at, id);
CREATE INDEX activities_updated ON activities (updated_at, id);
CREATE INDEX activities_occurred ON activities (occurred_at, id);
CREATE INDEX activities_contact ON activities (contact_id, occurred_at);
CREATE INDEX activities_subject ON activities (subject_id);

CREATE TABLE orders (
    id TEXT PRIMARY KEY NOT NULL,
    subject_id TEXT NOT NULL,
    contact_id TEXT NOT NULL,
    status TEXT NOT NULL,
    total INTEGER NOT NULL,
    currency TEXT NOT NULL,
    shipping_address BLOB,
    placed_at INTEGER NOT NULL,
    completed_at INTEGER,
    owner_id TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX orders_created ON orders (created_at, id);
CREATE INDEX orders_updated ON orders (updated_at, id);
CREATE INDEX orders_placed ON orders (placed_at, id);
CREATE INDEX orders_contact ON orders (contact_id, placed_at);
CREATE INDEX orders_subject ON orders (subject_id);
CREATE INDEX orders_completed ON orders (completed_at);

CREATE TABLE users (
    id TEXT PRIMARY KEY NOT NULL,
    subject_id TEXT NOT NULL,
    email BLOB NOT NULL,
    display_name BLOB,
    role TEXT NOT NULL,
    disabled BOOLEAN,
    password_hash BLOB,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX users_created ON users (created_at, id);

-- Keyed HMACs of normalised values, for exact search on sealed fields.
CREATE TABLE blind_index (
    entity TEXT NOT NULL,
    field TEXT NOT NULL,
    hash BLOB NOT NULL,
    record_id TEXT NOT NULL,
    subject_id TEXT
);
CREATE INDEX blind_index_lookup ON blind_index (entity, field, hash);
CREATE INDEX blind_index_record ON blind_index (entity, record_id);
CREATE INDEX blind_index_subject ON blind_index (subject_id);

-- One data key per data subject, wrapped by the master key. Shredding sets
-- wrapped_key to NULL: every copy of the subject's data becomes unreadable.
CREATE TABLE subject_keys (
    subject_id TEXT PRIMARY KEY NOT NULL,
    kind TEXT NOT NULL,
    wrapped_key BLOB,
    kek_version INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    shredded_at INTEGER
);

-- Other keys (blind-index root, ledger signing key), wrapped or sealed.
CREATE TABLE secrets (
    name TEXT PRIMARY KEY NOT NULL,
    value BLOB NOT NULL,
    updated_at INTEGER NOT NULL
);

CREATE TABLE settings (
    name TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
);

CREATE TABLE sessions (
    id TEXT PRIMARY KEY NOT NULL,
    token_hash BLOB NOT NULL UNIQUE,
    user_id TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    revoked_at INTEGER
);
CREATE INDEX sessions_user ON sessions (user_id);

CREATE TABLE api_tokens (
    id TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL,
    name TEXT NOT NULL,
    token_hash BLOB NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    last_used_at INTEGER,
    expires_at INTEGER,
    revoked_at INTEGER
);
CREATE INDEX api_tokens_user ON api_tokens (user_id);

-- The audit ledger: an RFC 9162 Merkle tree. Leaves hold canonical event bytes
-- (ids and categories, never personal values).
CREATE TABLE ledger_leaves (
    idx INTEGER PRIMARY KEY NOT NULL,
    data BLOB NOT NULL,
    leaf_hash BLOB NOT NULL,
    created_at INTEGER NOT NULL
);
-- Roots of perfect subtrees (level, index), so any root or proof is O(log² n).
CREATE TABLE ledger_nodes (
    level INTEGER NOT NULL,
    idx INTEGER NOT NULL,
    hash BLOB NOT NULL,
    PRIMARY KEY (level, idx)
);
-- Size and frontier after the last append (a single row).
CREATE TABLE ledger_head (
    id INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    size INTEGER NOT NULL,
    frontier BLOB NOT NULL
);

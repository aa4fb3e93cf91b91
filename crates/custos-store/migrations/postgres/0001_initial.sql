-- Custos schema v1 (PostgreSQL), the same tables, columns and indexes as
-- migrations/sqlite/0001_initial.sql. Personal fields are BYTEA columns holding
-- sealed values; every column of an entity table is declared in the data
-- inventory (a test checks both directions).
--
-- Text columns use the "C" collation: text sorts and compares byte by byte, as
-- in SQLite, whatever the cluster's locale, so lists page in the same order on
-- both backends and lower() folds only ASCII (the LIKE patterns of the store
-- are built for that).

CREATE TABLE contacts (
    id TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    subject_id TEXT COLLATE "C" NOT NULL,
    first_name BYTEA,
    last_name BYTEA,
    email BYTEA,
    phone BYTEA,
    company_id TEXT COLLATE "C",
    owner_id TEXT COLLATE "C",
    tags BYTEA,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX contacts_created ON contacts (created_at, id);
CREATE INDEX contacts_updated ON contacts (updated_at, id);
CREATE INDEX contacts_company ON contacts (company_id);
CREATE INDEX contacts_owner ON contacts (owner_id);

CREATE TABLE companies (
    id TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    subject_id TEXT COLLATE "C",
    name TEXT COLLATE "C" NOT NULL,
    domain TEXT COLLATE "C",
    owner_id TEXT COLLATE "C",
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX companies_created ON companies (created_at, id);
CREATE INDEX companies_updated ON companies (updated_at, id);
CREATE INDEX companies_name ON companies (name, id);
CREATE INDEX companies_domain ON companies (domain);

CREATE TABLE deals (
    id TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    subject_id TEXT COLLATE "C",
    title TEXT COLLATE "C" NOT NULL,
    company_id TEXT COLLATE "C",
    contact_id TEXT COLLATE "C",
    stage TEXT COLLATE "C" NOT NULL,
    amount BIGINT,
    currency TEXT COLLATE "C",
    close_date TEXT COLLATE "C",
    owner_id TEXT COLLATE "C",
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX deals_created ON deals (created_at, id);
CREATE INDEX deals_updated ON deals (updated_at, id);
CREATE INDEX deals_stage ON deals (stage, id);
CREATE INDEX deals_company ON deals (company_id);
CREATE INDEX deals_contact ON deals (contact_id);

CREATE TABLE activities (
    id TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    subject_id TEXT COLLATE "C" NOT NULL,
    contact_id TEXT COLLATE "C" NOT NULL,
    kind TEXT COLLATE "C" NOT NULL,
    body BYTEA,
    occurred_at BIGINT NOT NULL,
    due_at BIGINT,
    done BOOLEAN,
    owner_id TEXT COLLATE "C",
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX activities_created ON activities (created_at, id);
CREATE INDEX activities_updated ON activities (updated_at, id);
CREATE INDEX activities_occurred ON activities (occurred_at, id);
CREATE INDEX activities_contact ON activities (contact_id, occurred_at);
CREATE INDEX activities_subject ON activities (subject_id);

CREATE TABLE orders (
    id TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    subject_id TEXT COLLATE "C" NOT NULL,
    contact_id TEXT COLLATE "C" NOT NULL,
    status TEXT COLLATE "C" NOT NULL,
    total BIGINT NOT NULL,
    currency TEXT COLLATE "C" NOT NULL,
    shipping_address BYTEA,
    placed_at BIGINT NOT NULL,
    completed_at BIGINT,
    owner_id TEXT COLLATE "C",
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX orders_created ON orders (created_at, id);
CREATE INDEX orders_updated ON orders (updated_at, id);
CREATE INDEX orders_placed ON orders (placed_at, id);
CREATE INDEX orders_contact ON orders (contact_id, placed_at);
CREATE INDEX orders_subject ON orders (subject_id);
CREATE INDEX orders_completed ON orders (completed_at);

CREATE TABLE users (
    id TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    subject_id TEXT COLLATE "C" NOT NULL,
    email BYTEA NOT NULL,
    display_name BYTEA,
    role TEXT COLLATE "C" NOT NULL,
    disabled BOOLEAN,
    password_hash BYTEA,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX users_created ON users (created_at, id);

-- Keyed HMACs of normalised values, for exact search on sealed fields.
CREATE TABLE blind_index (
    entity TEXT COLLATE "C" NOT NULL,
    field TEXT COLLATE "C" NOT NULL,
    hash BYTEA NOT NULL,
    record_id TEXT COLLATE "C" NOT NULL,
    subject_id TEXT COLLATE "C"
);
CREATE INDEX blind_index_lookup ON blind_index (entity, field, hash);
CREATE INDEX blind_index_record ON blind_index (entity, record_id);
CREATE INDEX blind_index_subject ON blind_index (subject_id);

-- One data key per data subject, wrapped by the master key. Shredding sets
-- wrapped_key to NULL: every copy of the subject's data becomes unreadable.
CREATE TABLE subject_keys (
    subject_id TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    kind TEXT COLLATE "C" NOT NULL,
    wrapped_key BYTEA,
    kek_version BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    shredded_at BIGINT
);

-- Other keys (blind-index root, ledger signing key), wrapped or sealed.
CREATE TABLE secrets (
    name TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    value BYTEA NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE settings (
    name TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    value TEXT COLLATE "C" NOT NULL
);

CREATE TABLE sessions (
    id TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    token_hash BYTEA NOT NULL UNIQUE,
    user_id TEXT COLLATE "C" NOT NULL,
    created_at BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE INDEX sessions_user ON sessions (user_id);

CREATE TABLE api_tokens (
    id TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    user_id TEXT COLLATE "C" NOT NULL,
    name TEXT COLLATE "C" NOT NULL,
    token_hash BYTEA NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    last_used_at BIGINT,
    expires_at BIGINT,
    revoked_at BIGINT
);
CREATE INDEX api_tokens_user ON api_tokens (user_id);

-- The audit ledger: an RFC 9162 Merkle tree. Leaves hold canonical event bytes
-- (ids and categories, never personal values).
CREATE TABLE ledger_leaves (
    idx BIGINT PRIMARY KEY NOT NULL,
    data BYTEA NOT NULL,
    leaf_hash BYTEA NOT NULL,
    created_at BIGINT NOT NULL
);
-- Roots of perfect subtrees (level, index), so any root or proof is O(log² n).
CREATE TABLE ledger_nodes (
    level BIGINT NOT NULL,
    idx BIGINT NOT NULL,
    hash BYTEA NOT NULL,
    PRIMARY KEY (level, idx)
);
-- Size and frontier after the last append (a single row).
CREATE TABLE ledger_head (
    id BIGINT PRIMARY KEY NOT NULL CHECK (id = 1),
    size BIGINT NOT NULL,
    frontier BYTEA NOT NULL
);

-- The same as migrations/sqlite/0004_identity.sql, in PostgreSQL types.
-- Identity and access control: second factors, throttling, sessions that know
-- how they were authenticated, scoped API tokens, teams for record scopes.

-- Users: the team (plain, for team-scoped roles) and the TOTP secret (sealed
-- under the user's data key, like the password hash).
ALTER TABLE users ADD COLUMN team TEXT COLLATE "C";
ALTER TABLE users ADD COLUMN totp_secret BYTEA;

-- Sessions: 'full' or 'enrol' (MFA required but none set up yet: may only
-- enrol one), when a second factor (or the password, for accounts without
-- one) was last checked, for step-up; the device (user agent and address)
-- sealed under the user's data key.
ALTER TABLE sessions ADD COLUMN kind TEXT COLLATE "C" NOT NULL DEFAULT 'full';
ALTER TABLE sessions ADD COLUMN verified_at BIGINT;
ALTER TABLE sessions ADD COLUMN device BYTEA;
CREATE INDEX sessions_expires ON sessions (expires_at);

-- API tokens: what they may do (comma-separated scopes; NULL = everything the
-- user's role allows).
ALTER TABLE api_tokens ADD COLUMN scopes TEXT COLLATE "C";

-- Per-user sign-in state (no personal values: counters, times, hashes).
CREATE TABLE user_auth (
    user_id TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    -- time step of the last accepted TOTP code: older or equal steps are replays
    totp_last_step BIGINT,
    failed_since_login BIGINT NOT NULL DEFAULT 0,
    last_login_at BIGINT,
    password_changed_at BIGINT,
    -- SHA-256 hashes (32 bytes each) of the unused recovery codes
    recovery_codes BYTEA NOT NULL
);

-- WebAuthn credentials (passkeys, security keys). The public key and id are
-- public by design; the name the user gave is sealed under their data key.
CREATE TABLE webauthn_credentials (
    id TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    user_id TEXT COLLATE "C" NOT NULL,
    credential_id BYTEA NOT NULL UNIQUE,
    public_key BYTEA NOT NULL,
    sign_count BIGINT NOT NULL,
    name BYTEA,
    created_at BIGINT NOT NULL,
    last_used_at BIGINT
);
CREATE INDEX webauthn_credentials_user ON webauthn_credentials (user_id);

-- Short-lived ceremonies: a sign-in waiting for its second factor (the
-- mfa_token), a passkey registration, a step-up. Stored by token hash.
CREATE TABLE auth_challenges (
    id TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    token_hash BYTEA NOT NULL UNIQUE,
    user_id TEXT COLLATE "C" NOT NULL,
    purpose TEXT COLLATE "C" NOT NULL,
    session_id TEXT COLLATE "C",
    challenge BYTEA,
    attempts BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX auth_challenges_expires ON auth_challenges (expires_at);

-- Failed sign-ins for throttling, keyed by a keyed hash of the account's email
-- or of the client address (never the values themselves).
CREATE TABLE auth_failures (
    key BYTEA NOT NULL,
    at BIGINT NOT NULL
);
CREATE INDEX auth_failures_key ON auth_failures (key, at);
CREATE INDEX auth_failures_at ON auth_failures (at);

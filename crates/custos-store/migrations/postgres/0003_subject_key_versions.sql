-- A data subject may hold several data-key versions: new writes use the newest,
-- older values open with the version named in their header, and shredding
-- destroys every version at once. kek_version lets rotation re-wrap in batches.
-- (SQLite rebuilds the table; PostgreSQL alters it in place.)

ALTER TABLE subject_keys ADD COLUMN dek_version BIGINT NOT NULL DEFAULT 1;
ALTER TABLE subject_keys ALTER COLUMN dek_version DROP DEFAULT;
ALTER TABLE subject_keys DROP CONSTRAINT subject_keys_pkey;
ALTER TABLE subject_keys ADD PRIMARY KEY (subject_id, dek_version);
CREATE INDEX subject_keys_kek ON subject_keys (kek_version);

-- Erasures, so a restored backup can re-apply every one made after it was taken.
CREATE TABLE erasures (
    subject_id TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    erased_at BIGINT NOT NULL
);

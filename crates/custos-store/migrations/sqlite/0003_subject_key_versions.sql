-- A data subject may hold several data-key versions: new writes use the newest,
-- older values open with the version named in their header, and shredding
-- destroys every version at once. kek_version lets rotation re-wrap in batches.

CREATE TABLE subject_keys_v3 (
    subject_id TEXT NOT NULL,
    dek_version INTEGER NOT NULL,
    kind TEXT NOT NULL,
    wrapped_key BLOB,
    kek_version INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    shredded_at INTEGER,
    PRIMARY KEY (subject_id, dek_version)
);
INSERT INTO subject_keys_v3 (subject_id, dek_version, kind, wrapped_key, kek_version, created_at, shredded_at)
    SELECT subject_id, 1, kind, wrapped_key, kek_version, created_at, shredded_at FROM subject_keys;
DROP TABLE subject_keys;
ALTER TABLE subject_keys_v3 RENAME TO subject_keys;
CREATE INDEX subject_keys_kek ON subject_keys (kek_version);

-- Erasures, so a restored backup can re-apply every one made after it was taken.
CREATE TABLE erasures (
    subject_id TEXT PRIMARY KEY NOT NULL,
    erased_at INTEGER NOT NULL
);

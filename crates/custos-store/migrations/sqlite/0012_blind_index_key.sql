-- The blind index becomes a clustered key: a lookup by (entity, field, hash)
-- reads the key itself, and a new entry writes two B-trees (the key and the
-- index by record) instead of four (the table and three indexes). Records
-- with blind-indexed fields are their own data subjects (a domain test checks
-- it), so erasing a subject deletes its record's entries: the subject column
-- and its index go. A value twice in one field of a record is one entry.
CREATE TABLE blind_index_v12 (
    entity TEXT NOT NULL,
    field TEXT NOT NULL,
    hash BLOB NOT NULL,
    record_id TEXT NOT NULL,
    PRIMARY KEY (entity, field, hash, record_id)
) WITHOUT ROWID;
-- In key order, so the copy appends instead of inserting at random places.
INSERT OR IGNORE INTO blind_index_v12 (entity, field, hash, record_id)
    SELECT entity, field, hash, record_id FROM blind_index
    ORDER BY entity, field, hash, record_id;
DROP TABLE blind_index;
ALTER TABLE blind_index_v12 RENAME TO blind_index;
CREATE INDEX blind_index_record ON blind_index (record_id);

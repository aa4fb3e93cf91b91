-- The blind index gets a primary key on (entity, field, hash, record_id),
-- which serves lookups, and one index by record. Records with blind-indexed
-- fields are their own data subjects (a domain test checks it), so erasing a
-- subject deletes its record's entries: the subject column and its index go.
-- A value twice in one field of a record is one entry.
DROP INDEX blind_index_lookup;
DROP INDEX blind_index_record;
DROP INDEX blind_index_subject;
ALTER TABLE blind_index DROP COLUMN subject_id;
DELETE FROM blind_index a USING blind_index b
    WHERE a.ctid < b.ctid AND a.entity = b.entity AND a.field = b.field
      AND a.hash = b.hash AND a.record_id = b.record_id;
ALTER TABLE blind_index ADD PRIMARY KEY (entity, field, hash, record_id);
CREATE INDEX blind_index_record ON blind_index (record_id);

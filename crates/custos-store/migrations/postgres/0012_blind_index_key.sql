-- The blind index loses its subject column and the index on it: records with
-- blind-indexed fields are their own data subjects (a domain test checks
-- it), so erasing a subject deletes its record's entries, found by the index
-- by record id. Entries repeated within a record field become one.
DROP INDEX blind_index_record;
DROP INDEX blind_index_subject;
ALTER TABLE blind_index DROP COLUMN subject_id;
DELETE FROM blind_index a USING blind_index b
    WHERE a.ctid < b.ctid AND a.entity = b.entity AND a.field = b.field
      AND a.hash = b.hash AND a.record_id = b.record_id;
CREATE INDEX blind_index_record ON blind_index (record_id);

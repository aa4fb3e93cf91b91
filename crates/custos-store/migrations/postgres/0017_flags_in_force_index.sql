-- The privacy summary counts the people each processing flag is in force on.
-- Lifted flags stay as history, so the table only grows: this index holds
-- just the flags in force, in flag order, with the subject, and the count is
-- one walk of it, never of the history. `lifted_at` is in it (always NULL)
-- so that SQLite reads the index alone (a covering index).
CREATE INDEX processing_flags_in_force ON processing_flags (flag, subject_id, lifted_at) WHERE lifted_at IS NULL;

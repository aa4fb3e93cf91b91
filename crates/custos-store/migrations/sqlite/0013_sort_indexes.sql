-- Every sortable column of a table that grows with the customer base gets
-- an index with the id, so each page of a list, in any order and however
-- deep, is one range of an index (a test of every page's query plans checks
-- it). A column every row has is indexed bare; one that may be NULL is
-- indexed as the expression the list sorts by (see sql::sort_expr).
-- On a big database this migration takes a while: each index is built once.
CREATE INDEX companies_domain_sort ON companies (COALESCE(domain, ''), id);
CREATE INDEX deals_title ON deals (title, id);
CREATE INDEX deals_amount ON deals (COALESCE(amount, -9223372036854775808), id);
CREATE INDEX deals_close_date ON deals (COALESCE(close_date, ''), id);
CREATE INDEX activities_kind ON activities (kind, id);
CREATE INDEX activities_due ON activities (COALESCE(due_at, -9223372036854775808), id);
CREATE INDEX orders_status ON orders (status, id);
CREATE INDEX orders_total ON orders (total, id);
CREATE INDEX orders_completed_sort ON orders (COALESCE(completed_at, -9223372036854775808), id);
CREATE INDEX requests_kind ON requests (kind, id);
CREATE INDEX requests_closed ON requests (COALESCE(closed_at, -9223372036854775808), id);
CREATE INDEX consents_purpose ON consents (purpose, id);
-- The open requests (closed_at IS NULL), counted on the dashboard and the
-- privacy pages.
CREATE INDEX requests_open ON requests (closed_at);
-- The dashboard's open tasks by due date: done is NULL or false, so two
-- ranges of this index (one per value of done) hold exactly the open tasks
-- of a kind due in a window, however many tasks were done before.
CREATE INDEX activities_open_tasks ON activities (done, kind, due_at);
-- The number of signed checkpoints, kept with the head: the automatic
-- checkpoint (once a minute while the ledger grows) and the ledger's status
-- read the latest checkpoint and this count, not every checkpoint.
ALTER TABLE ledger_head ADD COLUMN checkpoints INTEGER NOT NULL DEFAULT 0;
UPDATE ledger_head SET checkpoints = (SELECT COUNT(*) FROM ledger_checkpoints);

-- On a big database this migration takes a while: each index is built once.
-- The dashboard's tile of tasks due soon lists open tasks of one kind,
-- soonest first: with the due time as lists sort it (see sql::sort_expr),
-- each of its two ranges (done NULL, done false) is read in that order and
-- stops at the tile's few rows, however many tasks are open.
CREATE INDEX activities_open_due ON activities (done, kind, COALESCE(due_at, -9223372036854775808), id);
-- The pipeline tiles count and sum the deals by stage, close date and
-- currency from this index alone, in its order, without reading the deals
-- themselves (their rows carry the sealed columns).
CREATE INDEX deals_pipeline ON deals (stage, close_date, currency, amount);
-- Tasks (or any one kind of activity) by due date: one range of this index
-- (see sql::SORTED_WITHIN). Walking the due-date order instead would pass
-- every other activity first, whose due time is empty.
CREATE INDEX activities_kind_due ON activities (kind, COALESCE(due_at, -9223372036854775808), id);

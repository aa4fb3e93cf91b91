-- The "won this month" chart counts a won deal without a close date as won
-- when it last changed. Those deals, changed since a date, are one range of
-- this index in the order they changed: the chart reads only them, not every
-- deal changed lately (a busy week changes thousands).
CREATE INDEX deals_stage_close_updated ON deals (stage, close_date, updated_at, id);

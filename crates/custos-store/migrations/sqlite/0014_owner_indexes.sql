-- A role whose record scope is its own (or its team's) records sees lists
-- and totals filtered by owner: without these indexes, each such total
-- read the whole table whenever the owner has fewer records than the count
-- limit (the query-plan test signs in as such a user). Newest first is the
-- lists' default order, so it comes with the owner.
CREATE INDEX companies_owner ON companies (owner_id, created_at, id);
CREATE INDEX deals_owner ON deals (owner_id, created_at, id);
CREATE INDEX activities_owner ON activities (owner_id, created_at, id);
CREATE INDEX orders_owner ON orders (owner_id, created_at, id);

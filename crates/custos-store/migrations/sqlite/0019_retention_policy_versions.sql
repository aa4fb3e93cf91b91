-- Versions of the retention policies (issue 21): the inventory declares
-- each policy's default period (version 1); each change the privacy
-- officer saves is the next version, kept here with its reason and the
-- ledger leaf that recorded it. The newest version of a policy is in force.
CREATE TABLE retention_policy_versions (
    policy TEXT NOT NULL,
    version BIGINT NOT NULL,
    years BIGINT NOT NULL,
    previous_years BIGINT NOT NULL,
    reason TEXT NOT NULL,
    actor TEXT NOT NULL,
    changed_at BIGINT NOT NULL,
    leaf BIGINT NOT NULL,
    PRIMARY KEY (policy, version)
);

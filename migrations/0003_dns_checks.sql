-- The latest DNS check of each relay, as the checker reported it (JSON), so the status page
-- shows it at once and re-checks only when it is stale or the group asks.
CREATE TABLE dns_checks (
    group_id UUID PRIMARY KEY REFERENCES groups (id) ON DELETE CASCADE,
    checked_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    report JSONB NOT NULL
);

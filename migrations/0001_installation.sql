-- One row per portal installation: when its database was first set up.
-- Later migrations add accounts, groups, relays, DNS ownership, jobs and the audit log.
CREATE TABLE portal_installation (
    id BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (id),
    installed_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

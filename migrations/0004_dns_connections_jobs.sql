-- How the portal writes a relay's DNS: the connection to a DNS provider (credentials
-- sealed with the portal's keyring, never in clear), the record values the portal wrote
-- (so it only ever changes or removes its own), and apply jobs.

CREATE TABLE dns_connections (
    id UUID PRIMARY KEY,
    -- A group's own domain, or an operator's zone for free subdomains: exactly one.
    group_id UUID UNIQUE REFERENCES groups (id) ON DELETE CASCADE,
    free_zone_id UUID UNIQUE REFERENCES free_zones (id) ON DELETE CASCADE,
    kind TEXT NOT NULL CHECK (kind IN ('powerdns', 'rfc2136')),
    -- What people see, e.g. "PowerDNS at https://dns.example.net"; never a secret.
    label TEXT NOT NULL,
    zone TEXT NOT NULL,
    sealed_credentials TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK ((group_id IS NULL) <> (free_zone_id IS NULL))
);

-- How a group's records reach DNS: written through a connection, by hand, or (free names)
-- through the operator's zone.
ALTER TABLE relays ADD COLUMN dns_mode TEXT CHECK (dns_mode IN ('connected', 'manual', 'portal'));

CREATE TABLE dns_owned_values (
    group_id UUID NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    rtype TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (group_id, name, rtype, value)
);

CREATE TABLE dns_jobs (
    id UUID PRIMARY KEY,
    group_id UUID NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    action TEXT NOT NULL CHECK (action IN ('apply', 'remove')),
    -- Conflict ids the person confirmed (foreign records they allowed the portal to replace).
    confirmed TEXT[] NOT NULL DEFAULT '{}',
    state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'running', 'done', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- A running job whose heartbeat stops (the portal died) is taken over by another.
    heartbeat_at TIMESTAMPTZ,
    last_error TEXT,
    summary TEXT,
    created_by UUID REFERENCES accounts (id) ON DELETE SET NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    finished_at TIMESTAMPTZ
);
-- One job per relay at a time.
CREATE UNIQUE INDEX dns_jobs_one_active ON dns_jobs (group_id) WHERE state IN ('pending', 'running');
CREATE INDEX dns_jobs_due ON dns_jobs (next_attempt_at) WHERE state IN ('pending', 'running');

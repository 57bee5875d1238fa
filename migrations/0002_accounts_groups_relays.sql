-- People, their groups, and the one relay each group sets up.

CREATE TABLE accounts (
    id UUID PRIMARY KEY,
    -- Stored lowercased; the unique index makes sign-up races safe.
    email TEXT NOT NULL UNIQUE CHECK (email = lower(email) AND length(email) <= 254),
    password_hash TEXT NOT NULL,
    -- Bumped on password change: sessions made before it stop working.
    session_epoch INTEGER NOT NULL DEFAULT 0,
    is_operator BOOLEAN NOT NULL DEFAULT FALSE,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Every sign-in and sign-up attempt, for rate limits and lockout across portal processes.
CREATE TABLE auth_attempts (
    id BIGSERIAL PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('sign_in', 'sign_up')),
    email TEXT,
    ip INET NOT NULL,
    succeeded BOOLEAN NOT NULL,
    at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX auth_attempts_email ON auth_attempts (email, at) WHERE email IS NOT NULL;
CREATE INDEX auth_attempts_ip ON auth_attempts (ip, at);

CREATE TABLE groups (
    id UUID PRIMARY KEY,
    name TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 80),
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- Set by a community operator; a disabled group can only look, not change or download.
    disabled_reason TEXT,
    disabled_at TIMESTAMPTZ
);

CREATE TABLE group_members (
    group_id UUID NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    account_id UUID NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    role TEXT NOT NULL CHECK (role IN ('owner', 'admin')),
    joined_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (group_id, account_id)
);
CREATE INDEX group_members_account ON group_members (account_id);

-- Invite links: only a hash of the token is kept; each works once, until it expires.
CREATE TABLE invites (
    id UUID PRIMARY KEY,
    group_id UUID NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    token_hash BYTEA NOT NULL UNIQUE,
    created_by UUID REFERENCES accounts (id) ON DELETE SET NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at TIMESTAMPTZ NOT NULL,
    used_at TIMESTAMPTZ,
    used_by UUID REFERENCES accounts (id) ON DELETE SET NULL,
    revoked_at TIMESTAMPTZ
);
CREATE INDEX invites_group ON invites (group_id);

-- Zones a community operator offers for free subdomains (group.zone.example).
CREATE TABLE free_zones (
    id UUID PRIMARY KEY,
    zone TEXT NOT NULL UNIQUE,
    enabled BOOLEAN NOT NULL DEFAULT TRUE,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- The relay a group sets up, filled in step by step by the setup wizard.
CREATE TABLE relays (
    group_id UUID PRIMARY KEY REFERENCES groups (id) ON DELETE CASCADE,
    mail_domain TEXT UNIQUE,
    free_zone_id UUID REFERENCES free_zones (id) ON DELETE RESTRICT,
    -- The non-secret device configuration (chatmail-shared's RelayConfig as TOML), once known.
    config_toml TEXT,
    hardware TEXT CHECK (hardware IN ('raspberry_pi', 'virtual_machine')),
    ipv4 INET,
    ipv6 INET,
    -- The furthest wizard step completed (0 = none).
    completed_step SMALLINT NOT NULL DEFAULT 0,
    ignored_warnings TEXT[] NOT NULL DEFAULT '{}',
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Operator-wide settings: one row.
CREATE TABLE operator_settings (
    id BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (id),
    max_groups_per_account INTEGER NOT NULL DEFAULT 3 CHECK (max_groups_per_account BETWEEN 0 AND 1000),
    downloads_per_day INTEGER NOT NULL DEFAULT 10 CHECK (downloads_per_day BETWEEN 0 AND 10000),
    open_sign_up BOOLEAN NOT NULL DEFAULT TRUE
);
INSERT INTO operator_settings (id) VALUES (TRUE);

-- Security-relevant actions. No e-mail addresses here: deleting an account leaves only
-- an anonymous trace of what it did.
CREATE TABLE audit_log (
    id BIGSERIAL PRIMARY KEY,
    at TIMESTAMPTZ NOT NULL DEFAULT now(),
    actor UUID REFERENCES accounts (id) ON DELETE SET NULL,
    group_id UUID REFERENCES groups (id) ON DELETE SET NULL,
    action TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT '',
    ip INET
);
CREATE INDEX audit_log_at ON audit_log (at DESC);
CREATE INDEX audit_log_group ON audit_log (group_id, at DESC);

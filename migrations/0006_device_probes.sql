-- Go-live: what the portal's probes found on each relay's device, the public facts the
-- device proved (its DKIM key and ACME account, published in DNS), the go-live phases and
-- the relay's health as the periodic re-checks see it.
CREATE TABLE device_probes (
    group_id UUID PRIMARY KEY REFERENCES groups (id) ON DELETE CASCADE,
    checked_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    report JSONB NOT NULL
);

ALTER TABLE relays
    -- The device's DKIM public key (base64 SubjectPublicKeyInfo), once its status was trusted.
    ADD COLUMN device_dkim_public_key TEXT,
    -- The device's ACME account URL (for CAA accounturi).
    ADD COLUMN device_acme_account_url TEXT,
    -- The software version the device last reported.
    ADD COLUMN device_version TEXT,
    ADD COLUMN device_seen_at TIMESTAMPTZ,
    -- 'healthy' once the relay was ready; 'broken' when a re-check found it no longer is.
    ADD COLUMN health TEXT CHECK (health IN ('healthy', 'broken')),
    ADD COLUMN health_changed_at TIMESTAMPTZ;

-- When each go-live phase was first reached.
CREATE TABLE relay_phases (
    group_id UUID NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    phase TEXT NOT NULL CHECK (phase IN ('dns', 'reachable', 'certificate', 'dns_complete', 'ready')),
    reached_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (group_id, phase)
);

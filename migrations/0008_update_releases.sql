-- Signed releases the portal publishes for devices that opt in to update checks: one row
-- per (channel, target, version). The newest row of a channel and target is the current
-- release. The manifest is kept as the exact bytes that were signed; the pieces it names
-- live as files in the releases directory, named by their sha256. The signing key is never
-- stored here.
CREATE TABLE update_releases (
    channel TEXT NOT NULL CHECK (channel IN ('stable', 'testing')),
    target TEXT NOT NULL CHECK (target IN ('amd64', 'rpi')),
    version TEXT NOT NULL CHECK (length(version) BETWEEN 5 AND 64),
    manifest BYTEA NOT NULL CHECK (length(manifest) <= 16384),
    signature TEXT NOT NULL CHECK (length(signature) <= 2048),
    published_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (channel, target, version)
);
CREATE INDEX update_releases_current ON update_releases (channel, target, published_at DESC);

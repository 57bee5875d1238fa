-- Personalized image downloads: who fetched which image when (for the per-group daily
-- quota, operator_settings.downloads_per_day), and the per-group link that Raspberry Pi
-- Imager uses, which cannot carry a session.

CREATE TABLE image_downloads (
    id BIGSERIAL PRIMARY KEY,
    group_id UUID NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    account_id UUID REFERENCES accounts (id) ON DELETE SET NULL,
    target TEXT NOT NULL CHECK (length(target) <= 32),
    format TEXT NOT NULL CHECK (format IN ('img', 'img.gz', 'img.zst')),
    -- sha256 of the personalized raw image: a resumed download of the same image is
    -- recognised by it and not counted again.
    image_sha256 TEXT NOT NULL CHECK (length(image_sha256) = 64),
    via TEXT NOT NULL CHECK (via IN ('portal', 'imager')),
    started_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX image_downloads_group_time ON image_downloads (group_id, started_at);

CREATE TABLE imager_links (
    group_id UUID PRIMARY KEY REFERENCES groups (id) ON DELETE CASCADE,
    -- A random URL-safe token; whoever has the link can download the group's image (it
    -- holds no secret), within the group's quota. Members can replace it.
    token TEXT NOT NULL UNIQUE CHECK (length(token) BETWEEN 32 AND 64),
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

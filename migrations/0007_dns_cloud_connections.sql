-- DNS providers II: connections to cloud DNS APIs by token or key, and by signing in with
-- the provider (OAuth; the sealed credentials then hold the tokens, refreshed before use).
-- `problem` says why a connection stopped working (a withdrawn sign-in, a refused key), so
-- the wizard can ask the person to connect again; it is cleared when a job succeeds.
ALTER TABLE dns_connections DROP CONSTRAINT dns_connections_kind_check;
ALTER TABLE dns_connections ADD CONSTRAINT dns_connections_kind_check CHECK (kind IN (
    'powerdns', 'rfc2136', 'cloudflare', 'digitalocean', 'linode', 'hetzner', 'porkbun',
    'desec', 'gandi', 'namecheap', 'ovh', 'oauth'));
ALTER TABLE dns_connections ADD COLUMN provider TEXT;
ALTER TABLE dns_connections ADD COLUMN problem TEXT;

-- A Domain Connect grant (asynchronous flow): sealed tokens for the provider's API.
ALTER TABLE dns_connections DROP CONSTRAINT dns_connections_kind_check;
ALTER TABLE dns_connections ADD CONSTRAINT dns_connections_kind_check CHECK (kind IN (
    'powerdns', 'rfc2136', 'cloudflare', 'digitalocean', 'linode', 'hetzner', 'porkbun',
    'desec', 'gandi', 'namecheap', 'ovh', 'oauth', 'domain_connect'));

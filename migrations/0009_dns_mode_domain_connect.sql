-- Records applied at the DNS provider through Domain Connect (the portal keeps no
-- credentials for such a zone).
ALTER TABLE relays DROP CONSTRAINT relays_dns_mode_check;
ALTER TABLE relays ADD CONSTRAINT relays_dns_mode_check
    CHECK (dns_mode IN ('connected', 'manual', 'portal', 'domain_connect'));

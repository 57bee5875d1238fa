//! What a test's PowerDNS serves, read through the same provider code the portal uses.

use chatmail_dns_providers::{powerdns::PowerDns as PowerDnsApi, DnsProvider};
use chatmail_dns_world::pdns::PowerDns;

/// The records of `zone` as `name TYPE value` lines, sorted.
pub async fn zone_lines(pdns: &PowerDns, zone: &str) -> Vec<String> {
    let api = PowerDnsApi::new(&pdns.api_url(), pdns.api_key(), "localhost")
        .expect("the PowerDNS API client");
    let contents = api.read(zone).await.expect("the zone from PowerDNS");
    let mut lines: Vec<String> = contents
        .records
        .iter()
        .map(|r| format!("{} {} {}", r.name, r.data.rtype(), r.data.presentation()))
        .collect();
    lines.sort();
    lines
}

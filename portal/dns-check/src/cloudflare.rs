//! Cloudflare's proxy address ranges, to recognise a proxied ("orange cloud") record.
//!
//! Cloudflare's proxy forwards only HTTP(S); a mail domain whose A/AAAA points into these
//! ranges cannot receive SMTP or IMAP (research/registrars.md §6 item 8). The lists are
//! Cloudflare's published ranges, <https://www.cloudflare.com/ips/> (plain-text lists at
//! `https://www.cloudflare.com/ips-v4` and `https://www.cloudflare.com/ips-v6`),
//! as of 2026-11-29. That page could not be fetched from this build machine; the lists
//! were taken from several independent public copies that agree with each other (nginx
//! `set_real_ip_from` configurations and firewall scripts). Cloudflare changes them
//! rarely; update both lists together when it does.

use std::net::IpAddr;
use std::sync::OnceLock;

use ipnet::IpNet;

/// IPv4 ranges (`ips-v4`).
pub const IPV4_RANGES: &[&str] = &[
    "173.245.48.0/20",
    "103.21.244.0/22",
    "103.22.200.0/22",
    "103.31.4.0/22",
    "141.101.64.0/18",
    "108.162.192.0/18",
    "190.93.240.0/20",
    "188.114.96.0/20",
    "197.234.240.0/22",
    "198.41.128.0/17",
    "162.158.0.0/15",
    "104.16.0.0/13",
    "104.24.0.0/14",
    "172.64.0.0/13",
    "131.0.72.0/22",
];

/// IPv6 ranges (`ips-v6`).
pub const IPV6_RANGES: &[&str] = &[
    "2400:cb00::/32",
    "2606:4700::/32",
    "2803:f800::/32",
    "2405:b500::/32",
    "2405:8100::/32",
    "2a06:98c0::/29",
    "2c0f:f248::/32",
];

fn nets() -> &'static [IpNet] {
    static NETS: OnceLock<Vec<IpNet>> = OnceLock::new();
    NETS.get_or_init(|| {
        IPV4_RANGES
            .iter()
            .chain(IPV6_RANGES)
            .map(|s| s.parse().expect("constant CIDR"))
            .collect()
    })
}

/// Whether `ip` is a Cloudflare proxy address.
pub fn is_cloudflare(ip: IpAddr) -> bool {
    nets().iter().any(|n| n.contains(&ip))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_proxy_addresses() {
        assert!(is_cloudflare("104.21.3.4".parse().unwrap()));
        assert!(is_cloudflare("172.67.1.1".parse().unwrap()));
        assert!(is_cloudflare("2606:4700:3030::ac43:1".parse().unwrap()));
        assert!(!is_cloudflare("192.0.2.10".parse().unwrap()));
        assert!(!is_cloudflare("2001:db8::10".parse().unwrap()));
        assert!(
            !is_cloudflare("1.1.1.1".parse().unwrap()),
            "the resolver is not a proxy range"
        );
    }
}

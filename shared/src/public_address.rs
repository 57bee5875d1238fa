//! Whether an IP address can be a relay's public address, and if not, why not, in words a
//! non-expert understands. The portal's hardware step uses it; the device config itself
//! accepts any unicast address (test set-ups run on loopback).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Why an address cannot be reached from the internet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NotPublic {
    #[error("is a private network address (used inside homes and offices); enter the public address your router or provider shows")]
    Private,
    #[error("is a loopback address: it always means \"this computer\"")]
    Loopback,
    #[error("is shared by your internet provider among many customers (carrier-grade NAT), so nobody can reach your relay on it; ask your provider for a public IPv4 address, or use IPv6")]
    SharedCgnat,
    #[error("is a link-local address, valid only on one network segment")]
    LinkLocal,
    #[error("is reserved for documentation and examples")]
    Documentation,
    #[error("is a multicast or broadcast address, not one machine's address")]
    Multicast,
    #[error("is not a usable address (unspecified or reserved)")]
    Reserved,
    #[error("is an IPv4 address written as IPv6; enter it in the IPv4 field")]
    Ipv4Mapped,
}

/// Checks that `address` is a globally reachable unicast address.
pub fn check_public(address: IpAddr) -> Result<(), NotPublic> {
    match address {
        IpAddr::V4(v4) => check_v4(v4),
        IpAddr::V6(v6) => check_v6(v6),
    }
}

fn check_v4(a: Ipv4Addr) -> Result<(), NotPublic> {
    let [first, second, third, _] = a.octets();
    if a.is_loopback() {
        Err(NotPublic::Loopback)
    } else if a.is_private() {
        Err(NotPublic::Private)
    } else if first == 100 && (64..128).contains(&second) {
        Err(NotPublic::SharedCgnat)
    } else if a.is_link_local() {
        Err(NotPublic::LinkLocal)
    } else if a.is_documentation() {
        Err(NotPublic::Documentation)
    } else if a.is_multicast() || a.is_broadcast() {
        Err(NotPublic::Multicast)
    } else if a.is_unspecified()
        || first == 0
        || first >= 240
        || (first == 192 && second == 0 && third == 0)
        || (first == 198 && (second == 18 || second == 19))
    {
        Err(NotPublic::Reserved)
    } else {
        Ok(())
    }
}

fn check_v6(a: Ipv6Addr) -> Result<(), NotPublic> {
    let segments = a.segments();
    if a.to_ipv4_mapped().is_some() {
        Err(NotPublic::Ipv4Mapped)
    } else if a.is_loopback() {
        Err(NotPublic::Loopback)
    } else if a.is_unspecified() {
        Err(NotPublic::Reserved)
    } else if a.is_multicast() {
        Err(NotPublic::Multicast)
    } else if segments[0] & 0xfe00 == 0xfc00 {
        Err(NotPublic::Private)
    } else if segments[0] & 0xffc0 == 0xfe80 {
        Err(NotPublic::LinkLocal)
    } else if segments[0] == 0x2001 && segments[1] == 0x0db8 {
        Err(NotPublic::Documentation)
    } else if segments[0] & 0xe000 != 0x2000 {
        // Only 2000::/3 is handed out as global unicast.
        Err(NotPublic::Reserved)
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str) -> Result<(), NotPublic> {
        check_public(text.parse().unwrap())
    }

    #[test]
    fn public_addresses_pass() {
        for ok in [
            "93.184.216.34",
            "1.1.1.1",
            "2a01:4f8:c012:1234::1",
            "2606:4700::1111",
        ] {
            assert_eq!(check(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn unreachable_addresses_are_explained() {
        let cases = [
            ("10.0.0.5", NotPublic::Private),
            ("172.16.3.4", NotPublic::Private),
            ("192.168.1.20", NotPublic::Private),
            ("127.0.0.1", NotPublic::Loopback),
            ("100.64.12.1", NotPublic::SharedCgnat),
            ("169.254.1.1", NotPublic::LinkLocal),
            ("192.0.2.10", NotPublic::Documentation),
            ("203.0.113.9", NotPublic::Documentation),
            ("224.0.0.1", NotPublic::Multicast),
            ("255.255.255.255", NotPublic::Multicast),
            ("0.0.0.0", NotPublic::Reserved),
            ("240.0.0.1", NotPublic::Reserved),
            ("198.18.0.1", NotPublic::Reserved),
            ("::1", NotPublic::Loopback),
            ("::", NotPublic::Reserved),
            ("fd00::1", NotPublic::Private),
            ("fe80::1", NotPublic::LinkLocal),
            ("2001:db8::1", NotPublic::Documentation),
            ("ff02::1", NotPublic::Multicast),
            ("::ffff:93.184.216.34", NotPublic::Ipv4Mapped),
            ("4000::1", NotPublic::Reserved),
        ];
        for (text, expected) in cases {
            assert_eq!(check(text), Err(expected), "{text}");
            assert!(!expected.to_string().is_empty());
        }
    }
}

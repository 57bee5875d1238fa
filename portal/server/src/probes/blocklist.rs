//! Whether the relay's addresses are on Spamhaus ZEN, asked through a resolver the operator
//! names: Spamhaus refuses public resolvers (it answers 127.255.255.254), so without one the
//! portal says it did not check rather than guess.
//!
//! Return codes (docs.spamhaus.com, "Datasets: zones"): 127.0.0.2–3 SBL (spam sources),
//! 127.0.0.4–7 XBL (exploited hosts), 127.0.0.9 DROP, 127.0.0.10–11 PBL (ranges their owner
//! declares should not send mail directly: the typical home connection); 127.255.255.252,
//! .254 and .255 are errors (bad query, public resolver, rate limit).
//!
//! A listing does not stop relays from reaching each other, only mail to the big providers,
//! so listings are warnings and never block "ready".

use std::net::{IpAddr, SocketAddr};

use chatmail_dns_check::{
    config::QueryMode,
    observations::{Data, Outcome, RType, Rcode},
    resolve::{Flags, Querier},
};
use chatmail_shared::probe_report::{Finding, Severity, WhoActs};

const ZONE: &str = "zen.spamhaus.org";

/// The name to ask for `address`: its reversed octets (IPv4) or nibbles (IPv6) under ZEN.
pub fn query_name(address: IpAddr) -> String {
    match address {
        IpAddr::V4(v4) => {
            let [a, b, c, d] = v4.octets();
            format!("{d}.{c}.{b}.{a}.{ZONE}")
        }
        IpAddr::V6(v6) => {
            let mut labels = Vec::with_capacity(33);
            for byte in v6.octets().iter().rev() {
                labels.push(format!("{:x}", byte & 0x0f));
                labels.push(format!("{:x}", byte >> 4));
            }
            labels.push(ZONE.to_string());
            labels.join(".")
        }
    }
}

/// What one ZEN answer means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listing {
    NotListed,
    SpamSource,
    Exploited,
    Hijacked,
    /// Policy Block List: a range not meant to send mail directly.
    NonMailRange,
    /// Spamhaus did not answer this resolver properly.
    ResolverRefused,
    Unknown,
}

/// Decodes the A records of an answer (none: not listed). The most serious code counts.
pub fn decode(codes: &[std::net::Ipv4Addr]) -> Listing {
    let mut worst = Listing::NotListed;
    let rank = |l: Listing| match l {
        Listing::NotListed => 0,
        Listing::NonMailRange => 1,
        Listing::Unknown => 2,
        Listing::ResolverRefused => 3,
        Listing::Exploited => 4,
        Listing::SpamSource => 5,
        Listing::Hijacked => 6,
    };
    for code in codes {
        let listing = match code.octets() {
            [127, 0, 0, 2..=3] => Listing::SpamSource,
            [127, 0, 0, 4..=7] => Listing::Exploited,
            [127, 0, 0, 9] => Listing::Hijacked,
            [127, 0, 0, 10..=11] => Listing::NonMailRange,
            [127, 255, 255, 252 | 254 | 255] => Listing::ResolverRefused,
            _ => Listing::Unknown,
        };
        if rank(listing) > rank(worst) {
            worst = listing;
        }
    }
    worst
}

/// Asks `resolver` about each address; `None`: no resolver configured.
pub async fn check(
    resolver: Option<SocketAddr>,
    addresses: &[IpAddr],
    timeout: std::time::Duration,
) -> Vec<Finding> {
    let Some(resolver) = resolver else {
        return vec![finding(
            "blocklist-not-checked",
            Severity::Info,
            "The portal did not check blocklists".into(),
            "Spamhaus answers only resolvers of its own users, and this portal has none \
             configured, so it cannot tell whether your relay's address is on a blocklist. \
             Relays reach each other either way; a listing matters only for mail to the big \
             providers."
                .into(),
            "Whoever runs this portal can name a suitable resolver with --blocklist-resolver. \
             You can look your address up yourself at https://check.spamhaus.org/."
                .into(),
            WhoActs::PortalAdmin,
            None,
        )];
    };
    let querier = Querier::new(timeout, 1232, QueryMode::Parallel);
    let mut out = Vec::new();
    for address in addresses {
        let outcome = querier
            .query(resolver, &query_name(*address), RType::A, Flags::RECURSIVE)
            .await;
        let listing = match outcome {
            Outcome::Answer(answer) if answer.rcode == Rcode::NxDomain => Listing::NotListed,
            Outcome::Answer(answer) if answer.rcode == Rcode::NoError => {
                let codes: Vec<_> = answer
                    .answers
                    .iter()
                    .filter_map(|rr| match rr.data {
                        Data::A(v4) => Some(v4),
                        _ => None,
                    })
                    .collect();
                decode(&codes)
            }
            _ => Listing::ResolverRefused,
        };
        if let Some(finding) = explain(*address, listing) {
            out.push(finding);
        }
    }
    out
}

fn explain(address: IpAddr, listing: Listing) -> Option<Finding> {
    let subject = Some(address.to_string());
    let lookup = format!("Look it up at https://check.spamhaus.org/ (address {address}).");
    let (id, severity, title, explanation, fix, who) = match listing {
        Listing::NotListed => return None,
        Listing::SpamSource | Listing::Exploited | Listing::Hijacked => (
            "blocklisted",
            Severity::Warning,
            format!("Your relay's address {address} is on the Spamhaus blocklist"),
            "Big mail providers refuse mail from listed addresses. Relays still reach each \
             other. Listings usually come from whoever used the address before."
                .to_string(),
            format!("{lookup} Ask your hosting provider for another address, or request removal there once the cause is gone."),
            WhoActs::HostingProvider,
        ),
        Listing::NonMailRange => (
            "blocklist-non-mail-range",
            Severity::Info,
            format!("Your relay's address {address} is in a range meant for home connections"),
            "Its owner declared that mail should not be sent directly from it, so big mail \
             providers may refuse your relay's mail. Mail between chatmail relays is not \
             affected."
                .to_string(),
            format!("Nothing to do for chatting between relays. {lookup}"),
            WhoActs::Isp,
        ),
        Listing::ResolverRefused | Listing::Unknown => (
            "blocklist-unknown",
            Severity::Info,
            "The blocklist could not be checked".to_string(),
            "Spamhaus did not give a usable answer to the portal's resolver (it refuses public \
             resolvers and busy ones)."
                .to_string(),
            format!("Whoever runs this portal should check its --blocklist-resolver. {lookup}"),
            WhoActs::PortalAdmin,
        ),
    };
    Some(finding(id, severity, title, explanation, fix, who, subject))
}

fn finding(
    id: &str,
    severity: Severity,
    title: String,
    explanation: String,
    fix: String,
    who_acts: WhoActs,
    subject: Option<String>,
) -> Finding {
    Finding {
        id: id.to_string(),
        severity,
        title,
        explanation,
        expected: None,
        found: None,
        fix,
        who_acts,
        subject,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn names_are_reversed() {
        assert_eq!(
            query_name("192.0.2.99".parse().unwrap()),
            "99.2.0.192.zen.spamhaus.org"
        );
        let v6 = query_name("2001:db8::1".parse().unwrap());
        assert!(v6.starts_with("1.0.0.0.0.0.0.0"), "{v6}");
        assert!(v6.ends_with("8.b.d.0.1.0.0.2.zen.spamhaus.org"), "{v6}");
        assert_eq!(v6.split('.').count(), 32 + 3);
    }

    #[test]
    fn codes_are_decoded_and_the_worst_counts() {
        let ip = |d| Ipv4Addr::new(127, 0, 0, d);
        assert_eq!(decode(&[]), Listing::NotListed);
        assert_eq!(decode(&[ip(2)]), Listing::SpamSource);
        assert_eq!(decode(&[ip(4)]), Listing::Exploited);
        assert_eq!(decode(&[ip(10)]), Listing::NonMailRange);
        assert_eq!(decode(&[ip(10), ip(4)]), Listing::Exploited);
        assert_eq!(
            decode(&[Ipv4Addr::new(127, 255, 255, 254)]),
            Listing::ResolverRefused
        );
        assert_eq!(decode(&[Ipv4Addr::new(10, 0, 0, 1)]), Listing::Unknown);
    }

    #[test]
    fn a_listing_never_blocks_ready() {
        for listing in [
            Listing::SpamSource,
            Listing::Exploited,
            Listing::Hijacked,
            Listing::NonMailRange,
            Listing::ResolverRefused,
        ] {
            let f = explain("192.0.2.1".parse().unwrap(), listing).unwrap();
            assert_ne!(f.severity, Severity::Error, "{listing:?}");
        }
        assert!(explain("192.0.2.1".parse().unwrap(), Listing::NotListed).is_none());
    }
}

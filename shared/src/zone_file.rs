//! Zone-file export (RFC 1035 §5) of a [`DnsPlan`].
//!
//! Operators who manage DNS by hand, or with a provider that imports BIND files, get the
//! plan as text. Two forms:
//!
//! * [`records_text`]: only the relay's records with absolute names, like upstream's
//!   `cmdeploy dns --zonefile` (research/chatmail.md §4), to paste into an existing zone;
//! * [`zone_text`]: a self-contained zone (with `$ORIGIN`, `$TTL`, SOA and NS) that
//!   `named-checkzone` and `kzonecheck` load as is.
//!
//! Every record is preceded by a comment with its reason. Pending records appear only as
//! comments, so the text is always loadable.

use std::fmt::Write as _;

use crate::dns_plan::{DnsPlan, PlannedRecord, PlannedValue, Requirement, DEFAULT_TTL};
use crate::domain::DomainName;
use crate::email::EmailAddress;

/// SOA timers (refresh, retry, expire, negative-caching TTL), in seconds: the values
/// RIPE-203 recommends for small zones, with a one-hour negative TTL.
pub const SOA_TIMERS: [u32; 4] = [86_400, 7_200, 3_600_000, 3_600];

/// What a self-contained zone needs beyond the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneHeader {
    /// The zone apex: the mail domain or a parent of it.
    pub origin: DomainName,
    /// The authoritative name servers; the first is the SOA's primary. They must lie
    /// outside the zone (this export has no glue records).
    pub nameservers: Vec<DomainName>,
    /// The zone administrator's address (SOA RNAME).
    pub hostmaster: EmailAddress,
    /// SOA serial.
    pub serial: u32,
}

/// Why a self-contained zone could not be written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ZoneError {
    /// The origin does not contain the mail domain.
    #[error("the zone origin {origin} does not contain the mail domain {domain}")]
    OriginOutsideZone {
        /// The origin.
        origin: String,
        /// The mail domain.
        domain: String,
    },
    /// No name servers.
    #[error("a zone needs at least one name server")]
    NoNameservers,
    /// A name server inside the zone would need glue records.
    #[error("name server {0} lies inside the zone; use name servers outside it")]
    NameserverInZone(String),
}

/// The relay's records with absolute names, grouped into required and recommended, each
/// with its reason as a comment; pending records as comments.
pub fn records_text(plan: &DnsPlan) -> String {
    let mut out = String::new();
    for (requirement, heading) in [
        (Requirement::Required, "; Required DNS entries"),
        (Requirement::Recommended, "; Recommended DNS entries"),
    ] {
        let mut group = plan
            .records()
            .iter()
            .filter(|r| r.requirement == requirement)
            .peekable();
        if group.peek().is_none() {
            continue;
        }
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(heading);
        out.push('\n');
        for record in group {
            write_record(&mut out, record);
        }
    }
    out
}

fn write_record(out: &mut String, record: &PlannedRecord) {
    let name = format!("{}.", record.name);
    let _ = writeln!(out, "; {}", record.reason);
    match &record.value {
        PlannedValue::Ready(data) => {
            // Column layout as upstream: name, TTL, class, type, data.
            let _ = writeln!(
                out,
                "{:<40} {:<6} IN  {:<5}  {}",
                name,
                record.ttl,
                data.rtype(),
                data.presentation()
            );
        }
        PlannedValue::Pending(pending) => {
            let _ = writeln!(
                out,
                "; PENDING {} {} IN {}: {}",
                name,
                record.ttl,
                record.rtype(),
                pending.explanation()
            );
        }
    }
}

/// A self-contained zone for `header.origin` holding the plan's records.
pub fn zone_text(plan: &DnsPlan, header: &ZoneHeader) -> Result<String, ZoneError> {
    let domain = plan.domain().as_domain_name();
    if !domain.is_within(&header.origin) {
        return Err(ZoneError::OriginOutsideZone {
            origin: header.origin.to_string(),
            domain: domain.to_string(),
        });
    }
    let primary = header.nameservers.first().ok_or(ZoneError::NoNameservers)?;
    if let Some(ns) = header
        .nameservers
        .iter()
        .find(|ns| ns.is_within(&header.origin))
    {
        return Err(ZoneError::NameserverInZone(ns.to_string()));
    }
    let [refresh, retry, expire, minimum] = SOA_TIMERS;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "; Zone for the chatmail relay {}, generated from its DNS plan.",
        plan.domain()
    );
    let _ = writeln!(out, "$ORIGIN {}", header.origin.fqdn());
    let _ = writeln!(out, "$TTL {DEFAULT_TTL}");
    let _ = writeln!(
        out,
        "@ {DEFAULT_TTL} IN SOA {} {} {} {refresh} {retry} {expire} {minimum}",
        primary.fqdn(),
        rname(&header.hostmaster),
        header.serial
    );
    for ns in &header.nameservers {
        let _ = writeln!(out, "@ {DEFAULT_TTL} IN NS {}", ns.fqdn());
    }
    out.push('\n');
    out.push_str(&records_text(plan));
    Ok(out)
}

/// SOA RNAME: the address with `@` as a label separator and dots in the local part
/// escaped (RFC 1035 §8). [`EmailAddress`] only allows `[A-Za-z0-9._+-]` there.
fn rname(addr: &EmailAddress) -> String {
    format!(
        "{}.{}",
        addr.local_part().replace('.', "\\."),
        addr.domain().fqdn()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rname_escapes_dots() {
        let a = EmailAddress::parse("host.master@example.net").unwrap();
        assert_eq!(rname(&a), "host\\.master.example.net.");
    }
}

//! Where mail for a domain goes, as upstream's transport decides it (research/chatmail.md
//! §1.3, "Transport mode"): an IP literal is its own destination; otherwise the MX hosts
//! by preference, the domain itself when it has no MX, a permanent failure for a null MX
//! or a domain that does not exist, a temporary one for other DNS errors. TLS is verified
//! unless the destination is an IP literal or a name starting with `_`; `nauta.cu` gets
//! SMTP without TLS.

use std::net::IpAddr;

use chatmail_appliance::mail_rules::Reply;
use hickory_resolver::proto::rr::RData;
use hickory_resolver::TokioResolver;

/// How certificates of a destination are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsPolicy {
    /// A valid chain for the host name.
    Verify,
    /// Any certificate (IP literals, `_` names).
    AcceptInvalid,
    /// No TLS at all (`nauta.cu`).
    Plain,
}

/// The TLS policy of a recipient domain.
pub fn tls_policy(domain: &str) -> TlsPolicy {
    if domain.starts_with('[') || domain.starts_with('_') {
        TlsPolicy::AcceptInvalid
    } else if domain.eq_ignore_ascii_case("nauta.cu") {
        TlsPolicy::Plain
    } else {
        TlsPolicy::Verify
    }
}

/// One host to try: its name (for TLS and HTTP `Host`) and where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    pub name: String,
    /// `Some` for an IP literal (no lookup needed).
    pub ip: Option<IpAddr>,
}

/// The IP inside `[a.b.c.d]` (or `[IPv6:…]`).
pub fn ip_literal(domain: &str) -> Option<IpAddr> {
    let inner = domain.strip_prefix('[')?.strip_suffix(']')?;
    let inner = inner
        .strip_prefix("IPv6:")
        .or_else(|| inner.strip_prefix("ipv6:"))
        .unwrap_or(inner);
    inner.parse().ok()
}

/// The hosts for `domain`, best first, or the reply for all its recipients.
pub async fn hosts(resolver: &TokioResolver, domain: &str) -> Result<Vec<Host>, Reply> {
    if let Some(ip) = ip_literal(domain) {
        return Ok(vec![Host {
            name: ip.to_string(),
            ip: Some(ip),
        }]);
    }
    let fqdn = format!("{}.", domain.trim_end_matches('.'));
    match resolver.mx_lookup(fqdn.as_str()).await {
        Ok(lookup) => {
            let mut mx: Vec<(u16, String)> = lookup
                .answers()
                .iter()
                .filter_map(|r| match &r.data {
                    RData::MX(mx) => Some((
                        mx.preference,
                        mx.exchange
                            .to_ascii()
                            .trim_end_matches('.')
                            .to_ascii_lowercase(),
                    )),
                    _ => None,
                })
                .collect();
            if mx.iter().any(|(_, host)| host.is_empty()) {
                return Err(Reply::new(
                    556,
                    "556 5.1.10 Permanent failure: Recipient address has null MX".into(),
                ));
            }
            if mx.is_empty() {
                return Ok(vec![implicit(domain)]);
            }
            mx.sort_by_key(|(pref, _)| *pref);
            Ok(mx
                .into_iter()
                .map(|(_, name)| Host { name, ip: None })
                .collect())
        }
        Err(e) if e.is_nx_domain() => Err(Reply::new(
            512,
            format!("512 Domain {domain} does not exist"),
        )),
        Err(e) if e.is_no_records_found() => Ok(vec![implicit(domain)]),
        Err(e) => {
            tracing::info!(domain, "MX lookup failed: {e}");
            Err(Reply::new(
                421,
                format!("421 DNS resolution failed for {domain}"),
            ))
        }
    }
}

fn implicit(domain: &str) -> Host {
    Host {
        name: domain.trim_end_matches('.').to_ascii_lowercase(),
        ip: None,
    }
}

/// The addresses of `host`, IPv4 first (upstream prefers IPv4).
pub async fn addresses(resolver: &TokioResolver, host: &Host) -> Result<Vec<IpAddr>, String> {
    if let Some(ip) = host.ip {
        return Ok(vec![ip]);
    }
    let fqdn = format!("{}.", host.name);
    let lookup = resolver
        .lookup_ip(fqdn.as_str())
        .await
        .map_err(|e| format!("cannot resolve {}: {e}", host.name))?;
    let mut ips: Vec<IpAddr> = lookup.iter().collect();
    ips.sort_by_key(|ip| !ip.is_ipv4());
    if ips.is_empty() {
        return Err(format!("{} has no address", host.name));
    }
    Ok(ips)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies() {
        assert_eq!(tls_policy("chat.example"), TlsPolicy::Verify);
        assert_eq!(tls_policy("_relay.test"), TlsPolicy::AcceptInvalid);
        assert_eq!(tls_policy("[1.2.3.4]"), TlsPolicy::AcceptInvalid);
        assert_eq!(tls_policy("Nauta.CU"), TlsPolicy::Plain);
    }

    #[test]
    fn literals() {
        assert_eq!(
            ip_literal("[127.0.0.1]"),
            Some(IpAddr::from([127, 0, 0, 1]))
        );
        assert_eq!(ip_literal("[IPv6:::1]"), Some("::1".parse().unwrap()));
        assert_eq!(ip_literal("example.org"), None);
        assert_eq!(ip_literal("[bogus]"), None);
    }
}

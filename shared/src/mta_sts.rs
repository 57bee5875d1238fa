//! The MTA-STS policy (RFC 8461) the device serves, and the id the DNS plan announces.
//!
//! Other mail servers only deliver to the relay over verified TLS once they have seen this
//! policy, so its text and the `_mta-sts` TXT record's id must agree. Both are made here from
//! the mail domain alone. Upstream's policy text is in research/chatmail.md §5.

use std::fmt;

use crate::domain::MailDomain;

/// Where the policy is served, on host `mta-sts.<domain>` (research/chatmail.md §5).
pub const POLICY_PATH: &str = "/.well-known/mta-sts.txt";

/// `max_age` of the policy in seconds (28 days), as upstream.
pub const MAX_AGE_SECONDS: u32 = 2_419_200;

/// The policy file for `domain`: mode `enforce`, the domain itself as the only MX
/// (research/chatmail.md §5). Lines end in LF, as upstream's file; RFC 8461 §3.2 allows
/// LF or CRLF.
pub fn policy_text(domain: &MailDomain) -> String {
    format!(
        "version: STSv1\nmode: enforce\nmx: {}\nmax_age: {}\n",
        domain.as_str(),
        MAX_AGE_SECONDS
    )
}

/// The policy id for the `_mta-sts` TXT record: 1 to 32 letters and digits (RFC 8461 §3.1).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PolicyId(String);

impl PolicyId {
    /// The id for the policy of `domain`.
    ///
    /// Upstream uses the time the record was first generated (`%Y%m%d%H%M`, research/
    /// chatmail.md §4) and keeps it while the record exists. This crate has no clock (it
    /// also runs in the browser), so the id is derived from the policy text instead
    /// (16 hex digits of its 64-bit FNV-1a hash): it stays the same as long as the policy
    /// does and changes when the policy changes, which is what RFC 8461 asks of it.
    pub fn for_domain(domain: &MailDomain) -> Self {
        const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
        const PRIME: u64 = 0x0000_0100_0000_01b3;
        let hash = policy_text(domain)
            .bytes()
            .fold(OFFSET, |h, b| (h ^ u64::from(b)).wrapping_mul(PRIME));
        PolicyId(format!("{hash:016x}"))
    }

    /// The id text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The `_mta-sts` TXT value, in upstream's form: `v=STSv1; id=<id>`.
    pub fn txt_value(&self) -> String {
        format!("v=STSv1; id={}", self.0)
    }
}

impl fmt::Display for PolicyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_matches_upstream() {
        let d = MailDomain::parse("chat.example.org").unwrap();
        assert_eq!(
            policy_text(&d),
            "version: STSv1\nmode: enforce\nmx: chat.example.org\nmax_age: 2419200\n"
        );
    }

    #[test]
    fn id_is_stable_and_valid() {
        let d = MailDomain::parse("chat.example.org").unwrap();
        let e = MailDomain::parse("other.example.org").unwrap();
        let id = PolicyId::for_domain(&d);
        assert_eq!(id, PolicyId::for_domain(&d));
        assert_ne!(id, PolicyId::for_domain(&e));
        assert_eq!(id.as_str().len(), 16);
        assert!(id.as_str().bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_eq!(id.txt_value(), format!("v=STSv1; id={id}"));
    }
}

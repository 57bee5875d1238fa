//! Contact e-mail addresses that an operator types into the portal.
//!
//! They end up in a DNS TXT record (`mailto:` in TLSRPT), on web pages and in the ACME
//! account, so only a conservative, unambiguous subset of RFC 5321 is accepted: no quoting,
//! no comments, nothing that needs escaping in a URI or a zone file.

use std::fmt;

use crate::domain::{DomainError, DomainName};

/// Longest local part (RFC 5321 §4.5.3.1.1).
pub const MAX_LOCAL_PART_LEN: usize = 64;

/// Why a string is not an acceptable contact address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmailError {
    /// No `@`.
    #[error("must look like name@example.org")]
    NoAt,
    /// Empty, too long, or with characters outside the accepted set.
    #[error(
        "the part before `@` must be 1 to 64 characters from a-z, A-Z, 0-9 and `.`, `_`, `+`, `-`, not starting or ending with a dot and without two dots in a row"
    )]
    LocalPart,
    /// The part after `@` is not a valid domain name.
    #[error("the part after `@` {0}")]
    Domain(DomainError),
}

/// A validated e-mail address `local@domain`; the domain is stored in its ASCII form.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EmailAddress {
    local: String,
    domain: DomainName,
}

impl EmailAddress {
    /// Validates `input` (surrounding whitespace is not trimmed).
    pub fn parse(input: &str) -> Result<Self, EmailError> {
        let (local, domain) = input.rsplit_once('@').ok_or(EmailError::NoAt)?;
        let local_ok = !local.is_empty()
            && local.len() <= MAX_LOCAL_PART_LEN
            && !local.starts_with('.')
            && !local.ends_with('.')
            && !local.contains("..")
            && local
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'+' | b'-'));
        if !local_ok {
            return Err(EmailError::LocalPart);
        }
        let domain = DomainName::parse(domain).map_err(EmailError::Domain)?;
        Ok(EmailAddress {
            local: local.to_string(),
            domain,
        })
    }

    /// The part before `@`.
    pub fn local_part(&self) -> &str {
        &self.local
    }

    /// The part after `@`.
    pub fn domain(&self) -> &DomainName {
        &self.domain
    }

    /// The address with an international domain shown in Unicode, for people to read.
    pub fn to_unicode(&self) -> String {
        format!("{}@{}", self.local, self.domain.to_unicode())
    }
}

impl fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.local, self.domain)
    }
}

impl std::str::FromStr for EmailAddress {
    type Err = EmailError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_and_normalizes() {
        let a = EmailAddress::parse("Privacy.Team+relay@Bücher.Example").unwrap();
        assert_eq!(a.to_string(), "Privacy.Team+relay@xn--bcher-kva.example");
        assert_eq!(a.to_unicode(), "Privacy.Team+relay@bücher.example");
    }

    #[test]
    fn rejects() {
        for bad in [
            "",
            "no-at",
            "@example.org",
            "a@",
            ".a@example.org",
            "a.@example.org",
            "a..b@example.org",
            "a b@example.org",
            "\"q\"@example.org",
            "a<script>@example.org",
            "a;b@example.org",
            "a,b@example.org",
            "a%b@example.org",
            "a@[1.2.3.4]",
            "a@localhost",
            "a@exa_mple.org",
        ] {
            assert!(EmailAddress::parse(bad).is_err(), "{bad:?}");
        }
        let long = format!("{}@example.org", "a".repeat(65));
        assert_eq!(EmailAddress::parse(&long), Err(EmailError::LocalPart));
    }
}

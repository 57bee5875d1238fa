//! What can go wrong when the portal talks to a DNS provider, said so that a person who is
//! not a DNS expert knows what to do, plus what the job runner needs to decide whether and
//! when to try again.
//!
//! Every provider maps its own failures (HTTP statuses, DNS response codes, TSIG errors,
//! connection errors) onto [`ProviderError`]; nothing above the providers sees protocol
//! details. Messages never contain credentials.

use std::time::Duration;

/// A failure talking to a DNS provider.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    /// The API key, token or TSIG key was not accepted (or an OAuth connection expired or
    /// was revoked). `advice` says what to do at this provider, e.g. "Reconnect Cloudflare".
    #[error("{}", advice.as_deref().unwrap_or(WRONG_CREDENTIALS))]
    WrongCredentials {
        /// What to do, in the provider's words; `None` gives the generic text.
        advice: Option<String>,
    },
    /// The provider does not serve a zone for this domain (or the credential cannot see it).
    #[error(
        "The DNS provider does not manage {domain} for this account. Check that the domain is \
         spelled correctly and that its DNS is hosted there."
    )]
    ZoneNotFound {
        /// The domain or zone asked for.
        domain: String,
    },
    /// The credential is valid but may not do this. `advice` names the permission to grant
    /// at this provider, e.g. "give it the permission Zone → DNS → Edit".
    #[error("{}", advice.as_deref().unwrap_or(PERMISSION_DENIED))]
    PermissionDenied {
        /// What to do, in the provider's words; `None` gives the generic text.
        advice: Option<String>,
    },
    /// Too many requests; the provider asked to wait.
    #[error("The DNS provider asked us to slow down. The portal will try again {}.", wait_text(*retry_after))]
    RateLimited {
        /// How long the provider asked to wait, if it said.
        retry_after: Option<Duration>,
    },
    /// The provider could not be reached or did not answer (network, timeout, server down).
    #[error(
        "The DNS provider could not be reached ({0}). The portal will try again in a little \
         while and finish what is left."
    )]
    Unreachable(String),
    /// The provider refused the data itself.
    #[error("The DNS provider refused the change: {0}")]
    Rejected(String),
    /// Anything else.
    #[error("Something unexpected went wrong talking to the DNS provider: {0}")]
    Other(String),
}

/// The generic text of [`ProviderError::WrongCredentials`].
pub const WRONG_CREDENTIALS: &str = "The DNS provider did not accept the key. Check that you \
     copied the whole API key or TSIG key (name, algorithm and secret) and that it has not been \
     revoked.";

/// The generic text of [`ProviderError::PermissionDenied`].
pub const PERMISSION_DENIED: &str = "The key is valid, but it is not allowed to change the DNS \
     records of this domain. Give it permission to edit the zone, or create a new key that has it.";

fn wait_text(retry_after: Option<Duration>) -> String {
    match retry_after {
        Some(d) if d.as_secs() >= 120 => format!("in about {} minutes", d.as_secs() / 60),
        Some(d) => format!("in {} seconds", d.as_secs().max(1)),
        None => "in a little while".to_string(),
    }
}

impl ProviderError {
    /// [`ProviderError::WrongCredentials`] with the generic text.
    pub const fn wrong_credentials() -> Self {
        ProviderError::WrongCredentials { advice: None }
    }

    /// [`ProviderError::PermissionDenied`] with the generic text.
    pub const fn permission_denied() -> Self {
        ProviderError::PermissionDenied { advice: None }
    }

    /// Whether the person must do something about the credentials (enter a new key, grant
    /// a permission, reconnect): the portal shows the message beside the connection.
    pub fn needs_person(&self) -> bool {
        matches!(
            self,
            ProviderError::WrongCredentials { .. } | ProviderError::PermissionDenied { .. }
        )
    }

    /// Whether trying the same thing again later can succeed without the person doing
    /// anything (rate limits and unreachable servers).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            ProviderError::RateLimited { .. } | ProviderError::Unreachable(_)
        )
    }

    /// How long the provider asked to wait, if it did.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ProviderError::RateLimited { retry_after } => *retry_after,
            _ => None,
        }
    }

    /// When to try again after the `attempt`-th failure in a row (1 for the first), or
    /// `None` if retrying is pointless. Honours the provider's Retry-After; otherwise
    /// doubles from 5 seconds up to 15 minutes.
    pub fn retry_delay(&self, attempt: u32) -> Option<Duration> {
        if !self.is_retryable() {
            return None;
        }
        let backoff = backoff(attempt);
        Some(match self.retry_after() {
            Some(asked) => asked.max(Duration::from_secs(1)).min(MAX_RETRY_AFTER),
            None => backoff,
        })
    }
}

/// The longest Retry-After the portal honours; a provider asking for more is retried
/// after this long anyway (the job stays visible as waiting).
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(6 * 3600);

/// Exponential back-off: 5 s, 10 s, 20 s, … capped at 15 minutes.
pub fn backoff(attempt: u32) -> Duration {
    let exp = attempt.saturating_sub(1).min(16);
    Duration::from_secs(5u64.saturating_mul(1 << exp)).min(Duration::from_secs(15 * 60))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_policy() {
        assert!(ProviderError::Unreachable("x".into()).is_retryable());
        assert!(ProviderError::RateLimited { retry_after: None }.is_retryable());
        for e in [
            ProviderError::wrong_credentials(),
            ProviderError::permission_denied(),
            ProviderError::ZoneNotFound {
                domain: "a.b".into(),
            },
            ProviderError::Rejected("x".into()),
            ProviderError::Other("x".into()),
        ] {
            assert!(!e.is_retryable(), "{e:?}");
            assert_eq!(e.retry_delay(1), None);
        }
        let limited = ProviderError::RateLimited {
            retry_after: Some(Duration::from_secs(42)),
        };
        assert_eq!(limited.retry_after(), Some(Duration::from_secs(42)));
        assert_eq!(limited.retry_delay(7), Some(Duration::from_secs(42)));
        assert_eq!(backoff(1), Duration::from_secs(5));
        assert_eq!(backoff(2), Duration::from_secs(10));
        assert_eq!(backoff(100), Duration::from_secs(900));
        assert_eq!(
            ProviderError::Unreachable("x".into()).retry_delay(3),
            Some(Duration::from_secs(20))
        );
    }

    #[test]
    fn messages_are_plain() {
        let e = ProviderError::RateLimited {
            retry_after: Some(Duration::from_secs(30)),
        };
        assert!(e.to_string().contains("in 30 seconds"), "{e}");
        let e = ProviderError::ZoneNotFound {
            domain: "example.org".into(),
        };
        assert!(e.to_string().contains("example.org"));
        assert_eq!(
            ProviderError::wrong_credentials().to_string(),
            WRONG_CREDENTIALS
        );
        let e = ProviderError::PermissionDenied {
            advice: Some("Give the token the permission Zone → DNS → Edit.".into()),
        };
        assert!(e.to_string().contains("Zone → DNS → Edit"), "{e}");
        assert!(e.needs_person());
    }
}

//! Provider credentials (API keys, tokens, TSIG secrets, OAuth tokens) encrypted at rest.
//!
//! The portal stores a connection's [`Credentials`] only as the string [`Keyring::seal`]
//! returns: `v1:<key id>:<base64(nonce ‖ ciphertext)>`, XChaCha20-Poly1305 with a random
//! 24-byte nonce. The associated data binds the blob to the key id and to a context the
//! caller chooses (use the connection's database id), so a blob copied to another row
//! does not open. Credentials never leave the server: they are not logged (`Debug` hides
//! secrets), not serialised into pages, and their secret strings are wiped from memory
//! when dropped.
//!
//! # Keys and rotation
//!
//! The keyring comes from the portal's configuration as
//! `"<id>:<base64 32-byte key>,<id>:<base64 key>,…"`; the **first** key is current and
//! seals, every listed key opens. Make a key with `openssl rand -base64 32` (or
//! `head -c 32 /dev/urandom | base64`). To rotate:
//!
//! 1. put a new key **first** in the list, keeping the old one after it, and restart the
//!    portal: new and re-saved credentials use the new key, old blobs still open;
//! 2. re-seal the old blobs: [`Keyring::needs_rotation`] tells which, [`Keyring::reseal`]
//!    re-encrypts one (do it on use, or for all rows with a maintenance command);
//! 3. when no blob names the old key any more, remove it from the list.
//!
//! A lost key makes the blobs sealed with it unreadable; the groups then enter their
//! credentials again.

use std::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, Zeroizing};

use crate::cloudflare::Cloudflare;
use crate::desec::Desec;
use crate::digitalocean::DigitalOcean;
use crate::error::ProviderError;
use crate::gandi::Gandi;
use crate::hetzner::Hetzner;
use crate::linode::Linode;
use crate::namecheap::Namecheap;
use crate::oauth::{OAuthProvider, TokenSet};
use crate::ovh::{Endpoint as OvhEndpoint, Ovh};
use crate::porkbun::Porkbun;
use crate::powerdns::PowerDns;
use crate::provider::DnsProvider;
use crate::rfc2136::{Rfc2136, TsigAlgorithm, TsigKey};

/// What the portal needs to write to one provider.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Credentials {
    /// The PowerDNS HTTP API.
    #[serde(rename = "powerdns")]
    PowerDns {
        /// Base URL, e.g. `https://dns.example.net:8081`.
        url: String,
        /// The `X-API-Key`.
        api_key: String,
        /// Server id, normally `localhost`.
        server_id: String,
    },
    /// RFC 2136 updates signed with TSIG.
    Rfc2136 {
        /// The primary server, `ip:port`.
        server: String,
        /// The zone.
        zone: String,
        /// TSIG key name.
        key_name: String,
        /// TSIG algorithm.
        algorithm: TsigAlgorithm,
        /// TSIG secret, base64.
        secret: String,
    },
    /// A Cloudflare API token (My Profile → API Tokens).
    Cloudflare {
        /// The token.
        api_token: String,
    },
    /// A DigitalOcean personal access token (when signing in is not configured).
    #[serde(rename = "digitalocean")]
    DigitalOcean {
        /// The token (`dop_v1_…`).
        token: String,
    },
    /// A Linode personal access token (when signing in is not configured).
    Linode {
        /// The token.
        token: String,
    },
    /// A Hetzner Cloud project API token.
    Hetzner {
        /// The token.
        api_token: String,
    },
    /// A Porkbun API key pair.
    Porkbun {
        /// The API key (`pk1_…`).
        api_key: String,
        /// The secret API key (`sk1_…`).
        secret_api_key: String,
    },
    /// A deSEC token.
    Desec {
        /// The token.
        token: String,
    },
    /// A Gandi personal access token.
    Gandi {
        /// The token.
        token: String,
    },
    /// Namecheap API access.
    Namecheap {
        /// The API user (normally the account's user name).
        api_user: String,
        /// The API key.
        api_key: String,
        /// The account's user name (empty: the API user).
        #[serde(default)]
        username: String,
        /// The portal's address on the account's API allow-list.
        client_ip: String,
    },
    /// OVHcloud: an application key and secret and the consumer key the person approved.
    Ovh {
        /// The API region.
        endpoint: OvhEndpoint,
        /// The application key.
        application_key: String,
        /// The application secret.
        application_secret: String,
        /// The approved consumer key.
        consumer_key: String,
    },
    /// Tokens from signing in with the provider (OAuth).
    #[serde(rename = "oauth")]
    OAuth(TokenSet),
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::PowerDns { url, server_id, .. } => f
                .debug_struct("PowerDns")
                .field("url", url)
                .field("api_key", &"<hidden>")
                .field("server_id", server_id)
                .finish(),
            Credentials::Rfc2136 {
                server,
                zone,
                key_name,
                algorithm,
                ..
            } => f
                .debug_struct("Rfc2136")
                .field("server", server)
                .field("zone", zone)
                .field("key_name", key_name)
                .field("algorithm", algorithm)
                .field("secret", &"<hidden>")
                .finish(),
            Credentials::Namecheap {
                api_user,
                username,
                client_ip,
                ..
            } => f
                .debug_struct("Namecheap")
                .field("api_user", api_user)
                .field("api_key", &"<hidden>")
                .field("username", username)
                .field("client_ip", client_ip)
                .finish(),
            Credentials::Ovh {
                endpoint,
                application_key,
                ..
            } => f
                .debug_struct("Ovh")
                .field("endpoint", endpoint)
                .field("application_key", application_key)
                .field("application_secret", &"<hidden>")
                .field("consumer_key", &"<hidden>")
                .finish(),
            Credentials::OAuth(tokens) => f.debug_tuple("OAuth").field(tokens).finish(),
            other => f
                .debug_struct(other.kind())
                .field("secret", &"<hidden>")
                .finish(),
        }
    }
}

impl Drop for Credentials {
    fn drop(&mut self) {
        match self {
            Credentials::PowerDns { api_key, .. } => api_key.zeroize(),
            Credentials::Rfc2136 { secret, .. } => secret.zeroize(),
            Credentials::Cloudflare { api_token } | Credentials::Hetzner { api_token } => {
                api_token.zeroize()
            }
            Credentials::DigitalOcean { token }
            | Credentials::Linode { token }
            | Credentials::Desec { token }
            | Credentials::Gandi { token } => token.zeroize(),
            Credentials::Porkbun {
                api_key,
                secret_api_key,
            } => {
                api_key.zeroize();
                secret_api_key.zeroize();
            }
            Credentials::Namecheap { api_key, .. } => api_key.zeroize(),
            Credentials::Ovh {
                application_secret,
                consumer_key,
                ..
            } => {
                application_secret.zeroize();
                consumer_key.zeroize();
            }
            // TokenSet wipes itself.
            Credentials::OAuth(_) => {}
        }
    }
}

impl Credentials {
    /// The kind, as in the serialised `kind` tag: `powerdns`, `rfc2136`, `cloudflare`,
    /// `digitalocean`, `linode`, `hetzner`, `porkbun`, `desec`, `gandi`, `namecheap`,
    /// `ovh`, `oauth`.
    pub fn kind(&self) -> &'static str {
        match self {
            Credentials::PowerDns { .. } => "powerdns",
            Credentials::Rfc2136 { .. } => "rfc2136",
            Credentials::Cloudflare { .. } => "cloudflare",
            Credentials::DigitalOcean { .. } => "digitalocean",
            Credentials::Linode { .. } => "linode",
            Credentials::Hetzner { .. } => "hetzner",
            Credentials::Porkbun { .. } => "porkbun",
            Credentials::Desec { .. } => "desec",
            Credentials::Gandi { .. } => "gandi",
            Credentials::Namecheap { .. } => "namecheap",
            Credentials::Ovh { .. } => "ovh",
            Credentials::OAuth(_) => "oauth",
        }
    }

    /// The provider's id as in [`crate::detect`] (`cloudflare`, …; `powerdns` and
    /// `rfc2136` for the self-hosted kinds); for OAuth tokens, the provider signed in with.
    pub fn provider_id(&self) -> &'static str {
        match self {
            Credentials::OAuth(t) => t.provider.id(),
            other => other.kind(),
        }
    }

    /// The same provider as [`Credentials::provider`], talking to `base_url` instead of
    /// the provider's real API (tests and mock servers; the self-hosted kinds ignore it).
    pub fn provider_at(&self, base_url: &str) -> Result<Box<dyn DnsProvider>, ProviderError> {
        Ok(match self {
            Credentials::Cloudflare { api_token } => {
                Box::new(Cloudflare::with_api_token(api_token)?.with_base_url(base_url))
            }
            Credentials::DigitalOcean { token } => {
                Box::new(DigitalOcean::with_token(token)?.with_base_url(base_url))
            }
            Credentials::Linode { token } => {
                Box::new(Linode::with_token(token)?.with_base_url(base_url))
            }
            Credentials::Hetzner { api_token } => {
                Box::new(Hetzner::new(api_token)?.with_base_url(base_url))
            }
            Credentials::Porkbun {
                api_key,
                secret_api_key,
            } => Box::new(Porkbun::new(api_key, secret_api_key)?.with_base_url(base_url)),
            Credentials::Desec { token } => Box::new(Desec::new(token)?.with_base_url(base_url)),
            Credentials::Gandi { token } => Box::new(Gandi::new(token)?.with_base_url(base_url)),
            Credentials::Namecheap {
                api_user,
                api_key,
                username,
                client_ip,
            } => Box::new(
                Namecheap::new(api_user, api_key, username, client_ip)?.with_base_url(base_url),
            ),
            Credentials::Ovh {
                endpoint,
                application_key,
                application_secret,
                consumer_key,
            } => Box::new(
                Ovh::new(*endpoint, application_key, application_secret, consumer_key)?
                    .with_base_url(base_url),
            ),
            Credentials::OAuth(t) => match t.provider {
                OAuthProvider::Cloudflare => {
                    Box::new(Cloudflare::with_oauth_token(&t.access_token)?.with_base_url(base_url))
                }
                OAuthProvider::DigitalOcean => Box::new(
                    DigitalOcean::with_oauth_token(&t.access_token)?.with_base_url(base_url),
                ),
                OAuthProvider::Linode => {
                    Box::new(Linode::with_oauth_token(&t.access_token)?.with_base_url(base_url))
                }
            },
            Credentials::PowerDns { .. } | Credentials::Rfc2136 { .. } => self.provider()?,
        })
    }

    /// A provider using these credentials. OAuth tokens are used as they are: refresh
    /// them first ([`crate::oauth::OAuthClient::fresh`]).
    pub fn provider(&self) -> Result<Box<dyn DnsProvider>, ProviderError> {
        match self {
            Credentials::Cloudflare { api_token } => {
                Ok(Box::new(Cloudflare::with_api_token(api_token)?))
            }
            Credentials::DigitalOcean { token } => Ok(Box::new(DigitalOcean::with_token(token)?)),
            Credentials::Linode { token } => Ok(Box::new(Linode::with_token(token)?)),
            Credentials::Hetzner { api_token } => Ok(Box::new(Hetzner::new(api_token)?)),
            Credentials::Porkbun {
                api_key,
                secret_api_key,
            } => Ok(Box::new(Porkbun::new(api_key, secret_api_key)?)),
            Credentials::Desec { token } => Ok(Box::new(Desec::new(token)?)),
            Credentials::Gandi { token } => Ok(Box::new(Gandi::new(token)?)),
            Credentials::Namecheap {
                api_user,
                api_key,
                username,
                client_ip,
            } => Ok(Box::new(Namecheap::new(
                api_user, api_key, username, client_ip,
            )?)),
            Credentials::Ovh {
                endpoint,
                application_key,
                application_secret,
                consumer_key,
            } => Ok(Box::new(Ovh::new(
                *endpoint,
                application_key,
                application_secret,
                consumer_key,
            )?)),
            Credentials::OAuth(t) => Ok(match t.provider {
                OAuthProvider::Cloudflare => {
                    Box::new(Cloudflare::with_oauth_token(&t.access_token)?)
                }
                OAuthProvider::DigitalOcean => {
                    Box::new(DigitalOcean::with_oauth_token(&t.access_token)?)
                }
                OAuthProvider::Linode => Box::new(Linode::with_oauth_token(&t.access_token)?),
            }),
            Credentials::PowerDns {
                url,
                api_key,
                server_id,
            } => Ok(Box::new(PowerDns::new(url, api_key, server_id)?)),
            Credentials::Rfc2136 {
                server,
                zone,
                key_name,
                algorithm,
                secret,
            } => {
                let addr = server.parse().map_err(|_| {
                    ProviderError::Other(format!(
                        "the DNS server address {server} is not an IP address with a port, \
                         e.g. 192.0.2.1:53"
                    ))
                })?;
                Ok(Box::new(Rfc2136::new(
                    addr,
                    zone,
                    TsigKey::new(key_name, *algorithm, secret),
                )?))
            }
        }
    }
}

/// Why a keyring or a sealed blob could not be used. Never contains key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    /// The keyring configuration is malformed.
    #[error("the credential keyring configuration is invalid: {0}")]
    BadKeyring(String),
    /// The sealed text is not in the `v1:<id>:<data>` form.
    #[error("the stored credentials are damaged")]
    Malformed,
    /// The blob names a key the keyring does not have.
    #[error(
        "the stored credentials were encrypted with the key `{0}`, which is no longer configured"
    )]
    UnknownKey(String),
    /// Decryption failed: wrong key material, wrong context, or tampered data.
    #[error("the stored credentials could not be decrypted (wrong key or damaged data)")]
    Decrypt,
    /// Encryption or encoding failed.
    #[error("the credentials could not be encrypted")]
    Seal,
}

struct Key {
    id: String,
    cipher: XChaCha20Poly1305,
}

/// The portal's credential keys; the first seals, all open.
pub struct Keyring {
    keys: Vec<Key>,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field(
                "key_ids",
                &self.keys.iter().map(|k| &k.id).collect::<Vec<_>>(),
            )
            .finish()
    }
}

const VERSION: &str = "v1";
const NONCE_LEN: usize = 24;

impl Keyring {
    /// Parses `"<id>:<base64 key>,…"` (ids of letters, digits, `-` and `_`; keys of 32
    /// bytes; whitespace around entries ignored).
    pub fn parse(config: &str) -> Result<Self, CredentialError> {
        let mut keys: Vec<Key> = Vec::new();
        for entry in config.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (id, b64) = entry.split_once(':').ok_or_else(|| {
                CredentialError::BadKeyring("each entry must be <id>:<base64 key>".into())
            })?;
            let id = id.trim();
            if id.is_empty()
                || !id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err(CredentialError::BadKeyring(format!(
                    "key id `{id}` may only use letters, digits, - and _"
                )));
            }
            if keys.iter().any(|k| k.id == id) {
                return Err(CredentialError::BadKeyring(format!(
                    "key id `{id}` appears twice"
                )));
            }
            let raw = Zeroizing::new(STANDARD.decode(b64.trim()).map_err(|_| {
                CredentialError::BadKeyring(format!("key `{id}` is not valid base64"))
            })?);
            if raw.len() != 32 {
                return Err(CredentialError::BadKeyring(format!(
                    "key `{id}` has {} bytes; it must have 32",
                    raw.len()
                )));
            }
            let cipher = XChaCha20Poly1305::new_from_slice(&raw)
                .map_err(|_| CredentialError::BadKeyring(format!("key `{id}` is unusable")))?;
            keys.push(Key {
                id: id.to_string(),
                cipher,
            });
        }
        if keys.is_empty() {
            return Err(CredentialError::BadKeyring("no key configured".into()));
        }
        Ok(Keyring { keys })
    }

    /// The id of the key that seals.
    pub fn current_id(&self) -> &str {
        &self.keys[0].id
    }

    fn aad(key_id: &str, context: &str) -> Vec<u8> {
        format!("chatmail-dns-credentials/{VERSION}\0{key_id}\0{context}").into_bytes()
    }

    /// Encrypts `credentials` with the current key, bound to `context` (e.g. the
    /// connection's id).
    pub fn seal(
        &self,
        credentials: &Credentials,
        context: &str,
    ) -> Result<String, CredentialError> {
        self.seal_value(credentials, context)
    }

    /// Encrypts any serialisable secret the same way as [`Keyring::seal`] (a pending
    /// OAuth sign-in, Domain Connect tokens), bound to `context`. Use a context that says
    /// what it is (e.g. `oauth-pending:<session id>`), so one kind of blob never opens as
    /// another.
    pub fn seal_value<T: Serialize>(
        &self,
        value: &T,
        context: &str,
    ) -> Result<String, CredentialError> {
        let key = &self.keys[0];
        let plain = Zeroizing::new(serde_json::to_vec(value).map_err(|_| CredentialError::Seal)?);
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let aad = Self::aad(&key.id, context);
        let sealed = key
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: &plain,
                    aad: &aad,
                },
            )
            .map_err(|_| CredentialError::Seal)?;
        let mut blob = Vec::with_capacity(NONCE_LEN + sealed.len());
        blob.extend_from_slice(&nonce);
        blob.extend_from_slice(&sealed);
        Ok(format!("{VERSION}:{}:{}", key.id, STANDARD.encode(blob)))
    }

    fn split(sealed: &str) -> Result<(&str, Vec<u8>), CredentialError> {
        let mut parts = sealed.trim().splitn(3, ':');
        let (Some(VERSION), Some(id), Some(data)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(CredentialError::Malformed);
        };
        let blob = STANDARD
            .decode(data)
            .map_err(|_| CredentialError::Malformed)?;
        if blob.len() <= NONCE_LEN {
            return Err(CredentialError::Malformed);
        }
        Ok((id, blob))
    }

    /// Decrypts a blob made by [`Keyring::seal`] with the same `context`.
    pub fn open(&self, sealed: &str, context: &str) -> Result<Credentials, CredentialError> {
        self.open_value(sealed, context)
    }

    /// Decrypts a blob made by [`Keyring::seal_value`] with the same `context`.
    pub fn open_value<T: serde::de::DeserializeOwned>(
        &self,
        sealed: &str,
        context: &str,
    ) -> Result<T, CredentialError> {
        let (id, blob) = Self::split(sealed)?;
        let key = self
            .keys
            .iter()
            .find(|k| k.id == id)
            .ok_or_else(|| CredentialError::UnknownKey(id.to_string()))?;
        let (nonce, ciphertext) = blob.split_at(NONCE_LEN);
        let aad = Self::aad(id, context);
        let plain = Zeroizing::new(
            key.cipher
                .decrypt(
                    XNonce::from_slice(nonce),
                    Payload {
                        msg: ciphertext,
                        aad: &aad,
                    },
                )
                .map_err(|_| CredentialError::Decrypt)?,
        );
        serde_json::from_slice(&plain).map_err(|_| CredentialError::Malformed)
    }

    /// Whether the blob was sealed with another key than the current one (or is not a
    /// blob this keyring understands), so it should be re-sealed.
    pub fn needs_rotation(&self, sealed: &str) -> bool {
        match Self::split(sealed) {
            Ok((id, _)) => id != self.current_id(),
            Err(_) => true,
        }
    }

    /// The blob re-sealed with the current key, or `None` if it already uses it.
    pub fn reseal(&self, sealed: &str, context: &str) -> Result<Option<String>, CredentialError> {
        if !self.needs_rotation(sealed) {
            return Ok(None);
        }
        let credentials = self.open(sealed, context)?;
        self.seal(&credentials, context).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const K1: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    const K2: &str = "HxwdHhscGRgXFhUUExIREA8ODQwLCgkIBwYFBAMCAQA=";

    fn pdns() -> Credentials {
        Credentials::PowerDns {
            url: "https://dns.example.net:8081".into(),
            api_key: "very-secret-key".into(),
            server_id: "localhost".into(),
        }
    }

    fn tsig() -> Credentials {
        Credentials::Rfc2136 {
            server: "192.0.2.53:53".into(),
            zone: "example.org".into(),
            key_name: "portal".into(),
            algorithm: TsigAlgorithm::HmacSha256,
            secret: "c2VjcmV0LXRzaWctc2VjcmV0".into(),
        }
    }

    #[test]
    fn seal_and_open() {
        let ring = Keyring::parse(&format!("k1:{K1}")).unwrap();
        for creds in [pdns(), tsig()] {
            let sealed = ring.seal(&creds, "connection-7").unwrap();
            assert!(sealed.starts_with("v1:k1:"), "{sealed}");
            assert!(!sealed.contains("secret"));
            assert_eq!(ring.open(&sealed, "connection-7").unwrap(), creds);
            // Bound to its context.
            assert_eq!(
                ring.open(&sealed, "connection-8"),
                Err(CredentialError::Decrypt)
            );
            // Random nonce: two seals differ.
            assert_ne!(sealed, ring.seal(&creds, "connection-7").unwrap());
        }
    }

    #[test]
    fn tampering_is_detected() {
        let ring = Keyring::parse(&format!("k1:{K1}")).unwrap();
        let sealed = ring.seal(&pdns(), "c").unwrap();
        let (head, data) = sealed.rsplit_once(':').unwrap();
        let mut blob = STANDARD.decode(data).unwrap();
        let last = blob.len() - 1;
        blob[last] ^= 1;
        let bad = format!("{head}:{}", STANDARD.encode(blob));
        assert_eq!(ring.open(&bad, "c"), Err(CredentialError::Decrypt));
        // Claiming another key id changes the associated data too.
        let ring2 = Keyring::parse(&format!("k1:{K1},k2:{K1}")).unwrap();
        let relabelled = sealed.replacen("v1:k1:", "v1:k2:", 1);
        assert_eq!(ring2.open(&relabelled, "c"), Err(CredentialError::Decrypt));
        for junk in ["", "v1:k1", "v2:k1:AAAA", "v1:k1:!!", "v1:k1:AAAA"] {
            assert_eq!(
                ring.open(junk, "c"),
                Err(CredentialError::Malformed),
                "{junk}"
            );
        }
    }

    #[test]
    fn rotation() {
        let old = Keyring::parse(&format!("k1:{K1}")).unwrap();
        let sealed = old.seal(&tsig(), "c").unwrap();
        let both = Keyring::parse(&format!(" k2:{K2} , k1:{K1} ")).unwrap();
        assert_eq!(both.current_id(), "k2");
        assert!(both.needs_rotation(&sealed));
        assert_eq!(both.open(&sealed, "c").unwrap(), tsig());
        let resealed = both.reseal(&sealed, "c").unwrap().unwrap();
        assert!(resealed.starts_with("v1:k2:"));
        assert!(!both.needs_rotation(&resealed));
        assert_eq!(both.reseal(&resealed, "c").unwrap(), None);
        let new_only = Keyring::parse(&format!("k2:{K2}")).unwrap();
        assert_eq!(new_only.open(&resealed, "c").unwrap(), tsig());
        assert_eq!(
            new_only.open(&sealed, "c"),
            Err(CredentialError::UnknownKey("k1".into()))
        );
    }

    #[test]
    fn bad_keyrings() {
        for bad in [
            "",
            "k1",
            &format!("k1:{K1},k1:{K2}"),
            "k1:AAAA",
            "k 1:AAAA",
            "k1:not base64!",
        ] {
            assert!(Keyring::parse(bad).is_err(), "{bad}");
        }
        let e = Keyring::parse("k1:AAAA").unwrap_err().to_string();
        assert!(e.contains("32"), "{e}");
    }

    #[test]
    fn debug_never_shows_secrets() {
        let ring = Keyring::parse(&format!("k1:{K1}")).unwrap();
        assert!(!format!("{ring:?}").contains(K1));
        for creds in [pdns(), tsig()] {
            let shown = format!("{creds:?}");
            assert!(!shown.contains("very-secret-key"), "{shown}");
            assert!(!shown.contains("c2VjcmV0"), "{shown}");
            assert!(shown.contains("<hidden>"));
        }
    }

    #[test]
    fn credentials_build_providers() {
        assert!(pdns().provider().is_ok());
        assert!(tsig().provider().is_ok());
        let bad = Credentials::Rfc2136 {
            server: "dns.example.org".into(),
            zone: "example.org".into(),
            key_name: "portal".into(),
            algorithm: TsigAlgorithm::HmacSha256,
            secret: "c2VjcmV0".into(),
        };
        assert!(bad.provider().is_err());
        let json = serde_json::to_string(&tsig()).unwrap();
        assert!(json.contains("\"kind\":\"rfc2136\""), "{json}");
        assert!(json.contains("\"algorithm\":\"hmac-sha256\""), "{json}");
    }
}

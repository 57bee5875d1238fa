//! The portal's settings, from command-line flags or the environment.

use std::{net::SocketAddr, path::PathBuf};

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Clone, Debug, Parser)]
#[command(
    name = "chatmail-portal",
    version,
    about = "The web portal that sets up chatmail relays for groups of friends"
)]
pub struct Config {
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Address and port to listen on.
    #[arg(long, env = "LISTEN_ADDR", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// The URL people use to reach this portal (used in links and redirects).
    /// Defaults to http://<listen address>.
    #[arg(long, env = "PUBLIC_BASE_URL")]
    pub base_url: Option<String>,

    /// PostgreSQL connection URL. Without it the portal runs its own private PostgreSQL
    /// inside the data directory.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true, global = true)]
    pub database_url: Option<String>,

    /// Where the portal keeps its files (the private database among them).
    /// Defaults to $XDG_DATA_HOME/chatmail-portal, or /var/lib/chatmail-portal for root.
    #[arg(long, env = "PORTAL_DATA_DIR", global = true)]
    pub data_dir: Option<PathBuf>,

    /// Directory with the built browser bundle and stylesheet (`manifest.json`, `pkg/`).
    /// Defaults to `site` next to the executable, then the workspace's `target/site`.
    #[arg(long, env = "PORTAL_SITE_ROOT")]
    pub site_root: Option<PathBuf>,

    /// The portal runs behind a reverse proxy: take the client's address from the last
    /// hop of X-Forwarded-For (for rate limits and the audit log).
    #[arg(long, env = "PORTAL_BEHIND_PROXY")]
    pub behind_proxy: bool,

    /// DNS resolver (address:port) for name-server lookups, instead of the system's.
    #[arg(long, env = "PORTAL_DNS_RESOLVER")]
    pub dns_resolver: Option<std::net::SocketAddr>,

    /// Port on which the DNS checker asks authoritative name servers (53 on the Internet;
    /// another port only for test set-ups).
    #[arg(long, env = "PORTAL_DNS_NAMESERVER_PORT", default_value_t = 53)]
    pub dns_nameserver_port: u16,

    /// Probe relays' devices from this portal (ports, certificate, status). Turn off only
    /// where the portal cannot or must not connect out to relays (closed test networks).
    #[arg(long, env = "PORTAL_DEVICE_PROBES", default_value_t = true, action = clap::ArgAction::Set)]
    pub device_probes: bool,

    /// A DNS resolver (address:port) that Spamhaus answers, for the blocklist check of
    /// relays' addresses (Spamhaus refuses public resolvers). Without it the check is skipped
    /// and the status page says so.
    #[arg(long, env = "PORTAL_BLOCKLIST_RESOLVER")]
    pub blocklist_resolver: Option<std::net::SocketAddr>,

    /// The ACME directory every relay's image names instead of Let's Encrypt's (e.g. its
    /// staging directory, or a test CA); relays then ask it for their certificates.
    #[arg(long, env = "PORTAL_RELAY_ACME_DIRECTORY", value_parser = parse_https_url, requires = "relay_acme_caa_issuer")]
    pub relay_acme_directory: Option<chatmail_shared::web_url::HttpsUrl>,

    /// That CA's CAA domain (its directory's `meta.caaIdentities`, e.g. `letsencrypt.org`
    /// for Let's Encrypt's staging directory), which each relay's CAA record then names.
    #[arg(long, env = "PORTAL_RELAY_ACME_CAA_ISSUER", value_parser = parse_caa_issuer, requires = "relay_acme_directory")]
    pub relay_acme_caa_issuer: Option<chatmail_shared::DomainName>,

    /// Extra trust anchors (PEM file) for probing relays' HTTPS, besides the system's (a test
    /// CA such as Pebble's; never needed on the Internet).
    #[arg(long, env = "PORTAL_PROBE_CA_FILE")]
    pub probe_ca_file: Option<PathBuf>,

    /// Where the probes really reach each relay port, "25=2525,443=8443" (only for test
    /// networks that forward ports; empty on the Internet).
    #[arg(long, env = "PORTAL_PROBE_PORT_MAP", default_value = "", value_parser = parse_port_map)]
    pub probe_port_map: PortMap,

    /// Seconds between the periodic re-checks of every relay (DNS and device).
    #[arg(long, env = "PORTAL_RECHECK_INTERVAL_SECS", default_value_t = 900,
          value_parser = clap::value_parser!(u64).range(10..=86_400))]
    pub recheck_interval_secs: u64,

    /// Keys that seal DNS provider credentials: "<id>:<base64 32-byte key>,…", the first
    /// one current. Without it, a key file in the data directory is made and used.
    #[arg(long, env = "PORTAL_SECRET_KEYS", hide_env_values = true)]
    pub secret_keys: Option<String>,

    /// Directory with the base images (`chatmail-<target>.img` and `.json`, made by
    /// appliance/scripts/build-images.sh); the portal keeps its compressed-chunk caches and
    /// personalized images below it (`cache/`, `personalized/`), so it must be writable.
    /// Without it the download step says that no images are offered.
    #[arg(long, env = "PORTAL_IMAGES_DIR")]
    pub images_dir: Option<PathBuf>,

    /// The release public key (minisign, the base64 line) offered to relays that opt in to
    /// update checks. Defaults to `release-key/release.pub` in the data directory when that
    /// exists (made by `release-key`); without either, relays are not offered update checks.
    #[arg(long, env = "PORTAL_RELEASE_PUBLIC_KEY")]
    pub release_public_key: Option<String>,

    /// Where published update releases keep their pieces (`pieces/<sha256>`). Defaults to
    /// `releases` in the data directory. Every portal process must see the same directory.
    #[arg(long, env = "PORTAL_RELEASES_DIR", global = true)]
    pub releases_dir: Option<PathBuf>,

    /// Image downloads that may run at the same time (in all; two per group).
    #[arg(long, env = "PORTAL_MAX_DOWNLOADS", default_value_t = 8)]
    pub max_downloads: usize,

    /// Cloud DNS providers: sign-in clients, Namecheap's allow-listed address, addresses.
    #[command(flatten)]
    pub dns_providers: crate::dns_providers::ProviderFlags,

    /// Log format.
    #[arg(long, env = "PORTAL_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

#[derive(Clone, Debug, Subcommand)]
pub enum Command {
    /// Serve the portal (the default).
    Serve,
    /// Make an account a community operator, creating it if needed. A new account gets a
    /// random password, printed once (or PORTAL_OPERATOR_PASSWORD if set).
    CreateOperator {
        /// The operator's e-mail address.
        #[arg(long)]
        email: String,
    },
    /// Make the release signing key pair for update checks (minisign). The secret key goes
    /// to a file readable only by you (never into the database); the public key is printed.
    /// With PORTAL_RELEASE_KEY_PASSWORD set, the secret key is encrypted with it.
    ReleaseKey {
        /// Directory for `release.key` and `release.pub` [default: <data dir>/release-key].
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Publish a base image (from appliance/scripts/build-images.sh) as the current release
    /// of a channel for its target, signed with the release key.
    PublishRelease {
        /// `stable` or `testing`.
        #[arg(long)]
        channel: String,
        /// `amd64` or `rpi`.
        #[arg(long)]
        target: String,
        /// Directory with `chatmail-<target>.img` and its `.json` [default: --images-dir].
        #[arg(long)]
        from: Option<PathBuf>,
        /// The secret key file [default: <data dir>/release-key/release.key].
        #[arg(long)]
        key: Option<PathBuf>,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

impl Config {
    pub fn base_url(&self) -> String {
        match &self.base_url {
            Some(url) => url.trim_end_matches('/').to_string(),
            // 0.0.0.0 or [::] listen everywhere but cannot be opened; name this machine instead.
            None if self.listen.ip().is_unspecified() => {
                format!("http://localhost:{}", self.listen.port())
            }
            None => format!("http://{}", self.listen),
        }
    }

    pub fn data_dir(&self) -> PathBuf {
        if let Some(dir) = &self.data_dir {
            return dir.clone();
        }
        if nix::unistd::geteuid().is_root() {
            return PathBuf::from("/var/lib/chatmail-portal");
        }
        let base = std::env::var_os("XDG_DATA_HOME")
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
            .or_else(|| {
                std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".local/share"))
            })
            .unwrap_or_else(|| PathBuf::from("."));
        base.join("chatmail-portal")
    }

    pub fn releases_dir(&self) -> PathBuf {
        self.releases_dir
            .clone()
            .unwrap_or_else(|| self.data_dir().join("releases"))
    }

    pub fn site_root(&self) -> PathBuf {
        if let Some(dir) = &self.site_root {
            return dir.clone();
        }
        // An installed portal keeps `site/` beside its binary; a build leaves it in the
        // target directory, one level above `release/` or `debug/`.
        let exe_dir = std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().map(PathBuf::from));
        let candidates = exe_dir
            .iter()
            .flat_map(|dir| [dir.join("site"), dir.join("../site")])
            .chain([PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../target/site"
            ))]);
        let mut last = PathBuf::new();
        for dir in candidates {
            if dir.join("manifest.json").exists() {
                return dir;
            }
            last = dir;
        }
        last
    }
}

/// Relay ports mapped to the ports where a test network forwards them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PortMap(pub std::collections::HashMap<u16, u16>);

/// Parses "25=2525,443=8443" (empty: no mapping).
fn parse_port_map(text: &str) -> Result<PortMap, String> {
    let mut map = std::collections::HashMap::new();
    for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (from, to) = pair
            .split_once('=')
            .ok_or_else(|| format!("\"{pair}\" is not PORT=PORT"))?;
        let port = |p: &str| {
            p.trim()
                .parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| format!("\"{p}\" is not a port number (1-65535)"))
        };
        if map.insert(port(from)?, port(to)?).is_some() {
            return Err(format!("port {from} is mapped twice"));
        }
    }
    Ok(PortMap(map))
}

fn parse_https_url(text: &str) -> Result<chatmail_shared::web_url::HttpsUrl, String> {
    chatmail_shared::web_url::HttpsUrl::parse(text).map_err(|e| e.to_string())
}

fn parse_caa_issuer(text: &str) -> Result<chatmail_shared::DomainName, String> {
    chatmail_shared::DomainName::parse(text).map_err(|e| format!("not a CAA issuer domain: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_maps() {
        assert_eq!(parse_port_map("").unwrap(), PortMap::default());
        let map = parse_port_map("25=2525, 443=8443").unwrap();
        assert_eq!(map.0[&25], 2525);
        assert_eq!(map.0[&443], 8443);
        for bad in [
            "25",
            "25=",
            "x=1",
            "25=70000",
            "0=1",
            "25=1,25=2",
            "25=2525=1",
        ] {
            let err = parse_port_map(bad).unwrap_err();
            assert!(!err.is_empty(), "{bad}");
        }
    }

    #[test]
    fn another_ca_comes_with_its_caa_domain() {
        let directory = ["--relay-acme-directory", "https://ca.example/dir"];
        let issuer = ["--relay-acme-caa-issuer", "ca.example"];
        let parse = |args: &[&str]| Config::try_parse_from(["chatmail-portal"].iter().chain(args));
        // Either alone would publish a CAA record the relays' CA refuses.
        let err = parse(&directory).unwrap_err().to_string();
        assert!(err.contains("--relay-acme-caa-issuer"), "{err}");
        let err = parse(&issuer).unwrap_err().to_string();
        assert!(err.contains("--relay-acme-directory"), "{err}");
        let err = parse(&[&directory[..], &["--relay-acme-caa-issuer", "not a domain"]].concat())
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a CAA issuer domain"), "{err}");
        let both = parse(&[&directory[..], &issuer[..]].concat()).unwrap();
        assert_eq!(both.relay_acme_caa_issuer.unwrap().as_str(), "ca.example");
    }
}

//! `chatmail-appliance`: the relay device's daemons, in one binary.
//!
//! `run` loads the relay configuration, makes the device's own secrets on first boot (DKIM
//! key, ACME account key, a placeholder certificate), then starts every component under
//! [`supervisor::supervise`]: the auth service Maddy asks, Maddy itself, the web server on
//! port 80 and behind the port-443 multiplexer, the certificate manager and the metrics
//! listener. Each restarts on failure without taking the others down; SIGTERM or SIGINT
//! stops them all cleanly (exit status 0, which gokrazy takes as "do not restart").
//! `check-config` checks a configuration file the way `run` reads it.

mod acme;
mod auth;
mod delivery;
mod dkim;
mod expiry;
mod federation;
mod first_boot;
mod grow_perm;
mod health;
mod imap_front;
mod maddy;
mod metrics;
mod milter;
mod paths;
mod push;
mod release;
mod smtp;
mod supervisor;
mod sysload;
mod tls;
mod update_check;
mod web;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};
use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;

use chatmail_shared::RelayConfig;
use paths::Paths;

#[derive(Parser)]
#[command(
    name = "chatmail-appliance",
    version,
    about = "The chatmail relay device's daemons"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Checks a relay configuration file the way the device reads it at boot.
    CheckConfig {
        /// The relay.toml to check.
        path: PathBuf,
    },
    /// Runs every daemon of the relay until SIGTERM or SIGINT.
    Run(Box<RunArgs>),
    /// Removes old and large messages, trims full mailboxes and removes inactive accounts
    /// once, printing what goes and why (the relay does it daily itself). Run it while
    /// the relay is stopped.
    Expire(expiry::cli::ExpireArgs),
    /// Device tokens for push notifications, while the relay is stopped.
    #[command(hide = true, subcommand)]
    PushToken(push::cli::PushTokenCommand),
}

#[derive(clap::Args, Debug)]
struct RunArgs {
    /// The relay configuration [default: <perm-dir>/chatmail/relay.toml].
    #[arg(long, env = "CHATMAIL_CONFIG")]
    config: Option<PathBuf>,
    /// The persistent directory (gokrazy's writable partition).
    #[arg(long, env = "CHATMAIL_PERM_DIR", default_value = "/perm")]
    perm_dir: PathBuf,
    /// The volatile directory (a tmpfs).
    #[arg(long, env = "CHATMAIL_RUN_DIR", default_value = "/run")]
    run_dir: PathBuf,
    /// The Maddy executable.
    #[arg(
        long,
        env = "CHATMAIL_MADDY_BIN",
        default_value = "/usr/local/bin/maddy"
    )]
    maddy: PathBuf,
    /// Address of the public listeners.
    #[arg(long, env = "CHATMAIL_BIND", default_value = "0.0.0.0")]
    bind: IpAddr,
    /// HTTP port (ACME challenges, redirects to HTTPS).
    #[arg(long, default_value_t = 80)]
    http_port: u16,
    /// HTTPS port: the multiplexer that sends ALPN `imap` to IMAPS, `smtp` to submission
    /// and everything else to the web server.
    #[arg(long, default_value_t = 443)]
    https_port: u16,
    /// The web server's own HTTPS port (pages, /new, well-known files), on 127.0.0.1 only,
    /// reached through the multiplexer on --https-port.
    #[arg(long, default_value_t = 8443)]
    web_https_port: u16,
    /// Seconds a client on --https-port may take to send its whole TLS ClientHello.
    #[arg(long, default_value_t = 10, hide = true)]
    https_preread_timeout_secs: u64,
    /// Inbound SMTP port (Maddy).
    #[arg(long, default_value_t = 25)]
    smtp_port: u16,
    /// Submission port with implicit TLS (Maddy).
    #[arg(long, default_value_t = 465)]
    submissions_port: u16,
    /// Submission port with STARTTLS (Maddy).
    #[arg(long, default_value_t = 587)]
    submission_port: u16,
    /// IMAP port with implicit TLS (the IMAP front, or Maddy with --imap-front=false); 0
    /// turns it off.
    #[arg(long, default_value_t = 993)]
    imaps_port: u16,
    /// A plaintext IMAP listener of Maddy on 127.0.0.1, for a front that terminates TLS
    /// (with --imap-front: the one it proxies to) [default with --imap-front: 10143].
    #[arg(long)]
    imap_loopback_port: Option<u16>,
    /// Serve IMAP through our front (993 with TLS, 143 with STARTTLS, and METADATA,
    /// QUOTA, ID, COMPRESS) proxying to Maddy on loopback; `--imap-front=false`: Maddy
    /// serves 993 itself, without those extensions.
    #[arg(
        long,
        default_value_t = true,
        num_args = 0..=1,
        default_missing_value = "true",
        action = clap::ArgAction::Set
    )]
    imap_front: bool,
    /// Seconds the IMAP front waits for a command before login.
    #[arg(long, default_value_t = 60, hide = true)]
    imap_preauth_timeout_secs: u64,
    /// IMAP port with STARTTLS, served by the IMAP front only; 0 turns it off.
    #[arg(long, default_value_t = 143)]
    imap_port: u16,
    /// Where the OpenMetrics endpoint (/metrics) listens.
    #[arg(
        long,
        env = "CHATMAIL_METRICS_LISTEN",
        default_value = "127.0.0.1:9750"
    )]
    metrics_listen: SocketAddr,
    /// Where Maddy's own OpenMetrics endpoint listens (off unless given).
    #[arg(long)]
    maddy_metrics_listen: Option<SocketAddr>,
    /// Do not request certificates; serve the placeholder only.
    #[arg(long)]
    no_acme: bool,
    /// Also trust this root certificate (PEM) for the ACME directory. For test CAs only.
    #[arg(long, env = "CHATMAIL_ACME_EXTRA_ROOT")]
    acme_extra_root: Option<PathBuf>,
    /// Refuse new accounts above this 1-minute load average (upstream: 5).
    #[arg(long, default_value_t = 5.0)]
    max_load_1m: f64,
    /// Refuse new accounts below this much available memory, in MiB (upstream: 200).
    #[arg(long, default_value_t = 200)]
    min_available_memory_mb: u64,
    /// Refuse new accounts below this much free disk space, in MiB (upstream: 1024).
    #[arg(long, default_value_t = 1024)]
    min_free_disk_mb: u64,
    /// The DNS server for MX lookups and DKIM keys (default: the system's resolvers).
    #[arg(long, env = "CHATMAIL_DNS_SERVER")]
    dns_server: Option<SocketAddr>,
    /// The HTTPS port of other relays (`/mxdeliv`). Tests only; relays listen on 443.
    #[arg(long, default_value_t = 443)]
    federation_https_port: u16,
    /// The SMTP port of other relays. Tests only; relays listen on 25.
    #[arg(long, default_value_t = 25)]
    federation_smtp_port: u16,
    /// Also trust this root certificate (PEM) for other relays. For test CAs only.
    #[arg(long, env = "CHATMAIL_FEDERATION_EXTRA_ROOT")]
    federation_extra_root: Option<PathBuf>,
    /// Neither accept `/mxdeliv` nor deliver over HTTPS (SMTP only).
    #[arg(long)]
    no_https_federation: bool,
    /// Where push notifications go: each device token is POSTed here (https://, or
    /// http:// to a loopback address).
    #[arg(long, env = "CHATMAIL_PUSH_URL", default_value = push::post::DEFAULT_URL)]
    push_url: String,
    /// Also print start-up problems and first-boot events on this console device (the
    /// gokrazy launcher passes /dev/console).
    #[arg(long, env = "CHATMAIL_CONSOLE")]
    console: Option<PathBuf>,
    /// Running on gokrazy: grow /perm to fill the disk, and make the device's gokrazy
    /// password and machine id on first boot.
    #[arg(long)]
    gokrazy: bool,
    /// gokrazy's local update API, used to install updates: `unix:<path>` (its socket,
    /// served even before the device has a gokrazy password) or `http://<host:port>`.
    #[arg(
        long,
        env = "CHATMAIL_GOKRAZY_UPDATE_API",
        default_value = "unix:/run/gokrazy-http.sock"
    )]
    gokrazy_update_api: String,
    /// The gokrazy password file [default: <perm-dir>/gokr-pw.txt, then /etc/gokr-pw.txt].
    #[arg(long)]
    gokrazy_password_file: Option<PathBuf>,
    /// The release version of the booted image (written by the image packer); without it
    /// the binary's own version is reported.
    #[arg(long, default_value = release::RELEASE_FILE)]
    release_file: PathBuf,
    /// Also trust this root certificate (PEM) for the update portal. For test CAs only.
    #[arg(long, env = "CHATMAIL_UPDATE_EXTRA_ROOT")]
    update_extra_root: Option<PathBuf>,
    /// Seconds from start to the first update check, before jitter (tests shorten it).
    #[arg(long, default_value_t = 600, hide = true)]
    update_check_first_secs: u64,
    /// Seconds between update checks, before jitter.
    #[arg(long, default_value_t = 86_400, hide = true)]
    update_check_interval_secs: u64,
    /// Seconds before retrying a check that could not reach the portal, before jitter.
    #[arg(long, default_value_t = 3_600, hide = true)]
    update_check_retry_secs: u64,
    /// Largest random delay added to each wait, in seconds.
    #[arg(long, default_value_t = 3_600, hide = true)]
    update_check_jitter_secs: u64,
    /// Seconds a new version has to report healthy before the device goes back.
    #[arg(long, default_value_t = 600, hide = true)]
    update_health_window_secs: u64,
    /// Seconds from start to the first expiry run, before jitter.
    #[arg(long, default_value_t = 3_600, hide = true)]
    expiry_first_secs: u64,
    /// Seconds between expiry runs, before jitter.
    #[arg(long, default_value_t = 86_400, hide = true)]
    expiry_interval_secs: u64,
    /// Largest random delay added to each wait for an expiry run, in seconds.
    #[arg(long, default_value_t = 3_600, hide = true)]
    expiry_jitter_secs: u64,
    /// Judge ages in the expiry as if the clock were this many seconds ahead. Tests only.
    #[arg(long, default_value_t = 0, hide = true)]
    expiry_clock_offset_secs: u64,
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    match cli.command {
        Command::CheckConfig { path } => check_config(&path),
        Command::PushToken(command) => push::cli::run(command),
        Command::Expire(args) => expiry::cli::run(args),
        Command::Run(args) => {
            init_logging();
            raise_open_file_limit();
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("error: cannot start the async runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            // A relay that stops says why on the device's console too (gokrazy keeps a
            // service's own output only in its web interface).
            let console = first_boot::Console::new(args.console.clone());
            let panic_console = console.clone();
            let default_hook = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                panic_console.say(&format!("panic: {info}"));
                default_hook(info);
            }));
            match runtime.block_on(run(*args)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!("{e:#}");
                    console.say(&format!("STOPPED: {e:#}"));
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn check_config(path: &std::path::Path) -> ExitCode {
    let path_text = path.display();
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(err) => {
            eprintln!("error: cannot read {path_text}: {err}");
            return ExitCode::FAILURE;
        }
    };
    match RelayConfig::from_toml(&text) {
        Ok(config) => {
            println!(
                "{path_text}: valid configuration for {}",
                config.mail_domain.as_str()
            );
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("error: {path_text}: {err}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
}

/// Every client holds sockets here (the port-443 multiplexer and the IMAP front take two per
/// connection, Maddy's side one more), and the soft limit a service inherits is often
/// 1024: a few hundred connected devices. The soft limit goes up to the hard one, as Go
/// programs (Maddy) do for themselves.
fn raise_open_file_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            Ok(()) => tracing::debug!("open files: at most {hard} (was {soft})"),
            Err(e) => tracing::warn!("open files stay at most {soft}: {e}"),
        },
        Ok(_) => {}
        Err(e) => tracing::warn!("reading the open-file limit: {e}"),
    }
}

async fn run(args: RunArgs) -> anyhow::Result<()> {
    // Absolute, because Maddy runs in its own working directory.
    let paths = Paths::new(
        std::path::absolute(&args.perm_dir)?,
        std::path::absolute(&args.run_dir)?,
    );
    let config_path = args
        .config
        .clone()
        .unwrap_or_else(|| paths.default_config_file());
    // The configuration from /perm; while it is missing or invalid, say so (console and
    // status URL) and wait for it (first_boot.rs).
    let console = first_boot::Console::new(args.console.clone());
    if args.gokrazy {
        gokrazy_first_boot(&paths, &console);
    }
    let config = {
        let stop = CancellationToken::new();
        let watcher = {
            let stop = stop.clone();
            tokio::spawn(async move {
                let _ = wait_for_signal().await;
                stop.cancel();
            })
        };
        let listeners = first_boot::Listeners {
            bind: args.bind,
            http_port: args.http_port,
            https_port: args.https_port,
        };
        let found =
            first_boot::wait_for_config(&config_path, &paths, &listeners, &console, stop).await;
        watcher.abort();
        match found? {
            Some(config) => Arc::new(config),
            None => return Ok(()),
        }
    };
    let domain = config.mail_domain.as_str().to_string();
    let running = release::running(&args.release_file);
    console.say(&format!("relay {domain}: starting (release {running})"));
    tracing::info!(domain, version = %running, "starting");
    paths.create_dirs()?;

    // First boot: the device's own secrets and a certificate to start with.
    let dkim_key = {
        let path = paths.dkim_key();
        tokio::task::spawn_blocking(move || dkim::ensure_key(&path)).await??
    };
    acme::ensure_account_key(&paths)?;
    tls::ensure_usable(&paths, &domain)?;
    let resolver = tls::CertResolver::new(tls::load_certified_key(
        &paths.tls_cert(),
        &paths.tls_key(),
    )?);

    let metrics = metrics::Metrics::new();
    let health = health::Health::default();
    let store = {
        let path = paths.accounts_db();
        tokio::task::spawn_blocking(move || auth::store::AccountStore::open(&path)).await??
    };
    let accounts = auth::Accounts::new(
        &config,
        store,
        paths.nocreate_file(),
        paths.state_dir(),
        sysload::ResourceLimits {
            max_load_1m: args.max_load_1m,
            min_available_memory_mb: args.min_available_memory_mb,
            min_free_disk_mb: args.min_free_disk_mb,
        },
        metrics.clone(),
    );
    let challenges = acme::Challenges::default();
    let cert_changed = Arc::new(Notify::new());
    let (auth_ready_tx, auth_ready_rx) = watch::channel(false);
    let auth_ready_tx = Arc::new(auth_ready_tx);

    let shutdown = CancellationToken::new();
    let mut tasks = tokio::task::JoinSet::new();

    // The auth service first: Maddy needs it while starting.
    {
        let socket = paths.auth_socket();
        let accounts = accounts.clone();
        let ready = auth_ready_tx.clone();
        tasks.spawn(supervisor::supervise(
            "auth",
            metrics.clone(),
            shutdown.clone(),
            move |token| {
                let socket = socket.clone();
                let accounts = accounts.clone();
                let ready = ready.clone();
                async move {
                    let result = auth::server::serve(&socket, accounts, &ready, token).await;
                    let _ = ready.send(false);
                    result
                }
            },
        ));
    }

    // Maddy.
    {
        let listeners = maddy::config::Listeners {
            bind: args.bind,
            smtp: args.smtp_port,
            submissions: args.submissions_port,
            submission: args.submission_port,
            // With the front, Maddy's IMAP is plaintext on loopback only.
            imaps: (args.imaps_port != 0 && !args.imap_front).then_some(args.imaps_port),
            imap_loopback: imap_upstream_port(&args),
            openmetrics: args.maddy_metrics_listen,
        };
        let config_text = maddy::config::render(&config, &paths, &listeners);
        let binary = args.maddy.clone();
        let paths = paths.clone();
        let metrics_c = metrics.clone();
        let reload = cert_changed.clone();
        let health = health.clone();
        tasks.spawn(supervisor::supervise(
            "maddy",
            metrics.clone(),
            shutdown.clone(),
            move |token| {
                maddy::process::MaddySupervisor {
                    binary: binary.clone(),
                    paths: paths.clone(),
                    config_text: config_text.clone(),
                    auth_ready: auth_ready_rx.clone(),
                    metrics: metrics_c.clone(),
                    reload: reload.clone(),
                    health: health.clone(),
                }
                .run(token)
            },
        ));
    }

    // Chatmail's mail rules (Appliance III): the milters, the local-delivery hop with the
    // push hook, and the transport to other relays.
    let push_store = {
        let path = paths.push_db();
        let clock = Arc::new(push::SystemClock);
        tokio::task::spawn_blocking(move || push::open(&path, clock)).await??
    };
    let push_tokens = push_store.0.clone();
    if args.imap_front {
        let front = imap_front_shared(
            &args,
            &config,
            &paths,
            &resolver,
            &accounts,
            &push_store.0,
            &metrics,
        );
        let implicit = (args.imaps_port != 0).then(|| SocketAddr::new(args.bind, args.imaps_port));
        let starttls = (args.imap_port != 0).then(|| SocketAddr::new(args.bind, args.imap_port));
        tasks.spawn(supervisor::supervise(
            "imap-front",
            metrics.clone(),
            shutdown.clone(),
            move |token| imap_front::serve(front.clone(), implicit, starttls, token),
        ));
    }
    let mail = mail_components(&args, &config, &paths, &metrics, push_store)?;
    for (name, socket, direction) in [
        (
            "milter-out",
            paths.milter_outgoing_socket(),
            milter::session::Direction::Outgoing,
        ),
        (
            "milter-in",
            paths.milter_incoming_socket(),
            milter::session::Direction::Incoming,
        ),
    ] {
        let policy = Arc::new(milter::session::Policy {
            direction,
            limits: mail.limits,
            outgoing: mail.outgoing.clone(),
            dkim: mail.dkim.clone(),
            metrics: metrics.clone(),
        });
        tasks.spawn(supervisor::supervise(
            name,
            metrics.clone(),
            shutdown.clone(),
            move |token| {
                let socket = socket.clone();
                let policy = policy.clone();
                async move { milter::serve(&socket, policy, token).await }
            },
        ));
    }
    {
        let socket = paths.local_delivery_socket();
        let local = mail.local.clone();
        let max = mail.limits.max_message_size;
        tasks.spawn(supervisor::supervise(
            "local-delivery",
            metrics.clone(),
            shutdown.clone(),
            move |token| delivery::local::serve(socket.clone(), max, local.clone(), token),
        ));
    }
    {
        let notifier = mail.push.clone();
        tasks.spawn(supervisor::supervise(
            "push",
            metrics.clone(),
            shutdown.clone(),
            move |token| {
                let notifier = notifier.clone();
                async move { notifier.run(token).await }
            },
        ));
    }
    {
        let socket = paths.transport_socket();
        let transport = mail.transport.clone();
        let max = mail.limits.max_message_size;
        tasks.spawn(supervisor::supervise(
            "transport",
            metrics.clone(),
            shutdown.clone(),
            move |token| federation::serve(socket.clone(), max, transport.clone(), token),
        ));
    }

    // The web server.
    let state = web::WebState {
        config: config.clone(),
        paths: paths.clone(),
        accounts: accounts.clone(),
        challenges: challenges.clone(),
        dkim_key: Arc::new(dkim_key),
        release: running.clone(),
        health: health.clone(),
        https_port: args.https_port,
        pages: Arc::new(web::pages::RenderedPages::new(&config)),
        mxdeliv: mail.inbound.clone(),
    };
    {
        let addr = SocketAddr::new(args.bind, args.http_port);
        let router = web::http_router(state.clone());
        tasks.spawn(supervisor::supervise(
            "http",
            metrics.clone(),
            shutdown.clone(),
            move |token| web::serve_http(addr, router.clone(), token),
        ));
    }
    {
        let addr = SocketAddr::new(Ipv4Addr::LOCALHOST.into(), args.web_https_port);
        let router = web::https_router(state.clone());
        let tls_config = tls::server_config(resolver.clone());
        tasks.spawn(supervisor::supervise(
            "https",
            metrics.clone(),
            shutdown.clone(),
            move |token| web::serve_https(addr, router.clone(), tls_config.clone(), token),
        ));
    }
    {
        use chatmail_appliance::alpn_mux;
        let backends = alpn_mux::Backends {
            // IMAPS: the IMAP front's with --imap-front, else Maddy's.
            imap: (args.imaps_port != 0)
                .then(|| alpn_mux::local_address(args.bind, args.imaps_port)),
            submission: alpn_mux::local_address(args.bind, args.submissions_port),
            web: SocketAddr::new(Ipv4Addr::LOCALHOST.into(), args.web_https_port),
        };
        let (bind, port) = (args.bind, args.https_port);
        let preread_timeout = Duration::from_secs(args.https_preread_timeout_secs);
        tasks.spawn(supervisor::supervise(
            "alpn-mux",
            metrics.clone(),
            shutdown.clone(),
            move |token| {
                let backends = backends.clone();
                async move {
                    let listeners = chatmail_appliance::listen::bind(bind, port, "port 443")
                        .await
                        .map_err(|e| anyhow::anyhow!("port-443 multiplexer on {port}: {e}"))?;
                    alpn_mux::serve(listeners, backends, preread_timeout, token).await?;
                    Ok(())
                }
            },
        ));
    }

    // Certificates.
    if args.no_acme {
        tracing::info!("ACME is off; serving the placeholder certificate");
        if let Ok(info) = tls::cert_info(&std::fs::read(paths.tls_cert())?) {
            metrics.certificate_expiry.set(info.not_after);
            metrics
                .certificate_placeholder
                .set(i64::from(info.placeholder));
        }
    } else {
        let paths = paths.clone();
        let directory = config.acme.directory_url.to_string();
        let contact = config.acme.contact_email.as_ref().map(|m| m.to_string());
        let names = tls::relay_names(&domain);
        let extra_root = args.acme_extra_root.clone();
        let metrics_c = metrics.clone();
        tasks.spawn(supervisor::supervise(
            "acme",
            metrics.clone(),
            shutdown.clone(),
            move |token| {
                acme::CertificateManager {
                    paths: paths.clone(),
                    directory: directory.clone(),
                    contact: contact.clone(),
                    names: names.clone(),
                    extra_root: extra_root.clone(),
                    challenges: challenges.clone(),
                    resolver: resolver.clone(),
                    changed: cert_changed.clone(),
                    metrics: metrics_c.clone(),
                }
                .run(token)
            },
        ));
    }

    // Update checks (only if the config opts in), and an update waiting to be confirmed.
    {
        let tls = match federation::tls::ClientTls::new(args.update_extra_root.as_deref()) {
            Ok(t) => Some(t.https_verified),
            Err(e) => {
                tracing::error!("update checks are off: no TLS trust for the portal ({e})");
                None
            }
        };
        let source = tls.and_then(|tls| update_check::Source::from_config(&config, tls));
        let work_dir = paths.update_dir();
        let pending = update_check::has_pending(&work_dir);
        if source.is_some() || pending {
            let api = update_check::gokrazy::GokrazyApi::new(
                update_check::gokrazy::Endpoint::parse(&args.gokrazy_update_api)
                    .map_err(|e| anyhow::anyhow!("--gokrazy-update-api: {e}"))?,
                match &args.gokrazy_password_file {
                    Some(file) => vec![file.clone()],
                    None => vec![
                        paths.perm_root().join("gokr-pw.txt"),
                        PathBuf::from("/etc/gokr-pw.txt"),
                    ],
                },
            );
            let schedule = update_check::Schedule {
                first: Duration::from_secs(args.update_check_first_secs),
                interval: Duration::from_secs(args.update_check_interval_secs),
                retry: Duration::from_secs(args.update_check_retry_secs),
                jitter: Duration::from_secs(args.update_check_jitter_secs),
                health_window: Duration::from_secs(args.update_health_window_secs),
            };
            let healthy: Arc<dyn Fn() -> bool + Send + Sync> = {
                let health = health.clone();
                let accounts = accounts.clone();
                Arc::new(move || health.maddy_running() && accounts.store().count().is_ok())
            };
            let target = chatmail_shared::update_manifest::UpdateTarget::of_this_build()
                .unwrap_or(chatmail_shared::update_manifest::UpdateTarget::Amd64);
            tasks.spawn(supervisor::supervise(
                "update-check",
                metrics.clone(),
                shutdown.clone(),
                move |token| {
                    update_check::UpdateChecker {
                        source: source.clone(),
                        target,
                        running: running.clone(),
                        schedule,
                        api: api.clone(),
                        work_dir: work_dir.clone(),
                        healthy: healthy.clone(),
                    }
                    .run(token)
                },
            ));
        } else {
            tracing::info!("update checks are off (the relay's config does not opt in)");
        }
    }

    // Expiry, daily: through Maddy's CLI with the config the Maddy supervisor writes.
    {
        let expiry = Arc::new(expiry::Expiry {
            maddy: expiry::maddy_cli::MaddyCli {
                binary: args.maddy.clone(),
                config: paths.maddy_config(),
                state_dir: paths.maddy_state_dir(),
            },
            accounts: accounts.store().clone(),
            push_tokens,
            policy: expiry::rules::Policy::from_limits(&config.limits),
            metrics: metrics.clone(),
        });
        let schedule = expiry::Schedule {
            first: Duration::from_secs(args.expiry_first_secs),
            interval: Duration::from_secs(args.expiry_interval_secs),
            jitter: Duration::from_secs(args.expiry_jitter_secs),
        };
        let clock_offset = args.expiry_clock_offset_secs;
        tasks.spawn(supervisor::supervise(
            "expiry",
            metrics.clone(),
            shutdown.clone(),
            move |token| {
                expiry::run_daily(
                    expiry.clone(),
                    Arc::new(expiry::OffsetClock(clock_offset)),
                    schedule,
                    token,
                )
            },
        ));
    }

    // Metrics.
    {
        let addr = args.metrics_listen;
        let metrics_c = metrics.clone();
        tasks.spawn(supervisor::supervise(
            "metrics",
            metrics.clone(),
            shutdown.clone(),
            move |token| metrics::serve(addr, metrics_c.clone(), token),
        ));
    }

    wait_for_signal().await?;
    tracing::info!("shutting down");
    shutdown.cancel();
    let all_stopped = async { while tasks.join_next().await.is_some() {} };
    if tokio::time::timeout(Duration::from_secs(30), all_stopped)
        .await
        .is_err()
    {
        tracing::warn!("some components did not stop in time");
    }
    tracing::info!("stopped");
    Ok(())
}

/// The loopback port of Maddy's plaintext IMAP listener, if it has one.
fn imap_upstream_port(args: &RunArgs) -> Option<u16> {
    match (args.imap_front, args.imap_loopback_port) {
        (_, Some(port)) => Some(port),
        (true, None) => Some(10143),
        (false, None) => None,
    }
}

/// What every IMAP front session shares.
fn imap_front_shared(
    args: &RunArgs,
    config: &RelayConfig,
    paths: &Paths,
    resolver: &Arc<tls::CertResolver>,
    accounts: &auth::Accounts,
    tokens: &push::tokens::TokenStore,
    metrics: &metrics::Metrics,
) -> Arc<imap_front::Front> {
    let upstream = SocketAddr::new(
        Ipv4Addr::LOCALHOST.into(),
        imap_upstream_port(args).unwrap_or(10143),
    );
    // Upstream counts IMAP logins (research/chatmail.md §1.5); the auth service records
    // every login already, so this refreshes the same day stamp, off the async threads.
    let store = accounts.store().clone();
    let on_login: Arc<dyn Fn(String) + Send + Sync> = Arc::new(move |address: String| {
        let store = store.clone();
        let day = auth::unix_now() / 86_400 * 86_400;
        tokio::task::spawn_blocking(move || {
            if let Err(e) = store.record_login(&address.to_ascii_lowercase(), day) {
                tracing::warn!("recording last login: {e}");
            }
        });
    });
    Arc::new(
        imap_front::Front::new(
            upstream,
            imap_front::tls_config(resolver.clone()),
            tokens.clone(),
            imap_front::metadata::ServerEntries {
                admin: config.privacy.contact_mail.as_ref().map(|m| m.to_string()),
            },
            config.limits.max_mailbox_size_bytes() / 1024,
            Some(imap_front::usage::Usage::new(expiry::maddy_cli::MaddyCli {
                binary: args.maddy.clone(),
                config: paths.maddy_config(),
                state_dir: paths.maddy_state_dir(),
            })),
            imap_front::parser::Limits {
                max_line: 64 << 10,
                max_literal: u64::from(config.limits.max_message_size_bytes),
            },
            imap_front::Timeouts {
                not_authenticated: Duration::from_secs(args.imap_preauth_timeout_secs),
                ..imap_front::Timeouts::default()
            },
            on_login,
        )
        .counting_compression(metrics.imap_compressed_sessions.clone()),
    )
}

/// The shared parts of the mail rules and deliveries (Appliance III).
struct MailComponents {
    limits: chatmail_appliance::mail_rules::Limits,
    outgoing: Arc<chatmail_appliance::mail_rules::Outgoing>,
    dkim: Arc<chatmail_appliance::mail_rules::dkim::DkimVerifier>,
    local: delivery::local::LocalDelivery,
    transport: federation::Transport,
    inbound: Arc<web::mxdeliv::Inbound>,
    push: push::notifier::Notifier<push::post::HttpsPoster>,
}

fn mail_components(
    args: &RunArgs,
    config: &RelayConfig,
    paths: &Paths,
    metrics: &metrics::Metrics,
    (push_tokens, push_queue): (push::tokens::TokenStore, push::queue::PendingQueue),
) -> anyhow::Result<MailComponents> {
    use chatmail_appliance::mail_rules::{self, dkim};
    let domain = config.mail_domain.as_str().to_string();
    let limits = mail_rules::Limits::from_config(config);
    let dns = match args.dns_server {
        Some(addr) => dkim::Dns::Server(addr),
        None => dkim::Dns::System,
    };
    let dkim = Arc::new(dkim::DkimVerifier::new(dns)?);
    let push_url = chatmail_shared::web_url::HttpsUrl::parse(&args.push_url)
        .map_err(|e| anyhow::anyhow!("--push-url: {e}"))?;
    let (push, push_hook) = push::notifier::Notifier::new(
        push_tokens,
        push_queue,
        push::post::HttpsPoster::new(
            push_url,
            federation::tls::ClientTls::new(None)?.https_verified,
        ),
        Arc::new(push::SystemClock),
        metrics.clone(),
    );
    let hook: Arc<dyn delivery::hook::DeliveryHook> = Arc::new(push_hook);
    let local =
        delivery::local::LocalDelivery::new(paths.store_socket(), &domain, hook, metrics.clone());
    let transport = federation::Transport::new(
        federation::Settings {
            mail_domain: domain.clone(),
            https_port: args.federation_https_port,
            smtp_port: args.federation_smtp_port,
            https_enabled: !args.no_https_federation,
        },
        federation::resolver(dns)?,
        federation::tls::ClientTls::new(args.federation_extra_root.as_deref())?,
        metrics.clone(),
    );
    let inbound = Arc::new(web::mxdeliv::Inbound {
        enabled: !args.no_https_federation,
        mail_domain: domain,
        limits,
        dkim: dkim.clone(),
        local: local.clone(),
        metrics: metrics.clone(),
    });
    Ok(MailComponents {
        limits,
        outgoing: Arc::new(mail_rules::Outgoing::new(&limits)),
        dkim,
        local,
        transport,
        inbound,
        push,
    })
}

/// gokrazy only: /perm grown to the disk, and the device's gokrazy password and machine id.
fn gokrazy_first_boot(paths: &Paths, console: &first_boot::Console) {
    let perm = paths.perm_root();
    match grow_perm::grow(perm) {
        Ok(grow_perm::Outcome::AlreadyFull) => {
            tracing::info!("/perm already fills the disk")
        }
        Ok(grow_perm::Outcome::Grown { from, to }) => console.say(&format!(
            "grew /perm from {} MiB to {} MiB to fill the disk",
            from >> 20,
            to >> 20
        )),
        Err(err) => console.say(&format!("could not grow /perm to fill the disk: {err}")),
    }
    if let Err(err) = first_boot::ensure_gokrazy_files(perm, console) {
        console.say(&format!(
            "could not write gokrazy's files on /perm: {err:#}"
        ));
    }
}

async fn wait_for_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}

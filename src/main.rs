//! The `portcullis` command: run, check, explain, schema.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use arc_swap::ArcSwap;
use clap::{Parser, Subcommand};
use pingora::apps::http_app::HttpServer;
use pingora::listeners::{L4BufferSettings, ListenerConfig, TcpSocketOptions};
use pingora::prelude::{Opt, Server, background_service};
use pingora::server::configuration::ServerConf;
use pingora::services::listening::Service;

use portcullis::config::{self, Config};
use portcullis::proxy::Gateway;
use portcullis::proxy::admin::Admin;
use portcullis::proxy::connections::Connections;
use portcullis::proxy::keys::KeyRefresher;
use portcullis::proxy::reload::Reloader;
use portcullis::snapshot::Snapshot;
use portcullis::token::KeyRegistry;
use portcullis::{access_log, logging, metrics};

mod check;
mod explain;

// glibc's malloc spends a tenth of the proxy's CPU time under load (perf); mimalloc's
// thread-local heaps suit tokio's many short-lived allocations.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "portcullis",
    version,
    about = "An authorization gateway in front of unmodified apps"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve (SIGHUP reloads the config, SIGTERM drains and exits).
    Run {
        /// The YAML config file.
        #[arg(long, short)]
        config: PathBuf,
        /// Take the listening sockets over from a running instance (pingora graceful upgrade).
        #[arg(long, short)]
        upgrade: bool,
        /// Run in the background.
        #[arg(long, short)]
        daemon: bool,
    },
    /// Validate a config; print every error and warning with file:line:column. Exit 0 when
    /// there is no error, 1 otherwise.
    Check {
        /// The YAML config file.
        #[arg(long, short)]
        config: PathBuf,
        /// Unset `${env:}` variables and unreadable `${file:}` secrets are warnings, not
        /// errors: for pipelines that check a config without its secrets.
        #[arg(long)]
        offline: bool,
        /// `text` (one line per problem) or `json` (one object, for CI).
        #[arg(long, value_enum, default_value_t)]
        format: check::Format,
    },
    /// Show which route a request would take and what would happen to it.
    Explain {
        /// The YAML config file.
        #[arg(long, short)]
        config: PathBuf,
        /// The request method.
        method: String,
        /// The request URL, e.g. http://app.example.com/path?q=1
        url: String,
        /// A request header, `Name: value`; repeatable.
        #[arg(long = "header", short = 'H')]
        headers: Vec<String>,
        /// Print one JSON object instead of lines for people.
        #[arg(long)]
        json: bool,
    },
    /// Print the config's JSON Schema.
    Schema,
}

fn main() -> ExitCode {
    // One process-wide rustls crypto provider (aws-lc-rs, as for every other TLS client here);
    // pingora would otherwise install ring's when it builds its first TLS config.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let cli = Cli::parse();
    // `run` logs in the config's format from its first line; the other commands print text.
    let format = match &cli.command {
        Command::Run { config, .. } => logging::format_of(config),
        _ => config::LogFormat::Text,
    };
    logging::init(format);
    match cli.command {
        Command::Run {
            config,
            upgrade,
            daemon,
        } => run(&config, upgrade, daemon),
        Command::Check {
            config,
            offline,
            format,
        } => check::check(&config, offline, format),
        Command::Explain {
            config,
            method,
            url,
            headers,
            json,
        } => match load_or_report(&config) {
            Some(cfg) => {
                let snap = Snapshot::build(cfg, &KeyRegistry::default());
                explain::explain(snap, &method, &url, &headers, json)
            }
            None => ExitCode::FAILURE,
        },
        Command::Schema => {
            println!("{:#}", config::schema());
            ExitCode::SUCCESS
        }
    }
}

fn load_or_report(path: &Path) -> Option<Config> {
    match config::load(path) {
        Ok(c) => Some(c),
        Err(errors) => {
            eprintln!("{errors}");
            None
        }
    }
}

fn server_conf(config: &Config) -> ServerConf {
    let s = &config.server;
    ServerConf {
        pid_file: s.pid_file.clone(),
        upgrade_sock: s.upgrade_sock.clone(),
        // pingora sleeps the whole grace period after SIGTERM while connections drain; the
        // `drain` service exits sooner, once no request is in flight.
        grace_period_seconds: Some(s.drain_timeout.as_secs_f64().ceil() as u64),
        graceful_shutdown_timeout_seconds: Some(1),
        // One single-threaded runtime per service: see `run` for why.
        threads: 1,
        work_stealing: false,
        ..ServerConf::default()
    }
}

/// One single-threaded proxy service listening on every public address.
fn proxy_shard(
    state: &portcullis::snapshot::SharedSnapshot,
    refreshes: &Arc<portcullis::signin::refresh::Refreshes>,
    shard: usize,
    listen: &[std::net::SocketAddr],
    tls_listen: &[(std::net::SocketAddr, Arc<portcullis::tls::Resolver>)],
    h2c: bool,
) -> Service<Connections> {
    let gateway = Gateway::new(state.clone(), refreshes.clone(), h2c);
    let max_connections = state.load().config.server.limits.max_connections;
    // TLS listeners are plain TCP listeners to pingora: the connection loop does the handshake
    // itself, within `limits.header_timeout` (pingora's own allows 60 s, not configurable).
    let mut acceptors = Vec::new();
    for (addr, resolver) in tls_listen {
        // Certificates come from the resolver (swapped on reload); TLS 1.2 and 1.3 only;
        // ALPN offers h2 then http/1.1.
        let Ok(mut tls) = pingora::listeners::tls::TlsSettings::intermediate("", "") else {
            continue;
        };
        tls.set_cert_resolver(resolver.clone());
        tls.enable_h2();
        acceptors.push((*addr, Arc::new(tls.build())));
    }
    let mut service = Service::new(
        format!("portcullis-{shard}"),
        Connections::new(gateway, max_connections, acceptors.clone()),
    );
    service.threads = Some(1);
    let plain = listen.iter().map(|a| (a, PLAIN_READ_BUFFER));
    let tls = acceptors.iter().map(|(a, _)| (a, TLS_READ_BUFFER));
    for (addr, read_buffer) in plain.chain(tls) {
        let mut socket = TcpSocketOptions::default();
        socket.so_reuseport = Some(true);
        let listener = ListenerConfig::tcp(shard_address(*addr, shard))
            .tcp_socket_options(socket)
            .l4_buffer(L4BufferSettings::default().read(read_buffer));
        service.add_listener(listener);
    }
    service
}

/// The read buffer pingora puts in front of each accepted plain connection: none. Its default
/// (64 KiB, allocated at accept) was most of what an idle or hostile connection cost; the HTTP/1
/// parser and the h2 codec read into buffers of their own, sized to what arrives.
const PLAIN_READ_BUFFER: usize = 0;
/// The same for TLS connections: one TLS record (16 KiB of plaintext plus its overhead), since
/// rustls reads 4 KiB at a time and would otherwise need several reads per record.
const TLS_READ_BUFFER: usize = 16 * 1024 + 512;

/// The listen address of `shard`, spelled so that each shard gets its own socket.
///
/// pingora keeps listening sockets in a table keyed by the address *string* (for graceful
/// upgrades) and hands a second service with the same string the first one's descriptor, which
/// both then close at shutdown (an IO-safety abort). A port with leading zeros parses to the
/// same address but is another key, so each shard binds its own SO_REUSEPORT socket — and the
/// keys stay the same from one process to the next, so upgrades still find them.
fn shard_address(addr: std::net::SocketAddr, shard: usize) -> String {
    let ip = match addr {
        std::net::SocketAddr::V4(a) => a.ip().to_string(),
        std::net::SocketAddr::V6(a) => format!("[{}]", a.ip()),
    };
    format!("{ip}:{}{}", "0".repeat(shard), addr.port())
}

fn run(path: &Path, upgrade: bool, daemon: bool) -> ExitCode {
    let Some(config) = load_or_report(path) else {
        return ExitCode::FAILURE;
    };
    metrics::init();
    if config.server.access_log {
        access_log::init();
    }
    let listen = config.server.listen.clone();
    let tls_listen: Vec<_> = config
        .server
        .tls_listen
        .iter()
        .filter_map(|t| Some((t.address, portcullis::tls::resolver(t.address, &t.certs)?)))
        .collect();
    let admin = config.server.admin;
    let h2c = config.server.h2c;
    let threads = config.server.threads;
    // Nothing is bound yet: refuse to start on an address another process serves (see
    // `exclusive`), unless this process takes the sockets over from the running instance.
    let _claims = if upgrade {
        None
    } else {
        let mut addrs = listen.clone();
        addrs.extend(config.server.tls_listen.iter().map(|t| t.address));
        addrs.push(admin);
        match portcullis::proxy::exclusive::claim(&addrs) {
            Ok(claims) => Some(claims),
            Err(e) => {
                eprintln!("portcullis: {e}");
                return ExitCode::FAILURE;
            }
        }
    };
    let conf = server_conf(&config);
    let opt = Opt {
        upgrade,
        daemon,
        ..Opt::default()
    };
    let mut server = Server::new_with_opt_and_conf(opt, conf);
    server.bootstrap();

    let keys = Arc::new(KeyRegistry::default());
    let state = Arc::new(ArcSwap::from_pointee(Snapshot::build(config, &keys)));
    // `threads` shards, each a single-threaded pingora service on every listener (SO_REUSEPORT),
    // like nginx's worker processes: a connection and the tasks pingora spawns for it (upstream
    // pool watchers) stay on one thread, with no cross-thread wake-ups. On 2 cores this served
    // about 1.5x the requests of one service with 2 threads (benches/load).
    let refreshes = Arc::new(portcullis::signin::refresh::Refreshes::default());
    for shard in 0..threads {
        server.add_service(proxy_shard(
            &state,
            &refreshes,
            shard,
            &listen,
            &tls_listen,
            h2c,
        ));
    }
    let mut admin_service = Service::new(
        "admin".to_string(),
        HttpServer::new_app(Admin::new(state.clone())),
    );
    admin_service.add_tcp(&admin.to_string());
    let reloader = background_service(
        "reload",
        Reloader::new(path.to_path_buf(), state.clone(), keys.clone()),
    );
    server.add_service(background_service("keys", KeyRefresher::new(keys)));
    server.add_service(background_service(
        "dns",
        portcullis::proxy::dns::NameResolver::new(state.clone()),
    ));
    server.add_service(background_service(
        "session-store",
        portcullis::proxy::keys::StoreHealth::new(state.clone()),
    ));

    server.add_service(admin_service);
    server.add_service(reloader);
    server.add_service(background_service("drain", portcullis::proxy::drain::Drain));
    server.add_service(background_service(
        "ready",
        portcullis::proxy::ready::ReadyLog::new(state.clone()),
    ));
    let tls_addrs: Vec<_> = tls_listen.iter().map(|(a, _)| *a).collect();
    tracing::info!(listen = ?listen, tls = ?tls_addrs, %admin, "portcullis starting");
    server.run_forever()
}

#[cfg(test)]
mod tests {
    use super::shard_address;

    #[test]
    fn shard_addresses_differ_but_parse_to_the_same_socket() {
        let addr: std::net::SocketAddr = "127.0.0.1:8080".parse().expect("valid");
        let v6: std::net::SocketAddr = "[::1]:8080".parse().expect("valid");
        for shard in 0..4 {
            for a in [addr, v6] {
                let spelled = shard_address(a, shard);
                assert_eq!(spelled.parse::<std::net::SocketAddr>(), Ok(a), "{spelled}");
            }
        }
        assert_ne!(shard_address(addr, 0), shard_address(addr, 1));
    }
}

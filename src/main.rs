//! The `portcullis` command: run, check, explain, schema.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use arc_swap::ArcSwap;
use clap::{Parser, Subcommand};
use pingora::apps::HttpServerOptions;
use pingora::apps::http_app::HttpServer;
use pingora::prelude::{Opt, Server, background_service};
use pingora::server::configuration::ServerConf;
use pingora::services::listening::Service;

use portcullis::config::{self, Config};
use portcullis::proxy::Gateway;
use portcullis::proxy::admin::Admin;
use portcullis::proxy::connections::Counted;
use portcullis::proxy::reload::Reloader;
use portcullis::snapshot::Snapshot;
use portcullis::{access_log, metrics};

mod explain;

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
    /// Validate a config; print every error with file:line:column.
    Check {
        /// The YAML config file.
        #[arg(long, short)]
        config: PathBuf,
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
    },
    /// Print the config's JSON Schema.
    Schema,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    match cli.command {
        Command::Run {
            config,
            upgrade,
            daemon,
        } => run(&config, upgrade, daemon),
        Command::Check { config } => check(&config),
        Command::Explain {
            config,
            method,
            url,
            headers,
        } => match load_or_report(&config) {
            Some(cfg) => explain::explain(Snapshot::build(cfg), &method, &url, &headers),
            None => ExitCode::FAILURE,
        },
        Command::Schema => {
            println!("{:#}", config::schema());
            ExitCode::SUCCESS
        }
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("PORTCULLIS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
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

fn check(path: &Path) -> ExitCode {
    match load_or_report(path) {
        Some(c) => {
            println!(
                "{}: ok ({} routes, {} upstreams)",
                path.display(),
                c.routes.len(),
                c.upstreams.len()
            );
            ExitCode::SUCCESS
        }
        None => ExitCode::FAILURE,
    }
}

fn server_conf(config: &Config) -> ServerConf {
    let s = &config.server;
    ServerConf {
        threads: s.threads,
        pid_file: s.pid_file.clone(),
        upgrade_sock: s.upgrade_sock.clone(),
        // pingora sleeps the whole grace period after SIGTERM while connections drain.
        grace_period_seconds: Some(s.drain_timeout.as_secs_f64().ceil() as u64),
        graceful_shutdown_timeout_seconds: Some(1),
        ..ServerConf::default()
    }
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
    let admin = config.server.admin;
    let h2c = config.server.h2c;
    let conf = server_conf(&config);
    let opt = Opt {
        upgrade,
        daemon,
        ..Opt::default()
    };
    let mut server = Server::new_with_opt_and_conf(opt, conf);
    server.bootstrap();

    let state = Arc::new(ArcSwap::from_pointee(Snapshot::build(config)));
    let mut proxy = pingora::proxy::http_proxy(&server.configuration, Gateway::new(state.clone()));
    let mut options = HttpServerOptions::default();
    options.h2c = h2c;
    proxy.server_options = Some(options);
    let mut public = Service::new("portcullis".to_string(), Counted(Arc::new(proxy)));
    for addr in &listen {
        public.add_tcp(&addr.to_string());
    }
    let mut admin_service = Service::new(
        "admin".to_string(),
        HttpServer::new_app(Admin::new(state.clone())),
    );
    admin_service.add_tcp(&admin.to_string());
    let reloader = background_service("reload", Reloader::new(path.to_path_buf(), state));

    server.add_service(public);
    server.add_service(admin_service);
    server.add_service(reloader);
    tracing::info!(listen = ?listen, %admin, "portcullis starting");
    server.run_forever()
}

//! The floor under the gateway's request loop, for `benches/load/run.sh`'s `bare-loop` row: the
//! same pingora-core pieces (listener with N SO_REUSEPORT shards, HTTP/1.1 server session,
//! upstream v1 client session over a per-shard stack of idle connections) with none of the
//! gateway's decisions — no routing, hygiene, auth, metrics or log. The difference between this
//! row and the public route is what Portcullis itself spends per request.
//!
//! `cargo bench --bench bare_loop -- LISTEN UPSTREAM [THREADS]` serves until killed (a bench
//! target so that it is built with the same profile and dependencies, never shipped).

use std::cell::RefCell;
use std::net::SocketAddr;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use pingora::apps::{HttpPersistentSettings, HttpServerApp, ReusedHttpStream};
use pingora::connectors::TransportConnector;
use pingora::listeners::TcpSocketOptions;
use pingora::prelude::{HttpPeer, Opt, Server};
use pingora::protocols::Stream;
use pingora::protocols::http::ServerSession;
use pingora::protocols::http::v1::client::HttpSession as Upstream;
use pingora::server::ShutdownWatch;
use pingora::server::configuration::ServerConf;
use pingora::services::listening::Service;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

thread_local! {
    static IDLE: RefCell<Vec<Stream>> = const { RefCell::new(Vec::new()) };
}

struct Bare {
    upstream: SocketAddr,
    connector: TransportConnector,
}

impl Bare {
    async fn proxy(&self, session: &mut ServerSession) -> Option<()> {
        let stream = match IDLE.with(|i| i.borrow_mut().pop()) {
            Some(s) => s,
            None => {
                let peer = HttpPeer::new(self.upstream, false, String::new());
                self.connector.new_stream(&peer).await.ok()?
            }
        };
        let mut client = Upstream::new(stream);
        let mut req = Box::new(session.req_header().clone());
        req.remove_header(&http::header::CONNECTION);
        client.write_request_header(req).await.ok()?;
        while !session.is_body_done() {
            let chunk = session.read_request_body().await.ok()??;
            client.write_body(&chunk).await.ok()?;
        }
        client.finish_body().await.ok()?;
        client.read_response().await.ok()?;
        let resp = Box::new(client.resp_header()?.clone());
        session.write_response_header(resp).await.ok()?;
        while let Some(chunk) = client.read_body_bytes().await.ok()? {
            session.write_response_body(chunk, false).await.ok()?;
        }
        session.write_response_body(Bytes::new(), true).await.ok()?;
        client.respect_keepalive();
        if let Some(stream) = client.reuse().await {
            IDLE.with(|i| i.borrow_mut().push(stream));
        }
        Some(())
    }
}

#[async_trait]
impl HttpServerApp for Bare {
    async fn process_new_http(
        self: &Arc<Self>,
        mut session: ServerSession,
        _shutdown: &ShutdownWatch,
    ) -> Option<ReusedHttpStream> {
        if !session.read_request().await.ok()? {
            return None;
        }
        self.proxy(&mut session).await?;
        let settings = HttpPersistentSettings::for_session(&session);
        let stream = session.finish().await.ok()??;
        Some(ReusedHttpStream::from_reusable_stream(stream, settings))
    }
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let (Some(listen), Some(upstream)) = (args.first(), args.get(1)) else {
        // `cargo bench` runs every bench target without arguments: nothing to serve then.
        eprintln!("usage: bare_loop LISTEN UPSTREAM [THREADS]");
        return;
    };
    let listen: SocketAddr = listen.parse().expect("LISTEN is IP:port");
    let upstream: SocketAddr = upstream.parse().expect("UPSTREAM is IP:port");
    let threads: usize = args.get(2).and_then(|t| t.parse().ok()).unwrap_or(2);
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let dir = std::env::temp_dir().join(format!("bare-loop-{}", std::process::id()));
    let conf = ServerConf {
        pid_file: dir.with_extension("pid").display().to_string(),
        upgrade_sock: dir.with_extension("sock").display().to_string(),
        threads: 1,
        work_stealing: false,
        grace_period_seconds: Some(0),
        graceful_shutdown_timeout_seconds: Some(1),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(Opt::default(), conf);
    server.bootstrap();
    for shard in 0..threads {
        let app = Bare {
            upstream,
            connector: TransportConnector::new(None),
        };
        let mut service = Service::new(format!("bare-{shard}"), app);
        service.threads = Some(1);
        let mut socket = TcpSocketOptions::default();
        socket.so_reuseport = Some(true);
        // Leading zeros: one socket per shard (see `shard_address` in src/main.rs).
        let ip = listen.ip();
        let addr = format!("{ip}:{}{}", "0".repeat(shard), listen.port());
        service.add_tcp_with_settings(&addr, socket);
        server.add_service(service);
    }
    server.run_forever()
}

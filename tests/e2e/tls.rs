//! Edge TLS: certificates chosen by SNI, ALPN h2, HTTP/2 through to an HTTP/1.1 backend, the
//! redirect listener, certificate reload under traffic (and a bad certificate refused), HSTS,
//! and TLS upstreams verified against a test CA (refused for another name; mTLS). Certificates
//! are made at test time by a test CA (`support::certs`).

use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::support::certs::{Leaf, TestCa};
use crate::support::echo::Echoed;
use crate::support::nginx::Nginx;
use crate::support::{EchoBackend, Gateway, ServerOptions, free_port};

/// Accepts any server certificate: these tests look at WHICH certificate is served.
#[derive(Debug)]
struct Inspect;

impl ServerCertVerifier for Inspect {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }
    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        rustls::crypto::aws_lc_rs::default_provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// What a handshake with `sni` (none for an IP) showed: the leaf's DNS names, its serial, the
/// negotiated ALPN protocol and TLS version.
struct Seen {
    names: Vec<String>,
    serial: String,
    alpn: Option<Vec<u8>>,
    version: Option<rustls::ProtocolVersion>,
}

fn handshake(addr: SocketAddr, sni: &str) -> Seen {
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("protocol versions")
    .dangerous()
    .with_custom_certificate_verifier(Arc::new(Inspect))
    .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let name = ServerName::try_from(sni.to_string()).expect("a server name");
    let mut conn = rustls::ClientConnection::new(Arc::new(config), name).expect("a connection");
    let mut sock = TcpStream::connect(addr).expect("connects");
    sock.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    while conn.is_handshaking() {
        conn.complete_io(&mut sock)
            .expect("the handshake completes");
    }
    let leaf = conn.peer_certificates().expect("certificates")[0].clone();
    let (_, cert) = X509Certificate::from_der(leaf.as_ref()).expect("parses");
    let names = cert
        .subject_alternative_name()
        .ok()
        .flatten()
        .map(|s| {
            s.value
                .general_names
                .iter()
                .filter_map(|n| match n {
                    GeneralName::DNSName(d) => Some(d.to_string()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    Seen {
        names,
        serial: cert.raw_serial_as_string(),
        alpn: conn.alpn_protocol().map(<[u8]>::to_vec),
        version: conn.protocol_version(),
    }
}

fn yaml_path(p: &Path) -> String {
    format!("{:?}", p.display().to_string())
}

/// The PKI and a gateway with a TLS listener (default, `a.test` and `*.wild.test`
/// certificates), a plain listener redirecting to it, and a public route with HSTS.
struct Edge {
    ca: TestCa,
    backend: EchoBackend,
    gateway: Gateway,
    tls: SocketAddr,
    redirect: SocketAddr,
    default: Leaf,
    a: Leaf,
}

impl Edge {
    async fn start() -> Self {
        let ca = TestCa::new("portcullis-test-ca");
        let default = ca.issue("default", &["default.test"], 1, false);
        let a = ca.issue("a", &["a.test"], 1, false);
        let wild = ca.issue("wild", &["*.wild.test"], 1, false);
        let backend = EchoBackend::start("app").await;
        let tls = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let redirect = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let listeners = format!(
            "    - {{address: \"{tls}\", cert: {}, key: {}, certificates: [{{cert: {}, key: {}}}, {{cert: {}, key: {}}}]}}\n    - {{address: \"{redirect}\", redirect_to_https: {}}}\n",
            yaml_path(&default.cert),
            yaml_path(&default.key),
            yaml_path(&a.cert),
            yaml_path(&a.key),
            yaml_path(&wild.cert),
            yaml_path(&wild.key),
            tls.port()
        );
        let gateway = Gateway::start_with(
            ServerOptions {
                extra_listeners: listeners,
                ..ServerOptions::default()
            },
            &format!(
                "upstreams:
  app: {{targets: [\"{}\"]}}
routes:
  - name: app
    upstream: app
    auth: public
    hsts: {{max_age: 365d, include_subdomains: true}}
",
                backend.addr()
            ),
        )
        .await;
        Self {
            ca,
            backend,
            gateway,
            tls,
            redirect,
            default,
            a,
        }
    }

    /// A client trusting the test CA, reaching every name at the TLS listener.
    fn client(&self, http2_only: bool) -> reqwest::Client {
        let ca = std::fs::read(self.ca.cert()).expect("the CA");
        let mut builder = reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(&ca).expect("a PEM"))
            .resolve("a.test", self.tls)
            .resolve("x.wild.test", self.tls)
            .resolve("default.test", self.tls)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(5));
        if http2_only {
            builder = builder.http2_prior_knowledge();
        }
        builder.build().expect("a client")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sni_picks_the_certificate_alpn_offers_h2_and_h2_reaches_an_http1_backend() {
    let edge = Edge::start().await;
    let tls = edge.tls;
    let seen = tokio::task::spawn_blocking(move || {
        [
            handshake(tls, "a.test"),
            handshake(tls, "x.wild.test"),
            handshake(tls, "deep.x.wild.test"),
            handshake(tls, "unknown.test"),
            handshake(tls, "127.0.0.1"),
        ]
    })
    .await
    .expect("handshakes");
    assert_eq!(seen[0].names, vec!["a.test"]);
    assert_eq!(seen[1].names, vec!["*.wild.test"]);
    assert_eq!(
        seen[2].names,
        vec!["default.test"],
        "a wildcard covers one label"
    );
    assert_eq!(seen[3].names, vec!["default.test"]);
    assert_eq!(seen[4].names, vec!["default.test"], "no SNI: the default");
    for s in &seen {
        assert_eq!(s.alpn.as_deref(), Some(&b"h2"[..]), "ALPN prefers h2");
        assert!(matches!(
            s.version,
            Some(rustls::ProtocolVersion::TLSv1_3 | rustls::ProtocolVersion::TLSv1_2)
        ));
    }

    // A verifying HTTP/2 client (ALPN) through to the HTTP/1.1 backend.
    let client = edge.client(false);
    let r = client
        .get("https://a.test/over/h2?x=1")
        .send()
        .await
        .expect("the request");
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()
            .get("strict-transport-security")
            .and_then(|v| v.to_str().ok()),
        Some("max-age=31536000; includeSubDomains")
    );
    let body = r.bytes().await.expect("a body");
    let echoed = Echoed::parse(&body, "h2");
    assert_eq!(echoed.path, "/over/h2?x=1");
    assert_eq!(echoed.values("x-forwarded-proto"), vec!["https"]);
    let backend_saw = edge.backend.seen();
    assert_eq!(
        backend_saw.last().map(|s| s.version.as_str()),
        Some("HTTP/1.1")
    );

    // The plain listener redirects to HTTPS; a plain request gets no HSTS.
    let plain = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("a client");
    let r = plain
        .get(format!("http://{}/some/path?q=1", edge.redirect))
        .header("host", "a.test")
        .send()
        .await
        .expect("a redirect");
    assert_eq!(r.status(), 308);
    assert_eq!(
        r.headers().get("location").and_then(|v| v.to_str().ok()),
        Some(format!("https://a.test:{}/some/path?q=1", edge.tls.port()).as_str())
    );
    let r = plain
        .get(edge.gateway.url("/"))
        .send()
        .await
        .expect("plain");
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("strict-transport-security").is_none());
    let metrics = edge.gateway.metrics().await;
    assert!(
        metrics.contains("portcullis_tls_certificate_expiry_days{listener="),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_reload_under_traffic_and_a_bad_one_is_refused() {
    let edge = Edge::start().await;
    let before = {
        let tls = edge.tls;
        tokio::task::spawn_blocking(move || handshake(tls, "a.test").serial)
            .await
            .expect("handshake")
    };
    // Traffic on new connections all along.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let failures = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let sent = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut loops = Vec::new();
    for _ in 0..2 {
        let (stop, failures, sent) = (stop.clone(), failures.clone(), sent.clone());
        let ca = std::fs::read(edge.ca.cert()).expect("CA");
        let tls = edge.tls;
        loops.push(tokio::spawn(async move {
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                // A new client each time: a new TLS handshake each request.
                let client = reqwest::Client::builder()
                    .add_root_certificate(reqwest::Certificate::from_pem(&ca).expect("PEM"))
                    .resolve("a.test", tls)
                    .timeout(Duration::from_secs(5))
                    .build()
                    .expect("client");
                match client.get("https://a.test/").send().await {
                    Ok(r) if r.status() == 200 => {}
                    _ => {
                        failures.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    }
                }
                sent.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    // A renewed certificate for a.test in place of the old files; SIGHUP.
    let renewed = edge.ca.issue("a-renewed", &["a.test"], 1, false);
    std::fs::copy(&renewed.cert, &edge.a.cert).expect("copy cert");
    std::fs::copy(&renewed.key, &edge.a.key).expect("copy key");
    edge.gateway.reload();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let tls = edge.tls;
        let now = tokio::task::spawn_blocking(move || handshake(tls, "a.test").serial)
            .await
            .expect("handshake");
        if now != before {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the renewed certificate was never served"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    // An expired certificate: the reload is refused and the renewed one keeps serving.
    let serving = {
        let tls = edge.tls;
        tokio::task::spawn_blocking(move || handshake(tls, "a.test").serial)
            .await
            .expect("handshake")
    };
    let expired = edge.ca.issue("a-expired", &["a.test"], 0, false);
    std::fs::copy(&expired.cert, &edge.a.cert).expect("copy cert");
    std::fs::copy(&expired.key, &edge.a.key).expect("copy key");
    edge.gateway.reload();
    edge.gateway
        .wait_for_stderr("expired", Duration::from_secs(10))
        .await;
    // A key that does not fit is refused the same way.
    std::fs::copy(&renewed.cert, &edge.a.cert).expect("copy cert");
    std::fs::copy(&edge.default.key, &edge.a.key).expect("copy key");
    edge.gateway.reload();
    edge.gateway
        .wait_for_stderr("does not fit", Duration::from_secs(10))
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    for l in loops {
        l.await.expect("loop");
    }
    let tls = edge.tls;
    let after = tokio::task::spawn_blocking(move || handshake(tls, "a.test").serial)
        .await
        .expect("handshake");
    assert_eq!(
        after, serving,
        "a bad certificate never replaces a good one"
    );
    assert_eq!(
        failures.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "of {} requests",
        sent.load(std::sync::atomic::Ordering::SeqCst)
    );
    assert!(sent.load(std::sync::atomic::Ordering::SeqCst) > 10);
}

/// An nginx serving HTTPS with `cert`, optionally requiring a client certificate from `ca`.
async fn https_backend(cert: &Leaf, client_ca: Option<&Path>) -> (Nginx, SocketAddr) {
    let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let verify = match client_ca {
        Some(ca) => format!(
            "ssl_client_certificate {}; ssl_verify_client on;",
            ca.display()
        ),
        None => String::new(),
    };
    let servers = format!(
        r#"  server {{
    listen {addr} ssl;
    ssl_certificate {}; ssl_certificate_key {};
    {verify}
    location / {{ default_type text/plain; return 200 "tls-backend sni=$ssl_server_name client=$ssl_client_s_dn"; }}
  }}"#,
        cert.cert.display(),
        cert.key.display()
    );
    (Nginx::start(&servers, addr).await, addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_upstreams_are_verified_against_the_configured_ca() {
    let ca = TestCa::new("upstream-ca");
    let server = ca.issue("backend", &["backend.internal"], 1, false);
    let client = ca.issue("gateway-client", &[], 1, true);
    let (_plain, plain_addr) = https_backend(&server, None).await;
    let (_mtls, mtls_addr) = https_backend(&server, Some(&ca.cert())).await;
    let ca_path = yaml_path(&ca.cert());
    let config = format!(
        "upstreams:
  good: {{targets: [\"{p}\"], tls: true, sni: backend.internal, ca_file: {ca_path}}}
  wrong-name: {{targets: [\"{p}\"], tls: true, sni: other.internal, ca_file: {ca_path}}}
  system-roots: {{targets: [\"{p}\"], tls: true, sni: backend.internal}}
  insecure: {{targets: [\"{p}\"], tls: true, sni: other.internal, tls_insecure_skip_verify: true}}
  mtls: {{targets: [\"{m}\"], tls: true, sni: backend.internal, ca_file: {ca_path}, client_cert: {cc}, client_key: {ck}}}
  mtls-without: {{targets: [\"{m}\"], tls: true, sni: backend.internal, ca_file: {ca_path}}}
routes:
  - {{name: good, match: {{path_prefix: /good}}, upstream: good, auth: public}}
  - {{name: wrong-name, match: {{path_prefix: /wrong}}, upstream: wrong-name, auth: public}}
  - {{name: system-roots, match: {{path_prefix: /system}}, upstream: system-roots, auth: public}}
  - {{name: insecure, match: {{path_prefix: /insecure}}, upstream: insecure, auth: public}}
  - {{name: mtls, match: {{path_prefix: /mtls}}, upstream: mtls, auth: public}}
  - {{name: mtls-without, match: {{path_prefix: /nocert}}, upstream: mtls-without, auth: public}}
",
        p = plain_addr,
        m = mtls_addr,
        cc = yaml_path(&client.cert),
        ck = yaml_path(&client.key),
    );
    let gateway = Gateway::start(&config).await;
    let get = |path: &str| {
        let url = gateway.url(path);
        async move {
            let r = reqwest::get(url).await.expect("a response");
            (r.status().as_u16(), r.text().await.unwrap_or_default())
        }
    };
    let (status, body) = get("/good").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("sni=backend.internal"), "{body}");
    let (status, _) = get("/wrong").await;
    assert_eq!(status, 502, "a certificate for another name is refused");
    let (status, _) = get("/system").await;
    assert_eq!(status, 502, "a private CA is not among the system's roots");
    let (status, body) = get("/insecure").await;
    assert_eq!(
        status, 200,
        "only the loudly named switch skips verification: {body}"
    );
    let (status, body) = get("/mtls").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("client=CN=client"), "{body}");
    let (status, _) = get("/nocert").await;
    assert_eq!(status, 400, "nginx refuses a missing client certificate");
    assert!(gateway.stderr().contains("tls_insecure_skip_verify"));
}

#[test]
fn bad_tls_material_is_a_config_error_naming_the_file_and_key() {
    let ca = TestCa::new("check-ca");
    let good = ca.issue("good", &["good.test"], 1, false);
    let other = ca.issue("other", &["other.test"], 1, false);
    let expired = ca.issue("expired", &["old.test"], 0, false);
    let cases = [
        (
            format!(
                "{{address: \"127.0.0.1:8443\", cert: \"/nonexistent/cert.pem\", key: {}}}",
                yaml_path(&good.key)
            ),
            "server.listen[0].cert",
            "cannot read",
        ),
        (
            format!(
                "{{address: \"127.0.0.1:8443\", cert: {}, key: {}}}",
                yaml_path(&expired.cert),
                yaml_path(&expired.key)
            ),
            "server.listen[0].cert",
            "expired",
        ),
        (
            format!(
                "{{address: \"127.0.0.1:8443\", cert: {}, key: {}}}",
                yaml_path(&good.cert),
                yaml_path(&other.key)
            ),
            "server.listen[0].cert",
            "does not fit",
        ),
        (
            format!(
                "{{address: \"127.0.0.1:8443\", cert: {}}}",
                yaml_path(&good.cert)
            ),
            "server.listen[0]",
            "needs both `cert` and `key`",
        ),
    ];
    for (listener, key, message) in cases {
        let yaml = format!(
            "server:\n  listen:\n    - {listener}\n  admin: \"127.0.0.1:19090\"\nupstreams:\n  app: {{targets: [\"127.0.0.1:9\"]}}\nroutes:\n  - {{name: app, upstream: app, auth: public}}\n"
        );
        let (code, out) = crate::support::check(&yaml);
        assert_eq!(code, 1, "{out}");
        assert!(
            out.contains("FILE:3:") && out.contains(key) && out.contains(message),
            "expected `{key}` and `{message}` at line 3: {out}"
        );
    }
    let upstream = "server:\n  listen: [\"127.0.0.1:8080\"]\n  admin: \"127.0.0.1:19090\"\nupstreams:\n  app: {targets: [\"127.0.0.1:9\"], tls: true}\nroutes:\n  - {name: app, upstream: app, auth: public}\n";
    let (code, out) = crate::support::check(upstream);
    assert_eq!(code, 1);
    assert!(
        out.contains("upstreams.app.sni") && out.contains("needs `sni`"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookies_are_secure_and_host_prefixed_over_tls_even_with_the_dev_setting() {
    let ca = TestCa::new("cookie-ca");
    let leaf = ca.issue("app", &["app.test"], 1, false);
    let backend = EchoBackend::start("app").await;
    let tls = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let listeners = format!(
        "    - {{address: \"{tls}\", cert: {}, key: {}}}\n",
        yaml_path(&leaf.cert),
        yaml_path(&leaf.key)
    );
    // A plain OAuth provider: the redirect to sign in needs no call to it.
    let gateway = Gateway::start_with(
        ServerOptions {
            extra_listeners: listeners,
            ..ServerOptions::default()
        },
        &format!(
            "upstreams:\n  app: {{targets: [\"{}\"]}}\nproviders:\n  hub:\n    authorization_endpoint: \"https://hub.test/authorize\"\n    token_endpoint: \"https://hub.test/token\"\n    userinfo_endpoint: \"https://hub.test/user\"\n    client_id: portcullis\nsessions:\n  secret: \"{}\"\n  dev_insecure_cookies: true\nroutes:\n  - {{name: app, upstream: app, auth: session, provider: hub}}\n",
            backend.addr(),
            crate::session::secret(5)
        ),
    )
    .await;
    let navigation = [
        ("accept", "text/html"),
        ("sec-fetch-mode", "navigate"),
        ("sec-fetch-dest", "document"),
    ];
    let pem = std::fs::read(ca.cert()).expect("CA");
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).expect("PEM"))
        .resolve("app.test", tls)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let cookie_of = |r: &reqwest::Response| {
        r.headers()
            .get("set-cookie")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let mut over_tls = client.get("https://app.test/page");
    let mut plain = client.get(gateway.url("/page"));
    for (k, v) in navigation {
        over_tls = over_tls.header(k, v);
        plain = plain.header(k, v);
    }
    let r = over_tls.send().await.expect("TLS");
    assert_eq!(r.status(), 302);
    let location = r
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(
        location.contains("redirect_uri=https%3A%2F%2Fapp.test"),
        "the redirect URI follows the listener: {location}"
    );
    let cookie = cookie_of(&r);
    assert!(cookie.starts_with("__Host-portcullis_s_"), "{cookie}");
    assert!(cookie.contains("; Secure"), "{cookie}");
    let r = plain.send().await.expect("plain");
    assert_eq!(r.status(), 302);
    let cookie = cookie_of(&r);
    assert!(
        cookie.starts_with("portcullis_s_"),
        "the dev setting on plain HTTP: {cookie}"
    );
    assert!(!cookie.contains("Secure"), "{cookie}");
}

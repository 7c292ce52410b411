//! Forward-auth (`/oauth2/auth`) behind a real nginx `auth_request`: nginx asks the gateway about
//! each request, passes the identity headers it answers to the app, and sends a 401 to sign-in.

use std::net::SocketAddr;
use std::time::Duration;

use super::BROWSER_HOST;
use crate::support::browser::Browser;
use crate::support::idp::{GATEWAY, Idp, IdpOptions, jwt_parts};
use crate::support::nginx::Nginx;
use crate::support::raw::{raw_request, request};
use crate::support::{EchoBackend, Gateway, ServerOptions, free_port};

/// nginx in front of `app`, asking `gateway` about every request.
async fn nginx(port: u16, gateway: SocketAddr, app: SocketAddr) -> (Nginx, SocketAddr) {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let servers = format!(
        r#"  server {{
    listen {addr};
    location = /oauth2/auth {{
      internal;
      proxy_pass http://{gateway};
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";
      proxy_set_header Host $http_host;
      proxy_set_header X-Original-URI $request_uri;
      proxy_set_header X-Forwarded-Host $http_host;
      proxy_set_header X-Forwarded-Method $request_method;
    }}
    location /oauth2/ {{
      proxy_pass http://{gateway};
      proxy_set_header Host $http_host;
    }}
    location / {{
      auth_request /oauth2/auth;
      auth_request_set $user $upstream_http_x_forwarded_user;
      auth_request_set $email $upstream_http_x_forwarded_email;
      auth_request_set $cookie $upstream_http_set_cookie;
      auth_request_set $id_token $upstream_http_authorization;
      proxy_set_header Authorization $id_token;
      proxy_set_header X-Forwarded-User $user;
      proxy_set_header X-Forwarded-Email $email;
      add_header Set-Cookie $cookie;
      proxy_pass http://{app};
      error_page 401 = @signin;
    }}
    location @signin {{
      return 302 /oauth2/start?rd=$request_uri;
    }}
  }}"#
    );
    (Nginx::start(&servers, addr).await, addr)
}

/// The session route the forward-auth questions are judged by.
const ROUTES: &str = "  - name: app
    match: {path_prefix: /}
    upstream: app
    auth: session
    provider: corp
    allow:
      - {email_domain: corp.example}
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_auth_request_signs_in_and_passes_the_identity() {
    let app = EchoBackend::start("behind-nginx").await;
    let unused = EchoBackend::start("gateway-upstream").await;
    let nginx_port = free_port();
    let origin = format!("{BROWSER_HOST}:{nginx_port}");
    let idp = Idp::start(IdpOptions {
        redirect_uris: vec![format!("http://{origin}/oauth2/callback")],
        ..IdpOptions::default()
    })
    .await;
    let gateway = Gateway::start_with(
        ServerOptions {
            trusted_proxies: vec!["127.0.0.1/32".into()],
            ..ServerOptions::default()
        },
        // The ID token as oauth2-proxy's --set-authorization-header sends it.
        &super::config(idp.issuer(), &unused, 7, "", ROUTES).replacen(
            "identity:\n",
            "identity:\n  id_token: Authorization\n",
            1,
        ),
    )
    .await;
    let (_nginx, nginx_addr) = nginx(nginx_port, gateway.addr(), app.addr()).await;

    // Unauthenticated: nginx turns the gateway's 401 into the sign-in redirect; a spoofed
    // identity header never reaches the app.
    let r = raw_request(
        nginx_addr,
        &request(
            "GET",
            "/page?x=1",
            Some(&origin),
            &[("X-Forwarded-User", "mallory")],
        ),
    )
    .await;
    assert_eq!(r.status, 302, "{}", r.text());
    assert!(
        r.header("location")
            .is_some_and(|l| l.ends_with("/oauth2/start?rd=/page?x=1")),
        "{:?}",
        r.header("location")
    );
    assert_eq!(app.count(), 0);
    let refused = gateway
        .stderr()
        .lines()
        .find(|l| l.contains("request refused"))
        .map(str::to_owned)
        .unwrap_or_else(|| panic!("the 401 is logged:\n{}", gateway.stderr()));
    assert!(
        refused.contains("route=app ") && refused.contains("status=401"),
        "{refused}"
    );

    // A real browser through nginx: sign in, land on the page, the app sees who.
    let browser = Browser::start().await;
    let page = format!("http://{origin}/page?x=1");
    browser.goto(&page).await;
    let at = browser.current_url().await;
    assert!(at.starts_with(idp.issuer()), "{at}");
    browser.submit_idp_login("alice").await;
    browser
        .wait_for_url_prefix(&page, Duration::from_secs(15))
        .await;
    let seen = app.seen();
    let last = seen.last().expect("the app got the request");
    assert_eq!(last.values("x-forwarded-user"), vec!["alice"]);
    assert_eq!(last.values("x-forwarded-email"), vec!["alice@corp.example"]);
    // The session's ID token, from the provider, for alice.
    let authorization = last.values("authorization");
    assert_eq!(authorization.len(), 1, "{authorization:?}");
    let id_token = authorization[0]
        .strip_prefix("Bearer ")
        .unwrap_or_else(|| panic!("Bearer <id token>: {}", authorization[0]));
    let (_, claims) = jwt_parts(id_token);
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["aud"], GATEWAY);
    assert_eq!(claims["iss"], idp.issuer());
    browser.close().await;
    assert_eq!(unused.count(), 0, "nginx, not the gateway, proxies the app");

    // The gateway believes X-Original-URI only from trusted proxies.
    let untrusted = Gateway::start(&super::config(idp.issuer(), &unused, 7, "", ROUTES)).await;
    let direct = raw_request(
        untrusted.addr(),
        &request(
            "GET",
            "/oauth2/auth",
            Some("app.test"),
            &[("X-Original-URI", "/page")],
        ),
    )
    .await;
    assert_eq!(direct.status, 400, "{}", direct.text());
}

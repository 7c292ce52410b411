//! How long does it take to find the route of a request among 1,000 routes?
//!
//! The table mixes the shapes real configs have: 400 exact hosts with a few paths each, 100
//! wildcard hosts, and 100 host-less path prefixes. Lookups hit the first, the last and no route,
//! plus admission as the proxy runs it (host header, path normalisation, lookup).

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use http::{Method, Request};
use portcullis::config;
use portcullis::routing::admit;
use portcullis::snapshot::Snapshot;

fn config_with_1000_routes() -> String {
    let mut yaml = String::from(
        "server: {listen: [\"127.0.0.1:8080\"], admin: \"127.0.0.1:9090\"}\n\
         upstreams: {app: {targets: [\"127.0.0.1:9001\"]}}\nroutes:\n",
    );
    let mut n = 0;
    let mut route = |host: Option<String>, path: &str| {
        let host = host.map(|h| format!("host: \"{h}\", ")).unwrap_or_default();
        yaml.push_str(&format!(
            "  - {{name: r{n}, match: {{{host}path_prefix: \"{path}\"}}, upstream: app, auth: public}}\n"
        ));
        n += 1;
    };
    for h in 0..400 {
        route(Some(format!("app{h}.example.com")), "/api");
        route(Some(format!("app{h}.example.com")), "/");
    }
    for h in 0..100 {
        route(Some(format!("*.tenant{h}.example.net")), "/");
    }
    for p in 0..100 {
        route(None, &format!("/static{p}/"));
    }
    yaml
}

fn bench(c: &mut Criterion) {
    let yaml = config_with_1000_routes();
    let cfg = config::load_str(&yaml, "bench.yaml").expect("the bench config is valid");
    assert_eq!(cfg.routes.len(), 1000);
    let snap = Snapshot::build(cfg, &portcullis::token::KeyRegistry::default());
    let router = &snap.router;
    let get = Method::GET;

    let mut group = c.benchmark_group("route_1000");
    group.bench_function("exact_host_first", |b| {
        b.iter(|| {
            router.resolve(
                &get,
                black_box("app0.example.com"),
                black_box("/api/orders"),
            )
        })
    });
    group.bench_function("exact_host_last", |b| {
        b.iter(|| router.resolve(&get, black_box("app399.example.com"), black_box("/x")))
    });
    group.bench_function("wildcard_host", |b| {
        b.iter(|| router.resolve(&get, black_box("a.b.tenant99.example.net"), black_box("/x")))
    });
    group.bench_function("hostless_prefix_last", |b| {
        b.iter(|| router.resolve(&get, black_box("other.test"), black_box("/static99/app.js")))
    });
    group.bench_function("no_match", |b| {
        b.iter(|| router.resolve(&get, black_box("other.test"), black_box("/nothing")))
    });
    group.finish();

    let (normal, _) = Request::get("/api/orders?id=7")
        .header("host", "app399.example.com")
        .body(())
        .expect("valid request")
        .into_parts();
    let (dotted, _) = Request::get("/api/./x/../orders//7")
        .header("host", "App399.Example.com:8080")
        .body(())
        .expect("valid request")
        .into_parts();
    let mut group = c.benchmark_group("admit_1000");
    group.bench_function("normal_path", |b| {
        b.iter(|| admit(router, "/oauth2", black_box(&normal), b"/api/orders?id=7"))
    });
    group.bench_function("path_needing_normalisation", |b| {
        b.iter(|| {
            admit(
                router,
                "/oauth2",
                black_box(&dotted),
                b"/api/./x/../orders//7",
            )
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

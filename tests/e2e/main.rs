//! End-to-end tests of the `portcullis` binary.
//!
//! Every test starts its own gateway process (free ports, its own temporary directory) in front of
//! its own in-process echo backend, and talks to it over real sockets. The behaviour under test is
//! the contract in `.run/CONTRACT.md`: config shape, `check` output, status codes and JSON bodies,
//! path normalisation, header hygiene, metrics and reload.

mod attacks;
mod bearer;
mod browser_smoke;
mod config_errors;
mod core;
mod deadlines;
mod dns;
mod explain;
mod faults;
mod headers;
mod http2_abuse;
mod idp_smoke;
mod instances;
mod limits;
mod logs;
mod metrics;
mod paths;
mod protocols;
mod reload;
mod rewrite;
mod routing;
mod session;
mod support;
mod tls;
mod upstream;

//! Portcullis: an authorization gateway in front of unmodified web apps and APIs.
//!
//! One request, one direction:
//! 1. [`routing::admit`] reads the host, normalises the path once and finds the first route
//!    that takes the request (400 for an ambiguous path, 404 for none).
//! 2. [`upstream::UpstreamPool`] picks a backend target (round robin, passive health).
//! 3. [`identity::Hygiene`] decides which client headers to strip — hop-by-hop, identity in every
//!    spelling, untrusted forwarding headers, the gateway's cookies — before `proxy` sets its own.
//! 4. [`metrics`] and [`access_log`] record the outcome.
//!
//! [`config`] turns the YAML file into a typed [`config::Config`]; [`snapshot::Snapshot`] is
//! everything compiled from one load, swapped atomically on SIGHUP. Only [`proxy`] and the binary
//! speak pingora; everything else works on `http` types and can be tested without a server.

// The request loop's future (front, endpoints, forward) is deeper than the default allows.
#![recursion_limit = "256"]

pub mod access_log;
pub mod assertion;
pub mod config;
pub mod identity;
pub mod logging;
pub mod metrics;
pub mod oidc;
pub mod policy;
pub mod proxy;
pub mod routing;
pub mod session;
pub mod signin;
pub mod snapshot;
pub mod tls;
pub mod token;
pub mod upstream;
pub mod web;

//! Talking to OpenID Connect / OAuth 2.0 providers: the HTTP client and discovery.
//!
//! The sign-in flow (login, callback, logout) joins this module with the browser capability.

pub mod discovery;
pub mod http;

pub use discovery::{Metadata, discover};

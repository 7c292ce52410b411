//! Identity: who a request speaks for, and the headers that carry it upstream.
//!
//! [`headers`] strips every identity and forwarding header a client tried to send; [`claims`]
//! turns an authenticated identity's claims into the headers the gateway sets in their place.

pub mod claims;
pub mod headers;

pub use headers::{CookieAction, HeaderPlan, Hygiene, StripReason};

//! Identity: who a request speaks for, and the headers that carry it upstream.
//!
//! This build has no authentication yet, so the only part in use is [`headers`]: the hygiene
//! that strips every identity and forwarding header a client tried to send.

pub mod headers;

pub use headers::{CookieAction, HeaderPlan, Hygiene, StripReason};

//! Browser-facing decisions that need no server: how to answer an unauthenticated request
//! ([`navigation`]) and where it is safe to send the browser after sign-in ([`return_to`]).
//! Both work on plain `http` types and strings, so they are tested without a proxy.

pub mod navigation;
pub mod return_to;

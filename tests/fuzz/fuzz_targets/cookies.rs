//! Cookie decoding: `session::Cookies::read` (the sealed, chunked session) and `pending` (the
//! sign-ins in flight) on arbitrary `Cookie` headers never panic, and never open a session from
//! bytes the fuzzer made up (it does not know the key).
//!
//! The input is split at `\n` into several `Cookie` header lines.

#![no_main]

mod common;

use std::sync::LazyLock;

use http::{HeaderMap, HeaderValue, header};
use libfuzzer_sys::fuzz_target;
use portcullis::session::{Cookies, request_cookies};

static COOKIES: LazyLock<Cookies> = LazyLock::new(|| {
    let sessions = common::FIXED
        .sessions
        .as_ref()
        .expect("the fixed config has sessions");
    Cookies::new(sessions)
});

fuzz_target!(|data: &[u8]| {
    let mut headers = HeaderMap::new();
    for line in data.split(|b| *b == b'\n').take(8) {
        if let Ok(value) = HeaderValue::from_bytes(line) {
            headers.append(header::COOKIE, value);
        }
    }
    let _ = request_cookies(&headers).count();
    let read = COOKIES.read(&headers);
    assert!(
        read.session.is_none() && read.ticket.is_none(),
        "a session opened from made-up bytes"
    );
    assert!(
        read.present < 16,
        "chunk bits beyond the four chunks: {}",
        read.present
    );
    for (_, pending) in COOKIES.pending(&headers) {
        assert!(
            pending.is_none(),
            "a pending sign-in opened from made-up bytes"
        );
    }
});

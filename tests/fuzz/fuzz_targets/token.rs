//! Token parsing: `token::header::read` (the JOSE header, before any key is touched) and
//! `token::extract_bearer` (the `Authorization` header and the query) on arbitrary input.
//!
//! Properties: `read` only ever accepts an allowed asymmetric algorithm and a `kid` of at most
//! 256 bytes; `extract_bearer` only returns a non-empty RFC 6750 b64token found in the header,
//! and refuses any query naming `access_token`.

#![no_main]

mod common;

use http::{HeaderMap, HeaderValue, header};
use libfuzzer_sys::fuzz_target;
use portcullis::token::algorithms::DEFAULT;
use portcullis::token::header::{TOKEN_TYPES, is_compact_jws, looks_like_jwt, read};
use portcullis::token::{ExtractError, extract_bearer};

fuzz_target!(|data: &[u8]| {
    let (head, query) = common::split(data, b'\n');
    if let Ok(token) = std::str::from_utf8(head) {
        let _ = looks_like_jwt(token);
        if is_compact_jws(token) {
            assert_eq!(token.split('.').count(), 3);
        }
        if let Ok(jose) = read(token, &DEFAULT, TOKEN_TYPES) {
            assert!(DEFAULT.contains(&jose.alg), "alg {:?} accepted", jose.alg);
            assert!(jose.kid.as_ref().is_none_or(|k| k.len() <= 256));
        }
    }
    let mut headers = HeaderMap::new();
    if let Ok(value) = HeaderValue::from_bytes(head) {
        headers.insert(header::AUTHORIZATION, value);
    }
    let query = std::str::from_utf8(query).ok().filter(|q| !q.is_empty());
    match extract_bearer(&headers, query) {
        Ok(Some(token)) => {
            assert!(!token.is_empty());
            assert!(
                token
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-._~+/=".contains(&b)),
                "not a b64token: {token:?}"
            );
            let value = headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            assert!(value.contains(token));
        }
        Ok(None) | Err(ExtractError::Duplicate | ExtractError::Malformed) => {}
        Err(ExtractError::InQuery) => {
            assert!(query.is_some_and(|q| q.contains("access_token")));
        }
    }
    if query.is_some_and(|q| {
        q.split('&')
            .any(|p| p.split('=').next() == Some("access_token"))
    }) {
        assert_eq!(extract_bearer(&headers, query), Err(ExtractError::InQuery));
    }
});

//! The only place the gateway writes a response of its own: JSON errors.
//!
//! Bodies name a fixed error code and message; they never echo request data, upstream
//! addresses or internal error text (those go to the log).

use bytes::Bytes;
use pingora::http::ResponseHeader;
use pingora::prelude::*;

/// Writes a JSON error response and ends it.
pub async fn json_error(
    session: &mut Session,
    status: u16,
    code: &str,
    message: &str,
) -> Result<()> {
    let body = Bytes::from(serde_json::json!({"error": code, "message": message}).to_string());
    let mut resp = ResponseHeader::build(status, Some(3))?;
    resp.insert_header("content-type", "application/json")?;
    resp.insert_header("content-length", body.len().to_string())?;
    resp.insert_header("cache-control", "no-store")?;
    session.write_response_header(Box::new(resp), false).await?;
    session.write_response_body(Some(body), true).await?;
    Ok(())
}

/// Writes a refusal of a protected route: JSON, with `WWW-Authenticate` when it has one.
pub async fn auth_error(session: &mut Session, denied: &super::auth::Denied) -> Result<()> {
    let body = Bytes::from(
        serde_json::json!({"error": denied.code, "message": denied.description}).to_string(),
    );
    let mut resp = ResponseHeader::build(denied.status, Some(4))?;
    resp.insert_header("content-type", "application/json")?;
    resp.insert_header("content-length", body.len().to_string())?;
    resp.insert_header("cache-control", "no-store")?;
    if let Some(challenge) = &denied.challenge {
        resp.insert_header("www-authenticate", challenge.as_str())?;
    }
    session.write_response_header(Box::new(resp), false).await?;
    session.write_response_body(Some(body), true).await?;
    Ok(())
}

/// The JSON error for a status the proxy chose after an upstream or protocol failure.
pub fn failure_body(status: u16) -> (&'static str, &'static str) {
    match status {
        502 => ("bad_gateway", "upstream unavailable"),
        503 => ("service_unavailable", "service unavailable"),
        504 => ("gateway_timeout", "upstream timed out"),
        400 => ("bad_request", "malformed request"),
        _ => ("internal_error", "internal error"),
    }
}

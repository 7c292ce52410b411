//! A raw HTTP/1.1 client: the test writes the request bytes itself, so paths, header spellings and
//! framing reach the gateway exactly as written (an HTTP library would normalise them).

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// One parsed response.
#[derive(Debug, Clone)]
pub struct RawResponse {
    /// The status code.
    pub status: u16,
    /// Headers in order, names as sent.
    pub headers: Vec<(String, String)>,
    /// The body, de-chunked.
    pub body: Vec<u8>,
}

impl RawResponse {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON; panics naming `context` when it is not JSON.
    pub fn json(&self, context: &str) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "{context}: body is not JSON ({e}): status {} body {:?}",
                self.status,
                self.text()
            )
        })
    }
}

/// Everything read from one connection.
#[derive(Debug)]
pub struct RawExchange {
    /// The complete responses, in order.
    pub responses: Vec<RawResponse>,
    /// Whether the gateway closed the connection (EOF or reset) before the deadline.
    pub closed: bool,
    /// Every byte read.
    pub raw: Vec<u8>,
}

/// Sends `request` on a new connection and reads one response; panics when none arrives within
/// 15 s.
pub async fn raw_request(addr: SocketAddr, request: &[u8]) -> RawResponse {
    let exchange = exchange(addr, request, Duration::from_secs(15), Some(1)).await;
    exchange.responses.into_iter().next().unwrap_or_else(|| {
        panic!(
            "no complete response to {:?}; read {:?}",
            String::from_utf8_lossy(request),
            String::from_utf8_lossy(&exchange.raw)
        )
    })
}

/// Sends `request` on a new connection and reads until the gateway closes it or `wait` passes.
pub async fn raw_exchange(addr: SocketAddr, request: &[u8], wait: Duration) -> RawExchange {
    exchange(addr, request, wait, None).await
}

async fn exchange(
    addr: SocketAddr,
    request: &[u8],
    wait: Duration,
    stop_after: Option<usize>,
) -> RawExchange {
    let mut stream = TcpStream::connect(addr)
        .await
        .unwrap_or_else(|e| panic!("connecting to the gateway at {addr}: {e}"));
    stream
        .write_all(request)
        .await
        .unwrap_or_else(|e| panic!("writing the request to {addr}: {e}"));
    let deadline = Instant::now() + wait;
    let mut raw = Vec::new();
    let mut closed = false;
    let mut chunk = [0u8; 16 * 1024];
    loop {
        if let Some(n) = stop_after
            && parse_responses(&raw, false).len() >= n
        {
            break;
        }
        match tokio::time::timeout_at(deadline, stream.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                closed = true;
                break;
            }
            Ok(Ok(n)) => raw.extend_from_slice(&chunk[..n]),
            Err(_) => break,
        }
    }
    let responses = parse_responses(&raw, closed);
    RawExchange {
        responses,
        closed,
        raw,
    }
}

/// Every complete response in `buf`; with `eof`, a final response without length ends at the end.
fn parse_responses(buf: &[u8], eof: bool) -> Vec<RawResponse> {
    let mut out = Vec::new();
    let mut rest = buf;
    while let Some((response, used)) = parse_one(rest, eof) {
        out.push(response);
        rest = &rest[used..];
    }
    out
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn parse_one(buf: &[u8], eof: bool) -> Option<(RawResponse, usize)> {
    let head_end = find(buf, b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next()?;
    let status: u16 = status_line.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    let body_start = head_end + 4;
    let rest = &buf[body_start..];
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    let response = |body: Vec<u8>| RawResponse {
        status,
        headers: headers.clone(),
        body,
    };
    if (100..200).contains(&status) || status == 204 || status == 304 {
        return Some((response(Vec::new()), body_start));
    }
    if header("transfer-encoding").is_some_and(|te| te.to_ascii_lowercase().contains("chunked")) {
        let (body, used) = dechunk(rest)?;
        return Some((response(body), body_start + used));
    }
    if let Some(len) = header("content-length") {
        let len: usize = len.parse().ok()?;
        if rest.len() < len {
            return None;
        }
        return Some((response(rest[..len].to_vec()), body_start + len));
    }
    if eof {
        return Some((response(rest.to_vec()), buf.len()));
    }
    None
}

/// De-chunks a chunked body; `None` while incomplete.
fn dechunk(buf: &[u8]) -> Option<(Vec<u8>, usize)> {
    let mut body = Vec::new();
    let mut at = 0;
    loop {
        let line_end = at + find(&buf[at..], b"\r\n")?;
        let size_text = String::from_utf8_lossy(&buf[at..line_end]).into_owned();
        let size_text = size_text.split(';').next().unwrap_or("").trim().to_string();
        let size = usize::from_str_radix(&size_text, 16).ok()?;
        at = line_end + 2;
        if size == 0 {
            // Trailers, then an empty line.
            loop {
                let end = at + find(&buf[at..], b"\r\n")?;
                let empty = end == at;
                at = end + 2;
                if empty {
                    return Some((body, at));
                }
            }
        }
        if buf.len() < at + size + 2 {
            return None;
        }
        body.extend_from_slice(&buf[at..at + size]);
        at += size + 2;
    }
}

/// `GET target` with `Host: host` (none when `host` is `None`) and extra header lines.
pub fn request(
    method: &str,
    target: &str,
    host: Option<&str>,
    headers: &[(&str, &str)],
) -> Vec<u8> {
    let mut text = format!("{method} {target} HTTP/1.1\r\n");
    if let Some(host) = host {
        text.push_str(&format!("Host: {host}\r\n"));
    }
    for (name, value) in headers {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    if matches!(method, "POST" | "PUT" | "PATCH") {
        text.push_str("Content-Length: 0\r\n");
    }
    text.push_str("\r\n");
    text.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_pipelined_responses() {
        let buf = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nokHTTP/1.1 400 Bad Request\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
        let got = parse_responses(buf, false);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].body, b"ok");
        assert_eq!(got[1].status, 400);
        assert_eq!(got[1].body, b"abc");
    }
}

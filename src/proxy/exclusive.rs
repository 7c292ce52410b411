//! One process per address: a start refuses every listener address another process serves.
//!
//! The public listeners are bound once per shard with `SO_REUSEPORT`, which also lets a second
//! process of the same user bind them; the kernel would then spread connections over both, and
//! a second instance with another config would answer half of the first one's requests. So before
//! anything is bound, each address is claimed twice:
//! 1. an abstract Unix socket named after the address, held for the life of the process: two
//!    instances starting at the same moment cannot both hold it (the kernel releases it when the
//!    process ends, so nothing goes stale);
//! 2. a probe bind of the address *without* `SO_REUSEPORT`, dropped at once: it fails while any
//!    socket listens there, whatever process (an upgraded Portcullis, another server) holds it.
//!
//! A graceful upgrade (`run --upgrade`) takes its sockets over from the running instance and
//! claims nothing.

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr as UnixAddr, UnixListener};

/// Why an address cannot be claimed.
#[derive(Debug, thiserror::Error)]
pub enum ClaimError {
    /// Another process listens there (or is starting to).
    #[error("address in use: {0}")]
    InUse(SocketAddr),
    /// The address cannot be bound for another reason (not local, no permission).
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// What the kernel said.
        source: io::Error,
    },
}

/// The claims of one process; dropping it releases them (only at exit, in practice).
#[derive(Debug)]
pub struct Claims {
    _held: Vec<UnixListener>,
}

/// Claims every address in `addrs` (duplicates are claimed once).
pub fn claim(addrs: &[SocketAddr]) -> Result<Claims, ClaimError> {
    let mut seen = Vec::with_capacity(addrs.len());
    let mut held = Vec::with_capacity(addrs.len());
    for &addr in addrs {
        if seen.contains(&addr) {
            continue;
        }
        seen.push(addr);
        held.push(lock(addr)?);
        probe(addr)?;
    }
    Ok(Claims { _held: held })
}

/// The abstract socket standing for `addr` (network-namespace scoped, like the address).
fn lock(addr: SocketAddr) -> Result<UnixListener, ClaimError> {
    let name = format!("portcullis-listen:{addr}");
    let unix = UnixAddr::from_abstract_name(name.as_bytes())
        .map_err(|source| ClaimError::Bind { addr, source })?;
    UnixListener::bind_addr(&unix).map_err(|e| match e.kind() {
        io::ErrorKind::AddrInUse => ClaimError::InUse(addr),
        _ => ClaimError::Bind { addr, source: e },
    })
}

/// Binds `addr` without `SO_REUSEPORT` and lets it go again.
fn probe(addr: SocketAddr) -> Result<(), ClaimError> {
    match TcpListener::bind(addr) {
        Ok(listener) => {
            drop(listener);
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::AddrInUse => Err(ClaimError::InUse(addr)),
        Err(source) => Err(ClaimError::Bind { addr, source }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn free() -> SocketAddr {
        TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("binding port 0 works")
    }

    #[test]
    fn an_address_is_claimed_once_per_process_tree() {
        let addr = free();
        let first = claim(&[addr, addr]).expect("a free address can be claimed");
        assert!(matches!(claim(&[addr]), Err(ClaimError::InUse(a)) if a == addr));
        drop(first);
        claim(&[addr]).expect("released claims can be taken again");
    }

    #[test]
    fn an_address_another_socket_listens_on_is_refused() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding port 0 works");
        let addr = listener.local_addr().expect("bound");
        let err = claim(&[addr]).expect_err("a listening address is in use");
        assert_eq!(err.to_string(), format!("address in use: {addr}"));
    }

    #[test]
    fn an_address_that_is_not_local_is_a_bind_error() {
        let addr: SocketAddr = "192.0.2.1:8080".parse().expect("valid");
        assert!(matches!(claim(&[addr]), Err(ClaimError::Bind { .. })));
    }
}

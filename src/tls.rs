//! TLS material: listener certificates chosen by SNI (reloaded with the config), and the CA
//! bundles and client certificates of TLS upstreams.
//!
//! Certificates are read and checked when the config loads — unreadable files, a chain that does
//! not parse, a certificate that has expired or is not valid yet, or a key that does not match
//! are config errors, so a bad certificate never replaces a good one on reload. Each TLS
//! listener has one [`Resolver`] for the life of the process (the listening socket and its
//! rustls config are made once); a reload swaps the resolver's table, so new handshakes use the
//! new certificates and established connections are untouched.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, LazyLock, Mutex};

use arc_swap::ArcSwap;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::metrics;

/// A certificate and key ready to serve.
pub struct LoadedCert {
    /// The rustls form.
    pub certified: Arc<CertifiedKey>,
    /// The DNS names of the leaf (subject alternative names; the CN when there are none),
    /// lower-case; wildcards as `*.example.com`.
    pub names: Vec<String>,
    /// End of validity, Unix seconds.
    pub not_after: i64,
    /// The file it came from (for metrics and logs).
    pub file: String,
}

impl std::fmt::Debug for LoadedCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedCert")
            .field("names", &self.names)
            .field("not_after", &self.not_after)
            .field("file", &self.file)
            .finish_non_exhaustive()
    }
}

/// Reads a PEM certificate chain (leaf first).
pub fn read_chain(path: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("cannot read `{path}`: {e}"))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("`{path}` is not a PEM certificate chain: {e}"))?;
    if chain.is_empty() {
        return Err(format!("`{path}` holds no certificate"));
    }
    for (i, der) in chain.iter().enumerate() {
        X509Certificate::from_der(der.as_ref())
            .map_err(|e| format!("`{path}`: certificate {i} does not parse: {e}"))?;
    }
    Ok(chain)
}

/// Reads a PEM private key (PKCS#8, PKCS#1 or SEC1).
pub fn read_key(path: &str) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_file(path)
        .map_err(|e| format!("cannot read a private key from `{path}`: {e}"))
}

/// Loads and checks a certificate chain and its key at `now` (Unix seconds).
pub fn load_pair(cert: &str, key: &str, now: i64) -> Result<LoadedCert, String> {
    let chain = read_chain(cert)?;
    let (_, leaf) =
        X509Certificate::from_der(chain[0].as_ref()).map_err(|e| format!("`{cert}`: {e}"))?;
    let validity = leaf.validity();
    let not_before = validity.not_before.timestamp();
    let not_after = validity.not_after.timestamp();
    if not_after <= now {
        return Err(format!(
            "the certificate in `{cert}` expired at {} — renew it",
            validity.not_after
        ));
    }
    if not_before > now + 300 {
        return Err(format!(
            "the certificate in `{cert}` is not valid before {}",
            validity.not_before
        ));
    }
    let mut names: Vec<String> = leaf
        .subject_alternative_name()
        .ok()
        .flatten()
        .map(|san| {
            san.value
                .general_names
                .iter()
                .filter_map(|n| match n {
                    GeneralName::DNSName(d) => Some(d.to_ascii_lowercase()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    if names.is_empty()
        && let Some(cn) = leaf.subject().iter_common_name().next()
        && let Ok(cn) = cn.as_str()
    {
        names.push(cn.to_ascii_lowercase());
    }
    let key = read_key(key)?;
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    let certified = CertifiedKey::from_der(chain, key, &provider)
        .map_err(|e| format!("the key does not fit the certificate in `{cert}`: {e}"))?;
    Ok(LoadedCert {
        certified: Arc::new(certified),
        names,
        not_after,
        file: cert.to_owned(),
    })
}

/// Reads CA certificates (PEM) as DER, each checked to parse.
pub fn load_ca(path: &str) -> Result<Vec<Vec<u8>>, String> {
    Ok(read_chain(path)?
        .into_iter()
        .map(|c| c.as_ref().to_vec())
        .collect())
}

/// Reads a client certificate chain and key (mTLS towards an upstream) as DER.
pub fn load_client(cert: &str, key: &str) -> Result<(Vec<Vec<u8>>, Vec<u8>), String> {
    let loaded = load_pair(cert, key, crate::token::unix_now() as i64)?;
    let chain = loaded
        .certified
        .cert
        .iter()
        .map(|c| c.as_ref().to_vec())
        .collect();
    let key = read_key(key)?;
    Ok((chain, key.secret_der().to_vec()))
}

/// Certificates of one listener, by name.
#[derive(Debug)]
pub struct CertTable {
    exact: HashMap<String, Arc<CertifiedKey>>,
    wildcard: HashMap<String, Arc<CertifiedKey>>,
    default: Arc<CertifiedKey>,
}

impl CertTable {
    /// The table of `certs`; the first is the default. Earlier certificates win a name.
    pub fn new(certs: &[Arc<LoadedCert>]) -> Option<Self> {
        let default = certs.first()?.certified.clone();
        let mut exact = HashMap::new();
        let mut wildcard = HashMap::new();
        for c in certs {
            for name in &c.names {
                match name.strip_prefix("*.") {
                    Some(parent) => {
                        wildcard
                            .entry(parent.to_owned())
                            .or_insert_with(|| c.certified.clone());
                    }
                    None => {
                        exact
                            .entry(name.clone())
                            .or_insert_with(|| c.certified.clone());
                    }
                }
            }
        }
        Some(Self {
            exact,
            wildcard,
            default,
        })
    }

    /// The certificate for SNI `name`: exact, then a wildcard one label up, then the default.
    pub fn pick(&self, name: Option<&str>) -> Arc<CertifiedKey> {
        let Some(name) = name else {
            return self.default.clone();
        };
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        if let Some(c) = self.exact.get(&name) {
            return c.clone();
        }
        if let Some((_, parent)) = name.split_once('.')
            && let Some(c) = self.wildcard.get(parent)
        {
            return c.clone();
        }
        self.default.clone()
    }
}

/// The certificate resolver of one listener; its table is swapped on reload.
#[derive(Debug)]
pub struct Resolver {
    table: ArcSwap<CertTable>,
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.table.load().pick(hello.server_name()))
    }
}

static RESOLVERS: LazyLock<Mutex<HashMap<SocketAddr, Arc<Resolver>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// The resolver of the TLS listener on `address`, serving `certs` (created once per listener;
/// later calls swap its certificates).
pub fn resolver(address: SocketAddr, certs: &[Arc<LoadedCert>]) -> Option<Arc<Resolver>> {
    let table = Arc::new(CertTable::new(certs)?);
    let mut resolvers = RESOLVERS.lock().ok()?;
    let resolver = resolvers
        .entry(address)
        .or_insert_with(|| {
            Arc::new(Resolver {
                table: ArcSwap::new(table.clone()),
            })
        })
        .clone();
    resolver.table.store(table);
    publish_expiry(address, certs);
    Some(resolver)
}

/// Records the certificates' ends of validity for `portcullis_tls_certificate_expiry_days`.
fn publish_expiry(address: SocketAddr, certs: &[Arc<LoadedCert>]) {
    let listener = address.to_string();
    if let Ok(mut all) = EXPIRIES.lock() {
        all.retain(|(l, _, _)| *l != listener);
        for c in certs {
            let name = c.names.first().cloned().unwrap_or_else(|| c.file.clone());
            all.push((listener.clone(), name, c.not_after));
        }
    }
}

static EXPIRIES: Mutex<Vec<(String, String, i64)>> = Mutex::new(Vec::new());

/// Sets the expiry gauges from the certificates in use (at each scrape).
pub fn update_expiry_metrics(now: i64) {
    if let Ok(all) = EXPIRIES.lock() {
        metrics::TLS_EXPIRY.reset();
        for (listener, name, not_after) in all.iter() {
            metrics::TLS_EXPIRY
                .with_label_values(&[listener, name])
                .set((not_after - now) as f64 / 86_400.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn certified(tag: u8) -> Arc<CertifiedKey> {
        // A distinguishable stand-in: the chain's bytes carry the tag; the key is never used.
        let provider = rustls::crypto::aws_lc_rs::default_provider();
        let key = rcgen_free_key(&provider);
        Arc::new(CertifiedKey::new(
            vec![CertificateDer::from(vec![tag])],
            key,
        ))
    }

    fn rcgen_free_key(
        provider: &rustls::crypto::CryptoProvider,
    ) -> Arc<dyn rustls::sign::SigningKey> {
        let pkcs8 = aws_lc_rs::signature::EcdsaKeyPair::generate(
            &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1_SIGNING,
        )
        .expect("a key")
        .to_pkcs8v1()
        .expect("pkcs8");
        provider
            .key_provider
            .load_private_key(PrivateKeyDer::Pkcs8(pkcs8.as_ref().to_vec().into()))
            .expect("loads")
    }

    fn loaded(tag: u8, names: &[&str]) -> Arc<LoadedCert> {
        Arc::new(LoadedCert {
            certified: certified(tag),
            names: names.iter().map(|n| n.to_string()).collect(),
            not_after: 0,
            file: String::new(),
        })
    }

    #[test]
    fn certificates_are_picked_by_exact_then_wildcard_then_default() {
        let table = CertTable::new(&[
            loaded(1, &["default.test"]),
            loaded(2, &["a.example.com", "b.example.com"]),
            loaded(3, &["*.example.com"]),
        ])
        .expect("a table");
        let tag = |name: Option<&str>| table.pick(name).cert[0].as_ref()[0];
        assert_eq!(tag(Some("a.example.com")), 2);
        assert_eq!(tag(Some("A.Example.COM.")), 2);
        assert_eq!(tag(Some("c.example.com")), 3);
        assert_eq!(tag(Some("x.c.example.com")), 1, "one label only");
        assert_eq!(tag(Some("example.com")), 1);
        assert_eq!(tag(Some("other.test")), 1);
        assert_eq!(tag(None), 1);
    }
}

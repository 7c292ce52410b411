//! A test PKI made at test time with the `openssl` command (installed by `tests/setup.sh`): a CA
//! and leaf certificates (EC P-256) for given DNS names, valid for a day, or already expired.

use std::path::{Path, PathBuf};
use std::process::Command;

use tempfile::TempDir;

/// A certificate authority in a temporary directory.
pub struct TestCa {
    dir: TempDir,
    serial: std::cell::Cell<u32>,
}

/// A leaf certificate's files.
#[derive(Debug, Clone)]
pub struct Leaf {
    /// Certificate (PEM).
    pub cert: PathBuf,
    /// Private key (PEM, PKCS#8).
    pub key: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl runs (tests/setup.sh installs it)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

const EC: [&str; 5] = [
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
];

impl TestCa {
    /// A new CA named `name`.
    pub fn new(name: &str) -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let subject = format!("/CN={name}");
        openssl(
            dir.path(),
            &[
                &["req", "-x509"][..],
                &EC,
                &[
                    "-keyout",
                    "ca.key",
                    "-out",
                    "ca.crt",
                    "-subj",
                    &subject,
                    "-days",
                    "2",
                    "-addext",
                    "basicConstraints=critical,CA:TRUE",
                    "-addext",
                    "keyUsage=critical,keyCertSign",
                ],
            ]
            .concat(),
        );
        Self {
            dir,
            serial: std::cell::Cell::new(0),
        }
    }

    /// The CA certificate (PEM).
    pub fn cert(&self) -> PathBuf {
        self.dir.path().join("ca.crt")
    }

    /// A server leaf for `names` (DNS names; `IP:` entries too), valid for `days` (0: expired
    /// at once). `client` makes it a client certificate instead.
    pub fn issue(&self, file: &str, names: &[&str], days: u32, client: bool) -> Leaf {
        let d = self.dir.path();
        self.serial.set(self.serial.get() + 1);
        let key = format!("{file}.key");
        let csr = format!("{file}.csr");
        let crt = format!("{file}.crt");
        let ext = format!("{file}.ext");
        let cn = format!("/CN={}", names.first().copied().unwrap_or("client"));
        openssl(
            d,
            &[
                &["req"][..],
                &EC,
                &["-keyout", &key, "-out", &csr, "-subj", &cn],
            ]
            .concat(),
        );
        let sans: Vec<String> = names
            .iter()
            .map(|n| {
                if n.starts_with("IP:") {
                    n.to_string()
                } else {
                    format!("DNS:{n}")
                }
            })
            .collect();
        let usage = if client { "clientAuth" } else { "serverAuth" };
        let mut text = format!("extendedKeyUsage={usage}\n");
        if !sans.is_empty() {
            text.push_str(&format!("subjectAltName={}\n", sans.join(",")));
        }
        std::fs::write(d.join(&ext), text).expect("ext file");
        let serial = format!("{}", 1000 + self.serial.get());
        openssl(
            d,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-set_serial",
                &serial,
                "-out",
                &crt,
                "-days",
                &days.to_string(),
                "-extfile",
                &ext,
            ],
        );
        Leaf {
            cert: d.join(crt),
            key: d.join(key),
        }
    }
}

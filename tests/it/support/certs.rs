//! A test certificate authority (openssl, from Debian's package) and the server certificates
//! it issues, for servers the tests run with TLS.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::postfix::{describe, run};

/// A CA: its certificate (what a client is given as its root) and key, in `dir`.
pub struct Ca {
    /// The CA certificate, PEM.
    pub cert: PathBuf,
    key: PathBuf,
    dir: PathBuf,
    name: String,
}

/// A server certificate and its key, PEM.
pub struct Issued {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Ca {
    /// A new CA called `name`, its files in `dir`.
    pub fn new(dir: &Path, name: &str) -> Ca {
        let ca = Ca {
            cert: dir.join(format!("{name}.pem")),
            key: dir.join(format!("{name}.key")),
            dir: dir.to_owned(),
            name: name.to_owned(),
        };
        let config = ca.config(
            &format!("mailops test CA {name}"),
            "basicConstraints = critical, CA:TRUE\nkeyUsage = critical, keyCertSign, cRLSign\n\
             subjectKeyIdentifier = hash\n",
        );
        openssl(
            Command::new("openssl")
                .args(["req", "-x509", "-days", "1", "-config"])
                .arg(&config)
                .args(key_args())
                .arg(&ca.key)
                .arg("-out")
                .arg(&ca.cert),
        );
        ca
    }

    /// A server certificate for `alt_names` (`subjectAltName`, e.g. `DNS:localhost`), signed
    /// by this CA.
    pub fn issue(&self, file: &str, alt_names: &str) -> Issued {
        let issued = Issued {
            cert: self.dir.join(format!("{file}.pem")),
            key: self.dir.join(format!("{file}.key")),
        };
        let config = self.config(
            file,
            &format!(
                "basicConstraints = critical, CA:FALSE\nkeyUsage = critical, digitalSignature\n\
                 extendedKeyUsage = serverAuth\nsubjectAltName = {alt_names}\n"
            ),
        );
        let request = self.dir.join(format!("{file}.csr"));
        openssl(
            Command::new("openssl")
                .args(["req", "-new", "-config"])
                .arg(&config)
                .args(key_args())
                .arg(&issued.key)
                .arg("-out")
                .arg(&request),
        );
        openssl(
            Command::new("openssl")
                .args(["x509", "-req", "-in"])
                .arg(&request)
                .arg("-CA")
                .arg(&self.cert)
                .arg("-CAkey")
                .arg(&self.key)
                .args([
                    "-set_serial",
                    "2",
                    "-days",
                    "1",
                    "-extensions",
                    "cert",
                    "-extfile",
                ])
                .arg(&config)
                .arg("-out")
                .arg(&issued.cert),
        );
        issued
    }

    /// An openssl config for a certificate called `cn` with extensions `extensions`.
    fn config(&self, cn: &str, extensions: &str) -> PathBuf {
        let file = self.dir.join(format!("{}-{cn}.cnf", self.name));
        let text = format!(
            "[req]\ndistinguished_name = dn\nprompt = no\nx509_extensions = cert\n\
             [dn]\nCN = {cn}\n[cert]\n{extensions}"
        );
        std::fs::write(&file, text).unwrap_or_else(|e| panic!("writing {}: {e}", file.display()));
        file
    }
}

/// A new P-256 key, unencrypted; `-keyout` comes next.
fn key_args() -> [&'static str; 6] {
    [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
    ]
}

/// Runs an openssl command, which must succeed.
fn openssl(command: &mut Command) {
    let out = run(command);
    assert!(out.status.success(), "{command:?}: {}", describe(&out));
}

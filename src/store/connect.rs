//! `[database] url`: where PostgreSQL is and how its TLS certificate is checked, with libpq's
//! `sslmode` and `sslrootcert` meanings (tokio-postgres knows neither `verify-ca`,
//! `verify-full` nor `sslrootcert`: they are taken out here and carried out with rustls).

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{ring, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio_postgres::config::SslMode as PgSslMode;
use tokio_postgres_rustls::MakeRustlsConnect;

use super::CONNECT_TIMEOUT;

/// libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// No TLS.
    Disable,
    /// TLS when the server offers it (libpq's default).
    Prefer,
    /// TLS or no connection.
    Require,
    /// TLS with a certificate issued by `sslrootcert`.
    VerifyCa,
    /// As `VerifyCa`, and the certificate names the host connected to.
    VerifyFull,
}

impl SslMode {
    /// Its libpq name.
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

impl FromStr for SslMode {
    type Err = String;

    fn from_str(s: &str) -> Result<SslMode, String> {
        Ok(match s {
            "disable" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            // libpq's `allow` tries without TLS first: nothing a monitoring store wants.
            _ => {
                return Err(format!(
                    "sslmode {s:?} is not one of disable, prefer, require, verify-ca, verify-full"
                ))
            }
        })
    }
}

/// A parsed database URL.
#[derive(Clone)]
pub struct Target {
    /// Hosts, ports, user, database and the rest, as tokio-postgres takes them.
    pub pg: tokio_postgres::Config,
    /// `sslmode` (default `prefer`).
    pub ssl_mode: SslMode,
    /// `sslrootcert`: the CA certificates (PEM) a server's certificate must chain to.
    pub root_cert: Option<PathBuf>,
    tls: MakeRustlsConnect,
}

impl Target {
    /// Parses a libpq-style URL (`postgres://…?sslmode=verify-full&sslrootcert=/path`) or
    /// `key=value` string, and reads its `sslrootcert`. `verify-ca` and `verify-full` need an
    /// `sslrootcert` (libpq would look in the home directory of whichever user runs it, which
    /// differs between mailops and Postfix); with one, `prefer` and `require` check the
    /// certificate's issuer too, as libpq does.
    pub fn parse(url: &str) -> Result<Target, String> {
        let (rest, ssl_mode, root_cert) =
            split_tls(url).map_err(|e| format!("not a PostgreSQL connection string: {e}"))?;
        let ssl_mode = match ssl_mode {
            Some(mode) => mode.parse()?,
            None => SslMode::Prefer,
        };
        // The parse error never contains the URL, so the password does not reach a log.
        let mut pg = tokio_postgres::Config::from_str(&rest)
            .map_err(|e| format!("not a PostgreSQL connection string: {e}"))?;
        pg.connect_timeout(CONNECT_TIMEOUT);
        if pg.get_application_name().is_none() {
            pg.application_name("mailops");
        }
        pg.ssl_mode(match ssl_mode {
            SslMode::Disable => PgSslMode::Disable,
            SslMode::Prefer => PgSslMode::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => PgSslMode::Require,
        });
        let root_cert = root_cert.map(PathBuf::from);
        let roots = match &root_cert {
            Some(path) => Some(read_roots(path)?),
            None if matches!(ssl_mode, SslMode::VerifyCa | SslMode::VerifyFull) => {
                return Err(format!(
                    "sslmode {} needs sslrootcert (the CA certificate file, PEM)",
                    ssl_mode.as_str()
                ))
            }
            None => None,
        };
        let tls = MakeRustlsConnect::new(client_config(roots, ssl_mode == SslMode::VerifyFull)?);
        Ok(Target {
            pg,
            ssl_mode,
            root_cert,
            tls,
        })
    }

    /// The TLS connector carrying out `sslmode` and `sslrootcert`.
    pub fn tls(&self) -> MakeRustlsConnect {
        self.tls.clone()
    }
}

/// Takes `sslmode` and `sslrootcert` (decoded) out of `url`; returns the rest as given.
fn split_tls(url: &str) -> Result<(String, Option<String>, Option<String>), String> {
    let mut ssl_mode = None;
    let mut root_cert = None;
    let mut take = |key: &str, value: String| match key {
        "sslmode" => {
            ssl_mode = Some(value);
            true
        }
        "sslrootcert" => {
            root_cert = Some(value);
            true
        }
        _ => false,
    };
    let rest = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let (base, query) = url.split_once('?').unwrap_or((url, ""));
        let mut kept = Vec::new();
        for param in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = param.split_once('=').unwrap_or((param, ""));
            if !take(&decode(key)?, decode(value)?) {
                kept.push(param);
            }
        }
        if kept.is_empty() {
            base.to_owned()
        } else {
            format!("{base}?{}", kept.join("&"))
        }
    } else {
        let mut kept = Vec::new();
        for pair in keyword_pairs(url)? {
            if !take(pair.key, pair.value) {
                kept.push(pair.raw);
            }
        }
        kept.join(" ")
    };
    Ok((rest, ssl_mode, root_cert))
}

/// One `key = value` of a libpq keyword/value string.
struct Pair<'a> {
    key: &'a str,
    value: String,
    /// The pair as written.
    raw: &'a str,
}

/// Splits a libpq keyword/value string: values are bare or single-quoted, with `\` escaping
/// the next character in both.
fn keyword_pairs(s: &str) -> Result<Vec<Pair<'_>>, String> {
    let mut pairs = Vec::new();
    let mut rest = s.trim_start();
    while !rest.is_empty() {
        let start = s.len() - rest.len();
        let eq = rest
            .find('=')
            .ok_or_else(|| "a keyword without \"=\"".to_owned())?;
        let key = rest[..eq].trim_end();
        let mut chars = rest[eq + 1..].trim_start().char_indices().peekable();
        let after_eq = rest.len() - rest[eq + 1..].trim_start().len();
        let quoted = chars.peek().is_some_and(|&(_, c)| c == '\'');
        if quoted {
            chars.next();
        }
        let mut value = String::new();
        let mut end = None;
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => value.extend(chars.next().map(|(_, c)| c)),
                '\'' if quoted => {
                    end = Some(i + 1);
                    break;
                }
                c if c.is_whitespace() && !quoted => {
                    end = Some(i);
                    break;
                }
                c => value.push(c),
            }
        }
        if quoted && end.is_none() {
            return Err("an unterminated quoted value".into());
        }
        let end = after_eq + end.unwrap_or(rest.len() - after_eq);
        pairs.push(Pair {
            key,
            value,
            raw: &s[start..start + end],
        });
        rest = rest[end..].trim_start();
    }
    Ok(pairs)
}

/// Decodes a URI query component's `%XX` escapes.
fn decode(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| "a bad %-escape".to_owned())?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "a %-escape that is not UTF-8".into())
}

/// The CA certificates in PEM file `path`.
fn read_roots(path: &Path) -> Result<RootCertStore, String> {
    let shown = path.display();
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("sslrootcert {shown}: {e}"))?;
    if certs.is_empty() {
        return Err(format!("sslrootcert {shown}: no PEM certificate in it"));
    }
    let mut roots = RootCertStore::empty();
    for cert in certs {
        roots
            .add(cert)
            .map_err(|e| format!("sslrootcert {shown}: {e}"))?;
    }
    Ok(roots)
}

/// rustls's settings: the ring provider, and a certificate check by `roots` (naming the host
/// when `check_name`), or none without roots (`prefer`, `require`: encryption only).
fn client_config(roots: Option<RootCertStore>, check_name: bool) -> Result<ClientConfig, String> {
    let provider = Arc::new(ring::default_provider());
    let tls = |e: rustls::Error| format!("TLS settings: {e}");
    let webpki = roots
        .map(|roots| {
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider))
                .build()
                .map_err(|e| format!("sslrootcert: {e}"))
        })
        .transpose()?;
    let verifier = Verifier {
        webpki,
        check_name,
        algorithms: provider.signature_verification_algorithms,
    };
    Ok(ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(tls)?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth())
}

/// How the server's certificate is checked.
#[derive(Debug)]
struct Verifier {
    /// The chain (and name) check against `sslrootcert`; `None` accepts any certificate.
    webpki: Option<Arc<WebPkiServerVerifier>>,
    /// Whether the certificate must name the host (`verify-full`).
    check_name: bool,
    /// What handshake signatures are checked with.
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(webpki) = &self.webpki else {
            return Ok(ServerCertVerified::assertion());
        };
        // webpki checks the chain before the name: a name error means the chain is good.
        match webpki.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if !self.check_name => Ok(ServerCertVerified::assertion()),
            verified => verified,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(url: &str) -> (String, Option<String>, Option<String>) {
        split_tls(url).unwrap_or_else(|e| panic!("{url}: {e}"))
    }

    #[test]
    fn tls_settings_are_taken_out_of_both_url_forms() {
        assert_eq!(
            split("postgres://u:p@db:5432/mailops?sslmode=verify-full&connect_timeout=5&sslrootcert=%2Fetc%2Fca%20file.pem"),
            (
                "postgres://u:p@db:5432/mailops?connect_timeout=5".into(),
                Some("verify-full".into()),
                Some("/etc/ca file.pem".into())
            )
        );
        assert_eq!(
            split("postgres://db/mailops?sslmode=require"),
            ("postgres://db/mailops".into(), Some("require".into()), None)
        );
        assert_eq!(
            split(
                r"host=db  sslrootcert = '/etc/my ca.pem' password='it\'s x' sslmode=verify-ca dbname=mailops"
            ),
            (
                r"host=db password='it\'s x' dbname=mailops".into(),
                Some("verify-ca".into()),
                Some("/etc/my ca.pem".into())
            )
        );
        assert!(split_tls("host=db sslrootcert='/etc/ca").is_err());
        assert!(split_tls("postgres://db/x?sslrootcert=%zz").is_err());
    }

    #[test]
    fn modes_are_libpqs_and_verification_needs_a_root_certificate() {
        let t = Target::parse("postgres://mailops@db/mailops").expect("parses");
        assert_eq!(t.ssl_mode, SslMode::Prefer);
        assert_eq!(t.pg.get_ssl_mode(), PgSslMode::Prefer);
        let t = Target::parse("host=db user=mailops sslmode=verify-ca sslrootcert=/nonexistent");
        let e = t.err().expect("no such file");
        assert!(e.contains("sslrootcert /nonexistent"), "{e}");
        let e = Target::parse("postgres://db/x?sslmode=verify-full")
            .err()
            .expect("needs a root");
        assert!(e.contains("needs sslrootcert"), "{e}");
        let e = Target::parse("postgres://db/x?sslmode=allow")
            .err()
            .expect("not supported");
        assert!(e.contains("verify-full"), "{e}");
        let t = Target::parse("postgres://db/x?sslmode=disable").expect("parses");
        assert_eq!(t.pg.get_ssl_mode(), PgSslMode::Disable);
    }
}

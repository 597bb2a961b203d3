//! Talking to the SMTP gateway (lettre's connection): connect, TLS, authenticate, send —
//! each step reported, each failure classified.

use std::fmt;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use md5::Md5;

use lettre::address::Envelope;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{
    AsyncSmtpConnection, Certificate, TlsParameters, TlsVersion,
};
use lettre::transport::smtp::commands::Auth as AuthCommand;
use lettre::transport::smtp::extension::ClientId;
use lettre::transport::smtp::response::Response;
use lettre::transport::smtp::Error as SmtpError;

use super::oauth2::{Secret, TokenError, Tokens};
use crate::config::{parse_host_port, Auth, Encryption, Outbound};

/// Everything needed to reach the gateways, read once from the config (and the password file).
pub struct Settings {
    /// The primary gateway, then the alternate.
    pub gateways: Vec<(String, u16)>,
    encryption: Encryption,
    auth: Auth,
    /// User name and password.
    credentials: Option<(String, String)>,
    /// User name and where its access tokens come from (XOAUTH2).
    oauth2: Option<(String, Tokens)>,
    timeout: Duration,
    roots: Vec<Certificate>,
    hello: ClientId,
}

/// Why settings could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// The password file or CA file could not be read.
    #[error("{what} {path}: {source}")]
    Read {
        /// Which file.
        what: &'static str,
        /// Its path.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A value is unusable.
    #[error("{0}")]
    Invalid(String),
}

impl Settings {
    /// Reads the `[outbound]` settings: the password from `MAILOPS_SMTP_PASSWORD` or
    /// `password_file`, the extra CA certificates from `tls_ca_file`, XOAUTH2's client
    /// secret and refresh token from `[outbound.oauth2]`.
    pub fn new(o: &Outbound) -> Result<Settings, SettingsError> {
        let mut gateways = Vec::new();
        for g in std::iter::once(&o.gateway).chain(o.gateway_alt.as_ref()) {
            gateways.push(parse_host_port(g).map_err(SettingsError::Invalid)?);
        }
        let credentials = match o.auth {
            Auth::None | Auth::Xoauth2 => None,
            Auth::Plain | Auth::Login | Auth::CramMd5 => {
                let password = match std::env::var("MAILOPS_SMTP_PASSWORD") {
                    Ok(p) if !p.is_empty() => p,
                    _ => {
                        let path = o.password_file.as_ref().ok_or_else(|| {
                            SettingsError::Invalid(
                                "outbound.password_file (or MAILOPS_SMTP_PASSWORD) is needed with outbound.auth".into(),
                            )
                        })?;
                        std::fs::read_to_string(path)
                            .map_err(|source| SettingsError::Read {
                                what: "outbound.password_file",
                                path: path.display().to_string(),
                                source,
                            })?
                            .trim_end_matches(['\r', '\n'])
                            .to_owned()
                    }
                };
                Some((o.username.clone().unwrap_or_default(), password))
            }
        };
        let ca_pem = match &o.tls_ca_file {
            Some(path) => Some(std::fs::read(path).map_err(|source| SettingsError::Read {
                what: "outbound.tls_ca_file",
                path: path.display().to_string(),
                source,
            })?),
            None => None,
        };
        let mut roots = Vec::new();
        if let Some(pem) = &ca_pem {
            roots.push(
                Certificate::from_pem(pem)
                    .map_err(|e| SettingsError::Invalid(format!("outbound.tls_ca_file: {e}")))?,
            );
        }
        let timeout = Duration::from_secs(o.timeout_s);
        let oauth2 = match (o.auth, &o.oauth2) {
            (Auth::Xoauth2, Some(oauth2)) => Some((
                o.username.clone().unwrap_or_default(),
                Tokens::new(oauth2, ca_pem.as_deref(), timeout)?,
            )),
            (Auth::Xoauth2, None) => {
                return Err(SettingsError::Invalid(
                    "outbound.oauth2 is needed with outbound.auth = \"xoauth2\"".into(),
                ))
            }
            _ => None,
        };
        let domain = o
            .from_address
            .rsplit_once('@')
            .map_or("localhost", |(_, d)| d);
        Ok(Settings {
            gateways,
            encryption: o.encryption,
            auth: o.auth,
            credentials,
            oauth2,
            timeout,
            roots,
            hello: ClientId::Domain(domain.to_owned()),
        })
    }

    fn tls(&self, host: &str) -> Result<TlsParameters, Failure> {
        let mut builder =
            TlsParameters::builder(host.to_owned()).set_min_tls_version(TlsVersion::Tlsv12);
        for root in &self.roots {
            builder = builder.add_root_certificate(root.clone());
        }
        builder
            .build_rustls()
            .map_err(|e| Failure::Tls(e.to_string()))
    }
}

/// Why a gateway did not take a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// No connection (refused, unreachable, timed out): the alternate gateway may help.
    Unreachable(String),
    /// TLS could not be set up (not offered, handshake or certificate failure).
    Tls(String),
    /// The gateway refused the credentials.
    Auth(String),
    /// No XOAUTH2 access token: the token endpoint failed or refused.
    Token(TokenError),
    /// The gateway refused the message; permanent (5xx) or not (4xx, dropped connection).
    Rejected {
        /// A 5xx reply.
        permanent: bool,
        /// What it said.
        reply: String,
    },
}

impl Failure {
    /// Whether retrying later is pointless: a 5xx for the message, or a token endpoint
    /// that refused the refresh token or the client (`invalid_grant`, `invalid_client`).
    pub fn is_permanent(&self) -> bool {
        match self {
            Failure::Rejected { permanent, .. } => *permanent,
            Failure::Token(e) => e.is_permanent(),
            _ => false,
        }
    }

    /// Whether the alternate gateway should be tried.
    pub fn try_alternate(&self) -> bool {
        matches!(self, Failure::Unreachable(_) | Failure::Tls(_))
    }

    fn rejected(e: &SmtpError) -> Failure {
        Failure::Rejected {
            permanent: e.is_permanent(),
            reply: e.to_string(),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Unreachable(why) => write!(f, "cannot connect: {why}"),
            Failure::Tls(why) => write!(f, "TLS failed: {why}"),
            Failure::Auth(why) => write!(f, "authentication failed: {why}"),
            Failure::Token(why) => write!(f, "oauth2 token: {why}"),
            Failure::Rejected { reply, .. } => write!(f, "refused: {reply}"),
        }
    }
}

/// Opens an authenticated connection to one gateway, reporting each step to `step`.
pub async fn connect(
    s: &Settings,
    host: &str,
    port: u16,
    step: &mut (dyn FnMut(String) + Send),
) -> Result<AsyncSmtpConnection, Failure> {
    let wrapper = match s.encryption {
        Encryption::Smtps => Some(s.tls(host)?),
        _ => None,
    };
    let mut conn =
        AsyncSmtpConnection::connect_tokio1((host, port), Some(s.timeout), &s.hello, wrapper, None)
            .await
            .map_err(|e| {
                if e.is_tls() {
                    Failure::Tls(e.to_string())
                } else {
                    Failure::Unreachable(e.to_string())
                }
            })?;
    step(format!(
        "connected to {host}:{port}{}; EHLO answered by {}",
        if s.encryption == Encryption::Smtps {
            " with TLS (SMTPS)"
        } else {
            ""
        },
        conn.server_info().name()
    ));
    if s.encryption == Encryption::Starttls {
        if !conn.can_starttls() {
            conn.abort().await;
            return Err(Failure::Tls("the gateway does not offer STARTTLS".into()));
        }
        conn.starttls(s.tls(host)?, &s.hello)
            .await
            .map_err(|e| Failure::Tls(e.to_string()))?;
        step("STARTTLS: TLS 1.2 or newer established, certificate verified".into());
    }
    let answer = match (&s.credentials, &s.oauth2) {
        (Some((user, password)), _) => Some(auth_password(&mut conn, s.auth, user, password).await),
        (None, Some((user, tokens))) => Some(auth_xoauth2(&mut conn, user, tokens, step).await),
        (None, None) => None,
    };
    match answer {
        None => {}
        Some(Ok((name, reply))) => step(format!(
            "AUTH {name}: {} {}",
            reply.code(),
            reply.first_line().unwrap_or("accepted")
        )),
        Some(Err(failure)) => {
            conn.abort().await;
            return Err(failure);
        }
    }
    Ok(conn)
}

/// AUTH PLAIN, LOGIN or CRAM-MD5; returns the mechanism's name and the gateway's reply.
async fn auth_password(
    conn: &mut AsyncSmtpConnection,
    auth: Auth,
    user: &str,
    password: &str,
) -> Result<(&'static str, Response), Failure> {
    let (name, answer) = match auth {
        Auth::CramMd5 => ("CRAM-MD5", auth_cram_md5(conn, user, password).await),
        Auth::Login => {
            let credentials = Credentials::new(user.to_owned(), password.to_owned());
            ("LOGIN", conn.auth(&[Mechanism::Login], &credentials).await)
        }
        _ => {
            let credentials = Credentials::new(user.to_owned(), password.to_owned());
            ("PLAIN", conn.auth(&[Mechanism::Plain], &credentials).await)
        }
    };
    answer
        .map(|reply| (name, reply))
        .map_err(|e| auth_failure(name, &e))
}

/// An AUTH error as the operator reads it: the gateway's reply, or what went wrong before
/// there was one.
fn auth_failure(name: &str, e: &SmtpError) -> Failure {
    Failure::Auth(if e.status().is_some() || e.is_response() {
        e.to_string()
    } else {
        format!("{e} (is AUTH {name} offered?)")
    })
}

/// AUTH XOAUTH2 with an access token from `tokens`. A cached token the gateway refuses
/// (535, 5.7.x: revoked, or expired early) is dropped and AUTH is tried once more with a
/// new one; a token fetched just now is not retried, so a refusing gateway never loops.
async fn auth_xoauth2(
    conn: &mut AsyncSmtpConnection,
    user: &str,
    tokens: &Tokens,
    step: &mut (dyn FnMut(String) + Send),
) -> Result<(&'static str, Response), Failure> {
    const NAME: &str = "XOAUTH2";
    if !conn
        .server_info()
        .supports_auth_mechanism(Mechanism::Xoauth2)
    {
        return Err(Failure::Auth(
            "the gateway does not offer AUTH XOAUTH2".into(),
        ));
    }
    let token = tokens.token().await.map_err(Failure::Token)?;
    step(format!("oauth2 token: {token}"));
    let answer = match xoauth2(conn, user, &token.secret).await {
        Err(e) if !token.refreshed && is_credentials_refusal(&e) => {
            step(format!(
                "AUTH {NAME}: the cached token was refused ({e}); refreshing it once"
            ));
            tokens.forget(&token.secret).await;
            let token = tokens.token().await.map_err(Failure::Token)?;
            step(format!("oauth2 token: {token}"));
            xoauth2(conn, user, &token.secret).await
        }
        answer => answer,
    };
    answer
        .map(|reply| (NAME, reply))
        .map_err(|e| auth_failure(NAME, &e))
}

/// Whether the gateway refused the credentials themselves: 535, or a 5.7.x enhanced code
/// (RFC 4954 §6), rather than failing for another reason.
fn is_credentials_refusal(e: &SmtpError) -> bool {
    e.status().is_some_and(|code| u16::from(code) == 535)
        || (e.is_permanent() && e.to_string().contains(" 5.7."))
}

/// One XOAUTH2 exchange. lettre formats the initial response; the exchange is spoken here
/// because on a refused token the server sends its error as a `334` challenge (a base64
/// JSON status) and wants an empty line before its final reply, which lettre's own `auth`
/// does not send.
async fn xoauth2(
    conn: &mut AsyncSmtpConnection,
    user: &str,
    token: &Secret,
) -> Result<Response, SmtpError> {
    let credentials = Credentials::new(user.to_owned(), token.expose().to_owned());
    let reply = conn
        .command(AuthCommand::new(Mechanism::Xoauth2, credentials, None)?)
        .await?;
    if !reply.has_code(334) {
        return Ok(reply);
    }
    let reply = conn.command("\r\n").await?;
    if reply.has_code(334) {
        // Another challenge: none is expected, so cancel (RFC 4954 §4: "*"), which the
        // server answers with a 501 error.
        return conn.command("*\r\n").await;
    }
    Ok(reply)
}

/// AUTH CRAM-MD5 (RFC 2195 §2): lettre has no such mechanism, so it is spoken here on
/// lettre's connection.
async fn auth_cram_md5(
    conn: &mut AsyncSmtpConnection,
    user: &str,
    password: &str,
) -> Result<Response, SmtpError> {
    let challenge = conn.command("AUTH CRAM-MD5\r\n").await?;
    let text = challenge.first_line().unwrap_or("");
    let answer = cram_md5_answer(user, password, text);
    conn.command(format!("{answer}\r\n")).await
}

/// The base64 answer to a base64 CRAM-MD5 challenge: "user hex(HMAC-MD5(password, challenge))".
fn cram_md5_answer(user: &str, password: &str, challenge: &str) -> String {
    // A challenge that is not base64 still gets an answer; the server refuses it.
    let challenge = BASE64.decode(challenge.trim()).unwrap_or_default();
    let mut mac =
        Hmac::<Md5>::new_from_slice(password.as_bytes()).expect("HMAC takes a key of any length");
    mac.update(&challenge);
    let digest = crate::hex(&mac.finalize().into_bytes());
    BASE64.encode(format!("{user} {digest}"))
}

/// Sends `message` from `from` to `to` on an open connection; returns the gateway's reply.
pub async fn transmit(
    conn: &mut AsyncSmtpConnection,
    from: &str,
    to: &str,
    message: &[u8],
) -> Result<String, Failure> {
    let refused = |reply: String| Failure::Rejected {
        permanent: true,
        reply,
    };
    let from = from
        .parse()
        .map_err(|e| refused(format!("sender {from:?}: {e}")))?;
    let to = to
        .parse()
        .map_err(|e| refused(format!("recipient {to:?}: {e}")))?;
    let envelope = Envelope::new(Some(from), vec![to]).map_err(|e| refused(e.to_string()))?;
    let reply = conn
        .send(&envelope, message)
        .await
        .map_err(|e| Failure::rejected(&e))?;
    Ok(format!(
        "{} {}",
        reply.code(),
        reply.first_line().unwrap_or("")
    ))
}

/// Sends `message` from `from` to `to` through the first gateway that takes it, trying the
/// alternate when the primary cannot be reached; returns the gateway and its reply.
pub async fn send(s: &Settings, from: &str, to: &str, message: &[u8]) -> Result<String, Failure> {
    let mut last = Failure::Unreachable("no gateway configured".into());
    for (host, port) in &s.gateways {
        let sent = async {
            let mut conn = connect(s, host, *port, &mut |_| {}).await?;
            let reply = transmit(&mut conn, from, to, message).await?;
            let _ = conn.quit().await;
            Ok::<_, Failure>(format!("{host}:{port}: {reply}"))
        };
        match sent.await {
            Ok(via) => return Ok(via),
            Err(failure) if failure.try_alternate() => {
                tracing::warn!(gateway = %format!("{host}:{port}"), %failure, "gateway unusable");
                last = failure;
            }
            Err(failure) => return Err(failure),
        }
    }
    Err(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cram_md5_answers_the_rfc_2195_example() {
        let challenge = BASE64.encode("<1896.697170952@postoffice.reston.mci.net>");
        let answer = cram_md5_answer("tim", "tanstaaftanstaaf", &challenge);
        assert_eq!(
            String::from_utf8(BASE64.decode(answer).expect("base64")).expect("utf-8"),
            "tim b913a602c7eda7a495b4e6e7334d3890"
        );
    }

    #[test]
    fn failures_say_what_to_do_next() {
        let refused = Failure::Rejected {
            permanent: true,
            reply: "550 no".into(),
        };
        assert!(refused.is_permanent() && !refused.try_alternate());
        assert!(Failure::Unreachable("refused".into()).try_alternate());
        assert!(Failure::Tls("handshake".into()).try_alternate());
        assert!(!Failure::Auth("535".into()).try_alternate());
        assert!(!Failure::Auth("535".into()).is_permanent());
    }
}

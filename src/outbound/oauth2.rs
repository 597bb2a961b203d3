//! XOAUTH2's access tokens: refreshed from the refresh token at the token endpoint (RFC 6749
//! §6), kept in memory until shortly before they expire, dropped when the gateway refuses one.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Map, Value};
use tokio::sync::Mutex;

use super::smtp::SettingsError;
use crate::config::OAuth2;

/// A secret (client secret, refresh or access token): shown as `[redacted]`, never by value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The value, for the wire only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// An access token handed out for one AUTH.
#[derive(Debug, Clone)]
pub struct Token {
    /// The bearer token.
    pub secret: Secret,
    /// What is left of its life.
    pub expires_in: Duration,
    /// Fetched just now (not from the cache): refusing it again would be pointless.
    pub refreshed: bool,
}

impl fmt::Display for Token {
    /// The `smtp-test` step: "refreshed, expires in 3599 s".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let how = if self.refreshed {
            "refreshed"
        } else {
            "cached"
        };
        write!(f, "{how}, expires in {} s", self.expires_in.as_secs())
    }
}

/// Why no access token could be had. Never carries a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// No answer: connection refused, TLS failure, time-out.
    #[error("token endpoint {url} unreachable: {why}")]
    Unreachable {
        /// The token endpoint.
        url: String,
        /// Why.
        why: String,
    },
    /// An HTTP error, with the OAuth error (RFC 6749 §5.2) when the endpoint gave one.
    #[error(
        "token endpoint {url} answered HTTP {status}{}",
        oauth_error(error, description)
    )]
    Refused {
        /// The token endpoint.
        url: String,
        /// The HTTP status.
        status: u16,
        /// `error`, e.g. `invalid_grant`.
        error: Option<String>,
        /// `error_description`.
        description: Option<String>,
    },
    /// A success status with an answer that holds no usable token.
    #[error("token endpoint {url}: {why}")]
    Malformed {
        /// The token endpoint.
        url: String,
        /// What is wrong with the answer.
        why: String,
    },
}

fn oauth_error(error: &Option<String>, description: &Option<String>) -> String {
    match (error, description) {
        (Some(e), Some(d)) => format!(": {e}: {d}"),
        (Some(e), None) => format!(": {e}"),
        (None, Some(d)) => format!(": {d}"),
        (None, None) => String::new(),
    }
}

impl TokenError {
    /// The endpoint refused the grant or the client itself (RFC 6749 §5.2): asking again
    /// with the same refresh token and client gets the same answer, so it is not retried.
    /// Unreachable, 5xx, 429 and anything else are temporary.
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            TokenError::Refused { status: 400 | 401, error: Some(e), .. }
                if matches!(
                    e.as_str(),
                    "invalid_grant"
                        | "invalid_client"
                        | "unauthorized_client"
                        | "unsupported_grant_type"
                        | "invalid_scope"
                        | "invalid_request"
                )
        )
    }
}

/// The client's side of the token endpoint, and the tokens it has been given.
pub struct Tokens {
    url: reqwest::Url,
    client_id: String,
    client_secret: Option<Secret>,
    scope: Option<String>,
    refresh_token_file: PathBuf,
    http: reqwest::Client,
    /// Held across a refresh, so that concurrent senders wait for one refresh.
    state: Mutex<State>,
}

struct State {
    refresh_token: Secret,
    cached: Option<Cached>,
    /// The refresh token the endpoint refused for good, and its answer: not sent again
    /// until the file holds another one.
    refused: Option<(Secret, TokenError)>,
}

struct Cached {
    secret: Secret,
    expires_at: Instant,
    lifetime: Duration,
}

/// An access token is refreshed when less than this is left: 60 s, or a tenth of its
/// lifetime for a short-lived one.
pub fn refresh_margin(lifetime: Duration) -> Duration {
    (lifetime / 10).min(Duration::from_secs(60))
}

/// The lifetime assumed when the endpoint gives no `expires_in` (RFC 6749 §5.1 only
/// recommends it); a shorter one is caught by the retry after a refused AUTH.
const DEFAULT_LIFETIME: Duration = Duration::from_secs(3600);

impl Tokens {
    /// Reads the client secret and refresh token files; `ca_pem` (from `tls_ca_file`) is
    /// trusted besides the public roots; `timeout` bounds each request.
    pub fn new(
        o: &OAuth2,
        ca_pem: Option<&[u8]>,
        timeout: Duration,
    ) -> Result<Tokens, SettingsError> {
        let needed = |key: &str| SettingsError::Invalid(format!("outbound.oauth2.{key} is needed"));
        let url = o.token_url.as_deref().ok_or_else(|| needed("token_url"))?;
        let url = reqwest::Url::parse(url)
            .map_err(|e| SettingsError::Invalid(format!("outbound.oauth2.token_url: {e}")))?;
        let client_id = o.client_id.clone().ok_or_else(|| needed("client_id"))?;
        let refresh_token_file = o
            .refresh_token_file
            .clone()
            .ok_or_else(|| needed("refresh_token_file"))?;
        let refresh_token = read_secret("outbound.oauth2.refresh_token_file", &refresh_token_file)?;
        let client_secret = o
            .client_secret_file
            .as_ref()
            .map(|path| read_secret("outbound.oauth2.client_secret_file", path))
            .transpose()?;
        let mut http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            // A redirect would carry the secrets to wherever it points.
            .redirect(reqwest::redirect::Policy::none())
            .min_tls_version(reqwest::tls::Version::TLS_1_2)
            .user_agent(concat!("mailops/", env!("CARGO_PKG_VERSION")));
        if let Some(pem) = ca_pem {
            let certificates = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| SettingsError::Invalid(format!("outbound.tls_ca_file: {e}")))?;
            for certificate in certificates {
                http = http.add_root_certificate(certificate);
            }
        }
        let http = http
            .build()
            .map_err(|e| SettingsError::Invalid(format!("outbound.oauth2: no HTTP client: {e}")))?;
        Ok(Tokens {
            url,
            client_id,
            client_secret,
            scope: o.scope.clone().filter(|s| !s.is_empty()),
            refresh_token_file,
            http,
            state: Mutex::new(State {
                refresh_token,
                cached: None,
                refused: None,
            }),
        })
    }

    /// A valid access token: the cached one while it has more than the refresh margin
    /// left, else a new one from the token endpoint.
    pub async fn token(&self) -> Result<Token, TokenError> {
        let mut state = self.state.lock().await;
        let now = Instant::now();
        if let Some(c) = &state.cached {
            if now + refresh_margin(c.lifetime) < c.expires_at {
                return Ok(Token {
                    secret: c.secret.clone(),
                    expires_in: c.expires_at - now,
                    refreshed: false,
                });
            }
        }
        state.cached = None;
        let grant = self.refresh(&mut state).await?;
        let lifetime = grant.expires_in.unwrap_or(DEFAULT_LIFETIME);
        state.cached = Some(Cached {
            secret: grant.access_token.clone(),
            expires_at: now + lifetime,
            lifetime,
        });
        Ok(Token {
            secret: grant.access_token,
            expires_in: lifetime,
            refreshed: true,
        })
    }

    /// Drops `token` from the cache (the gateway refused it), so the next
    /// [`Tokens::token`] refreshes.
    pub async fn forget(&self, token: &Secret) {
        let mut state = self.state.lock().await;
        if state.cached.as_ref().is_some_and(|c| &c.secret == token) {
            state.cached = None;
        }
    }

    /// One `grant_type=refresh_token` request; keeps a rotated refresh token.
    async fn refresh(&self, state: &mut State) -> Result<Grant, TokenError> {
        if let Some((refused, error)) = &state.refused {
            // Only a new refresh token in the file can change the answer.
            match read_secret(
                "outbound.oauth2.refresh_token_file",
                &self.refresh_token_file,
            ) {
                Ok(token) if &token != refused => {
                    state.refresh_token = token;
                    state.refused = None;
                }
                _ => return Err(error.clone()),
            }
        }
        let url = self.url.to_string();
        let form = form(
            &self.client_id,
            self.client_secret.as_ref(),
            &state.refresh_token,
            self.scope.as_deref(),
        );
        let answer = async {
            let response = self.http.post(self.url.clone()).form(&form).send().await?;
            let status = response.status().as_u16();
            Ok::<_, reqwest::Error>((status, response.bytes().await?))
        }
        .await;
        let (status, body) = answer.map_err(|e| TokenError::Unreachable {
            url: url.clone(),
            why: error_chain(&e),
        })?;
        let grant = parse(&url, status, &body).inspect_err(|e| {
            if e.is_permanent() {
                state.refused = Some((state.refresh_token.clone(), e.clone()));
            }
        })?;
        if let Some(rotated) = grant.refresh_token.clone() {
            if rotated != state.refresh_token {
                state.refresh_token = rotated.clone();
                self.write_back(rotated).await;
            }
        }
        Ok(grant)
    }

    /// Writes a rotated refresh token to the refresh token file (best effort: kept in
    /// memory either way), so that a restart uses it.
    async fn write_back(&self, token: Secret) {
        let path = self.refresh_token_file.clone();
        let written = tokio::task::spawn_blocking(move || replace_file(&path, &token)).await;
        match written {
            Ok(Ok(())) => tracing::info!(
                file = %self.refresh_token_file.display(),
                "oauth2: the endpoint rotated the refresh token; written back"
            ),
            Ok(Err(e)) => tracing::warn!(
                file = %self.refresh_token_file.display(),
                error = %e,
                "oauth2: the endpoint rotated the refresh token; kept in memory only"
            ),
            Err(e) => tracing::warn!(error = %e, "oauth2: writing the refresh token back"),
        }
    }
}

/// The form of a refresh request (RFC 6749 §6; the client authenticates in the body,
/// §2.3.1, as the big providers accept).
fn form<'a>(
    client_id: &'a str,
    client_secret: Option<&'a Secret>,
    refresh_token: &'a Secret,
    scope: Option<&'a str>,
) -> Vec<(&'static str, &'a str)> {
    let mut form = vec![
        ("grant_type", "refresh_token"),
        ("client_id", client_id),
        ("refresh_token", refresh_token.expose()),
    ];
    if let Some(secret) = client_secret {
        form.push(("client_secret", secret.expose()));
    }
    if let Some(scope) = scope {
        form.push(("scope", scope));
    }
    form
}

/// What a successful refresh gives.
#[derive(Debug, PartialEq, Eq)]
struct Grant {
    access_token: Secret,
    expires_in: Option<Duration>,
    /// A new refresh token, when the endpoint rotates them.
    refresh_token: Option<Secret>,
}

/// Reads the token endpoint's answer (RFC 6749 §5.1 success, §5.2 error). The body is
/// read field by field, never quoted, so no error can carry a token.
fn parse(url: &str, status: u16, body: &[u8]) -> Result<Grant, TokenError> {
    let fields = serde_json::from_slice::<Map<String, Value>>(body).ok();
    let text = |name: &str| {
        fields
            .as_ref()
            .and_then(|f| f.get(name))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    if !(200..300).contains(&status) {
        return Err(TokenError::Refused {
            url: url.to_owned(),
            status,
            error: text("error").map(printable),
            description: text("error_description").map(printable),
        });
    }
    let malformed = |why: &str| TokenError::Malformed {
        url: url.to_owned(),
        why: why.to_owned(),
    };
    if fields.is_none() {
        return Err(malformed("the answer is not a JSON object"));
    }
    let access_token = text("access_token").ok_or_else(|| malformed("no access_token"))?;
    if text("token_type").is_some_and(|t| !t.eq_ignore_ascii_case("bearer")) {
        return Err(malformed("token_type is not Bearer"));
    }
    // A number, as RFC 6749 says, or a string of digits, as some endpoints send.
    let expires_in = match fields.as_ref().and_then(|f| f.get("expires_in")) {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => Some(n.as_u64().ok_or_else(|| malformed("bad expires_in"))?),
        Some(Value::String(s)) => Some(s.parse().map_err(|_| malformed("bad expires_in"))?),
        Some(_) => return Err(malformed("bad expires_in")),
    };
    Ok(Grant {
        access_token: Secret(access_token.to_owned()),
        expires_in: expires_in.map(Duration::from_secs),
        refresh_token: text("refresh_token").map(|t| Secret(t.to_owned())),
    })
}

/// Text from the endpoint, fit for a log line: printable, at most 300 characters.
fn printable(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(300)
        .collect()
}

/// An error and its causes ("error sending request: connection refused").
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text = format!("{text}: {cause}");
        source = cause.source();
    }
    text
}

/// A secret file's first line; `key` names it in the error.
fn read_secret(key: &'static str, path: &Path) -> Result<Secret, SettingsError> {
    let text = std::fs::read_to_string(path).map_err(|source| SettingsError::Read {
        what: key,
        path: path.display().to_string(),
        source,
    })?;
    let value = text.lines().next().unwrap_or("").trim();
    if value.is_empty() {
        return Err(SettingsError::Invalid(format!(
            "{key} {}: empty",
            path.display()
        )));
    }
    Ok(Secret(value.to_owned()))
}

/// Replaces `path` by a file holding `token`, atomically (a new file renamed over it), with
/// the old file's permissions (0600 when there was none).
fn replace_file(path: &Path, token: &Secret) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
    let mode = std::fs::metadata(path).map_or(0o600, |m| m.permissions().mode() & 0o7777);
    let mut name = path.as_os_str().to_owned();
    name.push(".new");
    let new = PathBuf::from(name);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&new)?;
    file.write_all(format!("{}\n", token.expose()).as_bytes())?;
    file.sync_all()?;
    std::fs::set_permissions(&new, std::fs::Permissions::from_mode(mode))?;
    std::fs::rename(&new, path)
}

#[cfg(test)]
#[path = "oauth2_tests.rs"]
mod tests;

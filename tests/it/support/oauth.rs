//! A stand-in OAuth 2.0 authorization server for the XOAUTH2 tests, on a free port of
//! 127.0.0.1 (plain HTTP/1.1, one thread per connection, `Connection: close`):
//! - `POST /token`: the token endpoint, refresh grant only (RFC 6749 §6). It knows one
//!   client (id and secret) and one refresh token; it issues short random access tokens
//!   with the lifetime the test sets, and can rotate the refresh token or be down.
//! - `POST /introspect`: token introspection (RFC 7662, `token=` in the body), what the
//!   gateway's Dovecot asks (`introspection_mode = post`) for every AUTH XOAUTH2: active
//!   while the token was issued here, is not revoked and has not expired.
//!
//! Every request is counted, so a test can say how often mailops refreshed and how often
//! the gateway was shown a dead token. Every secret it makes starts with `tok_` (`tok_rt_`
//! refresh tokens, `tok_at_` access tokens, `tok_cs_` the client secret), so a test can
//! check that none shows in a log or a report.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::postfix::random_hex;

/// A running authorization server; dropping it stops it.
pub struct AuthServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The one client it knows.
    pub client_id: String,
    /// That client's secret.
    pub client_secret: String,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// What one `/token` request asked, secrets included (it is the test's own server).
#[derive(Debug, Clone, Default)]
pub struct TokenRequest {
    /// The form fields, in order.
    pub form: Vec<(String, String)>,
}

impl TokenRequest {
    /// The value of form field `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.form
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

struct State {
    username: String,
    refresh_token: String,
    lifetime: Duration,
    rotate: bool,
    outage: Option<u16>,
    /// Access token -> (expires at, revoked).
    tokens: HashMap<String, (Instant, bool)>,
    token_requests: Vec<TokenRequest>,
    introspections: usize,
    inactive: usize,
}

impl AuthServer {
    /// Starts a server whose tokens belong to `username`, with a new refresh token and
    /// client secret, issuing access tokens for an hour.
    pub fn start(username: &str) -> AuthServer {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("binding 127.0.0.1:0");
        let addr = listener.local_addr().expect("local address");
        let state = Arc::new(Mutex::new(State {
            username: username.to_owned(),
            refresh_token: format!("tok_rt_{}", random_hex(16)),
            lifetime: Duration::from_secs(3600),
            rotate: false,
            outage: None,
            tokens: HashMap::new(),
            token_requests: Vec::new(),
            introspections: 0,
            inactive: 0,
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let client_id = "mailops-test-client".to_owned();
        let client_secret = format!("tok_cs_{}", random_hex(16));
        let thread = {
            let (state, stop) = (state.clone(), stop.clone());
            let (id, secret) = (client_id.clone(), client_secret.clone());
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let (state, id, secret) = (state.clone(), id.clone(), secret.clone());
                    std::thread::spawn(move || serve(stream, &state, &id, &secret));
                }
            })
        };
        AuthServer {
            addr,
            client_id,
            client_secret,
            state,
            stop,
            thread: Some(thread),
        }
    }

    /// The token endpoint.
    pub fn token_url(&self) -> String {
        format!("http://{}/token", self.addr)
    }

    /// The introspection endpoint (Dovecot's `introspection_url`).
    pub fn introspection_url(&self) -> String {
        format!("http://{}/introspect", self.addr)
    }

    /// The refresh token it accepts now.
    pub fn refresh_token(&self) -> String {
        self.state().refresh_token.clone()
    }

    /// The lifetime (`expires_in`) of the access tokens issued from now on.
    pub fn set_lifetime(&self, lifetime: Duration) {
        self.state().lifetime = lifetime;
    }

    /// Whether each refresh also issues a new refresh token (the old one then refused).
    pub fn set_rotation(&self, rotate: bool) {
        self.state().rotate = rotate;
    }

    /// With a status, `/token` answers every request with it (an outage); `None` ends it.
    pub fn set_outage(&self, status: Option<u16>) {
        self.state().outage = status;
    }

    /// Revokes every access token issued so far.
    pub fn revoke_all(&self) {
        for (_, revoked) in self.state().tokens.values_mut() {
            *revoked = true;
        }
    }

    /// Issues an access token as a refresh would, without a request.
    pub fn issue(&self) -> String {
        issue(&mut self.state())
    }

    /// Every `/token` request so far.
    pub fn token_requests(&self) -> Vec<TokenRequest> {
        self.state().token_requests.clone()
    }

    /// (introspections so far, of which answered inactive).
    pub fn introspections(&self) -> (usize, usize) {
        let state = self.state();
        (state.introspections, state.inactive)
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().expect("the server's state")
    }
}

impl Drop for AuthServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop, which then sees the flag.
        let _ = TcpStream::connect(self.addr);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn issue(state: &mut State) -> String {
    let token = format!("tok_at_{}", random_hex(16));
    let expires = Instant::now() + state.lifetime;
    state.tokens.insert(token.clone(), (expires, false));
    token
}

/// One request, one response, then the connection is closed.
fn serve(stream: TcpStream, state: &Mutex<State>, client_id: &str, client_secret: &str) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut reader = BufReader::new(stream);
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let mut length = 0;
    let mut expect_continue = false;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                length = value.parse().unwrap_or(0);
            } else if name.eq_ignore_ascii_case("expect") {
                expect_continue = value.eq_ignore_ascii_case("100-continue");
            }
        }
    }
    if expect_continue {
        let _ = reader.get_mut().write_all(b"HTTP/1.1 100 Continue\r\n\r\n");
    }
    let mut body = vec![0; length];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    let form = parse_form(&String::from_utf8_lossy(&body));
    let mut parts = request_line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let mut state = state.lock().expect("the server's state");
    let (status, json) = match (method, path) {
        ("POST", "/token") => token(&mut state, form, client_id, client_secret),
        ("POST", "/introspect") => introspect(&mut state, &form),
        _ => (404, r#"{"error":"not_found"}"#.to_owned()),
    };
    drop(state);
    let response = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\nConnection: close\r\n\r\n{json}",
        reason(status),
        json.len()
    );
    let _ = reader.get_mut().write_all(response.as_bytes());
}

/// The token endpoint: RFC 6749 §6 in, §5.1 or §5.2 out.
fn token(
    state: &mut State,
    form: Vec<(String, String)>,
    client_id: &str,
    client_secret: &str,
) -> (u16, String) {
    let request = TokenRequest { form };
    state.token_requests.push(request.clone());
    if let Some(status) = state.outage {
        return (
            status,
            "<html>the identity provider is down</html>".to_owned(),
        );
    }
    let error = |status, error: &str, description: &str| {
        (
            status,
            format!(r#"{{"error":"{error}","error_description":"{description}"}}"#),
        )
    };
    if request.get("grant_type") != Some("refresh_token") {
        return error(400, "unsupported_grant_type", "only refresh_token");
    }
    if request.get("client_id") != Some(client_id)
        || request.get("client_secret") != Some(client_secret)
    {
        return error(401, "invalid_client", "unknown client or wrong secret");
    }
    if request.get("refresh_token") != Some(state.refresh_token.as_str()) {
        return error(
            400,
            "invalid_grant",
            "The refresh token has expired or was revoked.",
        );
    }
    let access_token = issue(state);
    let rotated = if state.rotate {
        state.refresh_token = format!("tok_rt_{}", random_hex(16));
        format!(r#","refresh_token":"{}""#, state.refresh_token)
    } else {
        String::new()
    };
    let scope = request.get("scope").unwrap_or("SMTP.Send");
    (
        200,
        format!(
            r#"{{"token_type":"Bearer","scope":"{scope}","expires_in":{},"access_token":"{access_token}"{rotated}}}"#,
            state.lifetime.as_secs()
        ),
    )
}

/// Token introspection (RFC 7662 §2.2). An inactive answer names the user too: Dovecot 2.3
/// checks the username before `active`, and without one it calls the lookup an internal
/// failure (`454 4.7.0`) instead of refusing the token (`535 5.7.8`).
fn introspect(state: &mut State, form: &[(String, String)]) -> (u16, String) {
    state.introspections += 1;
    let token = form
        .iter()
        .find(|(k, _)| k == "token")
        .map_or("", |(_, v)| v.as_str());
    let active = state
        .tokens
        .get(token)
        .is_some_and(|(expires, revoked)| !revoked && Instant::now() < *expires);
    if !active {
        state.inactive += 1;
    }
    (
        200,
        format!(
            r#"{{"active":{active},"username":"{}","scope":"SMTP.Send"}}"#,
            state.username
        ),
    )
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

/// `application/x-www-form-urlencoded`: `+` is a space, `%XX` a byte.
fn parse_form(body: &str) -> Vec<(String, String)> {
    let decode = |s: &str| {
        let bytes = s.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < bytes.len() => {
                    let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                    match u8::from_str_radix(hex, 16) {
                        Ok(b) => {
                            out.push(b);
                            i += 2;
                        }
                        Err(_) => out.push(b'%'),
                    }
                }
                b => out.push(b),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    };
    body.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(k), decode(v))
        })
        .collect()
}

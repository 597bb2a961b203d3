//! The `mailops.toml` config tree: loaded, checked, every problem reported at once.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Deserialize;

/// The whole configuration file.
#[derive(Debug, Clone)]
pub struct Config {
    /// `[database]`
    pub database: Database,
    /// `[lmtp]`
    pub lmtp: Lmtp,
    /// `[inbound]`
    pub inbound: Inbound,
    /// `[postfix]`
    pub postfix: Postfix,
    /// `[outbound]`: absent, mailops sends nothing.
    pub outbound: Option<Outbound>,
    /// `[metrics]`: absent, serve has no metrics or health endpoint.
    pub metrics: Option<Metrics>,
    /// `[retention]`: how long what is stored is kept (absent: for ever).
    pub retention: Retention,
}

/// `[retention]`: how long stored mail is kept. Both are optional: unset, kept for ever.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Retention {
    /// Days raw messages are kept (`inbound_raw`); their rows stay.
    pub raw_days: Option<u32>,
    /// Days message rows (`inbound_messages`) and device logs are kept.
    pub rows_days: Option<u32>,
}

impl Retention {
    /// `days` as a duration.
    pub fn age(days: Option<u32>) -> Option<std::time::Duration> {
        days.map(|d| std::time::Duration::from_secs(u64::from(d) * 86_400))
    }
}

/// `[metrics]`: the HTTP endpoint serving `/metrics` (Prometheus), `/healthz` and `/readyz`.
#[derive(Debug, Clone, Deserialize)]
pub struct Metrics {
    /// `host:port` it listens on (no authentication: the metrics say how much mail comes
    /// and from which routes, nothing of its content).
    pub listen: SocketAddr,
}

/// `[database]`: where PostgreSQL is. Its `Debug` hides the URL's password.
#[derive(Clone, Deserialize)]
pub struct Database {
    /// A libpq-style URL; `MAILOPS_DATABASE_URL` or `DATABASE_URL` override it.
    pub url: String,
    /// Connections kept in the pool.
    #[serde(default = "default_pool_size")]
    pub pool_size: usize,
}

/// `[lmtp]`: the LMTP listener Postfix delivers to.
#[derive(Debug, Clone, Deserialize)]
pub struct Lmtp {
    /// `unix:/path/to.sock` or `host:port`.
    pub listen: Listen,
    /// Largest message accepted, in octets (also Postfix's `message_size_limit`).
    #[serde(default = "default_max_message_size")]
    pub max_message_size: u64,
    /// Recipients accepted in one transaction; more get `452 4.5.3`.
    #[serde(default = "default_max_recipients")]
    pub max_recipients: usize,
    /// Seconds a client may stay silent before `421`.
    #[serde(default = "default_idle_timeout_s")]
    pub idle_timeout_s: u64,
    /// Connections served at once; more get `421` and are closed.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Group that owns the unix socket (mode 0660); Postfix's `mail_owner` must be in it.
    #[serde(default = "default_socket_group")]
    pub socket_group: String,
    /// Allows a TCP `listen` address that is not loopback. LMTP has no authentication: whoever
    /// reaches the listener can store mail as if Postfix had accepted it.
    #[serde(default)]
    pub allow_non_loopback: bool,
}

/// Where the LMTP server listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listen {
    /// A unix domain socket at this path.
    Unix(PathBuf),
    /// A TCP address.
    Tcp(SocketAddr),
}

/// `[inbound]`: which addresses mail is accepted for.
#[derive(Debug, Clone, Deserialize)]
pub struct Inbound {
    /// Domains mail is accepted for, fully qualified, lower case.
    pub authorized_domains: Vec<String>,
    /// Local part of the events address (`notify@<domain>`).
    #[serde(default = "default_notify_local_part")]
    pub notify_local_part: String,
    /// Compare device names only up to their first dot (highest device ID wins a tie).
    #[serde(default)]
    pub strip_fqdn: bool,
    /// The text event policies match and the device log records.
    #[serde(default)]
    pub alert_message: AlertMessage,
    /// `[inbound.auth]`: verifying senders, and what an unverified one may do.
    #[serde(default)]
    pub auth: InboundAuth,
}

/// `[inbound.auth]`: who sent a mail, as far as this instance can tell. With `verify`, the
/// generated Postfix checks SPF, DKIM and DMARC (through rspamd as a milter) and adds an
/// `Authentication-Results` header with its `myhostname` as authserv-id; mailops reads only
/// that one. Without it, only a client in `[postfix] mynetworks` is verified.
#[derive(Debug, Clone, Deserialize)]
pub struct InboundAuth {
    /// Check SPF, DKIM and DMARC on port 25.
    #[serde(default)]
    pub verify: bool,
    /// Where the verifier (rspamd) keeps its milter socket and state; it must own the
    /// directory, and Postfix must reach the socket.
    #[serde(default = "default_verifier_directory")]
    pub verifier_directory: PathBuf,
    /// DNS servers the verifier asks (`host` or `host:port`); empty: the system's resolvers.
    #[serde(default)]
    pub nameservers: Vec<String>,
    /// The public suffix list DMARC finds organisational domains with.
    #[serde(default = "default_public_suffix_list")]
    pub public_suffix_list: PathBuf,
    /// What verifies a sender, any one of them: a DMARC pass, an SPF or DKIM pass aligned
    /// with the From domain, a client in `mynetworks`.
    #[serde(default = "default_trust")]
    pub trust: Vec<Method>,
    /// What a reply to a ticket from an unverified sender does.
    #[serde(default)]
    pub unverified_reply: UnverifiedReply,
    /// Send ticket notices to unverified senders too (they may be forged: backscatter).
    #[serde(default)]
    pub notify_unverified: bool,
}

impl Default for InboundAuth {
    fn default() -> InboundAuth {
        InboundAuth {
            verify: false,
            verifier_directory: default_verifier_directory(),
            nameservers: Vec::new(),
            public_suffix_list: default_public_suffix_list(),
            trust: default_trust(),
            unverified_reply: UnverifiedReply::default(),
            notify_unverified: false,
        }
    }
}

/// A way a sender is verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// The From domain passes DMARC.
    Dmarc,
    /// A valid DKIM signature of the From domain (or a parent or child of it).
    Dkim,
    /// SPF passes for a MAIL FROM domain aligned with the From domain.
    Spf,
    /// The SMTP client is in `[postfix] mynetworks`.
    Mynetworks,
}

impl Method {
    /// Its name in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Dmarc => "dmarc",
            Method::Dkim => "dkim",
            Method::Spf => "spf",
            Method::Mynetworks => "mynetworks",
        }
    }
}

/// `[inbound.auth] unverified_reply`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnverifiedReply {
    /// A new request under the ticket policy's access rule, as from a stranger.
    #[default]
    NewRequest,
    /// Stored, with the reason, and nothing else done.
    Store,
}

/// `[inbound] alert_message`: what text of an alert mail is matched and logged.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertMessage {
    /// The body as text.
    #[default]
    Body,
    /// The subject, a line break, then the body.
    SubjectAndBody,
}

/// `[postfix]`: what the generated Postfix configuration says.
#[derive(Debug, Clone, Deserialize)]
pub struct Postfix {
    /// Address and port the Postfix SMTP server listens on.
    #[serde(default = "default_smtpd_listen")]
    pub smtpd_listen: SocketAddr,
    /// Networks allowed to relay through Postfix, in CIDR notation.
    #[serde(default = "default_mynetworks")]
    pub mynetworks: Vec<String>,
    /// Certificate chain (PEM) for inbound STARTTLS; with `tls_key_file`, STARTTLS is offered.
    pub tls_cert_file: Option<PathBuf>,
    /// Private key (PEM) for `tls_cert_file`.
    pub tls_key_file: Option<PathBuf>,
    /// Postfix's `myhostname`; defaults to the first authorized domain.
    pub myhostname: Option<String>,
    /// Postfix's `queue_directory`.
    #[serde(default = "default_queue_directory")]
    pub queue_directory: PathBuf,
    /// Postfix's `data_directory`.
    #[serde(default = "default_data_directory")]
    pub data_directory: PathBuf,
    /// When set, Postfix logs to this file (through `postlogd`) instead of syslog.
    pub maillog_file: Option<PathBuf>,
    /// Messages one SMTP client outside `mynetworks` may send per minute (Postfix's anvil);
    /// 0: no limit.
    #[serde(default = "default_client_message_rate_limit")]
    pub client_message_rate_limit: u32,
}

/// `[outbound]`: how mailops sends mail (notices, probes) through the SMTP gateway.
#[derive(Debug, Clone, Deserialize)]
pub struct Outbound {
    /// The envelope and From address of what mailops sends.
    pub from_address: String,
    /// The From display name.
    #[serde(default = "default_formal_name")]
    pub formal_name: String,
    /// `host[:port]`; port 25 when none is given.
    pub gateway: String,
    /// Used when the primary gateway cannot be reached.
    pub gateway_alt: Option<String>,
    /// How the connection is protected.
    #[serde(default)]
    pub encryption: Encryption,
    /// How mailops authenticates.
    #[serde(default)]
    pub auth: Auth,
    /// The SMTP user name.
    pub username: Option<String>,
    /// A file holding the password (MAILOPS_SMTP_PASSWORD wins).
    pub password_file: Option<PathBuf>,
    /// PEM certificates to trust besides the public roots (a private gateway's CA).
    pub tls_ca_file: Option<PathBuf>,
    /// Seconds for connecting and for each SMTP reply.
    #[serde(default = "default_timeout_s")]
    pub timeout_s: u64,
    /// Keep queuing, send nothing.
    #[serde(default)]
    pub block_outgoing: bool,
    /// When set, everything goes to this address instead of its recipient.
    #[serde(default)]
    pub address_override: String,
    /// What `%W` expands to (`%t`: the ticket id).
    pub ticket_url: Option<String>,
    /// Ticket notices one address gets per hour at most; more are not sent (a mail loop
    /// with a responder that evades the automatic-mail checks ends here).
    #[serde(default = "default_notices_per_hour")]
    pub notices_per_hour: i64,
    /// Sending attempts before a message is `failed`.
    #[serde(default = "default_max_attempts")]
    pub max_attempts: i32,
    /// `[outbound.oauth2]`: where XOAUTH2's access tokens come from.
    pub oauth2: Option<OAuth2>,
}

/// `[outbound.oauth2]`: the OAuth 2.0 client that gets XOAUTH2's access tokens (RFC 6749 §6:
/// refreshing an access token). The required keys are options so that each missing one is
/// reported by name.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct OAuth2 {
    /// The token endpoint: `https://`, or `http://` to a loopback address.
    pub token_url: Option<String>,
    /// The client (application) id.
    pub client_id: Option<String>,
    /// A file holding the client secret; none for a public client.
    pub client_secret_file: Option<PathBuf>,
    /// A file holding the refresh token.
    pub refresh_token_file: Option<PathBuf>,
    /// The scope asked for (space-separated); none asks for the grant's own.
    pub scope: Option<String>,
}

/// `[outbound] encryption`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Encryption {
    /// Plain SMTP.
    None,
    /// STARTTLS, required.
    #[default]
    Starttls,
    /// TLS from the first byte (port 465).
    Smtps,
}

/// `[outbound] auth`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Auth {
    /// No authentication.
    #[default]
    None,
    /// AUTH PLAIN.
    Plain,
    /// AUTH LOGIN.
    Login,
    /// AUTH CRAM-MD5 (RFC 2195): the password never crosses the wire.
    #[serde(rename = "cram-md5")]
    CramMd5,
    /// AUTH XOAUTH2: an OAuth 2.0 access token, refreshed as `[outbound.oauth2]` says.
    Xoauth2,
}

fn default_formal_name() -> String {
    "mailops".into()
}
fn default_timeout_s() -> u64 {
    30
}
fn default_max_attempts() -> i32 {
    8
}
fn default_notices_per_hour() -> i64 {
    10
}

fn default_pool_size() -> usize {
    16
}
fn default_max_message_size() -> u64 {
    26_214_400
}
fn default_max_recipients() -> usize {
    1000
}
fn default_idle_timeout_s() -> u64 {
    300
}
fn default_max_connections() -> usize {
    256
}
fn default_socket_group() -> String {
    "postfix".into()
}
fn default_notify_local_part() -> String {
    "notify".into()
}
fn default_smtpd_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 25))
}
fn default_mynetworks() -> Vec<String> {
    vec!["127.0.0.0/8".into(), "::1/128".into()]
}
fn default_verifier_directory() -> PathBuf {
    "/run/mailops-verifier".into()
}
fn default_public_suffix_list() -> PathBuf {
    "/usr/share/rspamd/effective_tld_names.dat".into()
}
fn default_trust() -> Vec<Method> {
    vec![Method::Dmarc, Method::Mynetworks]
}
fn default_client_message_rate_limit() -> u32 {
    120
}
fn default_queue_directory() -> PathBuf {
    "/var/spool/postfix-mailops".into()
}
fn default_data_directory() -> PathBuf {
    "/var/lib/postfix-mailops".into()
}

/// The system Postfix's own directories (Debian's and Postfix's defaults): an instance of
/// mailops's sharing one would share its queue or its pid and lock files.
const SYSTEM_POSTFIX_DIRECTORIES: [&str; 2] = ["/var/spool/postfix", "/var/lib/postfix"];

impl fmt::Debug for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Database")
            .field("url", &redact_password(&self.url))
            .field("pool_size", &self.pool_size)
            .finish()
    }
}

/// A PostgreSQL URL or `key=value` string with its password replaced by `***`, for
/// anything that shows the URL.
pub fn redact_password(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://") {
        // postgres://user:password@host/db: the password ends at the last '@' of the authority.
        let authority = rest.find(['/', '?']).map_or(rest, |end| &rest[..end]);
        if let Some(at) = authority.rfind('@') {
            if let Some(colon) = authority[..at].find(':') {
                return format!("{scheme}://{}:***{}", &rest[..colon], &rest[at..]);
            }
        }
        return url.to_owned();
    }
    // key=value pairs: password='quoted value' or password=value.
    let Some(start) = url.find("password") else {
        return url.to_owned();
    };
    let after = url[start + "password".len()..].trim_start();
    let Some(value) = after.strip_prefix('=').map(str::trim_start) else {
        return url.to_owned();
    };
    let value_start = url.len() - value.len();
    let value_len = if let Some(quoted) = value.strip_prefix('\'') {
        quoted.find('\'').map_or(value.len(), |end| end + 2)
    } else {
        value.find(char::is_whitespace).unwrap_or(value.len())
    };
    format!(
        "{}***{}",
        &url[..value_start],
        &url[value_start + value_len..]
    )
}

impl<'de> Deserialize<'de> for Listen {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl std::str::FromStr for Listen {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if let Some(path) = s.strip_prefix("unix:") {
            if !path.starts_with('/') {
                return Err(format!("unix socket path must be absolute, got {path:?}"));
            }
            return Ok(Listen::Unix(path.into()));
        }
        s.parse()
            .map(Listen::Tcp)
            .map_err(|_| format!("expected \"unix:/path\" or \"host:port\", got {s:?}"))
    }
}

impl fmt::Display for Listen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Listen::Unix(p) => write!(f, "unix:{}", p.display()),
            Listen::Tcp(a) => write!(f, "{a}"),
        }
    }
}

/// Where the command line looks for its config file when `-c` is not given, after
/// `$MAILOPS_CONFIG`: the working directory's, then the system's.
pub const CONFIG_PLACES: [&str; 2] = ["mailops.toml", "/etc/mailops/mailops.toml"];

/// The config file to use: `explicit` (`-c`), else `$MAILOPS_CONFIG`, else the first of
/// [`CONFIG_PLACES`] that exists. A file named outright must exist: it is not passed over.
pub fn locate(explicit: Option<&Path>) -> Result<PathBuf, Error> {
    if let Some(path) = explicit {
        return Ok(path.into());
    }
    if let Some(path) = std::env::var_os("MAILOPS_CONFIG").filter(|p| !p.is_empty()) {
        return Ok(path.into());
    }
    CONFIG_PLACES
        .iter()
        .map(PathBuf::from)
        .find(|path| path.exists())
        .ok_or_else(|| Error::NotFound {
            looked: CONFIG_PLACES.iter().map(|p| PathBuf::from(*p)).collect(),
        })
}

/// Everything wrong with a config file, one line per problem.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No config file was named and none is where one is looked for.
    #[error(
        "no config file: none given with -c or MAILOPS_CONFIG, and none at {}",
        looked.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(" or ")
    )]
    NotFound {
        /// Where the file was looked for.
        looked: Vec<PathBuf>,
    },
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file was read but is wrong; each entry names its key.
    #[error("invalid configuration {}:\n  {}", path.display(), problems.join("\n  "))]
    Invalid {
        /// The file.
        path: PathBuf,
        /// One line per problem.
        problems: Vec<String>,
    },
}

impl Config {
    /// Reads and checks `path`, applying the database URL from the environment.
    pub fn load(path: &Path) -> Result<Config, Error> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
            path: path.into(),
            source,
        })?;
        let env_url = std::env::var("MAILOPS_DATABASE_URL")
            .or_else(|_| std::env::var("DATABASE_URL"))
            .ok()
            .filter(|u| !u.is_empty());
        Config::parse(&text, env_url).map_err(|problems| Error::Invalid {
            path: path.into(),
            problems,
        })
    }

    /// Parses and checks config text; `database_url` (from the environment) wins over the file.
    /// Every problem is reported at once, as `key.path (line N): why`: values of the wrong type
    /// are left out and the rest is still read and checked.
    pub fn parse(text: &str, database_url: Option<String>) -> Result<Config, Vec<String>> {
        let mut table: toml::Table = match text.parse() {
            Ok(t) => t,
            Err(e) => return Err(vec![syntax_error(text, &e)]),
        };
        if let Some(url) = database_url {
            let db = table
                .entry("database")
                .or_insert_with(|| toml::Value::Table(Default::default()));
            if let toml::Value::Table(db) = db {
                db.insert("url".into(), toml::Value::String(url));
            }
        }
        let mut problems = Problems::default();
        let database = section::<Database>(&mut table, "database", &mut problems);
        let lmtp = section::<Lmtp>(&mut table, "lmtp", &mut problems);
        let inbound = section::<Inbound>(&mut table, "inbound", &mut problems);
        let postfix = section::<Postfix>(&mut table, "postfix", &mut problems);
        let outbound = table
            .contains_key("outbound")
            .then(|| section::<Outbound>(&mut table, "outbound", &mut problems));
        let metrics = table
            .contains_key("metrics")
            .then(|| section::<Metrics>(&mut table, "metrics", &mut problems));
        let retention = section::<Retention>(&mut table, "retention", &mut problems);
        for key in table.keys() {
            problems.push(key, "unknown section");
        }
        let sections = (
            database,
            lmtp,
            inbound,
            postfix,
            outbound.map_or(Some(None), |o| o.map(Some)),
            metrics.map_or(Some(None), |m| m.map(Some)),
            retention,
        );
        let (
            Some(database),
            Some(lmtp),
            Some(inbound),
            Some(postfix),
            Some(outbound),
            Some(metrics),
            Some(retention),
        ) = sections
        else {
            return Err(problems.located(text));
        };
        let mut config = Config {
            database,
            lmtp,
            inbound,
            postfix,
            outbound,
            metrics,
            retention,
        };
        let mut checked = Vec::new();
        config.check(&mut checked);
        for problem in checked {
            let (key, why) = problem.split_once(": ").unwrap_or(("", &problem));
            problems.push(key, why);
        }
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(problems.located(text))
        }
    }

    /// Checks values serde cannot, normalising case where the check allows it.
    fn check(&mut self, problems: &mut Vec<String>) {
        if let Err(why) = crate::store::connect::Target::parse(&self.database.url) {
            problems.push(format!("database.url: {why}"));
        }
        if self.database.pool_size == 0 {
            problems.push("database.pool_size: must be at least 1".into());
        }
        if self.lmtp.max_message_size < 1024 {
            problems.push("lmtp.max_message_size: must be at least 1024 octets".into());
        }
        if self.lmtp.max_recipients == 0 {
            problems.push("lmtp.max_recipients: must be at least 1".into());
        }
        if self.lmtp.max_connections == 0 {
            problems.push("lmtp.max_connections: must be at least 1".into());
        }
        if self.lmtp.idle_timeout_s == 0 {
            problems.push("lmtp.idle_timeout_s: must be at least 1".into());
        }
        if let Listen::Tcp(addr) = &self.lmtp.listen {
            if !addr.ip().to_canonical().is_loopback() && !self.lmtp.allow_non_loopback {
                problems.push(format!(
                    "lmtp.listen: {addr} is not a loopback address, and LMTP has no \
                     authentication; use a unix socket or 127.0.0.1, or set \
                     lmtp.allow_non_loopback = true if a firewall guards it"
                ));
            }
        }
        if self.inbound.authorized_domains.is_empty() {
            problems.push("inbound.authorized_domains: at least one domain is needed".into());
        }
        for domain in &mut self.inbound.authorized_domains {
            *domain = domain.to_ascii_lowercase();
            if let Err(why) = check_domain(domain) {
                problems.push(format!("inbound.authorized_domains: {domain:?} {why}"));
            }
        }
        let local = &mut self.inbound.notify_local_part;
        *local = local.to_ascii_lowercase();
        if !is_dot_atom(local) {
            problems.push(format!(
                "inbound.notify_local_part: {local:?} is not a valid local part"
            ));
        }
        self.inbound.auth.check(problems);
        for net in &self.postfix.mynetworks {
            if let Err(why) = parse_cidr(net) {
                problems.push(format!("postfix.mynetworks: {net:?} {why}"));
            }
        }
        match (&self.postfix.tls_cert_file, &self.postfix.tls_key_file) {
            (Some(_), None) => {
                problems.push("postfix.tls_key_file: needed with postfix.tls_cert_file".into())
            }
            (None, Some(_)) => {
                problems.push("postfix.tls_cert_file: needed with postfix.tls_key_file".into())
            }
            _ => {}
        }
        if let Some(o) = &self.outbound {
            o.check(problems);
        }
        for (key, days) in [
            ("retention.raw_days", self.retention.raw_days),
            ("retention.rows_days", self.retention.rows_days),
        ] {
            if days == Some(0) {
                problems.push(format!(
                    "{key}: must be at least 1 (leave it out to keep for ever)"
                ));
            }
        }
        if let (Some(raw), Some(rows)) = (self.retention.raw_days, self.retention.rows_days) {
            if raw > rows {
                problems.push(format!(
                    "retention.raw_days: {raw} is longer than retention.rows_days ({rows}): a raw \
                     message goes with its row"
                ));
            }
        }
        if let Some(host) = &self.postfix.myhostname {
            if let Err(why) = check_domain(host) {
                problems.push(format!("postfix.myhostname: {host:?} {why}"));
            }
        }
        for (key, dir) in [
            ("postfix.queue_directory", &self.postfix.queue_directory),
            ("postfix.data_directory", &self.postfix.data_directory),
        ] {
            if !dir.is_absolute() {
                problems.push(format!("{key}: must be an absolute path"));
            } else if SYSTEM_POSTFIX_DIRECTORIES
                .iter()
                .any(|system| Path::new(system) == dir.components().collect::<PathBuf>())
            {
                problems.push(format!(
                    "{key}: {} is the system Postfix's; this instance needs its own (the default is {})",
                    dir.display(),
                    if key.ends_with("queue_directory") {
                        default_queue_directory()
                    } else {
                        default_data_directory()
                    }
                    .display()
                ));
            }
        }
    }

    /// The host name Postfix announces.
    pub fn myhostname(&self) -> &str {
        self.postfix
            .myhostname
            .as_deref()
            .unwrap_or(&self.inbound.authorized_domains[0])
    }
}

impl InboundAuth {
    fn check(&self, problems: &mut Vec<String>) {
        if !self.verifier_directory.is_absolute() {
            problems.push("inbound.auth.verifier_directory: must be an absolute path".into());
        }
        if !self.public_suffix_list.is_absolute() {
            problems.push("inbound.auth.public_suffix_list: must be an absolute path".into());
        }
        for server in &self.nameservers {
            if server.parse::<IpAddr>().is_err() && server.parse::<SocketAddr>().is_err() {
                problems.push(format!(
                    "inbound.auth.nameservers: {server:?} is not an address or address:port"
                ));
            }
        }
        if self.trust.is_empty() {
            problems.push(
                "inbound.auth.trust: at least one of dmarc, dkim, spf, mynetworks is needed".into(),
            );
        }
    }
}

impl Outbound {
    fn check(&self, problems: &mut Vec<String>) {
        if !self.from_address.contains('@') {
            problems.push("outbound.from_address: not an address".into());
        }
        for (key, gateway) in [
            ("outbound.gateway", Some(&self.gateway)),
            ("outbound.gateway_alt", self.gateway_alt.as_ref()),
        ] {
            if let Some(Err(why)) = gateway.map(|g| parse_host_port(g)) {
                problems.push(format!("{key}: {why}"));
            }
        }
        if self.auth != Auth::None && self.username.is_none() {
            problems.push("outbound.username: needed with outbound.auth".into());
        }
        if self.timeout_s == 0 {
            problems.push("outbound.timeout_s: must be at least 1".into());
        }
        if self.notices_per_hour < 0 {
            problems.push("outbound.notices_per_hour: must not be negative".into());
        }
        if self.max_attempts < 1 {
            problems.push("outbound.max_attempts: must be at least 1".into());
        }
        if !self.address_override.is_empty() && !self.address_override.contains('@') {
            problems.push("outbound.address_override: not an address".into());
        }
        match (self.auth, &self.oauth2) {
            (Auth::Xoauth2, Some(oauth2)) => oauth2.check(problems),
            (Auth::Xoauth2, None) => problems.push(
                "outbound.oauth2: needed with outbound.auth = \"xoauth2\" \
                 (token_url, client_id, refresh_token_file)"
                    .into(),
            ),
            (_, Some(_)) => {
                problems.push("outbound.oauth2: only used with outbound.auth = \"xoauth2\"".into())
            }
            (_, None) => {}
        }
    }
}

impl OAuth2 {
    fn check(&self, problems: &mut Vec<String>) {
        let missing =
            |key: &str| format!("outbound.oauth2.{key}: needed with outbound.auth = \"xoauth2\"");
        match self.token_url.as_deref().filter(|u| !u.is_empty()) {
            None => problems.push(missing("token_url")),
            Some(url) => {
                if let Err(why) = check_token_url(url) {
                    problems.push(format!("outbound.oauth2.token_url: {url:?} {why}"));
                }
            }
        }
        if self.client_id.as_deref().is_none_or(str::is_empty) {
            problems.push(missing("client_id"));
        }
        if self.refresh_token_file.is_none() {
            problems.push(missing("refresh_token_file"));
        }
    }
}

/// A token endpoint carries the client secret and the refresh token: HTTPS, or plain HTTP
/// only to this machine (a local token broker, the tests).
fn check_token_url(url: &str) -> Result<(), &'static str> {
    let url = reqwest::Url::parse(url).map_err(|_| "is not a URL")?;
    let host = url.host_str().ok_or("has no host")?;
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    match url.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        "http" => Err("must be https (plain http only to a loopback address)"),
        _ => Err("must be an https URL"),
    }
}

/// A TOML syntax error by line and column. toml's own text quotes the line, which may be the
/// one holding the database password.
fn syntax_error(text: &str, e: &toml::de::Error) -> String {
    let Some(span) = e.span() else {
        return e.message().to_owned();
    };
    let before = &text[..span.start.min(text.len())];
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    format!(
        "line {}, column {}: {}",
        before.matches('\n').count() + 1,
        before[line_start..].chars().count() + 1,
        e.message()
    )
}

/// Splits `host[:port]` (port 25 when none is given; `[v6]:port` for IPv6).
pub fn parse_host_port(s: &str) -> Result<(String, u16), String> {
    let (host, port) = match s.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') || host.ends_with(']') => {
            let port = port
                .parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| format!("{s:?} has an invalid port"))?;
            (host, port)
        }
        _ => (s, 25),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() || host.contains(char::is_whitespace) {
        return Err(format!("{s:?} is not host[:port]"));
    }
    Ok((host.to_owned(), port))
}

/// The problems found in a config file, by key path.
#[derive(Default)]
struct Problems {
    /// `(key path, why)`, in the order found.
    found: Vec<(String, String)>,
    /// Keys left out for holding a value of the wrong type: the default that stands in for
    /// one is not checked again.
    left_out: Vec<String>,
}

impl Problems {
    fn push(&mut self, key: &str, why: &str) {
        if self.left_out.iter().any(|k| k == key) {
            return;
        }
        self.found.push((key.to_owned(), why.to_owned()));
    }

    fn is_empty(&self) -> bool {
        self.found.is_empty()
    }

    /// One line per problem, with the line of the file its key is on where it has one.
    fn located(self, text: &str) -> Vec<String> {
        let document = toml_edit::ImDocument::parse(text).ok();
        self.found
            .into_iter()
            .map(|(key, why)| {
                match document
                    .as_ref()
                    .and_then(|d| line_of(text, d.as_table(), &key))
                {
                    Some(line) => format!("{key} (line {line}): {why}"),
                    None => format!("{key}: {why}"),
                }
            })
            .collect()
    }
}

/// The line a dotted key path is written on: the key's own, else (a key not written) its
/// nearest table's.
fn line_of(text: &str, table: &toml_edit::Table, key: &str) -> Option<usize> {
    let mut span = None;
    let mut current: &dyn toml_edit::TableLike = table;
    for part in key.split('.') {
        let Some((k, item)) = current.get_key_value(part) else {
            break;
        };
        span = k.span().or(span);
        match item.as_table_like() {
            Some(inner) => current = inner,
            None => break,
        }
    }
    span.map(|s| text[..s.start].matches('\n').count() + 1)
}

/// Deserializes one `[section]`, recording every unknown key and every value of the wrong
/// type: a wrong value is reported and left out (its default stands in) and the section is
/// read again, so one mistake never hides the next. `None` when a required key is missing
/// or wrong.
fn section<T: DeserializeOwned>(
    table: &mut toml::Table,
    name: &str,
    problems: &mut Problems,
) -> Option<T> {
    let mut value = table
        .remove(name)
        .unwrap_or_else(|| toml::Value::Table(Default::default()));
    let mut unknown = std::collections::BTreeSet::new();
    let read = loop {
        // serde_ignored writes an `Option`'s inside as `?` (`oauth2.?.colour`): not a key.
        let result = serde_path_to_error::deserialize(serde_ignored::Deserializer::new(
            value.clone(),
            &mut |path: serde_ignored::Path| {
                let key: Vec<String> = path
                    .to_string()
                    .split('.')
                    .filter(|part| *part != "?")
                    .map(str::to_owned)
                    .collect();
                unknown.insert(format!("{name}.{}", key.join(".")));
            },
        ));
        let error = match result {
            Ok(v) => break Some(v),
            Err(e) => e,
        };
        let path: Vec<String> = error
            .path()
            .iter()
            .filter_map(|segment| match segment {
                serde_path_to_error::Segment::Map { key } => Some(key.clone()),
                serde_path_to_error::Segment::Seq { index } => Some(index.to_string()),
                _ => None,
            })
            .collect();
        let message = error.into_inner().message().to_owned();
        // The section's name and the first `len` parts of the path, as a dotted key.
        let key_path = |len: usize| {
            std::iter::once(name)
                .chain(path[..len].iter().map(String::as_str))
                .collect::<Vec<_>>()
                .join(".")
        };
        if let Some(field) = message
            .strip_prefix("missing field `")
            .and_then(|m| m.strip_suffix('`'))
        {
            problems.push(&format!("{}.{field}", key_path(path.len())), "is required");
            break None;
        }
        // The value in the way is the map entry the path ends on (a list's item, the list).
        let key_len = path
            .iter()
            .rposition(|p| p.parse::<usize>().is_err())
            .map_or(0, |i| i + 1);
        let key = key_path(key_len);
        problems.push(&key, &plain_type_error(&message));
        // A list's wrong item is left out of the list, whose other items are still checked;
        // any other wrong value is left out with its key.
        let remove = path.len().min(key_len + 1);
        if key_len == 0 || !remove_path(&mut value, &path[..remove]) {
            break None;
        }
        if remove == key_len {
            problems.left_out.push(key);
        }
    };
    for key in &unknown {
        problems.push(key, "unknown key");
    }
    read
}

/// Removes the value at `path` (table keys, list indexes) inside `value`; false when there
/// is none.
fn remove_path(value: &mut toml::Value, path: &[String]) -> bool {
    let Some((last, parents)) = path.split_last() else {
        return false;
    };
    let mut current = value;
    for part in parents {
        let inner = match current {
            toml::Value::Table(t) => t.get_mut(part),
            toml::Value::Array(a) => part.parse::<usize>().ok().and_then(|i| a.get_mut(i)),
            _ => None,
        };
        match inner {
            Some(inner) => current = inner,
            None => return false,
        }
    }
    match current {
        toml::Value::Table(t) => t.remove(last).is_some(),
        toml::Value::Array(a) => match last.parse::<usize>() {
            Ok(i) if i < a.len() => {
                a.remove(i);
                true
            }
            _ => false,
        },
        _ => false,
    }
}

/// serde's type error in the words of the config file: `expected u64` is a whole number.
fn plain_type_error(message: &str) -> String {
    let mut plain = message.trim().to_owned();
    for rust in ["u64", "u32", "u16", "usize", "i64", "i32"] {
        plain = plain.replace(&format!("expected {rust}"), "expected a whole number");
    }
    plain
}

/// A fully qualified domain name of at most 64 characters (SL1's limit for authorized domains).
fn check_domain(domain: &str) -> Result<(), String> {
    if let Some(c) = domain
        .chars()
        .find(|c| !c.is_ascii_alphanumeric() && !matches!(c, '-' | '.'))
    {
        return Err(format!(
            "has {c:?}, which a domain name cannot have (letters, digits, '-' and '.' only)"
        ));
    }
    if domain.len() > 64 {
        return Err("is longer than 64 characters".into());
    }
    let labels: Vec<&str> = domain.split('.').collect();
    if labels.iter().any(|l| l.is_empty()) {
        return Err("has an empty label (two dots in a row, or a dot at an end)".into());
    }
    if labels.len() < 2 {
        return Err("is not fully qualified (no dot)".into());
    }
    if labels
        .iter()
        .any(|l| l.starts_with('-') || l.ends_with('-'))
    {
        return Err("has a label that starts or ends with '-'".into());
    }
    if labels.iter().any(|l| l.len() > 63) {
        return Err("has a label longer than 63 characters".into());
    }
    Ok(())
}

/// RFC 5322 §3.2.3 dot-atom: atext runs separated by single dots.
fn is_dot_atom(s: &str) -> bool {
    const SPECIALS: &[u8] = b"!#$%&'*+-/=?^_`{|}~";
    !s.is_empty()
        && s.split('.').all(|atom| {
            !atom.is_empty()
                && atom
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || SPECIALS.contains(&b))
        })
}

/// Parses `address/prefix`; Postfix wants IPv6 networks written `[addr]/prefix`.
pub fn parse_cidr(net: &str) -> Result<(IpAddr, u8), &'static str> {
    let (addr, prefix) = net
        .split_once('/')
        .ok_or("is not in address/prefix notation")?;
    let addr: IpAddr = addr
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .map_err(|_| "has an invalid address")?;
    let prefix: u8 = prefix.parse().map_err(|_| "has an invalid prefix")?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    if prefix > max {
        return Err("has a prefix longer than the address");
    }
    Ok((addr, prefix))
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;

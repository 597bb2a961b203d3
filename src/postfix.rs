//! Postfix's configuration for mailops: the templates under `postfix/`, filled in from the config.
//!
//! [`render`] is pure: it turns a [`Config`] into the files' text. [`write`] puts them in a
//! directory for `postfix -c DIR`. The generated main.cf names its lookup table as
//! `${config_directory}/pgsql-recipients.cf`, so the files work from whatever directory
//! they are written to.

use std::fs;
use std::io::{self, Write as _};
use std::net::{IpAddr, SocketAddr};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::config::{parse_cidr, Config, Listen};

mod pgsql;
pub mod qmgr;
mod verifier;

/// main.cf: the instance's parameters.
pub const MAIN_CF: &str = "main.cf";
/// master.cf: the instance's services.
pub const MASTER_CF: &str = "master.cf";
/// The pgsql_table(5) file behind `virtual_mailbox_maps`; it holds the database password.
pub const RECIPIENTS_CF: &str = "pgsql-recipients.cf";

const MAIN_CF_IN: &str = include_str!("../postfix/main.cf.in");
const MASTER_CF_IN: &str = include_str!("../postfix/master.cf.in");
const RECIPIENTS_CF_IN: &str = include_str!("../postfix/pgsql-recipients.cf.in");

/// LMTP connections Postfix opens to mailops at most, unless `[lmtp] max_connections` is lower
/// (Postfix's own default_destination_concurrency_limit).
const CONCURRENCY_LIMIT: usize = 20;

/// One generated file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct File {
    /// Its name inside the output directory.
    pub name: &'static str,
    /// Its text.
    pub contents: String,
    /// Its permission bits; a file others may not read goes to the `postfix` group.
    pub mode: u32,
}

/// Why the configuration could not be generated or written.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Config values Postfix's configuration cannot express; each line names its key.
    #[error("cannot generate the Postfix configuration:\n  {}", .0.join("\n  "))]
    Invalid(Vec<String>),
    /// A file or directory could not be written.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
}

/// Renders main.cf, master.cf and the recipient lookup table for `config`.
pub fn render(config: &Config) -> Result<Vec<File>, Error> {
    let mut problems = Vec::new();
    let p = &config.postfix;

    let queue_directory = path_value("postfix.queue_directory", &p.queue_directory, &mut problems);
    let data_directory = path_value("postfix.data_directory", &p.data_directory, &mut problems);
    let mynetworks = mynetworks(&p.mynetworks, &mut problems);
    let transport = virtual_transport(&config.lmtp.listen, &mut problems);
    let tls = match (&p.tls_cert_file, &p.tls_key_file) {
        (Some(cert), Some(key)) => {
            let cert = path_value("postfix.tls_cert_file", cert, &mut problems);
            let key = path_value("postfix.tls_key_file", key, &mut problems);
            format!(
                "smtpd_tls_security_level = may\n\
                 smtpd_tls_chain_files = {key}, {cert}\n\
                 smtpd_tls_protocols = >=TLSv1.2\n\
                 smtpd_tls_mandatory_protocols = >=TLSv1.2\n\
                 smtpd_tls_loglevel = 1"
            )
        }
        _ => "smtpd_tls_security_level = none".to_owned(),
    };
    let (maillog, postlog) = match &p.maillog_file {
        Some(file) => {
            let file = path_value("postfix.maillog_file", file, &mut problems);
            (
                format!(
                    "maillog_file = {file}\n\
                     # postlogd writes only below these prefixes; the default (/var, /dev/stdout)\n\
                     # would refuse a file elsewhere.\n\
                     maillog_file_prefixes = {file}"
                ),
                "postlog   unix-dgram n  -       n       -       1       postlogd".to_owned(),
            )
        }
        None => (
            "# [postfix] maillog_file is not set: Postfix logs to syslog.".to_owned(),
            "# postlog: not needed, [postfix] maillog_file is not set.".to_owned(),
        ),
    };
    let pgsql = match pgsql::connection(&config.database.url) {
        Ok(c) => Some(c),
        Err(why) => {
            problems.push(format!("database.url: {why}"));
            None
        }
    };
    let verifier = verifier::render(config, &mut problems);
    let (Some(pgsql), true) = (pgsql, problems.is_empty()) else {
        return Err(Error::Invalid(problems));
    };

    let listen = p.smtpd_listen;
    let domains = config.inbound.authorized_domains.join(", ");
    let recipient_limit = config.lmtp.max_recipients.to_string();
    let concurrency_limit = config
        .lmtp
        .max_connections
        .min(CONCURRENCY_LIMIT)
        .to_string();
    let message_size_limit = config.lmtp.max_message_size.to_string();
    let client_message_rate_limit = p.client_message_rate_limit.to_string();
    let main = fill(
        MAIN_CF_IN,
        &[
            ("queue_directory", &queue_directory),
            ("data_directory", &data_directory),
            ("myhostname", config.myhostname()),
            ("inet_interfaces", &inet_interfaces(listen)),
            ("inet_protocols", inet_protocols(listen)),
            ("maillog_settings", &maillog),
            ("virtual_mailbox_domains", &domains),
            ("virtual_transport", &transport),
            ("recipient_limit", &recipient_limit),
            ("concurrency_limit", &concurrency_limit),
            ("mynetworks", &mynetworks),
            ("message_size_limit", &message_size_limit),
            ("client_message_rate_limit", &client_message_rate_limit),
            ("smtpd_tls_settings", &tls),
            ("verifier_settings", &verifier.main_cf),
        ],
    );
    let master = fill(
        MASTER_CF_IN,
        &[
            ("smtpd_service", &smtpd_service(listen)),
            ("postlog_service", &postlog),
        ],
    );
    let recipients = fill(
        RECIPIENTS_CF_IN,
        &[
            ("hosts", &pgsql.hosts.join(" ")),
            ("user", &pgsql.user),
            ("password", &pgsql.password),
            ("dbname", &pgsql.dbname),
            ("domains", &domains),
        ],
    );
    let mut files = vec![
        File {
            name: MAIN_CF,
            contents: main,
            mode: 0o644,
        },
        File {
            name: MASTER_CF,
            contents: master,
            mode: 0o644,
        },
        File {
            name: RECIPIENTS_CF,
            contents: recipients,
            mode: 0o640,
        },
    ];
    files.extend(verifier.files);
    Ok(files)
}

/// Renders the files and writes each into `dir` (created if missing) by rename, so Postfix
/// never reads half a file. Returns the paths written.
pub fn write(config: &Config, dir: &Path) -> Result<Vec<PathBuf>, Error> {
    let files = match (&config.postfix.maillog_file, log_file(config)) {
        (None, Some(file)) => {
            let mut config = config.clone();
            config.postfix.maillog_file = Some(file);
            render(&config)?
        }
        _ => render(config)?,
    };
    fs::create_dir_all(dir).map_err(|source| Error::Write {
        path: dir.into(),
        source,
    })?;
    let postfix_gid = crate::group::id("postfix").ok();
    let mut written = Vec::with_capacity(files.len());
    for file in &files {
        let path = dir.join(file.name);
        // Postfix opens its tables as root, but its daemons may reopen them after dropping
        // privileges: what others may not read must still be readable by the postfix group.
        let gid = postfix_gid.filter(|_| file.mode & 0o004 == 0);
        write_atomically(&path, file, gid).map_err(|source| Error::Write {
            path: path.clone(),
            source,
        })?;
        written.push(path);
    }
    Ok(written)
}

/// Where the instance logs when there is no syslog socket and `[postfix] maillog_file` is not
/// set (containers and minimal systems run no syslog daemon: Postfix would log nowhere).
pub const DEFAULT_MAILLOG_FILE: &str = "/var/log/postfix-mailops.log";

/// The file the generated instance logs to: `[postfix] maillog_file`, else
/// [`DEFAULT_MAILLOG_FILE`] when this machine has no syslog socket (`/dev/log`); `None`:
/// syslog.
pub fn log_file(config: &Config) -> Option<PathBuf> {
    config
        .postfix
        .maillog_file
        .clone()
        .or_else(|| (!Path::new("/dev/log").exists()).then(|| DEFAULT_MAILLOG_FILE.into()))
}

/// Writes `file` to a temporary name beside `path`, then renames it into place.
fn write_atomically(path: &Path, file: &File, gid: Option<u32>) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(".{}.tmp{}", file.name, std::process::id()));
    // A leftover from an interrupted run would make create_new fail.
    match fs::remove_file(&tmp) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let result = (|| {
        // Created without any access for others, so the password is never readable, even
        // for a moment, by anyone the final mode would exclude.
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(file.contents.as_bytes())?;
        if let Some(gid) = gid {
            match std::os::unix::fs::chown(&tmp, None, Some(gid)) {
                // Not root and not in the group: leave the file to its owner.
                Err(e) if e.kind() == io::ErrorKind::PermissionDenied => tracing::warn!(
                    file = %path.display(),
                    "cannot give the file to the postfix group: {e}"
                ),
                other => other?,
            }
        }
        f.set_permissions(fs::Permissions::from_mode(file.mode))?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result?;
    // The rename itself survives a crash only once the directory is on disk.
    fs::File::open(dir)?.sync_all()
}

/// Replaces each `{{name}}` in `template` with its value.
fn fill(template: &str, values: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(template.len() + 512);
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find("}}")
            .expect("every placeholder in postfix/*.in is closed");
        let name = &after[..end];
        let value = values
            .iter()
            .find(|(n, _)| *n == name)
            .unwrap_or_else(|| panic!("render() gives no value for the placeholder {name:?}"));
        out.push_str(value.1);
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    out
}

/// A path as a main.cf value: absolute, and nothing Postfix would read as syntax (`$` expands
/// parameters, whitespace and commas separate list items).
fn path_value(key: &str, path: &Path, problems: &mut Vec<String>) -> String {
    let text = path.to_string_lossy();
    let safe = |c: char| c.is_ascii_alphanumeric() || "/._-+@~=".contains(c);
    if !path.is_absolute() {
        problems.push(format!("{key}: {text:?} must be an absolute path"));
    } else if !text.chars().all(safe) {
        problems.push(format!(
            "{key}: {text:?} cannot be used in Postfix's configuration: \
             use only letters, digits and / . _ - + @ ~ ="
        ));
    }
    text.into_owned()
}

/// `mynetworks`: IPv4 as `a.b.c.d/n`, IPv6 as `[addr]/n` as Postfix wants it.
fn mynetworks(nets: &[String], problems: &mut Vec<String>) -> String {
    let mut out = Vec::with_capacity(nets.len());
    for net in nets {
        let Ok((addr, prefix)) = parse_cidr(net) else {
            problems.push(format!("postfix.mynetworks: {net:?} is not a network"));
            continue;
        };
        // Postfix skips a network whose host bits are set, with a warning on every start.
        let network = network_address(addr, prefix);
        if network != addr {
            problems.push(format!(
                "postfix.mynetworks: {net:?} has host bits set; the network is {}",
                cidr(network, prefix)
            ));
        }
        out.push(cidr(addr, prefix));
    }
    out.join(", ")
}

/// One network in Postfix's notation.
fn cidr(addr: IpAddr, prefix: u8) -> String {
    match addr {
        IpAddr::V4(a) => format!("{a}/{prefix}"),
        IpAddr::V6(a) => format!("[{a}]/{prefix}"),
    }
}

/// `addr` with the bits past `prefix` cleared.
fn network_address(addr: IpAddr, prefix: u8) -> IpAddr {
    match addr {
        IpAddr::V4(a) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V4((u32::from(a) & mask).into())
        }
        IpAddr::V6(a) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V6((u128::from(a) & mask).into())
        }
    }
}

/// `virtual_transport`: the mailops service with `[lmtp] listen` as next hop. A listener on
/// every address is reached on loopback.
fn virtual_transport(listen: &Listen, problems: &mut Vec<String>) -> String {
    match listen {
        Listen::Unix(path) => format!("mailops:unix:{}", path_value("lmtp.listen", path, problems)),
        Listen::Tcp(addr) => match addr.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => {
                format!("mailops:inet:127.0.0.1:{}", addr.port())
            }
            IpAddr::V4(ip) => format!("mailops:inet:{ip}:{}", addr.port()),
            IpAddr::V6(ip) if ip.is_unspecified() => format!("mailops:inet:[::1]:{}", addr.port()),
            IpAddr::V6(ip) => format!("mailops:inet:[{ip}]:{}", addr.port()),
        },
    }
}

/// The master.cf service name of the SMTP server: `addr:port`, or the port alone to listen
/// on every address.
fn smtpd_service(listen: SocketAddr) -> String {
    match listen.ip() {
        ip if ip.is_unspecified() => listen.port().to_string(),
        IpAddr::V4(ip) => format!("{ip}:{}", listen.port()),
        IpAddr::V6(ip) => format!("[{ip}]:{}", listen.port()),
    }
}

/// Only the listener's address, so this instance never takes other addresses' ports.
fn inet_interfaces(listen: SocketAddr) -> String {
    match listen.ip() {
        ip if ip.is_unspecified() => "all".to_owned(),
        ip => ip.to_string(),
    }
}

/// IPv4 only for an IPv4 listener; an IPv6 wildcard also accepts IPv4 on Linux.
fn inet_protocols(listen: SocketAddr) -> &'static str {
    match listen.ip() {
        IpAddr::V4(_) => "ipv4",
        IpAddr::V6(ip) if ip.is_unspecified() => "all",
        IpAddr::V6(_) => "ipv6",
    }
}

#[cfg(test)]
mod tests;

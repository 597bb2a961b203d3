//! mailops.toml for a test, written where the binary can read it.

use std::path::{Path, PathBuf};

use mailops::config::Config;

use super::postfix::free_port;

/// The config text: the database, the LMTP listener, `[lmtp]` lines `lmtp`, the authorized
/// domains, then `rest` (more `[inbound]` keys first, then other sections).
pub fn text(database_url: &str, listen: &str, lmtp: &str, domains: &[&str], rest: &str) -> String {
    let domains = domains
        .iter()
        .map(|d| format!("{d:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "[database]\nurl = \"{database_url}\"\n[lmtp]\nlisten = \"{listen}\"\n{lmtp}\n\
         [inbound]\nauthorized_domains = [{domains}]\n{rest}\n"
    )
}

/// A `[postfix]` section for a test instance: SMTP on a free loopback port, only loopback
/// clients relaying.
pub fn postfix_section() -> String {
    format!(
        "[postfix]\nsmtpd_listen = \"127.0.0.1:{}\"\nmynetworks = [\"127.0.0.0/8\"]\n",
        free_port()
    )
}

/// Writes `text` as `dir/mailops.toml` and parses it.
pub fn write(dir: &Path, text: &str) -> (PathBuf, Config) {
    let file = dir.join("mailops.toml");
    std::fs::write(&file, text).expect("writing the config");
    (file, Config::parse(text, None).expect("test config"))
}

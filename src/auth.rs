//! Who sent a mail, as far as this instance verified it: the SPF, DKIM and DMARC results its
//! own verifier wrote (the `Authentication-Results` fields with this instance's authserv-id;
//! any other is what a sender or another host claims, and is ignored) and whether the SMTP
//! client was in `mynetworks`. Worked out once per message; tickets and originator policies
//! decide with it, and each message's row records it.

use std::net::IpAddr;

use crate::config::{parse_cidr, Config, Method};
use crate::envelope::Envelope;
use crate::message::{self, Message};

pub mod results;

/// What verification needs to know besides the mail.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// The authserv-id of this instance's verifier (Postfix's `myhostname`); `None` when
    /// `[inbound.auth] verify` is off, and no result is read.
    pub authserv_id: Option<String>,
    /// `[postfix] mynetworks`.
    pub mynetworks: Vec<(IpAddr, u8)>,
}

impl Settings {
    /// The settings `config` gives.
    pub fn new(config: &Config) -> Settings {
        Settings {
            authserv_id: config
                .inbound
                .auth
                .verify
                .then(|| config.myhostname().to_ascii_lowercase()),
            mynetworks: config
                .postfix
                .mynetworks
                .iter()
                .filter_map(|net| parse_cidr(net).ok())
                .collect(),
        }
    }
}

/// What this instance verified about a mail's sender.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verification {
    /// The From domain (else the envelope sender's), lower case.
    pub from_domain: Option<String>,
    /// SPF's result, and the MAIL FROM domain it is for; `None`: not checked here.
    pub spf: Option<(String, Option<String>)>,
    /// DKIM's result: `pass` when any signature passed, else the first signature's result;
    /// `None`: not checked here.
    pub dkim: Option<String>,
    /// The signing domains (`d=`) of the signatures that passed.
    pub dkim_domains: Vec<String>,
    /// DMARC's result, and the From domain it is for; `None`: not checked here.
    pub dmarc: Option<(String, Option<String>)>,
    /// The SMTP client was in `mynetworks`.
    pub trusted_network: bool,
}

impl Verification {
    /// What `settings` verify about `message`, delivered with `envelope`.
    pub fn of(message: &Message, envelope: &Envelope, settings: &Settings) -> Verification {
        let sender = message
            .from_address
            .as_deref()
            .unwrap_or(&envelope.mail_from);
        let mut v = Verification {
            from_domain: domain(sender),
            trusted_network: envelope
                .client_addr
                .as_deref()
                .and_then(|a| a.trim_start_matches("IPv6:").parse::<IpAddr>().ok())
                .is_some_and(|ip| settings.mynetworks.iter().any(|&net| contains(net, ip))),
            ..Verification::default()
        };
        let Some(id) = &settings.authserv_id else {
            return v;
        };
        let ours = message::headers(&message.headers, "Authentication-Results")
            .filter_map(|value| results::parse(&value))
            .filter(|field| field.authserv_id == *id);
        for found in ours.flat_map(|field| field.results) {
            match found.method.as_str() {
                "spf" if v.spf.is_none() => {
                    let domain = found.property("smtp.mailfrom").and_then(domain);
                    v.spf = Some((found.result, domain));
                }
                "dmarc" if v.dmarc.is_none() => {
                    let domain = found.property("header.from").map(str::to_ascii_lowercase);
                    v.dmarc = Some((found.result, domain));
                }
                "dkim" => {
                    if found.result == "pass" {
                        if let Some(d) = found.property("header.d") {
                            v.dkim_domains.push(d.to_ascii_lowercase());
                        }
                    }
                    if v.dkim.is_none() || found.result == "pass" {
                        v.dkim = Some(found.result);
                    }
                }
                _ => {}
            }
        }
        v
    }

    /// Whether `method` verifies the sender.
    pub fn passes(&self, method: Method) -> bool {
        let from = self.from_domain.as_deref();
        let aligned = |d: Option<&str>| from.zip(d).is_some_and(|(f, d)| aligned(f, d));
        match method {
            Method::Dmarc => self
                .dmarc
                .as_ref()
                .is_some_and(|(result, d)| result == "pass" && aligned(d.as_deref())),
            Method::Dkim => self.dkim_domains.iter().any(|d| aligned(Some(d))),
            Method::Spf => self
                .spf
                .as_ref()
                .is_some_and(|(result, d)| result == "pass" && aligned(d.as_deref())),
            Method::Mynetworks => self.trusted_network,
        }
    }

    /// The first of `trust` that verifies the sender, or why none does.
    pub fn verified_by(&self, trust: &[Method]) -> Result<Method, String> {
        trust
            .iter()
            .copied()
            .find(|&m| self.passes(m))
            .ok_or_else(|| self.to_string())
    }

    /// The From domain, when SPF, DKIM or DMARC verified it (what `inbound_messages`
    /// records as `auth_domain`).
    pub fn verified_domain(&self) -> Option<&str> {
        [Method::Dmarc, Method::Dkim, Method::Spf]
            .into_iter()
            .any(|m| self.passes(m))
            .then_some(self.from_domain.as_deref())
            .flatten()
    }
}

impl std::fmt::Display for Verification {
    /// `spf=fail dkim=none dmarc=fail, client not in mynetworks`; `not checked` for a method
    /// this instance did not check.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let result = |r: Option<&str>| r.unwrap_or("not checked").to_owned();
        write!(
            f,
            "spf={} dkim={} dmarc={}, client {}in mynetworks",
            result(self.spf.as_ref().map(|(r, _)| r.as_str())),
            result(self.dkim.as_deref()),
            result(self.dmarc.as_ref().map(|(r, _)| r.as_str())),
            if self.trusted_network { "" } else { "not " }
        )
    }
}

/// The domain of `address` (or `address` itself when it has no `@`), lower case.
fn domain(address: &str) -> Option<String> {
    let d = address.rsplit_once('@').map_or(address, |(_, d)| d);
    let d = d.trim_end_matches('.').to_ascii_lowercase();
    (!d.is_empty()).then_some(d)
}

/// Relaxed alignment without a public suffix list: the same domain, or one a subdomain of
/// the other. (DMARC's own relaxed alignment, with the list, is the verifier's.)
fn aligned(a: &str, b: &str) -> bool {
    let sub = |child: &str, parent: &str| {
        child
            .strip_suffix(parent)
            .is_some_and(|rest| rest.ends_with('.'))
    };
    a.eq_ignore_ascii_case(b) || sub(a, b) || sub(b, a)
}

/// Whether `net` holds `ip` (an IPv4-mapped IPv6 address counts as IPv4).
fn contains((net, prefix): (IpAddr, u8), ip: IpAddr) -> bool {
    match (net, ip.to_canonical()) {
        (IpAddr::V4(n), IpAddr::V4(a)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            u32::from(n) & mask == u32::from(a) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(a)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            u128::from(n) & mask == u128::from(a) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
#[path = "auth_tests.rs"]
mod tests;

//! Which pipeline a recipient feeds: a pure lookup in the addresses mail is accepted for.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

/// The pipeline a recipient's copy of a message goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Route {
    /// `notify@<authorized domain>`: the events pipeline.
    Event,
    /// A ticket policy's destination: the tickets pipeline.
    Ticket,
    /// A mail to `notify@` carrying a round-trip probe's token: the probe's reply, never an
    /// alert. Decided per message, never a recipient's route in `valid_recipients`.
    ProbeReply,
}

impl Route {
    /// The name stored in `inbound_messages.route` and `valid_recipients.route`.
    pub fn as_str(self) -> &'static str {
        match self {
            Route::Event => "event",
            Route::Ticket => "ticket",
            Route::ProbeReply => "probe_reply",
        }
    }
}

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Route {
    type Err = String;
    fn from_str(s: &str) -> Result<Route, String> {
        match s {
            "event" => Ok(Route::Event),
            "ticket" => Ok(Route::Ticket),
            "probe_reply" => Ok(Route::ProbeReply),
            other => Err(format!("unknown route {other:?}")),
        }
    }
}

/// How addresses are compared: ASCII case folded, exactly like SQL's `address_key()`.
pub fn address_key(address: &str) -> String {
    address.to_ascii_lowercase()
}

/// The addresses mail is accepted for, held in memory (loaded from `valid_recipients`).
#[derive(Debug, Clone, Default)]
pub struct Router {
    routes: HashMap<String, Route>,
}

impl Router {
    /// Builds a router from (address, route) pairs; addresses are folded with [`address_key`].
    pub fn new(entries: impl IntoIterator<Item = (String, Route)>) -> Router {
        Router {
            routes: entries
                .into_iter()
                .map(|(address, route)| (address_key(&address), route))
                .collect(),
        }
    }

    /// The route for `recipient`, or `None` when mail for it is not accepted.
    pub fn route(&self, recipient: &str) -> Option<Route> {
        self.routes.get(&address_key(recipient)).copied()
    }

    /// How many addresses are accepted.
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    /// Whether no address is accepted.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }
}

/// The addresses the config file itself defines: `notify@` at each authorized domain.
pub fn config_recipients(inbound: &crate::config::Inbound) -> Vec<(String, Route)> {
    inbound
        .authorized_domains
        .iter()
        .map(|domain| {
            let address = format!("{}@{domain}", inbound.notify_local_part);
            (address_key(&address), Route::Event)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router() -> Router {
        let inbound = crate::config::Inbound {
            authorized_domains: vec!["mon.example.com".into(), "ops.example.org".into()],
            notify_local_part: "notify".into(),
            strip_fqdn: false,
            alert_message: Default::default(),
            auth: Default::default(),
        };
        Router::new(config_recipients(&inbound))
    }

    #[test]
    fn routes() {
        let r = router();
        for (rcpt, want) in [
            ("notify@mon.example.com", Some(Route::Event)),
            ("NOTIFY@Mon.Example.COM", Some(Route::Event)),
            ("notify@ops.example.org", Some(Route::Event)),
            ("notify@example.com", None),
            ("other@mon.example.com", None),
            ("notify@mon.example.com.", None),
            ("", None),
            // Unicode case folding would turn the Kelvin sign into "k"; SQL's address_key doesn't.
            ("\u{212A}notify@mon.example.com", None),
        ] {
            assert_eq!(r.route(rcpt), want, "{rcpt:?}");
        }
        assert_eq!(r.len(), 2);
    }

    #[test]
    fn route_names_round_trip() {
        for route in [Route::Event, Route::Ticket, Route::ProbeReply] {
            assert_eq!(route.to_string().parse::<Route>(), Ok(route));
        }
        assert_eq!(Route::Event.to_string(), "event");
        assert!("ticket!".parse::<Route>().is_err());
    }
}

//! The events policies as mailops holds them: devices, originator and event policies.

use std::collections::BTreeMap;
use std::net::IpAddr;

/// Declares a closed set of names stored as text in PostgreSQL and written in the policy file.
macro_rules! names {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        pub enum $name {
            $($(#[$vdoc])* #[serde(rename = $text)] $variant),+
        }

        impl $name {
            /// Every value, in order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The name stored in PostgreSQL and written in the policy file.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<$name, String> {
                $name::ALL
                    .iter()
                    .copied()
                    .find(|v| v.as_str() == s)
                    .ok_or_else(|| {
                        let all: Vec<&str> = $name::ALL.iter().map(|v| v.as_str()).collect();
                        format!("{s:?} is not one of {}", all.join(", "))
                    })
            }
        }
    };
}
pub(crate) use names;

names!(
    /// How bad an event is, least to most.
    Severity {
        /// All is well (recoveries).
        Healthy = "healthy",
        /// Worth knowing.
        Notice = "notice",
        /// Needs attention some time.
        Minor = "minor",
        /// Needs attention soon.
        Major = "major",
        /// Needs attention now.
        Critical = "critical",
    }
);

/// Where an originator policy looks for the device identifier.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum RegexType {
    /// The decoded Subject.
    #[default]
    Subject,
    /// The body as text.
    Body,
    /// The From header: its display name and address, `Name <local@domain>`.
    From,
    /// The envelope sender (`MAIL FROM`).
    EnvelopeFrom,
    /// The first header field of this name, decoded.
    Header(String),
}

/// How a [`RegexType::Header`] is written: `header:<field name>`.
const HEADER_PREFIX: &str = "header:";

impl RegexType {
    /// The fixed values, as written (besides `header:<Name>`).
    pub const NAMES: &'static [&'static str] = &["subject", "body", "from", "envelope_from"];

    /// How it is stored in PostgreSQL and written in the policy file.
    pub fn as_str(&self) -> std::borrow::Cow<'_, str> {
        match self {
            RegexType::Subject => "subject".into(),
            RegexType::Body => "body".into(),
            RegexType::From => "from".into(),
            RegexType::EnvelopeFrom => "envelope_from".into(),
            RegexType::Header(name) => format!("{HEADER_PREFIX}{name}").into(),
        }
    }
}

impl std::fmt::Display for RegexType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RegexType::Header(name) => write!(f, "{name} header"),
            RegexType::EnvelopeFrom => f.write_str("envelope sender"),
            RegexType::From => f.write_str("From header"),
            other => f.write_str(&other.as_str()),
        }
    }
}

impl std::str::FromStr for RegexType {
    type Err = String;
    fn from_str(s: &str) -> Result<RegexType, String> {
        match s {
            "subject" => Ok(RegexType::Subject),
            "body" => Ok(RegexType::Body),
            "from" => Ok(RegexType::From),
            "envelope_from" => Ok(RegexType::EnvelopeFrom),
            _ => match s.strip_prefix(HEADER_PREFIX) {
                // RFC 5322 §3.6.8: printable US-ASCII but the colon.
                Some(name)
                    if !name.is_empty()
                        && name.bytes().all(|b| b.is_ascii_graphic() && b != b':') =>
                {
                    Ok(RegexType::Header(name.to_owned()))
                }
                Some(name) => Err(format!(
                    "{name:?} is not a header field name (printable ASCII, no colon or space)"
                )),
                None => Err(format!(
                    "{s:?} is not one of {}, header:<Name>",
                    RegexType::NAMES.join(", ")
                )),
            },
        }
    }
}

impl serde::Serialize for RegexType {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for RegexType {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<RegexType, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

names!(
    /// How an originator policy's pattern finds the identifier.
    PatternType {
        /// A literal text; the identifier is the token after it and one space.
        Classic = "classic",
        /// A regex; the identifier is its first capture group, or the whole match.
        Advanced = "advanced",
    }
);

names!(
    /// What an originator policy does when the identifier names no device.
    Alignment {
        /// This policy yields nothing; the next one is tried.
        Discard = "discard",
        /// The policy's default device.
        DefaultIfUnmatched = "default_if_unmatched",
        /// Always the default device, without looking at the identifier.
        Override = "override",
    }
);

names!(
    /// Which verification of its sender an originator policy needs for a mail to count. A
    /// client in a trusted network (`[postfix] mynetworks`) counts as verified whatever this
    /// says.
    RequireAuth {
        /// Every mail counts.
        None = "none",
        /// Only mail whose From domain passes DMARC at this instance.
        Dmarc = "dmarc",
        /// Only mail that passes SPF at this instance, aligned with the From domain.
        Spf = "spf",
        /// Only mail that carries a DKIM signature valid at this instance, aligned with the
        /// From domain.
        Dkim = "dkim",
    }
);

names!(
    /// What text an event policy's match strings are tried on.
    MatchIn {
        /// The decoded subject.
        Subject = "subject",
        /// The body as text.
        Body = "body",
        /// The subject, a line break, then the body.
        SubjectAndBody = "subject_and_body",
    }
);

names!(
    /// How an event policy's match strings are compared with the text.
    MatchLogic {
        /// Literal, case-sensitive substrings.
        Text = "text",
        /// Regexes.
        Regex = "regex",
    }
);

names!(
    /// What a matching event policy does.
    Action {
        /// Raise (or count, or clear) an event.
        Raise = "raise",
        /// Nothing: no policy raises or clears anything for this mail, which stays in the
        /// device log only.
        Suppress = "suppress",
    }
);

// `names!` derives no `Default`: these say theirs.
#[allow(clippy::derivable_impls)]
impl Default for Action {
    fn default() -> Action {
        Action::Raise
    }
}

#[allow(clippy::derivable_impls)]
impl Default for MatchLogic {
    fn default() -> MatchLogic {
        MatchLogic::Text
    }
}

#[allow(clippy::derivable_impls)]
impl Default for RequireAuth {
    fn default() -> RequireAuth {
        RequireAuth::None
    }
}

impl RequireAuth {
    /// The verification it asks for; `None` for none.
    pub fn method(self) -> Option<crate::config::Method> {
        use crate::config::Method;
        match self {
            RequireAuth::None => None,
            RequireAuth::Dmarc => Some(Method::Dmarc),
            RequireAuth::Spf => Some(Method::Spf),
            RequireAuth::Dkim => Some(Method::Dkim),
        }
    }
}

/// A device events are raised on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    /// `devices.id`; also what a "device ID" identifier names.
    pub id: i64,
    /// Unique name, compared case-insensitively.
    pub name: String,
    /// Its address, if known.
    pub ip: Option<IpAddr>,
    /// Owner, for the operator.
    pub organization: Option<String>,
}

/// Which sender's mail is about which device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Originator {
    /// `originator_policies.id`.
    pub id: i64,
    /// Its unique name, if it has one (several originators may then share an address).
    pub name: Option<String>,
    /// The From address (ASCII lower case), or a pattern: `*@domain`, `local@*`, `*@*`.
    pub address: String,
    /// Where the pattern looks.
    pub regex_type: RegexType,
    /// Classic or advanced.
    pub pattern_type: PatternType,
    /// The literal text or the regex.
    pub pattern: String,
    /// What happens without a device.
    pub alignment: Alignment,
    /// The default device's id; set unless `alignment` is `Discard`.
    pub default_device_id: Option<i64>,
    /// Which verification its mail needs to count (a trusted network's always counts).
    pub require_auth: RequireAuth,
}

impl Originator {
    /// How it is named to people: its name, else its address.
    pub fn label(&self) -> &str {
        self.name.as_deref().unwrap_or(&self.address)
    }
}

/// What text raises which event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EventPolicy {
    /// `event_policies.id`.
    pub id: i64,
    /// Unique name.
    pub name: String,
    /// Raise or suppress.
    pub action: Action,
    /// The severity of the event raised (the fallback with `severity_from`); `None` only
    /// when `action` is suppress.
    pub severity: Option<Severity>,
    /// The capture whose value picks the severity through `severity_map`.
    pub severity_from: Option<String>,
    /// Captured value (compared ignoring case) to severity.
    pub severity_map: BTreeMap<String, Severity>,
    /// The template of the event's key: one active event per (device, policy, key).
    pub key: Option<String>,
    /// Per capture, values (compared ignoring case) replaced before they go into the key.
    pub key_map: BTreeMap<String, BTreeMap<String, String>>,
    /// The event message template (`%M`, `%S`, `%D`, `%A`, `%%`, `%{capture}`).
    pub message: String,
    /// What the match strings are tried on; `None`: what `[inbound] alert_message` says.
    pub match_in: Option<MatchIn>,
    /// Text or regex.
    pub match_logic: MatchLogic,
    /// Must match.
    pub first_match: String,
    /// Must match too, when set.
    pub second_match: Option<String>,
    /// The policies whose active events on the device (with the same key, when this policy
    /// has one) a match clears.
    pub clears_ids: Vec<i64>,
    /// Scope: the originators (names or addresses) whose mail it is tried for; empty: all.
    pub originators: Vec<String>,
    /// Scope: the devices (names) whose mail it is tried for; empty: all.
    pub devices: Vec<String>,
    /// An active event not seen again for this long is cleared.
    pub expire_after_s: Option<i32>,
    /// An active healthy event not seen again for this long is cleared (instead of
    /// `expire_after_s`).
    pub expire_healthy_after_s: Option<i32>,
    /// At most this many of its alerts about one device are logged; past it, repeats only
    /// count on the event, and a flood event stands on the device until the rate falls.
    pub rate: Option<Rate>,
}

/// A cap: `count` alerts per `per_s` seconds, written `10/min` (`/s`, `/min`, `/h`); a token
/// bucket of `count` tokens refilled at that rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Rate {
    /// Alerts.
    pub count: i32,
    /// Per so many seconds (1, 60 or 3600).
    pub per_s: i32,
}

impl TryFrom<String> for Rate {
    type Error = String;
    fn try_from(text: String) -> Result<Rate, String> {
        let bad = || format!("{text:?} is not a rate such as 10/min (per s, min or h)");
        let (count, unit) = text.split_once('/').ok_or_else(bad)?;
        let per_s = match unit.trim() {
            "s" => 1,
            "min" => 60,
            "h" => 3600,
            _ => return Err(bad()),
        };
        let count: i32 = count.trim().parse().map_err(|_| bad())?;
        if count < 1 {
            return Err(format!("{text:?}: the count must be at least 1"));
        }
        Ok(Rate { count, per_s })
    }
}

impl From<Rate> for String {
    fn from(rate: Rate) -> String {
        let unit = match rate.per_s {
            1 => "s",
            60 => "min",
            _ => "h",
        };
        format!("{}/{unit}", rate.count)
    }
}

impl std::fmt::Display for Rate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&String::from(*self))
    }
}

/// Longest advanced originator pattern, as in SL1.
pub const MAX_ADVANCED_PATTERN: usize = 255;

/// How deeply a policy regex may nest.
pub const REGEX_NEST_LIMIT: u32 = 64;

/// Parses a policy regex as [`compile_regex`] would, without compiling it.
pub fn parse_regex(pattern: &str) -> Result<regex_syntax::hir::Hir, String> {
    regex_syntax::ParserBuilder::new()
        .nest_limit(REGEX_NEST_LIMIT)
        .build()
        .parse(pattern)
        .map_err(|e| e.to_string())
}

/// Compiles a policy regex with bounded size: Rust's regex runs in linear time, and these
/// limits keep compilation and memory bounded too, so a hostile pattern cannot stall mail.
pub fn compile_regex(pattern: &str) -> Result<regex::Regex, String> {
    regex::RegexBuilder::new(pattern)
        .size_limit(1 << 20)
        .dfa_size_limit(2 << 20)
        .nest_limit(REGEX_NEST_LIMIT)
        .build()
        .map_err(|e| match e {
            regex::Error::CompiledTooBig(_) => "the regex is too large".to_owned(),
            other => other.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for s in Severity::ALL {
            assert_eq!(s.as_str().parse::<Severity>(), Ok(*s));
        }
        assert_eq!(
            "default_if_unmatched".parse(),
            Ok(Alignment::DefaultIfUnmatched)
        );
        assert_eq!(
            "fatal".parse::<Severity>().unwrap_err(),
            "\"fatal\" is not one of healthy, notice, minor, major, critical"
        );
        assert!(Severity::Critical > Severity::Healthy);
        assert_eq!("dkim".parse(), Ok(RequireAuth::Dkim));
        assert_eq!(RequireAuth::default(), RequireAuth::None);
        assert_eq!(
            "tls".parse::<RequireAuth>().unwrap_err(),
            "\"tls\" is not one of none, dmarc, spf, dkim"
        );
    }

    #[test]
    fn regexes_are_bounded() {
        assert!(compile_regex(r"Alert for (\S+)").is_ok());
        assert!(compile_regex("(unclosed").is_err());
        assert_eq!(
            compile_regex(r"\w{1000}{1000}").unwrap_err(),
            "the regex is too large"
        );
    }
}

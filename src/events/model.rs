//! The events policies as mailops holds them: devices, originator and event policies.

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

names!(
    /// Where an originator policy looks for the device identifier.
    RegexType {
        /// The decoded Subject.
        Subject = "subject",
        /// The body as text.
        Body = "body",
    }
);

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
    /// How an event policy's match strings are compared with the text.
    MatchLogic {
        /// Literal, case-sensitive substrings.
        Text = "text",
        /// Regexes.
        Regex = "regex",
    }
);

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
    /// The From address (ASCII lower case), or `*@domain`.
    pub address: String,
    /// Subject or body.
    pub regex_type: RegexType,
    /// Classic or advanced.
    pub pattern_type: PatternType,
    /// The literal text or the regex.
    pub pattern: String,
    /// What happens without a device.
    pub alignment: Alignment,
    /// The default device's id; set unless `alignment` is `Discard`.
    pub default_device_id: Option<i64>,
}

/// What text raises which event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventPolicy {
    /// `event_policies.id`.
    pub id: i64,
    /// Unique name.
    pub name: String,
    /// The severity of the event raised.
    pub severity: Severity,
    /// The event message template (`%M`, `%S`, `%D`, `%A`, `%%`).
    pub message: String,
    /// Text or regex.
    pub match_logic: MatchLogic,
    /// Must match.
    pub first_match: String,
    /// Must match too, when set.
    pub second_match: Option<String>,
    /// The policy whose active event on the device a match clears.
    pub clears_id: Option<i64>,
    /// An active event not seen again for this long is cleared.
    pub expire_after_s: Option<i32>,
}

/// Longest advanced originator pattern, as in SL1.
pub const MAX_ADVANCED_PATTERN: usize = 255;

/// Compiles a policy regex with bounded size: Rust's regex runs in linear time, and these
/// limits keep compilation and memory bounded too, so a hostile pattern cannot stall mail.
pub fn compile_regex(pattern: &str) -> Result<regex::Regex, String> {
    regex::RegexBuilder::new(pattern)
        .size_limit(1 << 20)
        .dfa_size_limit(2 << 20)
        .nest_limit(64)
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

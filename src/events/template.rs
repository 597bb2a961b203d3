//! Event message and key templates: `%M` the body, `%S` the subject, `%D` the device, `%A` the
//! sender, `%%` a `%`, and `%{name}` a named capture of the originator's pattern or the event
//! policy's match strings. Parsed once when the policies are compiled; pure.

use std::collections::HashMap;

/// One part of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Body,
    Subject,
    Device,
    Sender,
    Capture(String),
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Template(Vec<Piece>);

/// What the escapes of a template stand for in one mail.
#[derive(Debug, Clone, Copy)]
pub struct Values<'a> {
    /// `%M`: the body.
    pub body: &'a str,
    /// `%S`
    pub subject: &'a str,
    /// `%D`
    pub device: &'a str,
    /// `%A`
    pub sender: &'a str,
    /// `%{name}`
    pub captures: &'a Captures,
}

/// The named captures of one match, later ones replacing earlier ones of the same name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Captures(Vec<(String, String)>);

impl Captures {
    /// Adds the named groups of `regex` that took part in `caps`.
    pub fn add(&mut self, regex: &regex::Regex, caps: &regex::Captures<'_>) {
        for name in regex.capture_names().flatten() {
            if let Some(m) = caps.name(name) {
                self.set(name, m.as_str());
            }
        }
    }

    /// Sets `name` to `value`.
    pub fn set(&mut self, name: &str, value: &str) {
        match self.0.iter_mut().find(|(n, _)| n == name) {
            Some((_, v)) => value.clone_into(v),
            None => self.0.push((name.to_owned(), value.to_owned())),
        }
    }

    /// The value of `name`; `None` when it took part in no match.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every (name, value), in the order they were first set.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Per capture name, values (lower case) to what they become.
pub type ValueMap = HashMap<String, HashMap<String, String>>;

impl Template {
    /// Parses `text`; the error says which escape is wrong.
    pub fn parse(text: &str) -> Result<Template, String> {
        let mut pieces = Vec::new();
        let mut literal = String::new();
        let mut chars = text.chars();
        while let Some(c) = chars.next() {
            if c != '%' {
                literal.push(c);
                continue;
            }
            let piece = match chars.next() {
                Some('%') => {
                    literal.push('%');
                    continue;
                }
                Some('M') => Piece::Body,
                Some('S') => Piece::Subject,
                Some('D') => Piece::Device,
                Some('A') => Piece::Sender,
                Some('{') => {
                    let mut name = String::new();
                    let mut closed = false;
                    for c in chars.by_ref() {
                        if c == '}' {
                            closed = true;
                            break;
                        }
                        name.push(c);
                    }
                    if !closed || !capture_name(&name) {
                        return Err(format!(
                            "%{{{name}… is not a capture: write %{{name}}, name being a named group (?P<name>…) of the patterns"
                        ));
                    }
                    Piece::Capture(name)
                }
                Some(other) => {
                    return Err(format!(
                        "unknown escape %{other} (the escapes are %M body, %S subject, %D device, %A sender, %{{name}} a capture, %% a %)"
                    ))
                }
                None => return Err("ends with a lone % (write %% for a %)".into()),
            };
            if !literal.is_empty() {
                pieces.push(Piece::Text(std::mem::take(&mut literal)));
            }
            pieces.push(piece);
        }
        if !literal.is_empty() {
            pieces.push(Piece::Text(literal));
        }
        Ok(Template(pieces))
    }

    /// The capture names it uses.
    pub fn captures(&self) -> impl Iterator<Item = &str> {
        self.0.iter().filter_map(|p| match p {
            Piece::Capture(name) => Some(name.as_str()),
            _ => None,
        })
    }

    /// Whether it uses any capture.
    pub fn uses_captures(&self) -> bool {
        self.captures().next().is_some()
    }

    /// The template filled in; a capture that took part in no match is empty, and one
    /// `map` has a value for (compared ignoring case) becomes that value.
    pub fn render(&self, v: &Values<'_>, map: Option<&ValueMap>) -> String {
        let mut out = String::new();
        for piece in &self.0 {
            match piece {
                Piece::Text(text) => out.push_str(text),
                Piece::Body => out.push_str(v.body),
                Piece::Subject => out.push_str(v.subject),
                Piece::Device => out.push_str(v.device),
                Piece::Sender => out.push_str(v.sender),
                Piece::Capture(name) => {
                    let value = v.captures.get(name).unwrap_or("");
                    let mapped = map
                        .and_then(|m| m.get(name))
                        .and_then(|values| values.get(&value.to_lowercase()));
                    out.push_str(mapped.map_or(value, String::as_str));
                }
            }
        }
        out
    }
}

/// Whether `name` can name a capture group (as the regex crate allows them).
pub fn capture_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_alphabetic() || c == '_')
        && chars.all(|c| c.is_alphanumeric() || matches!(c, '_' | '.' | '[' | ']'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values<'a>(captures: &'a Captures) -> Values<'a> {
        Values {
            body: "On battery",
            subject: "UPS alert",
            device: "ups1",
            sender: "apc@example.com",
            captures,
        }
    }

    #[test]
    fn escapes_and_captures_are_filled_in() {
        let mut caps = Captures::default();
        caps.set("service", "Disk /var");
        caps.set("state", "CRITICAL");
        caps.set("state", "OK");
        for (template, want) in [
            ("%D: %M", "ups1: On battery"),
            ("[%S] from %A", "[UPS alert] from apc@example.com"),
            ("100%% %{service} is %{state}", "100% Disk /var is OK"),
            ("%{missing}|", "|"),
            ("", ""),
            ("%%M", "%M"),
        ] {
            let t = Template::parse(template).expect(template);
            assert_eq!(t.render(&values(&caps), None), want, "{template:?}");
        }
    }

    #[test]
    fn a_value_map_normalises_captures_ignoring_case() {
        let mut caps = Captures::default();
        caps.set("check", "Does not exist");
        let map: ValueMap = [(
            "check".to_owned(),
            [("does not exist".to_owned(), "exists".to_owned())].into(),
        )]
        .into();
        let t = Template::parse("%D/%{check}").expect("template");
        assert_eq!(t.render(&values(&caps), Some(&map)), "ups1/exists");
        caps.set("check", "Exists");
        assert_eq!(t.render(&values(&caps), Some(&map)), "ups1/Exists");
        assert_eq!(t.captures().collect::<Vec<_>>(), ["check"]);
    }

    #[test]
    fn bad_escapes_are_refused() {
        for (template, why) in [
            ("50%", "ends with a lone %"),
            ("%x", "unknown escape %x"),
            ("%{}", "is not a capture"),
            ("%{two words}", "is not a capture"),
            ("%{open", "is not a capture"),
            ("%{9lives}", "is not a capture"),
        ] {
            let err = Template::parse(template).expect_err(template);
            assert!(err.contains(why), "{template:?}: {err}");
        }
        assert!(Template::parse("%{host.name}").is_ok());
    }
}

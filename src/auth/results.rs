//! `Authentication-Results` header fields (RFC 8601): who verified what about a message.
//!
//! Only the shape mailops reads: the authserv-id, then per method its result and properties
//! (`header.d`, `smtp.mailfrom`, `header.from`). Comments are dropped, quoted strings
//! unquoted; a result that does not parse is left out, never guessed at.

/// One `Authentication-Results` field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    /// Who added it (RFC 8601 §2.5), lower case.
    pub authserv_id: String,
    /// Its results, in order.
    pub results: Vec<Found>,
}

/// One method's result (`dkim=pass header.d=example.com`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// The method, lower case, without its version.
    pub method: String,
    /// The result, lower case.
    pub result: String,
    /// `ptype.property` (lower case) and value, in order.
    pub properties: Vec<(String, String)>,
}

impl Found {
    /// The value of property `name` (`ptype.property`, lower case).
    pub fn property(&self, name: &str) -> Option<&str> {
        self.properties
            .iter()
            .find(|(p, _)| p == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A lexical piece of a field, comments gone.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    /// A run of other characters, or a quoted string's contents.
    Word(String),
    /// `=`.
    Equals,
    /// `;`.
    Semicolon,
}

/// Parses one field's value (after `Authentication-Results:`, unfolded); `None` when it has
/// no authserv-id.
pub fn parse(value: &str) -> Option<Field> {
    let tokens = tokens(value);
    let mut parts = tokens.split(|t| *t == Token::Semicolon);
    let authserv_id = match parts.next()?.first()? {
        Token::Word(id) => id.to_ascii_lowercase(),
        _ => return None,
    };
    let results = parts.filter_map(result).collect();
    Some(Field {
        authserv_id,
        results,
    })
}

/// One `resinfo`: `method[/version]=result [reason=value] [ptype.property=value ...]`.
fn result(tokens: &[Token]) -> Option<Found> {
    let mut pairs = tokens.chunks(3).map(|chunk| match chunk {
        [Token::Word(key), Token::Equals, Token::Word(value)] => Some((key, value)),
        _ => None,
    });
    let (method, result) = pairs.next()??;
    let method = method.split('/').next()?.trim().to_ascii_lowercase();
    let mut properties = Vec::new();
    for pair in pairs {
        let (key, value) = pair?;
        let key = key.to_ascii_lowercase();
        if key.contains('.') {
            properties.push((key, value.clone()));
        }
    }
    Some(Found {
        method,
        result: result.to_ascii_lowercase(),
        properties,
    })
}

/// Splits `value` into words, `=` and `;`, dropping comments (nested, with quoted pairs)
/// and white space, and unquoting quoted strings.
fn tokens(value: &str) -> Vec<Token> {
    let mut out = Vec::new();
    let mut word = String::new();
    let mut chars = value.chars();
    let end_word = |word: &mut String, out: &mut Vec<Token>| {
        if !word.is_empty() {
            out.push(Token::Word(std::mem::take(word)));
        }
    };
    while let Some(c) = chars.next() {
        match c {
            '(' => {
                end_word(&mut word, &mut out);
                let mut depth = 1;
                while depth > 0 {
                    match chars.next() {
                        Some('(') => depth += 1,
                        Some(')') => depth -= 1,
                        Some('\\') => {
                            chars.next();
                        }
                        Some(_) => {}
                        None => break,
                    }
                }
            }
            '"' => {
                let mut quoted = String::new();
                while let Some(c) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' => quoted.extend(chars.next()),
                        c => quoted.push(c),
                    }
                }
                word.push_str(&quoted);
                if word.is_empty() {
                    // An empty quoted string is still a value.
                    out.push(Token::Word(String::new()));
                }
            }
            '=' | ';' => {
                end_word(&mut word, &mut out);
                out.push(if c == '=' {
                    Token::Equals
                } else {
                    Token::Semicolon
                });
            }
            c if c.is_whitespace() => end_word(&mut word, &mut out),
            c => word.push(c),
        }
    }
    end_word(&mut word, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(method: &str, result: &str, properties: &[(&str, &str)]) -> Found {
        Found {
            method: method.into(),
            result: result.into(),
            properties: properties
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn reads_what_rspamd_writes() {
        // The shape of rspamd 3.4's milter_headers authentication-results routine.
        let field = parse(
            " mx.mon.example.com;\n\tdkim=pass header.d=signed.test header.s=sel \
             header.b=Kx7zA1;\n\tdmarc=pass (policy=reject) header.from=signed.test;\n\t\
             spf=pass (mx.mon.example.com: domain of alerts@signed.test designates 127.0.0.2 \
             as permitted sender) smtp.mailfrom=alerts@signed.test",
        )
        .unwrap();
        assert_eq!(field.authserv_id, "mx.mon.example.com");
        assert_eq!(
            field.results,
            vec![
                found(
                    "dkim",
                    "pass",
                    &[
                        ("header.d", "signed.test"),
                        ("header.s", "sel"),
                        ("header.b", "Kx7zA1")
                    ]
                ),
                found("dmarc", "pass", &[("header.from", "signed.test")]),
                found("spf", "pass", &[("smtp.mailfrom", "alerts@signed.test")]),
            ]
        );
    }

    #[test]
    fn reads_rspamd_failures_with_their_reasons() {
        let field = parse(
            "mon.example.com;\n\tdkim=none;\n\tdmarc=fail reason=\"No valid SPF, No valid DKIM\" \
             header.from=example.com (policy=reject);\n\tspf=fail (mon.example.com: domain of \
             a@example.com does not designate 127.0.0.3 as permitted sender) \
             smtp.mailfrom=a@example.com",
        )
        .unwrap();
        assert_eq!(
            field.results,
            vec![
                found("dkim", "none", &[]),
                found("dmarc", "fail", &[("header.from", "example.com")]),
                found("spf", "fail", &[("smtp.mailfrom", "a@example.com")]),
            ]
        );
    }

    #[test]
    fn reads_the_rfc_examples() {
        // RFC 8601 appendix B: versions, quoted ids, reasons, CFWS around "=".
        let field = parse(
            "\"example.com\" 1; auth = pass (cram-md5) smtp.auth=sender@example.net; \
             spf/1=pass smtp.mailfrom=example.net reason=\"in list\"",
        )
        .unwrap();
        assert_eq!(field.authserv_id, "example.com");
        assert_eq!(
            field.results,
            vec![
                found("auth", "pass", &[("smtp.auth", "sender@example.net")]),
                found("spf", "pass", &[("smtp.mailfrom", "example.net")]),
            ]
        );
        let none = parse("example.org 1; none").unwrap();
        assert_eq!(none.authserv_id, "example.org");
        assert!(none.results.is_empty());
    }

    #[test]
    fn leaves_out_what_does_not_parse() {
        assert_eq!(parse(""), None);
        assert_eq!(parse("; dkim=pass"), None);
        let field = parse("mx (unclosed; dkim=pass").unwrap();
        assert!(field.results.is_empty());
        let field = parse("mx; dkim=; spf=pass smtp.mailfrom=a@b.test; dmarc").unwrap();
        assert_eq!(
            field.results,
            vec![found("spf", "pass", &[("smtp.mailfrom", "a@b.test")])]
        );
        // Comments may nest and quote; they never become results.
        let field = parse("mx ((dkim=pass) \\) ); DKIM=Fail (x=(y)) header.d=\"a b\"").unwrap();
        assert_eq!(field.authserv_id, "mx");
        assert_eq!(
            field.results,
            vec![found("dkim", "fail", &[("header.d", "a b")])]
        );
    }
}

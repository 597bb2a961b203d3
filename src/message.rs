//! One parse of a message's raw bytes into what every pipeline needs.

use std::panic::{catch_unwind, AssertUnwindSafe};

use mail_parser::MessageParser;

/// What mailops reads out of a message, parsed once per delivery.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Message {
    /// Whether mail-parser could read the message; when not, every field is `None`.
    pub parsed: bool,
    /// `Message-ID`, without angle brackets.
    pub message_id: Option<String>,
    /// The decoded `Subject`.
    pub subject: Option<String>,
    /// The first address in `From`.
    pub from_address: Option<String>,
    /// The body as text: the first text part, or the HTML part turned into text; charsets,
    /// quoted-printable and base64 decoded; LF line ends; surrounding white space trimmed.
    pub body: String,
}

impl Message {
    /// Parses `raw`. A message that cannot be parsed, even one that makes the parser panic,
    /// gives `parsed: false` rather than an error: it is still stored and accepted.
    pub fn parse(raw: &[u8]) -> Message {
        let parsed = catch_unwind(AssertUnwindSafe(|| {
            MessageParser::default().parse(raw).map(|m| Message {
                parsed: true,
                message_id: m.message_id().map(text),
                subject: m.subject().map(text),
                from_address: m.from().and_then(|a| a.first()?.address()).map(text),
                body: m.body_text(0).map(|b| body_text(&b)).unwrap_or_default(),
            })
        }));
        match parsed {
            Ok(Some(message)) => message,
            Ok(None) => Message::default(),
            Err(_) => {
                tracing::error!(
                    size = raw.len(),
                    "the message parser panicked; storing the message unparsed"
                );
                Message::default()
            }
        }
    }
}

/// The body as stored and matched: LF line ends, no NULs, surrounding white space trimmed.
fn body_text(body: &str) -> String {
    text(body.trim()).replace("\r\n", "\n")
}

/// Text as PostgreSQL can store it: without NUL characters.
pub fn text(s: &str) -> String {
    s.replace('\0', "")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_ids_subject_and_from() {
        let raw = b"From: \"Backup Server\" <Veeam@Example.com>\r\n\
Subject: =?UTF-8?B?QmFja3VwIGpvYiDinJQ=?=\r\n\
Message-ID: <abc.123@example.com>\r\n\
\r\n\
Job finished.\r\n";
        let m = Message::parse(raw);
        assert_eq!(
            m,
            Message {
                parsed: true,
                message_id: Some("abc.123@example.com".into()),
                subject: Some("Backup job \u{2714}".into()),
                from_address: Some("Veeam@Example.com".into()),
                body: "Job finished.".into(),
            }
        );
    }

    #[test]
    fn headers_without_values_are_none() {
        let m = Message::parse(b"X-Other: 1\r\n\r\nbody\r\n");
        assert!(m.parsed);
        assert_eq!(
            (m.message_id, m.subject, m.from_address),
            (None, None, None)
        );
    }

    #[test]
    fn nothing_to_parse_is_unparsed_not_an_error() {
        assert_eq!(Message::parse(b""), Message::default());
    }

    #[test]
    fn nul_characters_are_dropped() {
        let m = Message::parse(b"Subject: a\0b\r\n\r\nx\r\n");
        assert_eq!(m.subject.as_deref(), Some("ab"));
    }

    #[test]
    fn html_only_mail_becomes_text() {
        let raw = b"From: nas@example.com\r\nContent-Type: text/html; charset=utf-8\r\n\r\n\
<html><body><p>Disk <b>3</b> degraded</p></body></html>\r\n";
        let body = Message::parse(raw).body;
        assert!(body.contains("Disk 3 degraded"), "{body:?}");
        assert!(!body.contains('<'), "{body:?}");
    }

    #[test]
    fn latin1_quoted_printable_is_decoded() {
        let raw = b"From: ups@example.com\r\nContent-Type: text/plain; charset=iso-8859-1\r\n\
Content-Transfer-Encoding: quoted-printable\r\n\r\nTemp=E9rature =E9lev=E9e\r\n";
        assert_eq!(
            Message::parse(raw).body,
            "Temp\u{e9}rature \u{e9}lev\u{e9}e"
        );
    }

    #[test]
    fn line_ends_are_lf() {
        let raw = b"From: a@example.com\r\n\r\nline one\r\nline two\r\n\r\n";
        assert_eq!(Message::parse(raw).body, "line one\nline two");
    }

    #[test]
    fn multipart_alternative_takes_the_text_part() {
        let raw = b"From: a@example.com\r\nContent-Type: multipart/alternative; boundary=b\r\n\r\n\
--b\r\nContent-Type: text/plain\r\n\r\nPlain words\r\n\
--b\r\nContent-Type: text/html\r\n\r\n<p>Html words</p>\r\n--b--\r\n";
        assert_eq!(Message::parse(raw).body, "Plain words");
    }
}

//! One parse of a message's raw bytes into what every pipeline needs.

use std::borrow::Cow;
use std::panic::{catch_unwind, AssertUnwindSafe};

use mail_parser::decoders::base64::base64_decode;
use mail_parser::decoders::charsets::map::charset_decoder;
use mail_parser::decoders::quoted_printable::quoted_printable_decode;
use mail_parser::parsers::MessageStream;
use mail_parser::{Encoding, HeaderValue, MessageParser, MimeHeaders, PartType};

pub mod html;
mod structure;

/// The longest decoded subject kept; the rest is cut. A subject can be folded over megabytes,
/// and every ticket and notice made from it would copy it again.
const MAX_SUBJECT: usize = 8 * 1024;
/// The longest Message-ID kept (RFC 5322 §2.1.1: a line, and an id cannot be folded); a
/// longer one is taken as absent. PostgreSQL cannot index ids of several kilobytes.
const MAX_ID: usize = 998;

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
    /// The display name of the first address in `From`, decoded.
    pub from_name: Option<String>,
    /// The header fields, as text: lines of 8-bit octets that are not UTF-8 read as
    /// Windows-1252; LF line ends, none at the end. [`Message::header`] decodes one.
    pub headers: String,
    /// The body as text: the first text part, or the HTML part turned into text with its
    /// structure ([`html::to_text`]); charsets, quoted-printable and base64 decoded, 8-bit text
    /// without a charset read as Windows-1252 unless it is UTF-8; LF line ends; surrounding
    /// white space trimmed.
    pub body: String,
    /// `In-Reply-To` Message-IDs, without angle brackets.
    pub in_reply_to: Vec<String>,
    /// `References` Message-IDs, oldest first, without angle brackets.
    pub references: Vec<String>,
    /// `Auto-Submitted` (RFC 3834), lower case, without parameters.
    pub auto_submitted: Option<String>,
    /// `Precedence`, lower case.
    pub precedence: Option<String>,
    /// Whether an `X-Autoreply`, `X-Autorespond` or `X-Autoresponder` header says it is an
    /// automatic reply (what some out-of-office responders send instead of `Auto-Submitted`).
    pub autoreply: bool,
    /// Whether it is a delivery or disposition report (`multipart/report`, RFC 6522).
    pub report: bool,
    /// The attachments, decoded; only read when asked for ([`Message::parse_with_attachments`]).
    pub attachments: Vec<Attachment>,
    /// The subjects and bodies of the messages it carries as attachments (a forward), as text.
    pub forwarded: String,
    /// Its `Received:` headers, newest (topmost) first.
    pub received: Vec<Hop>,
}

/// One `Received:` header: a hop the message took.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hop {
    /// The host it came from.
    pub from: Option<String>,
    /// The host that received it.
    pub by: Option<String>,
    /// When, in seconds since the Unix epoch.
    pub at: Option<i64>,
}

/// One attachment of a message (a forwarded message is one too, as its raw bytes).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attachment {
    /// Its file name, when it has one.
    pub filename: Option<String>,
    /// Its MIME type, `type/subtype`, lower case.
    pub content_type: String,
    /// Its decoded contents.
    pub content: Vec<u8>,
}

impl Message {
    /// Parses `raw`. A message that cannot be parsed, even one that makes the parser panic or
    /// has more parts, fields or nested messages than is safe to parse, gives `parsed: false`
    /// rather than an error: it is still stored and accepted.
    pub fn parse(raw: &[u8]) -> Message {
        Message::read(raw, false)
    }

    /// Parses `raw` like [`Message::parse`], and decodes its attachments too.
    pub fn parse_with_attachments(raw: &[u8]) -> Message {
        Message::read(raw, true)
    }

    fn read(raw: &[u8], with_attachments: bool) -> Message {
        if let Err(limit) = structure::check(raw) {
            tracing::warn!(size = raw.len(), %limit, "storing the message unparsed");
            return Message::default();
        }
        let input = headers_as_utf8(raw);
        let raw = input.as_ref();
        let parsed = catch_unwind(AssertUnwindSafe(|| {
            MessageParser::default().parse(raw).map(|m| {
                let header = |name: &str| {
                    m.header_raw(name)
                        .map(|v| text(v.trim()).to_ascii_lowercase())
                };
                Message {
                    parsed: true,
                    message_id: m.message_id().and_then(id),
                    subject: m.subject().map(subject),
                    from_address: m.from().and_then(|a| a.first()?.address()).map(text),
                    from_name: m
                        .from()
                        .and_then(|a| a.first()?.name())
                        .map(|n| text(n.trim()))
                        .filter(|n| !n.is_empty()),
                    headers: lf_text(String::from_utf8_lossy(&raw[..header_end(raw)]).trim_end()),
                    body: body_text(&m),
                    in_reply_to: ids(m.in_reply_to()),
                    references: ids(m.references()),
                    auto_submitted: header("Auto-Submitted")
                        .map(|v| v.split(';').next().unwrap_or("").trim().to_owned()),
                    precedence: header("Precedence"),
                    autoreply: ["X-Autoreply", "X-Autorespond", "X-Autoresponder"]
                        .iter()
                        .any(|h| header(h).is_some_and(|v| v != "no")),
                    report: m.content_type().is_some_and(|c| {
                        c.c_type.eq_ignore_ascii_case("multipart")
                            && c.c_subtype
                                .as_deref()
                                .is_some_and(|s| s.eq_ignore_ascii_case("report"))
                    }),
                    attachments: if with_attachments {
                        m.attachments().map(attachment).collect()
                    } else {
                        Vec::new()
                    },
                    forwarded: m
                        .attachments()
                        .filter_map(|part| part.message())
                        .map(|inner| {
                            let subject = inner.subject().unwrap_or_default();
                            format!("{subject}\n{}\n", body_text(inner))
                        })
                        .collect(),
                    received: m
                        .header_values("Received")
                        .filter_map(|v| v.as_received())
                        .map(|r| Hop {
                            from: r.from().map(|h| text(&h.to_string())),
                            by: r.by().map(|h| text(&h.to_string())),
                            at: r.date().map(|d| d.to_timestamp()),
                        })
                        .collect(),
                }
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

impl Message {
    /// The first header field called `name` (ignoring case), unfolded and decoded (RFC 2047).
    pub fn header(&self, name: &str) -> Option<String> {
        header(&self.headers, name)
    }
}

/// The first header field called `name` (ignoring case) in `headers` ([`Message::headers`]),
/// unfolded and decoded (RFC 2047).
pub fn header(headers: &str, name: &str) -> Option<String> {
    self::headers(headers, name).next()
}

/// Every header field called `name` (ignoring case) in `headers` ([`Message::headers`]), in
/// order, unfolded and decoded (RFC 2047).
pub fn headers<'a>(headers: &'a str, name: &'a str) -> impl Iterator<Item = String> + 'a {
    let mut lines = headers.split_inclusive('\n').peekable();
    std::iter::from_fn(move || {
        while let Some(line) = lines.next() {
            let Some((field, value)) = line.split_once(':') else {
                continue;
            };
            if !field.trim_end().eq_ignore_ascii_case(name) || line.starts_with([' ', '\t']) {
                continue;
            }
            let mut value = value.to_owned();
            while let Some(folded) = lines.next_if(|l| l.starts_with([' ', '\t'])) {
                value.push_str(folded);
            }
            if !value.ends_with('\n') {
                value.push('\n');
            }
            return Some(
                match MessageStream::new(value.as_bytes()).parse_unstructured() {
                    HeaderValue::Text(text) => text.into_owned(),
                    _ => String::new(),
                },
            );
        }
        None
    })
}

/// Where the header fields end: after the first empty line, or at the end.
fn header_end(raw: &[u8]) -> usize {
    let mut start = 0;
    for line in raw.split_inclusive(|&b| b == b'\n') {
        start += line.len();
        if line == b"\n" || line == b"\r\n" {
            return start;
        }
    }
    raw.len()
}

/// `raw` with each header line that is not UTF-8 read as Windows-1252 (a superset of
/// Latin-1: what old devices send unencoded), so the parser decodes it instead of putting
/// U+FFFD in place of each 8-bit octet. Borrowed when every header line is UTF-8.
fn headers_as_utf8(raw: &[u8]) -> Cow<'_, [u8]> {
    let end = header_end(raw);
    if std::str::from_utf8(&raw[..end]).is_ok() {
        return Cow::Borrowed(raw);
    }
    let mut out = Vec::with_capacity(raw.len() + raw.len() / 8);
    for line in raw[..end].split_inclusive(|&b| b == b'\n') {
        match std::str::from_utf8(line) {
            Ok(_) => out.extend_from_slice(line),
            Err(_) => out.extend_from_slice(windows_1252(line).as_bytes()),
        }
    }
    out.extend_from_slice(&raw[end..]);
    Cow::Owned(out)
}

/// `bytes` read as Windows-1252.
fn windows_1252(bytes: &[u8]) -> String {
    let decode = charset_decoder(b"windows-1252").expect("mail-parser knows windows-1252");
    decode(bytes)
}

/// A message's body as text: its first text part, or its HTML part with structure.
fn body_text(m: &mail_parser::Message<'_>) -> String {
    let Some(part) = m.text_body.first().and_then(|&i| m.part(i)) else {
        return String::new();
    };
    let text = match &part.body {
        PartType::Text(text) => eight_bit_text(m, part, text),
        PartType::Html(html) => Cow::Owned(html::to_text(&eight_bit_text(m, part, html))),
        _ => return String::new(),
    };
    lf_text(text.trim())
}

/// `s` as stored and matched: LF line ends (the CR of each CRLF dropped) and no NUL characters,
/// in one pass.
fn lf_text(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut start = 0;
    for i in memchr::memchr2_iter(b'\r', b'\0', bytes) {
        if bytes[i] == b'\r' && bytes.get(i + 1) != Some(&b'\n') {
            continue;
        }
        // CR and NUL are ASCII: `i` is a character boundary.
        out.push_str(&s[start..i]);
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out
}

/// A text part's text; when it names no charset (or US-ASCII) and its octets are not UTF-8,
/// read as Windows-1252 instead of with U+FFFD in place of each 8-bit octet.
fn eight_bit_text<'a>(
    m: &mail_parser::Message<'_>,
    part: &mail_parser::MessagePart<'_>,
    text: &'a str,
) -> Cow<'a, str> {
    let declared = part
        .content_type()
        .and_then(|c| c.attribute("charset"))
        .is_some_and(|c| !c.eq_ignore_ascii_case("us-ascii"));
    if declared || !text.contains('\u{fffd}') {
        return Cow::Borrowed(text);
    }
    let raw = m
        .raw_message
        .get(part.raw_body_offset() as usize..part.raw_end_offset() as usize)
        .unwrap_or_default();
    let octets = match part.encoding {
        Encoding::QuotedPrintable => quoted_printable_decode(raw).map(Cow::Owned),
        Encoding::Base64 => base64_decode(raw).map(Cow::Owned),
        Encoding::None => Some(Cow::Borrowed(raw)),
    };
    match octets {
        Some(octets) if std::str::from_utf8(&octets).is_err() => Cow::Owned(windows_1252(&octets)),
        _ => Cow::Borrowed(text),
    }
}

/// The Message-IDs in an `In-Reply-To` or `References` header.
fn ids(value: &HeaderValue<'_>) -> Vec<String> {
    value
        .as_text_list()
        .unwrap_or_default()
        .iter()
        .filter_map(|value| id(value))
        .collect()
}

/// A Message-ID as stored: without the white space of folding or control characters (an id
/// has none), `None` when nothing is left or it is over [`MAX_ID`].
fn id(value: &str) -> Option<String> {
    let id: String = value
        .chars()
        .filter(|c| !c.is_whitespace() && !c.is_control())
        .collect();
    (!id.is_empty() && id.len() <= MAX_ID).then_some(id)
}

/// The subject as stored: no NULs, at most [`MAX_SUBJECT`] octets.
fn subject(value: &str) -> String {
    text(truncate(value, MAX_SUBJECT))
}

/// An attachment as stored.
fn attachment(part: &mail_parser::MessagePart<'_>) -> Attachment {
    let content_type = part.content_type().map_or_else(
        || "application/octet-stream".to_owned(),
        |c| match c.subtype() {
            Some(sub) => format!("{}/{sub}", c.ctype()),
            None => c.ctype().to_owned(),
        },
    );
    Attachment {
        filename: part.attachment_name().map(text),
        content_type: text(&content_type).to_ascii_lowercase(),
        content: part.contents().to_vec(),
    }
}

/// Text as PostgreSQL can store it: without NUL characters.
pub fn text(s: &str) -> String {
    s.replace('\0', "")
}

/// At most `max` octets of `s`, cut at a character boundary.
pub fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
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
                from_name: Some("Backup Server".into()),
                headers: "From: \"Backup Server\" <Veeam@Example.com>\n\
Subject: =?UTF-8?B?QmFja3VwIGpvYiDinJQ=?=\nMessage-ID: <abc.123@example.com>"
                    .into(),
                body: "Job finished.".into(),
                ..Message::default()
            }
        );
    }

    #[test]
    fn reads_threading_and_automatic_mail_headers() {
        let raw = b"From: a@example.com\r\nIn-Reply-To: <n1@mon.example.com>\r\n\
References: <first@example.com>\r\n <n1@mon.example.com>\r\n\
Auto-Submitted: Auto-Replied; owner=x\r\nPrecedence: Bulk\r\nX-Autoreply: yes\r\n\r\nx\r\n";
        let m = Message::parse(raw);
        assert_eq!(m.in_reply_to, ["n1@mon.example.com"]);
        assert_eq!(m.references, ["first@example.com", "n1@mon.example.com"]);
        assert_eq!(m.auto_submitted.as_deref(), Some("auto-replied"));
        assert_eq!(m.precedence.as_deref(), Some("bulk"));
        assert!(m.autoreply);
        assert!(!m.report);
    }

    #[test]
    fn attachments_are_decoded_only_when_asked_for() {
        let raw = b"From: a@example.com\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n\
--b\r\nContent-Type: text/plain\r\n\r\nSee the log.\r\n\
--b\r\nContent-Type: text/plain; name=\"app.log\"\r\nContent-Disposition: attachment; filename=\"app.log\"\r\n\
Content-Transfer-Encoding: base64\r\n\r\nZXJyb3IgNDI=\r\n--b--\r\n";
        assert!(Message::parse(raw).attachments.is_empty());
        let m = Message::parse_with_attachments(raw);
        assert_eq!(m.body, "See the log.");
        assert_eq!(
            m.attachments,
            [Attachment {
                filename: Some("app.log".into()),
                content_type: "text/plain".into(),
                content: b"error 42".to_vec(),
            }]
        );
    }

    #[test]
    fn overlong_ids_are_absent_and_folding_is_dropped() {
        let long = format!("{}@example.com", "i".repeat(MAX_ID));
        let raw = format!(
            "Message-ID: <{long}>\r\nReferences: <a@example.com> <{long}>\r\n \
             <b@\r\n example.com>\r\n\r\nx\r\n"
        );
        let m = Message::parse(raw.as_bytes());
        assert_eq!(m.message_id, None);
        assert_eq!(m.references, ["a@example.com", "b@example.com"]);
    }

    #[test]
    fn subjects_are_cut_at_a_character_boundary() {
        let raw = format!(
            "Subject: {}\u{e9}\r\n\r\nx\r\n",
            "s".repeat(MAX_SUBJECT - 1)
        );
        // The two-octet é does not fit.
        let subject = Message::parse(raw.as_bytes()).subject;
        assert_eq!(subject, Some("s".repeat(MAX_SUBJECT - 1)));
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
        let raw = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\nx\r\n\
--b\r\nContent-Type: application/x\0y; name=\"a\0b\"\r\n\r\ndata\r\n--b--\r\n";
        let attachment = &Message::parse_with_attachments(raw).attachments[0];
        assert_eq!(attachment.content_type, "application/xy");
        assert_eq!(attachment.filename.as_deref(), Some("ab"));
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
    fn raw_latin1_headers_and_charsetless_8bit_bodies_are_windows_1252() {
        let raw = b"From: Salle serveur \xe9tage 2 <envmon@example.com>\r\n\
Subject: Temp\xe9rature \x80 \xe9lev\xe9e\r\nX-Site: B\xe2timent A\r\n\r\n\
Capteur 3: 41\xb0C\r\n";
        let m = Message::parse(raw);
        assert_eq!(
            m.subject.as_deref(),
            Some("Temp\u{e9}rature \u{20ac} \u{e9}lev\u{e9}e")
        );
        assert_eq!(m.from_name.as_deref(), Some("Salle serveur \u{e9}tage 2"));
        assert_eq!(m.from_address.as_deref(), Some("envmon@example.com"));
        assert_eq!(m.header("x-site").as_deref(), Some("B\u{e2}timent A"));
        assert_eq!(m.body, "Capteur 3: 41\u{b0}C");
        // UTF-8 without a charset stays UTF-8; a declared charset is followed.
        let utf8 = Message::parse("Subject: \u{e9}t\u{e9}\r\n\r\n\u{e9}t\u{e9}\r\n".as_bytes());
        assert_eq!(
            (utf8.subject.as_deref(), utf8.body.as_str()),
            (Some("\u{e9}t\u{e9}"), "\u{e9}t\u{e9}")
        );
        let qp = Message::parse(
            b"Content-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n\
41=B0C\r\n",
        );
        assert_eq!(qp.body, "41\u{b0}C");
    }

    #[test]
    fn headers_are_found_unfolded_and_decoded() {
        let raw = b"From: \"OA-ENCL01\" <oa@encl01.example.com>\r\nX-Device: sw1\r\n\
X-Long: part one\r\n  =?UTF-8?Q?caf=C3=A9?=\r\nSubject: x\r\n\r\nX-Device: not a header\r\n";
        let m = Message::parse(raw);
        assert_eq!(m.header("X-DEVICE").as_deref(), Some("sw1"));
        assert_eq!(m.header("x-long").as_deref(), Some("part one caf\u{e9}"));
        assert_eq!(m.header("X-Missing"), None);
        assert_eq!(m.from_name.as_deref(), Some("OA-ENCL01"));
        assert_eq!(m.headers.lines().count(), 5);
    }

    #[test]
    fn html_only_tables_keep_their_cells_and_rows() {
        let raw = b"From: veeam@example.com\r\nContent-Type: text/html; charset=utf-8\r\n\r\n\
<table><tr><td>Backup job: Nightly-SQL</td><td>Failed</td></tr><tr><td>db01</td></tr></table>\r\n";
        assert_eq!(
            Message::parse(raw).body,
            "Backup job: Nightly-SQL\tFailed\ndb01"
        );
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

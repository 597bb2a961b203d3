//! A cheap look at a message's structure before it is parsed: how many entries mail-parser
//! would allocate (one per header field, address, parameter and MIME part) and how many
//! messages sit inside messages, so that a hostile message is stored unparsed instead of
//! exhausting memory or the stack. Pure; one pass, plus one for each encoded message inside.

use mail_parser::decoders::base64::base64_decode;
use mail_parser::decoders::quoted_printable::quoted_printable_decode;

/// Header fields, addresses, parameters and MIME parts past which a message is not parsed:
/// mail-parser keeps an entry of up to a few hundred octets for each, so a 25 MB message of
/// one-octet parts would take gigabytes.
pub const MAX_ITEMS: usize = 100_000;
/// Messages inside messages past which a message is not parsed: dropping the parsed tree
/// recurses once per level, and 10,000 levels overflow a thread's stack.
pub const MAX_MESSAGES: usize = 1_000;

/// How deep mail-parser parses a `message/*` part in base64 or quoted-printable again once
/// decoded (its `MAX_NESTED_ENCODED`).
const ENCODED_DEPTH: usize = 3;

/// Which limit a message is over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Limit {
    /// More than [`MAX_ITEMS`] header fields, addresses, parameters and parts.
    #[error("more than {MAX_ITEMS} header fields, addresses, parameters and parts")]
    Items,
    /// More than [`MAX_MESSAGES`] messages inside it.
    #[error("more than {MAX_MESSAGES} messages inside messages")]
    Messages,
}

/// What one header block said.
#[derive(Default)]
struct Block {
    /// It begins a MIME part (it follows a boundary), not a message.
    part: bool,
    /// It has a Content-Type.
    typed: bool,
    /// It declares `message/*`: its body is a message, starting with headers.
    message: bool,
    /// Its Content-Transfer-Encoding is base64 or quoted-printable.
    encoding: Option<Encoding>,
}

#[derive(Clone, Copy)]
enum Encoding {
    Base64,
    QuotedPrintable,
}

/// The header field a line belongs to, as far as this check cares.
#[derive(Clone, Copy)]
enum Field {
    ContentType,
    Encoding,
    Other,
}

/// Where in the message a line is.
enum State {
    Headers,
    Body,
    /// The body of an encoded `message/*` part, gathered to be decoded and looked at.
    Encoded(Encoding, Vec<u8>),
}

/// Why `raw` should not be parsed, if it should not. Errs towards counting too much: header
/// fields are told apart from body lines the way mail-parser does (a blank line ends them, a
/// boundary starts a part's), and a part starts at any `--` once some header said multipart.
pub fn check(raw: &[u8]) -> Result<(), Limit> {
    Count::default().message(raw, ENCODED_DEPTH)
}

/// What the message and the messages encoded in it add up to.
#[derive(Default)]
struct Count {
    items: usize,
    messages: usize,
}

impl Count {
    /// Counts one message; `depth` is how many more encoded messages inside it get parsed.
    fn message(&mut self, raw: &[u8], depth: usize) -> Result<(), Limit> {
        let (mut multipart, mut digest) = (false, false);
        let mut state = State::Headers;
        let mut block = Block::default();
        let mut field = Field::Other;
        for line in raw.split(|&b| b == b'\n') {
            match &mut state {
                State::Headers if line.iter().all(u8::is_ascii_whitespace) => {
                    // The end of a header block. A message/* part, or a digest's untyped part
                    // (RFC 2046 §5.1.5), holds a message: its headers follow, or its encoding.
                    let holds_message = block.message || (digest && block.part && !block.typed);
                    if holds_message {
                        self.messages += 1;
                        if self.messages > MAX_MESSAGES {
                            return Err(Limit::Messages);
                        }
                    }
                    state = match block.encoding {
                        Some(encoding) if block.message && depth > 0 => {
                            State::Encoded(encoding, Vec::new())
                        }
                        _ if holds_message => State::Headers,
                        _ => State::Body,
                    };
                    block = Block::default();
                }
                State::Headers => {
                    // A field, and each address, id and parameter in it.
                    self.items += 1 + line
                        .iter()
                        .filter(|&&b| b == b',' || b == b';' || b == b'<')
                        .count();
                    // Only Content-Type and Content-Transfer-Encoding matter here, folded or not.
                    if !line.first().is_some_and(|&b| b == b' ' || b == b'\t') {
                        field = if starts_with_ignore_case(line, b"content-type:") {
                            block.typed = true;
                            Field::ContentType
                        } else if starts_with_ignore_case(line, b"content-transfer-encoding:") {
                            Field::Encoding
                        } else {
                            Field::Other
                        };
                    }
                    match field {
                        Field::ContentType => {
                            block.message |= contains_ignore_case(line, b"message/");
                            multipart |= contains_ignore_case(line, b"multipart/");
                            digest |= contains_ignore_case(line, b"multipart/digest");
                        }
                        Field::Encoding if contains_ignore_case(line, b"base64") => {
                            block.encoding = Some(Encoding::Base64);
                        }
                        Field::Encoding if contains_ignore_case(line, b"quoted-printable") => {
                            block.encoding = Some(Encoding::QuotedPrintable);
                        }
                        Field::Encoding | Field::Other => {}
                    }
                }
                // mail-parser finds a boundary anywhere in a line, not only at its start.
                State::Body | State::Encoded(..) if multipart && dashes(line) > 0 => {
                    if let State::Encoded(encoding, body) = &state {
                        self.encoded(*encoding, body, depth)?;
                    }
                    self.items += dashes(line);
                    state = State::Headers;
                    block = Block {
                        part: true,
                        ..Block::default()
                    };
                }
                State::Encoded(_, body) => {
                    body.extend_from_slice(line);
                    body.push(b'\n');
                }
                State::Body => {}
            }
            if self.items > MAX_ITEMS {
                return Err(Limit::Items);
            }
        }
        match &state {
            State::Encoded(encoding, body) => self.encoded(*encoding, body, depth),
            _ => Ok(()),
        }
    }

    /// Counts the message encoded in a `message/*` part's `body`, which mail-parser decodes and
    /// parses again; one it cannot decode, it keeps as it is.
    fn encoded(&mut self, encoding: Encoding, body: &[u8], depth: usize) -> Result<(), Limit> {
        let decoded = match encoding {
            Encoding::Base64 => base64_decode(body),
            Encoding::QuotedPrintable => quoted_printable_decode(body),
        };
        match decoded {
            Some(inner) => self.message(&inner, depth - 1),
            None => Ok(()),
        }
    }
}

/// `--` pairs in `line`, each a possible boundary.
fn dashes(line: &[u8]) -> usize {
    let (mut count, mut i) = (0, 0);
    while i + 1 < line.len() {
        if line[i] == b'-' && line[i + 1] == b'-' {
            count += 1;
            i += 2;
        } else {
            i += 1;
        }
    }
    count
}

fn starts_with_ignore_case(line: &[u8], prefix: &[u8]) -> bool {
    line.get(..prefix.len())
        .is_some_and(|start| start.eq_ignore_ascii_case(prefix))
}

fn contains_ignore_case(line: &[u8], needle: &[u8]) -> bool {
    line.windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repeat(head: &str, unit: &str, n: usize, tail: &str) -> Vec<u8> {
        [head, &unit.repeat(n), tail].concat().into_bytes()
    }

    #[test]
    fn ordinary_mail_passes() {
        let cases: &[&[u8]] = &[
            b"",
            b"Subject: hi\r\n\r\nbody\r\n",
            b"From: a@example.com\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n\
--b\r\nContent-Type: text/plain\r\n\r\nhello -- world\r\n\
--b\r\nContent-Type: message/rfc822\r\n\r\nSubject: inner\r\n\r\nx\r\n--b--\r\n",
        ];
        for raw in cases {
            assert_eq!(check(raw), Ok(()), "{}", String::from_utf8_lossy(raw));
        }
        // A long plain body of dashes and commas is body, not structure.
        let log = repeat("Subject: log\r\n\r\n", "----, ----; <x>\r\n", 200_000, "");
        assert_eq!(check(&log), Ok(()));
        // Deep multipart nesting is handled by mail-parser without recursion.
        let mut deep = b"Subject: deep\r\n".to_vec();
        for i in 0..10_000 {
            deep.extend(
                format!("Content-Type: multipart/mixed; boundary=b{i}\r\n\r\n--b{i}\r\n").bytes(),
            );
        }
        assert_eq!(check(&deep), Ok(()));
    }

    #[test]
    fn limits() {
        let at = |n| repeat("", "X: v\r\n", n, "\r\nbody\r\n");
        assert_eq!(check(&at(MAX_ITEMS)), Ok(()));
        assert_eq!(check(&at(MAX_ITEMS + 1)), Err(Limit::Items));
        let addresses = |n| repeat("To: a@b", ",a@b", n, "\r\n\r\n");
        assert_eq!(check(&addresses(MAX_ITEMS - 1)), Ok(()));
        assert_eq!(check(&addresses(MAX_ITEMS)), Err(Limit::Items));
        let parts = |n| {
            repeat(
                "Content-Type: multipart/mixed; boundary=b\r\n\r\n",
                "--b\r\n\r\nx\r\n",
                n,
                "",
            )
        };
        assert_eq!(check(&parts(MAX_ITEMS / 2)), Ok(()));
        assert_eq!(check(&parts(MAX_ITEMS)), Err(Limit::Items));
        // Boundaries in the middle of lines count too.
        let inline = repeat(
            "Content-Type: multipart/mixed; boundary=b\r\n\r\n",
            "x--b\r\n\r\n",
            MAX_ITEMS,
            "",
        );
        assert_eq!(check(&inline), Err(Limit::Items));

        let nested = |n| repeat("", "Content-Type: message/rfc822\r\n\r\n", n, "x\r\n");
        assert_eq!(check(&nested(MAX_MESSAGES)), Ok(()));
        assert_eq!(check(&nested(MAX_MESSAGES + 1)), Err(Limit::Messages));
        // A digest's parts are messages without saying so.
        let digest = |n| {
            repeat(
                "Content-Type: multipart/digest; boundary=d\r\n\r\n",
                "--d\r\n\r\nSubject: s\r\n\r\nx\r\n",
                n,
                "",
            )
        };
        assert_eq!(check(&digest(MAX_MESSAGES)), Ok(()));
        assert_eq!(check(&digest(MAX_MESSAGES + 1)), Err(Limit::Messages));

        let folded = |n| repeat("", "Content-Type:\r\n\tMessage/RFC822\r\n\r\n", n, "x\r\n");
        assert_eq!(check(&folded(MAX_MESSAGES + 1)), Err(Limit::Messages));
        // Messages encoded in base64 are decoded and counted, as mail-parser parses them.
        let encoded = |inner: &[u8]| {
            use base64::Engine as _;
            let body = base64::engine::general_purpose::STANDARD.encode(inner);
            format!(
                "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\
                 Content-Type: message/rfc822\r\nContent-Transfer-Encoding: BASE64\r\n\r\n\
                 {body}\r\n--b--\r\n"
            )
        };
        assert_eq!(check(encoded(&at(MAX_ITEMS - 10)).as_bytes()), Ok(()));
        assert_eq!(check(encoded(&at(MAX_ITEMS)).as_bytes()), Err(Limit::Items));
        assert_eq!(
            check(encoded(&nested(MAX_MESSAGES)).as_bytes()),
            Err(Limit::Messages)
        );
    }
}

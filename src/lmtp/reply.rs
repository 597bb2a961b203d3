//! SMTP/LMTP replies: a code, an RFC 3463 enhanced status code and text, and every fixed reply
//! this server sends.

use std::fmt;

use super::command;

/// One reply: `250 2.1.5 OK`, or several lines sharing one code (the LHLO reply).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    code: u16,
    enhanced: &'static str,
    lines: Vec<String>,
}

impl Reply {
    /// A one-line reply; `enhanced` is an RFC 3463 code like `"2.1.5"`, or `""` for none.
    pub fn new(code: u16, enhanced: &'static str, text: impl Into<String>) -> Reply {
        Reply {
            code,
            enhanced,
            lines: vec![clean(text.into())],
        }
    }

    /// A multi-line reply (RFC 5321 §4.2.1): every line carries the same code.
    pub fn multiline(code: u16, enhanced: &'static str, lines: Vec<String>) -> Reply {
        let mut lines: Vec<String> = lines.into_iter().map(clean).collect();
        if lines.is_empty() {
            lines.push(String::new());
        }
        Reply {
            code,
            enhanced,
            lines,
        }
    }

    /// The three-digit reply code.
    pub fn code(&self) -> u16 {
        self.code
    }

    /// The enhanced status code (`"2.1.5"`), or `""` when the reply has none.
    pub fn enhanced(&self) -> &'static str {
        self.enhanced
    }

    /// The text of the first line.
    pub fn text(&self) -> &str {
        self.lines.first().map_or("", String::as_str)
    }

    /// Every line's text, in order.
    pub fn lines(&self) -> &[String] {
        &self.lines
    }

    /// Whether this is a positive completion reply (2xx).
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.code)
    }
}

/// Keeps a reply on its line: CR, LF and other controls would let text forge further replies.
fn clean(text: String) -> String {
    if text.chars().any(char::is_control) {
        text.chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect()
    } else {
        text
    }
}

impl fmt::Display for Reply {
    /// Writes the wire form, `250 2.1.5 OK\r\n`, with `250-` on every line but the last.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let last = self.lines.len().saturating_sub(1);
        for (i, line) in self.lines.iter().enumerate() {
            let sep = if i == last { ' ' } else { '-' };
            // RFC 2034 §3: the enhanced code follows the reply code on every line.
            match (self.enhanced.is_empty(), line.is_empty()) {
                (true, true) => write!(f, "{}{sep}\r\n", self.code)?,
                (true, false) => write!(f, "{}{sep}{line}\r\n", self.code)?,
                (false, _) => write!(f, "{}{sep}{} {line}\r\n", self.code, self.enhanced)?,
            }
        }
        Ok(())
    }
}

// The fixed replies, in one place.
impl Reply {
    /// `220` greeting; RFC 2034 §3: no enhanced code on the greeting.
    pub(crate) fn greeting(hostname: &str) -> Reply {
        Reply::new(220, "", format!("{hostname} LMTP mailops ready"))
    }

    /// The LHLO reply listing the extensions (RFC 2033 §4.1; no enhanced code, RFC 2034 §3).
    pub(crate) fn lhlo(hostname: &str, max_message_size: usize) -> Reply {
        Reply::multiline(
            250,
            "",
            vec![
                hostname.to_string(),
                "PIPELINING".into(),
                "ENHANCEDSTATUSCODES".into(),
                "8BITMIME".into(),
                // RFC 1870 §4: the fixed maximum message size.
                format!("SIZE {max_message_size}"),
                "SMTPUTF8".into(),
                "XFORWARD NAME ADDR PORT PROTO HELO IDENT SOURCE".into(),
            ],
        )
    }

    /// `250 2.0.0 OK` for RSET, NOOP and XFORWARD.
    pub(crate) fn ok() -> Reply {
        Reply::new(250, "2.0.0", "OK")
    }

    /// `250 2.1.0` for an accepted MAIL.
    pub(crate) fn sender_ok() -> Reply {
        Reply::new(250, "2.1.0", "OK")
    }

    /// `250 2.1.5` for an accepted RCPT.
    pub(crate) fn recipient_ok() -> Reply {
        Reply::new(250, "2.1.5", "OK")
    }

    /// `550 5.1.1` for a recipient the backend does not know.
    pub(crate) fn recipient_unknown(address: &str) -> Reply {
        Reply::new(550, "5.1.1", format!("<{address}>: recipient unknown"))
    }

    /// `452 4.5.3`: RFC 5321 §4.5.3.1.10, the client retries the rest later.
    pub(crate) fn too_many_recipients() -> Reply {
        Reply::new(452, "4.5.3", "Too many recipients")
    }

    /// `354`: 3xx replies have no enhanced code (RFC 3463 §3.1 classes are 2, 4 and 5).
    pub(crate) fn start_data() -> Reply {
        Reply::new(354, "", "End data with <CR><LF>.<CR><LF>")
    }

    /// `252 2.5.0`: VRFY is not answered (RFC 5321 §3.5.3).
    pub(crate) fn cannot_verify() -> Reply {
        Reply::new(252, "2.5.0", "Cannot VRFY user, but will accept message")
    }

    /// `221 2.0.0` answering QUIT.
    pub(crate) fn bye() -> Reply {
        Reply::new(221, "2.0.0", "Bye")
    }

    /// `503 5.5.1` for a command out of sequence.
    pub(crate) fn bad_sequence(text: &'static str) -> Reply {
        Reply::new(503, "5.5.1", text)
    }

    /// `552 5.3.4` at MAIL when the declared SIZE is over the limit (RFC 1870 §6.1).
    pub(crate) fn size_exceeded() -> Reply {
        Reply::new(
            552,
            "5.3.4",
            "Message size exceeds fixed maximum message size",
        )
    }

    /// `552 5.3.4` per recipient after DATA went over the size limit.
    pub(crate) fn message_too_big() -> Reply {
        Reply::new(552, "5.3.4", "Message too big")
    }

    /// `552 5.3.4` per recipient after a DATA line went over 1000 octets.
    pub(crate) fn message_line_too_long() -> Reply {
        Reply::new(552, "5.3.4", "Message line too long")
    }

    /// `553 5.6.7`: a UTF-8 address without SMTPUTF8 (RFC 6531 §3.5).
    pub(crate) fn needs_smtputf8() -> Reply {
        Reply::new(553, "5.6.7", "Non-ASCII address needs SMTPUTF8")
    }

    /// `451 4.3.0` per recipient when the backend failed in a way it did not report.
    pub(crate) fn local_error() -> Reply {
        Reply::new(451, "4.3.0", "Local error in processing, try again later")
    }

    /// `421 4.4.2`: nothing complete arrived within the idle timeout.
    pub(crate) fn idle_timeout() -> Reply {
        Reply::new(421, "4.4.2", "Idle timeout, closing")
    }

    /// `421 4.7.0`: too many bad commands.
    pub(crate) fn too_many_errors() -> Reply {
        Reply::new(421, "4.7.0", "Too many errors, closing")
    }

    /// `421 4.3.2`: the server is stopping.
    pub(crate) fn shutting_down() -> Reply {
        Reply::new(421, "4.3.2", "Service shutting down")
    }

    /// `421 4.3.2`: the connection cap is reached.
    pub(crate) fn too_many_connections() -> Reply {
        Reply::new(421, "4.3.2", "Too many connections")
    }
}

impl From<&command::Error> for Reply {
    /// The reply to a command line that could not be parsed.
    fn from(error: &command::Error) -> Reply {
        use command::Error as E;
        match error {
            E::Unknown => Reply::new(500, "5.5.1", "Command unrecognized"),
            // RFC 2033 §4.1: HELO and EHLO are not LMTP.
            E::NotLhlo => Reply::new(500, "5.5.1", "This is LMTP: use LHLO"),
            // RFC 5321 §4.5.3.1.4
            E::LineTooLong => Reply::new(500, "5.5.2", "Line too long"),
            E::Encoding => Reply::new(500, "5.5.2", "Invalid characters in command"),
            E::Syntax(usage) => Reply::new(501, "5.5.4", format!("Syntax: {usage}")),
            E::BadSender => Reply::new(501, "5.1.7", "Bad sender address syntax"),
            E::BadRecipient => Reply::new(501, "5.1.3", "Bad recipient address syntax"),
            E::BadParameter(what) => Reply::new(501, "5.5.4", format!("Bad {what} parameter")),
            // RFC 5321 §4.1.1.11, RFC 1869 §6
            E::UnknownParameter(name) => {
                Reply::new(555, "5.5.4", format!("Unsupported parameter {name}"))
            }
            E::NeedsSmtputf8 => Reply::needs_smtputf8(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_forms() {
        let cases = [
            (Reply::new(250, "2.1.5", "OK"), "250 2.1.5 OK\r\n"),
            (
                Reply::greeting("mx.test"),
                "220 mx.test LMTP mailops ready\r\n",
            ),
            (
                Reply::start_data(),
                "354 End data with <CR><LF>.<CR><LF>\r\n",
            ),
            (
                Reply::new(451, "4.3.0", "a\r\n250 forged"),
                "451 4.3.0 a  250 forged\r\n",
            ),
            (
                Reply::multiline(250, "2.0.0", vec!["a".into(), "b".into()]),
                "250-2.0.0 a\r\n250 2.0.0 b\r\n",
            ),
        ];
        for (reply, wire) in cases {
            assert_eq!(reply.to_string(), wire);
        }
    }

    #[test]
    fn lhlo_advertises_exactly_the_extensions() {
        assert_eq!(
            Reply::lhlo("mx.test", 1000).to_string(),
            "250-mx.test\r\n250-PIPELINING\r\n250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n\
             250-SIZE 1000\r\n250-SMTPUTF8\r\n250 XFORWARD NAME ADDR PORT PROTO HELO IDENT SOURCE\r\n"
        );
    }
}

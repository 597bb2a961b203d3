//! Parses one LMTP command line (without its CRLF) into a [`Command`]; pure, no I/O.

/// One client command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `LHLO domain` (RFC 2033 §4.1).
    Lhlo(String),
    /// `MAIL FROM:<reverse-path> [params]`.
    Mail(Mail),
    /// `RCPT TO:<forward-path>`; the address without `<>` or source route.
    Rcpt(String),
    /// `DATA`.
    Data,
    /// `RSET`.
    Rset,
    /// `NOOP [string]`.
    Noop,
    /// `QUIT`.
    Quit,
    /// `VRFY string`.
    Vrfy,
    /// `XFORWARD attr=value ...` (Postfix XFORWARD_README); `None` is `[UNAVAILABLE]`.
    Xforward(Vec<(Attribute, Option<String>)>),
}

/// The arguments of `MAIL FROM`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mail {
    /// The reverse-path without `<>`; `""` for the null sender.
    pub address: String,
    /// `SIZE=n` (RFC 1870 §5).
    pub size: Option<u64>,
    /// `SMTPUTF8` (RFC 6531 §3.4).
    pub smtputf8: bool,
}

/// An XFORWARD attribute name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attribute {
    /// Up-stream hostname.
    Name,
    /// Up-stream network address.
    Addr,
    /// Up-stream TCP port.
    Port,
    /// Protocol the up-stream host received the mail with.
    Proto,
    /// Name the up-stream client announced.
    Helo,
    /// Message identifier: Postfix's queue id.
    Ident,
    /// `LOCAL` or `REMOTE`.
    Source,
}

/// Why a command line was refused; [`super::Reply`] maps each to its reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Not a command this server knows.
    #[error("unknown command")]
    Unknown,
    /// HELO or EHLO: LMTP requires LHLO.
    #[error("HELO/EHLO instead of LHLO")]
    NotLhlo,
    /// The line is over the length limit.
    #[error("line too long")]
    LineTooLong,
    /// The line is not UTF-8.
    #[error("invalid characters")]
    Encoding,
    /// Malformed arguments; the text is the expected syntax.
    #[error("syntax: {0}")]
    Syntax(&'static str),
    /// The reverse-path is malformed.
    #[error("bad sender address")]
    BadSender,
    /// The forward-path is malformed.
    #[error("bad recipient address")]
    BadRecipient,
    /// A known parameter with a bad value.
    #[error("bad {0} parameter")]
    BadParameter(&'static str),
    /// A parameter this server does not support.
    #[error("unsupported parameter {0}")]
    UnknownParameter(String),
    /// A non-ASCII sender without `SMTPUTF8`.
    #[error("non-ASCII address without SMTPUTF8")]
    NeedsSmtputf8,
}

const MAIL_USAGE: &str = "MAIL FROM:<address> [SIZE=n] [BODY=7BIT|8BITMIME] [SMTPUTF8]";
const RCPT_USAGE: &str = "RCPT TO:<address>";

/// Parses one command line, given without its line end.
pub fn parse(line: &[u8]) -> Result<Command, Error> {
    let line = std::str::from_utf8(line).map_err(|_| Error::Encoding)?;
    // Tolerate trailing blanks, as Postfix does.
    let line = line.trim_end_matches([' ', '\t']);
    let (verb, args) = match line.split_once(' ') {
        Some((verb, args)) => (verb, args.trim_start_matches(' ')),
        None => (line, ""),
    };
    let is = |name: &str| verb.eq_ignore_ascii_case(name);
    let no_args = |command: Command, usage: &'static str| match args {
        "" => Ok(command),
        _ => Err(Error::Syntax(usage)),
    };
    if is("LHLO") {
        match args {
            "" => Err(Error::Syntax("LHLO domain")),
            domain => Ok(Command::Lhlo(domain.to_string())),
        }
    } else if is("MAIL") {
        parse_mail(args)
    } else if is("RCPT") {
        parse_rcpt(args)
    } else if is("DATA") {
        no_args(Command::Data, "DATA")
    } else if is("RSET") {
        no_args(Command::Rset, "RSET")
    } else if is("QUIT") {
        no_args(Command::Quit, "QUIT")
    } else if is("NOOP") {
        // RFC 5321 §4.1.1.9: NOOP may carry a string, which is ignored.
        Ok(Command::Noop)
    } else if is("VRFY") {
        match args {
            "" => Err(Error::Syntax("VRFY address")),
            _ => Ok(Command::Vrfy),
        }
    } else if is("XFORWARD") {
        parse_xforward(args)
    } else if is("HELO") || is("EHLO") {
        Err(Error::NotLhlo)
    } else {
        Err(Error::Unknown)
    }
}

/// Strips a case-insensitive `FROM:` / `TO:` and the blanks Postfix tolerates after the colon.
fn strip_keyword<'a>(args: &'a str, keyword: &str) -> Option<&'a str> {
    let head = args.get(..keyword.len())?;
    head.eq_ignore_ascii_case(keyword)
        .then(|| args[keyword.len()..].trim_start_matches(' '))
}

fn parse_mail(args: &str) -> Result<Command, Error> {
    let rest = strip_keyword(args, "FROM:").ok_or(Error::Syntax(MAIL_USAGE))?;
    let (address, params) = split_path(rest).ok_or(Error::BadSender)?;
    // RFC 5321 §4.1.1.2: `<>` is the null reverse-path.
    if !address.is_empty() && !valid_mailbox(address, false) {
        return Err(Error::BadSender);
    }
    let mut mail = Mail {
        address: address.to_string(),
        ..Mail::default()
    };
    for param in params.split(' ').filter(|p| !p.is_empty()) {
        let (key, value) = match param.split_once('=') {
            Some((key, value)) => (key, Some(value)),
            None => (param, None),
        };
        if key.eq_ignore_ascii_case("SIZE") {
            // RFC 1870 §5: size-value is 1*20DIGIT.
            let size = value
                .filter(|v| !v.is_empty() && v.len() <= 20 && v.bytes().all(|b| b.is_ascii_digit()))
                .ok_or(Error::BadParameter("SIZE"))?;
            mail.size = Some(size.parse().unwrap_or(u64::MAX));
        } else if key.eq_ignore_ascii_case("BODY") {
            // RFC 6152 §2: BODY=7BIT or BODY=8BITMIME; nothing to do with either.
            match value {
                Some(v) if v.eq_ignore_ascii_case("7BIT") || v.eq_ignore_ascii_case("8BITMIME") => {
                }
                _ => return Err(Error::BadParameter("BODY")),
            }
        } else if key.eq_ignore_ascii_case("SMTPUTF8") {
            // RFC 6531 §3.4: SMTPUTF8 takes no value.
            if value.is_some() {
                return Err(Error::BadParameter("SMTPUTF8"));
            }
            mail.smtputf8 = true;
        } else {
            return Err(Error::UnknownParameter(key.to_ascii_uppercase()));
        }
    }
    // RFC 6531 §3.5: UTF-8 addresses only in an SMTPUTF8 transaction.
    if !mail.smtputf8 && !mail.address.is_ascii() {
        return Err(Error::NeedsSmtputf8);
    }
    Ok(Command::Mail(mail))
}

fn parse_rcpt(args: &str) -> Result<Command, Error> {
    let rest = strip_keyword(args, "TO:").ok_or(Error::Syntax(RCPT_USAGE))?;
    let (address, params) = split_path(rest).ok_or(Error::BadRecipient)?;
    if !valid_mailbox(address, true) {
        return Err(Error::BadRecipient);
    }
    // No RCPT parameters are advertised (no DSN), so any is unknown (RFC 5321 §4.1.1.11).
    if let Some(param) = params.split(' ').find(|p| !p.is_empty()) {
        let key = param.split('=').next().unwrap_or(param);
        return Err(Error::UnknownParameter(key.to_ascii_uppercase()));
    }
    Ok(Command::Rcpt(address.to_string()))
}

/// Splits `<path> params` into the address (source route dropped) and the parameter text.
fn split_path(s: &str) -> Option<(&str, &str)> {
    let inner = s.strip_prefix('<')?;
    // Find the closing `>` outside a quoted local part (RFC 5321 §4.1.2 Quoted-string).
    let (mut quoted, mut escaped, mut end) = (false, false, None);
    for (i, c) in inner.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '>' if !quoted => {
                end = Some(i);
                break;
            }
            _ => {}
        }
    }
    let end = end?;
    let (path, params) = (&inner[..end], &inner[end + 1..]);
    if !params.is_empty() && !params.starts_with(' ') {
        return None;
    }
    // RFC 5321 §4.1.2 / Appendix C: a source route `@a,@b:` is accepted and ignored.
    let address = match path.strip_prefix('@') {
        Some(route) => route.split_once(':')?.1,
        None => path,
    };
    Some((address, params))
}

/// Whether `address` is `local@domain` (or `postmaster` for RCPT, RFC 5321 §4.1.1.3) with no
/// controls or unquoted blanks.
fn valid_mailbox(address: &str, is_recipient: bool) -> bool {
    if is_recipient && address.eq_ignore_ascii_case("postmaster") {
        return true;
    }
    if address.chars().any(char::is_control) {
        return false;
    }
    let Some((local, domain)) = address.rsplit_once('@') else {
        return false;
    };
    let local_ok = if local.len() >= 2 && local.starts_with('"') && local.ends_with('"') {
        true
    } else {
        !local.is_empty() && !local.contains([' ', '"', '<', '>', '@'])
    };
    local_ok && !domain.is_empty() && !domain.contains([' ', '<', '>', '@'])
}

fn parse_xforward(args: &str) -> Result<Command, Error> {
    const USAGE: &str = "XFORWARD attribute=value ...";
    let mut attributes = Vec::new();
    for item in args.split(' ').filter(|a| !a.is_empty()) {
        let (name, value) = item.split_once('=').ok_or(Error::Syntax(USAGE))?;
        let attribute = match name.to_ascii_uppercase().as_str() {
            "NAME" => Attribute::Name,
            "ADDR" => Attribute::Addr,
            "PORT" => Attribute::Port,
            "PROTO" => Attribute::Proto,
            "HELO" => Attribute::Helo,
            "IDENT" => Attribute::Ident,
            "SOURCE" => Attribute::Source,
            _ => return Err(Error::BadParameter("XFORWARD attribute")),
        };
        // XFORWARD_README note 3: [UNAVAILABLE] in any case means no value.
        let value = (!value.eq_ignore_ascii_case("[UNAVAILABLE]")).then(|| xtext_decode(value));
        attributes.push((attribute, value));
    }
    if attributes.is_empty() {
        return Err(Error::Syntax(USAGE));
    }
    Ok(Command::Xforward(attributes))
}

/// Decodes RFC 3461 §4 xtext (`+XX` hex escapes). Leniently: a `+` not followed by two hex
/// digits stays as it is (XFORWARD_README note 5: old Postfix sent values unencoded), and
/// control characters become `?` so a value can never break a log line.
pub fn xtext_decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |j: usize| bytes.get(j).and_then(|&b| (b as char).to_digit(16));
        match (bytes[i], hex(i + 1), hex(i + 2)) {
            (b'+', Some(hi), Some(lo)) => {
                out.push((hi * 16 + lo) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out)
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mail(address: &str, size: Option<u64>, smtputf8: bool) -> Result<Command, Error> {
        Ok(Command::Mail(Mail {
            address: address.into(),
            size,
            smtputf8,
        }))
    }

    fn rcpt(address: &str) -> Result<Command, Error> {
        Ok(Command::Rcpt(address.into()))
    }

    #[test]
    fn commands() {
        let cases: &[(&str, Result<Command, Error>)] = &[
            ("LHLO client.test", Ok(Command::Lhlo("client.test".into()))),
            (
                "lhlo client.test  ",
                Ok(Command::Lhlo("client.test".into())),
            ),
            ("LHLO", Err(Error::Syntax("LHLO domain"))),
            ("HELO client.test", Err(Error::NotLhlo)),
            ("ehlo client.test", Err(Error::NotLhlo)),
            ("DATA", Ok(Command::Data)),
            ("data", Ok(Command::Data)),
            ("DATA x", Err(Error::Syntax("DATA"))),
            ("RSET", Ok(Command::Rset)),
            ("Rset ", Ok(Command::Rset)),
            ("RSET now", Err(Error::Syntax("RSET"))),
            ("NOOP", Ok(Command::Noop)),
            ("NOOP anything at all", Ok(Command::Noop)),
            ("QUIT", Ok(Command::Quit)),
            ("QUIT x", Err(Error::Syntax("QUIT"))),
            ("VRFY someone", Ok(Command::Vrfy)),
            ("VRFY", Err(Error::Syntax("VRFY address"))),
            ("", Err(Error::Unknown)),
            ("STARTTLS", Err(Error::Unknown)),
            ("BDAT 10 LAST", Err(Error::Unknown)),
            ("DATAX", Err(Error::Unknown)),
            (" DATA", Err(Error::Unknown)),
        ];
        for (line, want) in cases {
            assert_eq!(&parse(line.as_bytes()), want, "{line:?}");
        }
    }

    #[test]
    fn mail_from() {
        let cases: &[(&str, Result<Command, Error>)] = &[
            ("MAIL FROM:<a@b.test>", mail("a@b.test", None, false)),
            ("mail from:<a@b.test>", mail("a@b.test", None, false)),
            ("MAIL FROM: <a@b.test>", mail("a@b.test", None, false)),
            ("MAIL FROM:<>", mail("", None, false)),
            ("MAIL FROM:<> SIZE=0", mail("", Some(0), false)),
            (
                "MAIL FROM:<a@b.test> SIZE=1234",
                mail("a@b.test", Some(1234), false),
            ),
            (
                "MAIL FROM:<a@b.test> size=12 body=8bitmime",
                mail("a@b.test", Some(12), false),
            ),
            (
                "MAIL FROM:<a@b.test> BODY=7BIT SMTPUTF8",
                mail("a@b.test", None, true),
            ),
            (
                "MAIL FROM:<a@b.test>  SIZE=99999999999999999999",
                mail("a@b.test", Some(u64::MAX), false),
            ),
            (
                "MAIL FROM:<@relay.test,@r2.test:a@b.test>",
                mail("a@b.test", None, false),
            ),
            (
                "MAIL FROM:<\"a b\"@b.test>",
                mail("\"a b\"@b.test", None, false),
            ),
            (
                "MAIL FROM:<\"a>b\"@b.test>",
                mail("\"a>b\"@b.test", None, false),
            ),
            (
                "MAIL FROM:<jö@b.test> SMTPUTF8",
                mail("jö@b.test", None, true),
            ),
            ("MAIL FROM:<jö@b.test>", Err(Error::NeedsSmtputf8)),
            (
                "MAIL FROM:<a@b.test> SIZE=",
                Err(Error::BadParameter("SIZE")),
            ),
            (
                "MAIL FROM:<a@b.test> SIZE=12k",
                Err(Error::BadParameter("SIZE")),
            ),
            (
                "MAIL FROM:<a@b.test> SIZE",
                Err(Error::BadParameter("SIZE")),
            ),
            (
                "MAIL FROM:<a@b.test> BODY=BINARYMIME",
                Err(Error::BadParameter("BODY")),
            ),
            (
                "MAIL FROM:<a@b.test> SMTPUTF8=yes",
                Err(Error::BadParameter("SMTPUTF8")),
            ),
            (
                "MAIL FROM:<a@b.test> RET=FULL",
                Err(Error::UnknownParameter("RET".into())),
            ),
            (
                "MAIL FROM:<a@b.test> auth=<>",
                Err(Error::UnknownParameter("AUTH".into())),
            ),
            ("MAIL FROM:a@b.test", Err(Error::BadSender)),
            ("MAIL FROM:<a@b.test", Err(Error::BadSender)),
            ("MAIL FROM:<a@b.test>SIZE=1", Err(Error::BadSender)),
            ("MAIL FROM:<a b@b.test>", Err(Error::BadSender)),
            ("MAIL FROM:<ab.test>", Err(Error::BadSender)),
            ("MAIL FROM:<a@b@c.test>", Err(Error::BadSender)),
            ("MAIL FROM:<a@>", Err(Error::BadSender)),
            ("MAIL FROM:<postmaster>", Err(Error::BadSender)),
            ("MAIL FROM:<a\x01@b.test>", Err(Error::BadSender)),
            ("MAIL TO:<a@b.test>", Err(Error::Syntax(MAIL_USAGE))),
            ("MAIL", Err(Error::Syntax(MAIL_USAGE))),
            ("MAIL FROM", Err(Error::Syntax(MAIL_USAGE))),
        ];
        for (line, want) in cases {
            assert_eq!(&parse(line.as_bytes()), want, "{line:?}");
        }
    }

    #[test]
    fn rcpt_to() {
        let cases: &[(&str, Result<Command, Error>)] = &[
            ("RCPT TO:<x@known.test>", rcpt("x@known.test")),
            ("rcpt to:<X@Known.Test>", rcpt("X@Known.Test")),
            ("RCPT TO: <x@known.test>", rcpt("x@known.test")),
            ("RCPT TO:<Postmaster>", rcpt("Postmaster")),
            ("RCPT TO:<@hop.test:x@known.test>", rcpt("x@known.test")),
            ("RCPT TO:<jö@known.test>", rcpt("jö@known.test")),
            ("RCPT TO:<>", Err(Error::BadRecipient)),
            ("RCPT TO:x@known.test", Err(Error::BadRecipient)),
            (
                "RCPT TO:<x@known.test> NOTIFY=NEVER",
                Err(Error::UnknownParameter("NOTIFY".into())),
            ),
            (
                "RCPT TO:<x@known.test> ORCPT=rfc822;x@known.test",
                Err(Error::UnknownParameter("ORCPT".into())),
            ),
            ("RCPT FROM:<x@known.test>", Err(Error::Syntax(RCPT_USAGE))),
            ("RCPT", Err(Error::Syntax(RCPT_USAGE))),
        ];
        for (line, want) in cases {
            assert_eq!(&parse(line.as_bytes()), want, "{line:?}");
        }
    }

    #[test]
    fn xforward() {
        use Attribute::*;
        let some = |s: &str| Some(s.to_string());
        let cases: &[(&str, Result<Command, Error>)] = &[
            (
                "XFORWARD NAME=spike.porcupine.org ADDR=168.100.189.2 PROTO=ESMTP",
                Ok(Command::Xforward(vec![
                    (Name, some("spike.porcupine.org")),
                    (Addr, some("168.100.189.2")),
                    (Proto, some("ESMTP")),
                ])),
            ),
            (
                "xforward ident=4XyZ1a2B3c helo=[UNAVAILABLE] name=[unavailable]",
                Ok(Command::Xforward(vec![
                    (Ident, some("4XyZ1a2B3c")),
                    (Helo, None),
                    (Name, None),
                ])),
            ),
            (
                "XFORWARD HELO=a+20b+2Bc SOURCE=REMOTE PORT=2525",
                Ok(Command::Xforward(vec![
                    (Helo, some("a b+c")),
                    (Source, some("REMOTE")),
                    (Port, some("2525")),
                ])),
            ),
            (
                "XFORWARD ADDR=IPV6:2001:db8::1",
                Ok(Command::Xforward(vec![(Addr, some("IPV6:2001:db8::1"))])),
            ),
            (
                "XFORWARD HELO=a+0D+0Ab",
                Ok(Command::Xforward(vec![(Helo, some("a??b"))])),
            ),
            (
                "XFORWARD HELO=",
                Ok(Command::Xforward(vec![(Helo, some(""))])),
            ),
            (
                "XFORWARD",
                Err(Error::Syntax("XFORWARD attribute=value ...")),
            ),
            (
                "XFORWARD NAME",
                Err(Error::Syntax("XFORWARD attribute=value ...")),
            ),
            (
                "XFORWARD COLOR=blue",
                Err(Error::BadParameter("XFORWARD attribute")),
            ),
        ];
        for (line, want) in cases {
            assert_eq!(&parse(line.as_bytes()), want, "{line:?}");
        }
    }

    #[test]
    fn xtext() {
        let cases = [
            ("plain", "plain"),
            ("a+2Bb", "a+b"),
            ("a+2bb", "a+b"),
            ("+", "+"),
            ("a+zz", "a+zz"),
            ("a+4", "a+4"),
            ("+C3+A9", "é"),
            ("+FF", "\u{FFFD}"),
            ("tab+09", "tab?"),
        ];
        for (encoded, decoded) in cases {
            assert_eq!(xtext_decode(encoded), decoded, "{encoded:?}");
        }
    }

    #[test]
    fn not_utf8() {
        assert_eq!(parse(b"MAIL FROM:<\xff@b.test>"), Err(Error::Encoding));
    }
}

//! The hostile corpus, generated: every malformed message the issue lists, each with what the
//! server must answer and what the stored row must look like. Nothing here is a file, so no
//! multi-megabyte sample is ever committed.

/// What the server must do with a sample.
pub enum Expect {
    /// `250` for every recipient, stored with this `parsed`.
    Stored { parsed: bool },
    /// This reply (code and enhanced code) for every recipient; nothing stored.
    Refused(&'static str),
}

/// One stored recipient's copy, as the checks see it.
pub struct Row {
    pub parsed: bool,
    pub subject: Option<String>,
    pub message_id: Option<String>,
    pub from_address: Option<String>,
    pub raw: Vec<u8>,
}

/// One malformed message.
pub struct Sample {
    pub name: &'static str,
    /// The message as the client means it (not yet dot-stuffed), ending in CRLF.
    pub raw: Vec<u8>,
    pub expect: Expect,
    /// Checks of the stored row beyond `parsed` and the raw bytes.
    pub check: fn(&Row),
}

/// The alert every sample pretends to be: the originator policy of
/// `tests/fixtures/policies.toml` matches its From and finds nas1 in its subject.
const FROM: &str = "From: Veeam <Veeam@Example.com>\r\n";
const SUBJECT: &str = "Subject: Backup job for nas1.example.com: Failed\r\n";

fn no_check(_: &Row) {}

fn sample(name: &'static str, raw: Vec<u8>, expect: Expect, check: fn(&Row)) -> Sample {
    Sample {
        name,
        raw,
        expect,
        check,
    }
}

/// A sample stored with `parsed = true`.
fn parsed(name: &'static str, raw: Vec<u8>, check: fn(&Row)) -> Sample {
    sample(name, raw, Expect::Stored { parsed: true }, check)
}

/// A sample stored raw with `parsed = false`, so without subject, Message-ID or From.
fn unparsed(name: &'static str, raw: Vec<u8>) -> Sample {
    sample(name, raw, Expect::Stored { parsed: false }, |row| {
        assert_eq!(
            (&row.subject, &row.message_id, &row.from_address),
            (&None, &None, &None)
        );
    })
}

/// A message of the usual headers, `extra` headers, a blank line and `body`.
fn alert(extra: &str, body: &[u8]) -> Vec<u8> {
    [format!("{FROM}{SUBJECT}{extra}\r\n").as_bytes(), body].concat()
}

/// `count` levels of `multipart/mixed`, each with its own boundary, a text part innermost.
fn deep_multipart(count: usize) -> Vec<u8> {
    let mut m = format!("{FROM}{SUBJECT}").into_bytes();
    for i in 0..count {
        m.extend(
            format!("Content-Type: multipart/mixed; boundary=\"b{i}\"\r\n\r\n--b{i}\r\n").bytes(),
        );
    }
    m.extend(b"Content-Type: text/plain\r\n\r\nFailed with error deep down\r\n");
    for i in (0..count).rev() {
        m.extend(format!("--b{i}--\r\n").bytes());
    }
    m
}

/// `count` messages, each the only content of the one around it.
fn deep_rfc822(count: usize) -> Vec<u8> {
    let mut m = format!("{FROM}{SUBJECT}").into_bytes();
    for _ in 0..count {
        m.extend(b"Content-Type: message/rfc822\r\n\r\n");
    }
    m.extend(b"Subject: innermost\r\n\r\nFailed\r\n");
    m
}

/// One multipart of `count` parts of one octet each.
fn tiny_parts(count: usize) -> Vec<u8> {
    let mut m = alert("Content-Type: multipart/mixed; boundary=b\r\n", b"");
    m.reserve(count * 11);
    for _ in 0..count {
        m.extend(b"--b\r\n\r\nx\r\n");
    }
    m.extend(b"--b--\r\n");
    m
}

/// `inner` forwarded in base64 (which RFC 2046 forbids for message/rfc822, and mail-parser
/// decodes and parses anyway).
fn encoded_message(inner: &[u8]) -> Vec<u8> {
    use base64::Engine as _;
    let encoded = base64::engine::general_purpose::STANDARD.encode(inner);
    let mut m = alert(
        "Content-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n",
        b"",
    );
    for line in encoded.as_bytes().chunks(76) {
        m.extend(line);
        m.extend(b"\r\n");
    }
    m
}

/// A header `name` of `octets` octets in lines of 998 (folded), or on one line.
fn long_header(name: &str, octets: usize, folded: bool) -> Vec<u8> {
    let mut m = format!("{FROM}{name}: x").into_bytes();
    m.reserve(octets + octets / 900 * 3);
    let mut line = 0;
    for _ in 0..octets {
        if folded && line == 900 {
            m.extend(b"\r\n ");
            line = 0;
        }
        m.push(b'a');
        line += 1;
    }
    m.extend(b"\r\n\r\nFailed\r\n");
    m
}

/// `line` broken every 990 octets with CRLF and a space, as Postfix's SMTP and LMTP clients
/// break lines over `smtp_line_length_limit` (998).
fn fold(line: &str) -> String {
    let mut out = String::new();
    for (i, chunk) in line.as_bytes().chunks(990).enumerate() {
        if i > 0 {
            out.push_str("\r\n ");
        }
        out.push_str(std::str::from_utf8(chunk).expect("ASCII"));
    }
    out + "\r\n"
}

/// `octets` pairs of pseudo-random hex digits.
fn noise(octets: usize) -> String {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..octets)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            format!("{:02x}", x as u8)
        })
        .collect()
}

/// `count` headers before the body.
fn many_headers(count: usize) -> Vec<u8> {
    let mut m = format!("{FROM}{SUBJECT}").into_bytes();
    for i in 0..count {
        m.extend(format!("X-H{i}: v\r\n").bytes());
    }
    m.extend(b"\r\nFailed\r\n");
    m
}

/// A message of at least `octets` octets in lines of 72.
fn big(octets: usize) -> Vec<u8> {
    let mut m = alert("", b"");
    let line = [b"x".repeat(70), b"\r\n".to_vec()].concat();
    while m.len() < octets {
        m.extend(&line);
    }
    m
}

/// `count` Received: headers, one per relay.
fn received(count: usize) -> String {
    (0..count)
        .map(|i| {
            format!(
                "Received: from relay{i}.example.net (relay{i}.example.net [192.0.2.{}])\r\n\tby mx{i}.example.org with ESMTPS id {i}; Mon, 2 Nov 2026 10:{:02}:00 +0000\r\n",
                i % 250,
                i % 60
            )
        })
        .collect()
}

/// Every sample of the corpus; `max_size` is the server's `max_message_size`.
pub fn corpus(max_size: usize) -> Vec<Sample> {
    // Not compressible, as PostgreSQL would compress a repeated letter to fit an index.
    let ten_kb_id = format!("{}@example.com", noise(5_120));
    vec![
        parsed("deep multipart nesting (10,000 levels)", deep_multipart(10_000), |row| {
            assert_eq!(row.subject.as_deref(), Some("Backup job for nas1.example.com: Failed"));
        }),
        unparsed("deep message/rfc822 nesting (10,000 levels)", deep_rfc822(10_000)),
        unparsed("a million tiny parts", tiny_parts(1_000_000)),
        unparsed(
            "a million tiny parts in a base64 message/rfc822",
            encoded_message(&tiny_parts(1_000_000)),
        ),
        sample(
            "an 18 MB header line",
            long_header("Subject", 18 << 20, false),
            Expect::Refused("552 5.3.4"),
            no_check,
        ),
        parsed("an 18 MB header, folded", long_header("X-Long", 18 << 20, true), |row| {
            assert_eq!(row.subject, None);
        }),
        parsed("an 18 MB subject, folded", long_header("Subject", 18 << 20, true), |row| {
            // Cut to 8 KiB: tickets and notices copy it.
            let subject = row.subject.as_deref().expect("a subject");
            assert_eq!(subject.len(), 8192);
        }),
        unparsed("100,000 headers", many_headers(100_000)),
        parsed("99,000 headers", many_headers(99_000), no_check),
        sample(
            "over the size limit",
            big(max_size + max_size / 10),
            Expect::Refused("552 5.3.4"),
            no_check,
        ),
        parsed(
            "invalid base64",
            alert(
                "Content-Transfer-Encoding: base64\r\n",
                b"RmFpbGVk!!!*** not base64 at all ===\r\nQUJD\x01\x02==extra\r\n",
            ),
            no_check,
        ),
        parsed(
            "invalid quoted-printable",
            alert(
                "Content-Transfer-Encoding: quoted-printable\r\n",
                b"Failed =ZZ =\r\n=4 =\xff=0D=0AX-Injected: 1\r\n=\r\n",
            ),
            no_check,
        ),
        parsed(
            "an unknown charset",
            alert(
                "Content-Type: text/plain; charset=x-no-such-charset\r\n",
                b"Failed \xe9\xe8\r\n",
            ),
            no_check,
        ),
        parsed(
            "broken charsets",
            [
                FROM.as_bytes(),
                b"Subject: =?x-bogus?B?RmFpbGVk?= =?utf-8?Q?=FF=FE?= =?iso-8859-1?B?****?= \xff\xfe raw\r\n",
                b"Content-Type: text/plain; charset=\"utf-8\\\"; charset=utf-16\r\n\r\n",
                b"Failed \xc3\x28 \xf0\x28\x8c\x28 invalid utf-8\r\n",
            ]
            .concat(),
            |row| {
                let subject = row.subject.as_deref().expect("a subject");
                assert!(subject.contains("raw"), "{subject:?}");
            },
        ),
        parsed(
            "NUL in headers and body",
            [
                b"From: Veeam\0 <Veeam@Exa\0mple.com>\r\n".as_slice(),
                b"Subject: Backup job for nas1.example.com:\0 Failed\r\n",
                b"Message-ID: <nul\0id@example.com>\r\n",
                b"Content-Type: multipart/mixed; boundary=b\r\n\r\n",
                b"--b\r\nContent-Type: text/plain\r\n\r\nFailed\0 with\0 NULs\r\n",
                b"--b\r\nContent-Type: application/x\0nul; name=\"a\0b.log\"\r\n",
                b"Content-Disposition: attachment; filename=\"a\0b.log\"\r\n\r\nlog\0data\r\n--b--\r\n",
            ]
            .concat(),
            |row| {
                let subject = row.subject.as_deref().expect("a subject");
                assert_eq!(subject, "Backup job for nas1.example.com: Failed");
                assert!(!row.message_id.as_deref().unwrap_or("").contains('\0'));
                assert!(!row.from_address.as_deref().unwrap_or("").contains('\0'));
            },
        ),
        parsed(
            "bare LF line ends",
            b"From: Veeam <Veeam@Example.com>\nSubject: bare LF\n\nFailed\n.\nnot the end\n\r\n"
                .to_vec(),
            |row| assert_eq!(row.subject.as_deref(), Some("bare LF")),
        ),
        parsed(
            "bare CR line ends",
            b"From: Veeam <Veeam@Example.com>\rSubject: bare CR\r\rFailed\r.\rnot the end\r\r\n"
                .to_vec(),
            no_check,
        ),
        parsed(
            "mixed line ends",
            b"From: Veeam <Veeam@Example.com>\r\nSubject: mixed\n\r\nFailed\r\rline\n\r\n.\n\r\n"
                .to_vec(),
            |row| assert_eq!(row.subject.as_deref(), Some("mixed")),
        ),
        parsed(
            "RFC 2047 words decoding to CRLF and headers",
            format!(
                "{FROM}Subject: =?UTF-8?B?SGkNCkJjYzogdmljdGltQGV4YW1wbGUuY29tDQpYLUluamVjdGVkOiAx?= \
                 =?UTF-8?Q?more=0D=0AX-Injected-Too:_2?=\r\n\r\nFailed\r\n"
            )
            .into_bytes(),
            |row| {
                let subject = row.subject.as_deref().expect("a subject");
                assert!(subject.contains("Bcc: victim"), "decoded: {subject:?}");
            },
        ),
        parsed(
            "60 Received: lines",
            alert(&received(60), b"Failed\r\n"),
            no_check,
        ),
        parsed("no Message-ID", alert("", b"Failed\r\n"), |row| {
            assert_eq!(row.message_id, None);
        }),
        sample(
            "a 10 KB Message-ID on one line",
            alert(&format!("Message-ID: <{ten_kb_id}>\r\n"), b"Failed\r\n"),
            Expect::Refused("552 5.3.4"),
            no_check,
        ),
        parsed(
            "a 10 KB Message-ID, folded as Postfix folds long lines",
            alert(
                &[
                    fold(&format!("Message-ID: <{ten_kb_id}>")),
                    fold(&format!("In-Reply-To: <{ten_kb_id}>")),
                    fold(&format!("References: <a@example.com> <{ten_kb_id}>")),
                ]
                .concat(),
                b"Failed\r\n",
            ),
            |row| assert_eq!(row.message_id, None),
        ),
        unparsed("an empty message", Vec::new()),
        parsed("headers only", format!("{FROM}{SUBJECT}").into_bytes(), no_check),
    ]
}

//! Decodes command lines and DATA from a byte buffer that may end mid-line: line limits,
//! the end-of-data line and dot-unstuffing; pure, no I/O.

/// Longest command line, CRLF included (RFC 5321 §4.5.3.1.4).
pub const COMMAND_LINE_MAX: usize = 512;
/// Longest MAIL/RCPT line: RFC 5321 §4.5.3.1.4 lets ESMTP parameters extend the limit; this is
/// also the most command text ever buffered.
pub const PARAMETER_LINE_MAX: usize = 4096;
/// Longest text line in DATA, CRLF included (RFC 5321 §4.5.3.1.6).
pub const TEXT_LINE_MAX: usize = 1000;

/// What [`LineDecoder::decode`] found at the start of the buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line<'a> {
    /// A complete line, without its LF or CRLF.
    Complete(&'a [u8]),
    /// A line over its limit; the rest of it, up to the next LF, is discarded unseen.
    TooLong,
    /// No complete line yet: read more.
    Incomplete,
}

/// Splits command lines off a buffer, never holding more than [`PARAMETER_LINE_MAX`] octets.
#[derive(Debug, Default)]
pub struct LineDecoder {
    /// Inside a too-long line whose end has not been seen yet.
    discarding: bool,
}

impl LineDecoder {
    /// Decodes the next line at the start of `buf`; returns the octets consumed and the line.
    pub fn decode<'a>(&mut self, buf: &'a [u8]) -> (usize, Line<'a>) {
        let mut start = 0;
        if self.discarding {
            match find(buf, b'\n') {
                Some(i) => {
                    self.discarding = false;
                    start = i + 1;
                }
                None => return (buf.len(), Line::Incomplete),
            }
        }
        let rest = &buf[start..];
        match find(rest, b'\n') {
            Some(i) => {
                // Commands may end in a bare LF, as Postfix tolerates; only DATA is strict.
                let line = rest[..i].strip_suffix(b"\r").unwrap_or(&rest[..i]);
                let limit = if takes_parameters(line) {
                    PARAMETER_LINE_MAX
                } else {
                    COMMAND_LINE_MAX
                };
                if line.len() + 2 > limit {
                    (start + i + 1, Line::TooLong)
                } else {
                    (start + i + 1, Line::Complete(line))
                }
            }
            // Past this, the line will be too long whatever comes: stop buffering it now.
            None if rest.len() >= PARAMETER_LINE_MAX => {
                self.discarding = true;
                (buf.len(), Line::TooLong)
            }
            None => (start, Line::Incomplete),
        }
    }
}

/// MAIL and RCPT lines carry ESMTP parameters and get the longer limit.
fn takes_parameters(line: &[u8]) -> bool {
    line.get(..5).is_some_and(|verb| {
        verb.eq_ignore_ascii_case(b"MAIL ") || verb.eq_ignore_ascii_case(b"RCPT ")
    })
}

fn find(buf: &[u8], byte: u8) -> Option<usize> {
    buf.iter().position(|&b| b == byte)
}

/// Why DATA was read to its end but not kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DataError {
    /// More octets than the maximum message size.
    #[error("message too big")]
    TooBig,
    /// A text line over [`TEXT_LINE_MAX`].
    #[error("message line too long")]
    LineTooLong,
}

/// Where the DATA decoder is within the current line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// At the start of a line: just after DATA's CRLF or a text CRLF.
    LineStart,
    /// Saw `.` at the start of a line.
    Dot,
    /// Saw `.` CR at the start of a line.
    DotCr,
    /// Inside a line.
    Text,
    /// Inside a line, just after a CR (already kept).
    Cr,
}

/// Dot-stuffs `message` for DATA (RFC 5321 §4.5.2), what [`DataDecoder`] undoes: a `.` that
/// starts a line, which only a CRLF does (as the decoder counts lines), is doubled. The
/// end-of-data line is not added. For the clients that drive the session: fuzzing and tests.
pub fn stuff(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 16);
    let mut line_start = true;
    for (i, &b) in message.iter().enumerate() {
        if line_start && b == b'.' {
            out.push(b'.');
        }
        out.push(b);
        line_start = b == b'\n' && i > 0 && message[i - 1] == b'\r';
    }
    out
}

/// Decodes DATA up to the end-of-data line, keeping at most the maximum message size.
#[derive(Debug)]
pub struct DataDecoder {
    state: State,
    message: Vec<u8>,
    max_size: usize,
    /// Octets of message seen, kept or not.
    size: usize,
    /// CRLF line ends among them.
    line_ends: usize,
    line_len: usize,
    line_too_long: bool,
}

impl DataDecoder {
    /// A decoder for a message of at most `max_size` octets; `size_hint` is MAIL's SIZE.
    pub fn new(max_size: usize, size_hint: Option<u64>) -> DataDecoder {
        let hint = size_hint.map_or(0, |s| usize::try_from(s).unwrap_or(usize::MAX));
        DataDecoder {
            state: State::LineStart,
            message: Vec::with_capacity(hint.min(max_size)),
            max_size,
            size: 0,
            line_ends: 0,
            line_len: 0,
            line_too_long: false,
        }
    }

    /// Consumes DATA from the start of `buf`; returns the octets consumed and whether they
    /// ended with the end-of-data line (the rest of `buf` is then the next command).
    pub fn decode(&mut self, buf: &[u8]) -> (usize, bool) {
        let mut i = 0;
        while i < buf.len() {
            let byte = buf[i];
            match self.state {
                State::Text => {
                    // Fast path: copy the run up to the next CR or LF at once.
                    let run = memchr::memchr2(b'\r', b'\n', &buf[i..]).unwrap_or(buf.len() - i);
                    if run > 0 {
                        self.text(&buf[i..i + run]);
                        i += run;
                        continue;
                    }
                    self.text(&[byte]);
                    i += 1;
                    if byte == b'\r' {
                        self.state = State::Cr;
                    } else {
                        // A bare LF is data and does not start a line (SMTP smuggling).
                        self.line_len = 0;
                    }
                }
                State::Cr => {
                    if byte == b'\n' {
                        self.line_ends += 1;
                    }
                    self.text(&[byte]);
                    i += 1;
                    self.state = match byte {
                        b'\n' => {
                            self.line_len = 0;
                            State::LineStart
                        }
                        b'\r' => State::Cr,
                        _ => State::Text,
                    };
                }
                State::LineStart => {
                    // RFC 5321 §4.5.2: a leading dot is dropped, or starts the end-of-data line.
                    if byte == b'.' {
                        self.line_len += 1;
                        i += 1;
                        self.state = State::Dot;
                    } else {
                        self.state = State::Text;
                    }
                }
                State::Dot => {
                    if byte == b'\r' {
                        self.line_len += 1;
                        i += 1;
                        self.state = State::DotCr;
                    } else {
                        self.state = State::Text;
                    }
                }
                State::DotCr => {
                    if byte == b'\n' {
                        // RFC 5321 §4.1.1.4: only CRLF "." CRLF ends DATA.
                        self.state = State::LineStart;
                        return (i + 1, true);
                    }
                    // "." CR and then not LF: the dot was stuffing, the CR is data.
                    self.keep(b"\r");
                    self.state = State::Cr;
                }
            }
        }
        (i, false)
    }

    /// The message once [`decode`](Self::decode) said done, or why it was not kept (the
    /// size first: the outcome never depends on how the input was split).
    pub fn finish(self) -> Result<Vec<u8>, DataError> {
        if self.counted() > self.max_size {
            Err(DataError::TooBig)
        } else if self.line_too_long {
            Err(DataError::LineTooLong)
        } else {
            Ok(self.message)
        }
    }

    /// Octets of memory held for the message.
    #[cfg(test)]
    pub fn held(&self) -> usize {
        self.message.capacity()
    }

    /// Keeps text octets of the current line, checking the line limit.
    fn text(&mut self, bytes: &[u8]) {
        self.line_len += bytes.len();
        self.line_too_long |= self.line_len > TEXT_LINE_MAX;
        self.keep(bytes);
    }

    /// The message size as Postfix counts it for `message_size_limit`: its queue file keeps
    /// lines LF-terminated, so a CRLF counts one octet. Whatever Postfix accepted fits here.
    fn counted(&self) -> usize {
        self.size - self.line_ends
    }

    /// Appends to the message unless it has failed; grows no further than needed.
    fn keep(&mut self, bytes: &[u8]) {
        self.size = self.size.saturating_add(bytes.len());
        if self.counted() > self.max_size || self.line_too_long {
            // Failed: free what was kept; the rest of DATA is only scanned for its end.
            if self.message.capacity() > 0 {
                self.message = Vec::new();
            }
            return;
        }
        let needed = self.message.len() + bytes.len();
        if needed > self.message.capacity() {
            let target = (self.message.capacity() * 2)
                .max(8192)
                .min(self.max_size)
                .max(needed);
            self.message.reserve_exact(target - self.message.len());
        }
        self.message.extend_from_slice(bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the decoder yields for one line: the line, or `None` for too long.
    type Event = Option<Vec<u8>>;

    /// Feeds `chunks` like the session does, keeping unconsumed octets; returns the lines and
    /// the octets left over.
    fn lines(chunks: &[&[u8]]) -> (Vec<Event>, Vec<u8>) {
        let (mut decoder, mut buf, mut out) = (LineDecoder::default(), Vec::new(), Vec::new());
        for chunk in chunks {
            buf.extend_from_slice(chunk);
            loop {
                let (n, line) = decoder.decode(&buf);
                let event = match line {
                    Line::Complete(l) => Some(Some(l.to_vec())),
                    Line::TooLong => Some(None),
                    Line::Incomplete => None,
                };
                buf.drain(..n);
                match event {
                    Some(e) => out.push(e),
                    None => break,
                }
            }
            assert!(buf.len() < PARAMETER_LINE_MAX, "buffered {}", buf.len());
        }
        (out, buf)
    }

    /// Every way of cutting `input`: whole, at each single boundary, and byte by byte.
    fn splits(input: &[u8]) -> Vec<Vec<&[u8]>> {
        let mut all = vec![vec![input]];
        for at in 1..input.len() {
            all.push(vec![&input[..at], &input[at..]]);
        }
        all.push(input.chunks(1).collect());
        all
    }

    #[test]
    fn command_lines() {
        let long = |n: usize, prefix: &str| {
            let mut l = prefix.as_bytes().to_vec();
            l.resize(n, b'a');
            l
        };
        let cases: Vec<(Vec<u8>, Vec<Event>, &[u8])> = vec![
            (b"NOOP\r\n".to_vec(), vec![Some(b"NOOP".to_vec())], b""),
            (b"NOOP\n".to_vec(), vec![Some(b"NOOP".to_vec())], b""),
            (b"\r\n".to_vec(), vec![Some(b"".to_vec())], b""),
            (
                b"NOOP\r\nRSET\r\nQU".to_vec(),
                vec![Some(b"NOOP".to_vec()), Some(b"RSET".to_vec())],
                b"QU",
            ),
            (b"A\rB\r\n".to_vec(), vec![Some(b"A\rB".to_vec())], b""),
            (
                [long(510, "NOOP "), b"\r\n".to_vec()].concat(),
                vec![Some(long(510, "NOOP "))],
                b"",
            ),
            (
                [long(511, "NOOP "), b"\r\nQUIT\r\n".to_vec()].concat(),
                vec![None, Some(b"QUIT".to_vec())],
                b"",
            ),
            (
                [long(4094, "RCPT "), b"\r\n".to_vec()].concat(),
                vec![Some(long(4094, "RCPT "))],
                b"",
            ),
            (
                [long(4095, "mail "), b"\r\n".to_vec()].concat(),
                vec![None],
                b"",
            ),
            (
                [long(9000, "NOOP "), b"\r\nQUIT\r\n".to_vec()].concat(),
                vec![None, Some(b"QUIT".to_vec())],
                b"",
            ),
            (
                [long(9000, "NOOP "), b"\nQUIT".to_vec()].concat(),
                vec![None],
                b"QUIT",
            ),
        ];
        for (input, want, rest) in &cases {
            for chunks in splits(input) {
                let (got, left) = lines(&chunks);
                assert_eq!(
                    &got,
                    want,
                    "{:?}",
                    String::from_utf8_lossy(&input[..input.len().min(40)])
                );
                assert_eq!(left, *rest);
            }
        }
    }

    #[test]
    fn endless_command_line_is_bounded() {
        let chunk = vec![b'x'; 65536];
        let mut chunks: Vec<&[u8]> = vec![chunk.as_slice(); 480]; // 30 MiB, no LF
        chunks.push(b"\r\nNOOP\r\n");
        let (got, left) = lines(&chunks);
        assert_eq!(got, vec![None, Some(b"NOOP".to_vec())]);
        assert!(left.is_empty());
    }

    type Outcome = Result<Vec<u8>, DataError>;

    /// Feeds `chunks` to a DATA decoder; returns the outcome and the octets after the end.
    fn data(chunks: &[&[u8]], max: usize) -> (Option<Outcome>, Vec<u8>) {
        let mut decoder = DataDecoder::new(max, None);
        let mut chunks = chunks.iter();
        while let Some(chunk) = chunks.next() {
            let (n, done) = decoder.decode(chunk);
            // The CR of each CRLF is kept but not counted: at most one per two octets.
            assert!(
                decoder.held() <= 2 * max + TEXT_LINE_MAX,
                "held {}",
                decoder.held()
            );
            if done {
                let mut rest = chunk[n..].to_vec();
                rest.extend(chunks.flat_map(|c| c.iter().copied()));
                return (Some(decoder.finish()), rest);
            }
            assert_eq!(n, chunk.len(), "DATA not done must consume everything");
        }
        (None, Vec::new())
    }

    #[test]
    fn data_end_and_unstuffing() {
        let cases: &[(&[u8], &[u8], &[u8])] = &[
            // input, message, rest after the end
            (b".\r\n", b"", b""),
            (b".\r\nQUIT\r\n", b"", b"QUIT\r\n"),
            (b"\r\n.\r\n", b"\r\n", b""),
            (b"a\r\n.\r\n", b"a\r\n", b""),
            (b"a\r\nb\r\n.\r\nRSET\r\n", b"a\r\nb\r\n", b"RSET\r\n"),
            (b"..a\r\n.\r\n", b".a\r\n", b""),
            (b"a\r\n..\r\n.\r\n", b"a\r\n.\r\n", b""),
            (b"a\r\n...\r\n.\r\n", b"a\r\n..\r\n", b""),
            (b"a.\r\n.b\r\n.\r\n", b"a.\r\nb\r\n", b""),
            // SMTP smuggling: none of these end DATA.
            (b"a\n.\nb\r\n.\r\n", b"a\n.\nb\r\n", b""),
            (b"a\r\n.\nb\r\n.\r\n", b"a\r\n\nb\r\n", b""),
            (b"a\n.\r\nb\r\n.\r\n", b"a\n.\r\nb\r\n", b""),
            (b"a\r.\r\nb\r\n.\r\n", b"a\r.\r\nb\r\n", b""),
            (b"a\r\n.\rb\r\n.\r\n", b"a\r\n\rb\r\n", b""),
            (b"a\r\n.\r\r\n.\r\n", b"a\r\n\r\r\n", b""),
            // Bare CR and LF are kept as they are.
            (b"x\ry\nz\r\r\n.\r\n", b"x\ry\nz\r\r\n", b""),
            (b"8bit \xc3\xa9\x00\r\n.\r\n", b"8bit \xc3\xa9\x00\r\n", b""),
        ];
        for (input, message, rest) in cases {
            for chunks in splits(input) {
                let (got, left) = data(&chunks, 1 << 20);
                assert_eq!(
                    got,
                    Some(Ok(message.to_vec())),
                    "{:?}",
                    String::from_utf8_lossy(input)
                );
                assert_eq!(left, *rest);
            }
        }
    }

    #[test]
    fn stuffing_is_what_the_decoder_undoes() {
        for message in [
            &b""[..],
            b".\r\n",
            b"..\r\n.a\r\n",
            b"a\r\n.\r\nb\r\n",
            b"a\n.\nb\r\n",
            b"a\r.\r\n",
        ] {
            let mut sent = stuff(message);
            sent.extend(b".\r\n");
            assert_eq!(
                data(&[&sent], 1000),
                (Some(Ok(message.to_vec())), Vec::new()),
                "{:?}",
                String::from_utf8_lossy(message)
            );
        }
        assert_eq!(stuff(b".a\r\n.b\n.c"), b"..a\r\n..b\n.c");
    }

    #[test]
    fn data_without_end_is_incomplete() {
        for input in [
            &b"a\r\n"[..],
            b"a\n.\n",
            b"a\r\n.",
            b"a\r\n.\r",
            b"a\r\n.\n",
            b"",
        ] {
            for chunks in splits(input) {
                assert_eq!(data(&chunks, 1 << 20).0, None, "{input:?}");
            }
        }
    }

    #[test]
    fn data_limits() {
        let line = |n: usize| [vec![b'a'; n], b"\r\n".to_vec()].concat();
        let end = b".\r\n".to_vec();
        let cases: Vec<(Vec<u8>, usize, Outcome)> = vec![
            ([line(998), end.clone()].concat(), 4096, Ok(line(998))),
            (
                [line(999), end.clone()].concat(),
                4096,
                Err(DataError::LineTooLong),
            ),
            (
                [b".".to_vec(), line(998), end.clone()].concat(),
                4096,
                Err(DataError::LineTooLong),
            ),
            // A CRLF counts one octet, as in Postfix's queue file.
            ([line(9), end.clone()].concat(), 10, Ok(line(9))),
            ([line(10), end.clone()].concat(), 10, Err(DataError::TooBig)),
            (
                [line(9), line(2000), end.clone()].concat(),
                10,
                Err(DataError::TooBig),
            ),
            (
                [line(2000), line(9), end.clone()].concat(),
                10,
                Err(DataError::TooBig),
            ),
            (
                [line(2000), line(9), end.clone()].concat(),
                4096,
                Err(DataError::LineTooLong),
            ),
        ];
        for (input, max, want) in cases {
            for chunks in splits(&input) {
                assert_eq!(data(&chunks, max).0, Some(want.clone()));
            }
        }
    }

    #[test]
    fn thirty_megabytes_stay_bounded() {
        let max = 1 << 20;
        let lines: Vec<u8> =
            b"0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz\r\n"
                .repeat(900);
        let mut chunks: Vec<&[u8]> = Vec::new();
        while chunks.len() * lines.len() < 30 << 20 {
            chunks.push(&lines);
        }
        chunks.push(b".\r\nQUIT\r\n");
        let (got, rest) = data(&chunks, max);
        assert_eq!(got, Some(Err(DataError::TooBig)));
        assert_eq!(rest, b"QUIT\r\n");

        // One 30 MiB line under a 64 MiB limit: nothing is kept past the first 1000 octets.
        let mut decoder = DataDecoder::new(64 << 20, None);
        let one_line = vec![b'x'; 65536];
        for _ in 0..480 {
            assert_eq!(decoder.decode(&one_line), (one_line.len(), false));
            assert_eq!(decoder.held(), 0);
        }
        assert_eq!(decoder.decode(b"\r\n.\r\n"), (5, true));
        assert_eq!(decoder.finish(), Err(DataError::LineTooLong));
    }

    #[test]
    fn exact_size_is_accepted_counting_line_ends_as_postfix_does() {
        let message = b"abc\r\n".repeat(2000);
        let input = [message.clone(), b".\r\n".to_vec()].concat();
        // Postfix's queue file holds "abc\n" lines: 8000 octets against message_size_limit.
        let postfix_size = 4 * 2000;
        assert_eq!(data(&[&input], postfix_size).0, Some(Ok(message.clone())));
        assert_eq!(
            data(&[&input], postfix_size - 1).0,
            Some(Err(DataError::TooBig))
        );
        // A bare CR or LF is an octet of its own.
        let bare = b"abc\rdef\nghi\r\n".to_vec();
        let input = [bare.clone(), b".\r\n".to_vec()].concat();
        assert_eq!(data(&[&input], 12).0, Some(Ok(bare.clone())));
        assert_eq!(data(&[&input], 11).0, Some(Err(DataError::TooBig)));
    }
}

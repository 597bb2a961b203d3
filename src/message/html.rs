//! An HTML body as text with its structure kept: one line per block, table cells separated by
//! a tab. Alerts are matched line by line (`(?m)^instance = …`, `Job: \S+\s+Failed`), so a
//! row, a paragraph or a `<br>` must end a line and two cells must not run together. Pure; one
//! pass over the markup, entities decoded by `html-escape`.

use std::borrow::Cow;

/// Elements whose start and end each end the current line.
const BLOCKS: &[&str] = &[
    "address",
    "article",
    "aside",
    "blockquote",
    "body",
    "caption",
    "center",
    "dd",
    "details",
    "dialog",
    "div",
    "dl",
    "dt",
    "fieldset",
    "figcaption",
    "figure",
    "footer",
    "form",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "header",
    "hr",
    "html",
    "legend",
    "li",
    "main",
    "nav",
    "ol",
    "p",
    "pre",
    "section",
    "summary",
    "table",
    "tbody",
    "tfoot",
    "thead",
    "tr",
    "ul",
];

/// Elements whose content is never shown.
const HIDDEN: &[&str] = &["head", "script", "style", "template", "title"];

/// The separator between two table cells of one row.
pub const CELL: char = '\t';

/// `html` as text: block elements and `<br>` on lines of their own, cells separated by
/// [`CELL`], `<pre>` kept as it is, entities decoded (a no-break space as a space),
/// `<head>`, `<style>`, `<script>` and comments dropped, white space collapsed within a line,
/// no blank line twice, LF line ends, surrounding white space trimmed.
pub fn to_text(html: &str) -> String {
    let mut out = Text::default();
    let bytes = html.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'<' {
            let end = memchr::memchr(b'<', &bytes[i..]).map_or(bytes.len(), |n| i + n);
            out.text(&html[i..end]);
            i = end;
            continue;
        }
        let rest = &html[i..];
        if let Some(comment) = rest.strip_prefix("<!--") {
            // A comment runs to `-->`; an unclosed one to the end.
            i = comment.find("-->").map_or(bytes.len(), |n| i + 4 + n + 3);
            continue;
        }
        let Some(tag) = Tag::read(rest) else {
            // A `<` that starts no tag is text.
            out.text("<");
            i += 1;
            continue;
        };
        i += tag.len;
        if !tag.closing && HIDDEN.contains(&tag.name.as_str()) {
            // Skip to the matching end tag (or the end): nothing in it is shown.
            i = find_end_tag(html, i, &tag.name).unwrap_or(bytes.len());
            continue;
        }
        out.tag(&tag);
    }
    out.finish()
}

/// One start or end tag.
struct Tag {
    /// Its name, lower case.
    name: String,
    /// `</name>`.
    closing: bool,
    /// Its length in the markup, `<` to `>`.
    len: usize,
}

impl Tag {
    /// The tag `markup` starts with, if it starts with one (`<name`, `</name`, `<!…>`, `<?…>`);
    /// a `>` inside a quoted attribute value does not end it.
    fn read(markup: &str) -> Option<Tag> {
        let b = markup.as_bytes();
        let closing = b.get(1) == Some(&b'/');
        let start = if closing { 2 } else { 1 };
        let first = *b.get(start)?;
        let declaration = !closing && (first == b'!' || first == b'?');
        if !first.is_ascii_alphabetic() && !declaration {
            return None;
        }
        let name_end = b[start..]
            .iter()
            .position(|c| !c.is_ascii_alphanumeric())
            .map_or(b.len(), |n| start + n);
        let mut quote = None;
        let mut j = name_end;
        while j < b.len() {
            match (quote, b[j]) {
                (None, b'>') => break,
                (None, q @ (b'"' | b'\'')) => quote = Some(q),
                (Some(q), c) if c == q => quote = None,
                _ => {}
            }
            j += 1;
        }
        Some(Tag {
            name: if declaration {
                String::new()
            } else {
                markup[start..name_end].to_ascii_lowercase()
            },
            closing,
            len: (j + 1).min(b.len()),
        })
    }
}

/// Where the end tag `</name…>` after `from` ends.
fn find_end_tag(html: &str, from: usize, name: &str) -> Option<usize> {
    let bytes = html.as_bytes();
    let mut i = from;
    while let Some(n) = memchr::memchr(b'<', &bytes[i..]) {
        i += n;
        let rest = &html[i..];
        let bytes = rest.as_bytes();
        // Bytes, not `str` slices: the text after `</` may end inside a character.
        if bytes.len() > name.len() + 2
            && bytes[1] == b'/'
            && bytes[2..2 + name.len()].eq_ignore_ascii_case(name.as_bytes())
            && !bytes[2 + name.len()].is_ascii_alphanumeric()
        {
            return Some(rest.find('>').map_or(html.len(), |end| i + end + 1));
        }
        i += 1;
    }
    None
}

/// The text being written.
#[derive(Default)]
struct Text {
    out: String,
    /// Where the current line starts in `out`.
    line_start: usize,
    /// White space was seen since the last word of this line.
    space: bool,
    /// A cell started since the last word of this line.
    cell: bool,
    /// Inside `<pre>`, how deep.
    pre: usize,
}

impl Text {
    fn tag(&mut self, tag: &Tag) {
        match tag.name.as_str() {
            "br" => self.newline(true),
            "td" | "th" if !tag.closing => self.cell = true,
            "pre" => {
                self.newline(false);
                self.pre = if tag.closing {
                    self.pre.saturating_sub(1)
                } else {
                    self.pre + 1
                };
            }
            name if BLOCKS.contains(&name) => self.newline(false),
            // Inline elements (and declarations): their text flows on.
            _ => {}
        }
    }

    /// Text between tags, entities still encoded.
    fn text(&mut self, raw: &str) {
        let decoded: Cow<'_, str> = if raw.contains('&') {
            html_escape::decode_html_entities(raw)
        } else {
            Cow::Borrowed(raw)
        };
        if self.pre > 0 {
            for (n, line) in decoded.split('\n').enumerate() {
                if n > 0 {
                    self.newline(true);
                }
                self.word(line.trim_end_matches('\r'));
            }
            return;
        }
        for (n, word) in decoded.split(|c: char| c.is_whitespace()).enumerate() {
            if n > 0 {
                self.space = true;
            }
            if !word.is_empty() {
                self.word(word);
            }
        }
    }

    /// A run of text without white space (or, in `<pre>`, a line).
    fn word(&mut self, word: &str) {
        if word.is_empty() {
            return;
        }
        if self.out.len() > self.line_start {
            if self.cell {
                self.out.push(CELL);
            } else if self.space {
                self.out.push(' ');
            }
        }
        self.cell = false;
        self.space = false;
        self.out.push_str(word);
    }

    /// Ends the current line; `always`: even an empty one (`<br>`), though never a second
    /// blank line in a row.
    fn newline(&mut self, always: bool) {
        let empty = self.out.len() == self.line_start;
        let blank_before = self.out.is_empty() || self.out.ends_with("\n\n");
        if !empty || (always && !blank_before) {
            self.out.push('\n');
            self.line_start = self.out.len();
        }
        self.space = false;
        self.cell = false;
    }

    fn finish(self) -> String {
        // A no-break space reads as a space and is matched as one.
        let text = self.out.replace('\u{a0}', " ");
        let mut lines: Vec<&str> = text.lines().map(str::trim_end).collect();
        // `<br>` after a block may leave a line that is only white space.
        lines.dedup_by(|a, b| a.trim().is_empty() && b.trim().is_empty());
        lines.join("\n").trim().to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_and_breaks_end_lines() {
        let html = "<html><head><title>Report</title><style>td { color: red }</style></head>\
<body><h1>Disk <b>3</b>&nbsp;degraded</h1><p class=\"x\">First</p><div>Second<br/>Third\
<br class='y'>Fourth</div><ul><li>one</li><li>two &amp; three</li></ul>\
<script>var a = '<p>';</script><!-- <p>hidden</p> -->End</body></html>";
        assert_eq!(
            to_text(html),
            "Disk 3 degraded\nFirst\nSecond\nThird\nFourth\none\ntwo & three\nEnd"
        );
    }

    #[test]
    fn cells_are_separated_by_a_tab_and_rows_are_lines() {
        let html = r#"<table width="100%"><tr><td colspan="4"><b>Backup job: Nightly-SQL</b></td>
<td class="failed"><b>Failed</b></td></tr>
<tr><td>db01</td><td></td><td>Error: <i>snapshot</i> failed</td></tr></table>"#;
        assert_eq!(
            to_text(html),
            "Backup job: Nightly-SQL\tFailed\ndb01\tError: snapshot failed"
        );
    }

    #[test]
    fn labels_split_by_br_are_lines() {
        // Alertmanager's default HTML lists labels as `name = value<br />`.
        let html = "<strong>Labels</strong><br />alertname = InstanceDown<br />\
instance = node01:9100<br />job = node<br />";
        assert_eq!(
            to_text(html),
            "Labels\nalertname = InstanceDown\ninstance = node01:9100\njob = node"
        );
    }

    #[test]
    fn white_space_collapses_within_a_line_but_pre_is_kept() {
        let html = "<p>  a \t\r\n  b  </p><pre>x  y\r\n  z</pre><p>c</p>";
        assert_eq!(to_text(html), "a b\nx  y\n  z\nc");
    }

    #[test]
    fn br_runs_leave_one_blank_line_at_most() {
        assert_eq!(to_text("a<br><br><br><br>b"), "a\n\nb");
    }

    #[test]
    fn quoted_gt_and_stray_lt_do_not_confuse_tags() {
        let html = "<a title=\"a > b\" href='x>y'>link</a> 1 < 2 <3";
        assert_eq!(to_text(html), "link 1 < 2 <3");
    }

    #[test]
    fn unclosed_comments_and_hidden_elements_end_the_text() {
        assert_eq!(to_text("a<!-- b"), "a");
        assert_eq!(to_text("a<style>b"), "a");
        assert_eq!(to_text("a<STYLE>b</Style >c"), "ac");
        assert_eq!(to_text(""), "");
        assert_eq!(to_text("<"), "<");
        assert_eq!(to_text("</"), "</");
        // A hidden element's end is looked for in bytes: a character straddling where its name
        // would end is no end tag (found by fuzzing).
        assert_eq!(to_text("<style>x</sty\u{fffd}>y</style>z"), "z");
    }

    #[test]
    fn entities_are_decoded_once() {
        assert_eq!(
            to_text("&lt;p&gt; &eacute;t&eacute; &#8364; &#x41; &amp;lt;"),
            "<p> été € A &lt;"
        );
    }
}

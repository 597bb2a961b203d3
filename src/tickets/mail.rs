//! What a mail to a ticket destination says, read without I/O: whether it is noise that must
//! never open a ticket or get an answer, which ticket its subject names, its new text, and the
//! texts of the notices that answer it.

use std::sync::LazyLock;

use regex::Regex;

use crate::message::Message;

/// The token notices put in their subject, and replies keep: `[Ticket #42]`.
const TOKEN_PATTERN: &str = r"(?i)\[ticket #([0-9]{1,18})\]";
static TOKEN: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(TOKEN_PATTERN).expect("the ticket token regex compiles"));
/// [`TOKEN`] as the end of a text.
static TOKEN_AT_END: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!("{TOKEN_PATTERN}$")).expect("the ticket token regex compiles")
});

/// Reply and forward prefixes in the languages mail clients write them in (`Re:`, `Fwd:`,
/// German `AW:`/`WG:`, Nordic `SV:`/`VS:`, Dutch `Antw:`, French `TR:`…), with an optional
/// count (`Re[2]:`), repeated.
static PREFIXES: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)^\s*(?:(?:re|fwd?|aw|wg|sv|vs|antw|tr|rif|ref)\s*(?:\[[0-9]+\]|\([0-9]+\))?\s*:\s*)+",
    )
    .expect("the prefix regex compiles")
});

/// Why a mail is noise: it must create no ticket and no note, and get no notice (RFC 3834:
/// never answer automatic mail; and never answer ourselves). `own` says whether an address
/// is one mailops sends from.
pub fn noise(envelope_from: &str, message: &Message, own: impl Fn(&str) -> bool) -> Option<String> {
    if envelope_from.is_empty() {
        return Some("null sender (a bounce or report)".into());
    }
    if message.report {
        return Some("delivery status report".into());
    }
    if let Some(value) = message.auto_submitted.as_deref().filter(|v| *v != "no") {
        return Some(format!("Auto-Submitted: {value}"));
    }
    if let Some(value) = message
        .precedence
        .as_deref()
        .filter(|v| matches!(*v, "bulk" | "junk" | "list"))
    {
        return Some(format!("Precedence: {value}"));
    }
    if message.autoreply {
        return Some("automatic reply (X-Autoreply)".into());
    }
    let from = message.from_address.as_deref();
    if let Some(address) = [Some(envelope_from), from]
        .into_iter()
        .flatten()
        .find(|a| own(a))
    {
        return Some(format!("sent by mailops itself ({address})"));
    }
    if let Some(local) = from
        .and_then(|a| a.split_once('@'))
        .map(|(local, _)| local.to_ascii_lowercase())
        .filter(|l| l == "mailer-daemon" || l == "postmaster")
    {
        return Some(format!("sent by {local} (a bounce)"));
    }
    None
}

/// The ticket id a subject's token names, wherever it stands.
pub fn subject_ticket(subject: &str) -> Option<i64> {
    TOKEN.captures(subject)?.get(1)?.as_str().parse().ok()
}

/// A subject without its reply/forward prefixes and ticket tokens: what a ticket is about.
pub fn clean_subject(subject: &str) -> String {
    let without_token = without_tokens(subject);
    let mut s = without_token.trim();
    // A prefix may follow the token ("[Ticket #4] Re: …") as well as precede it.
    loop {
        let stripped = PREFIXES.replace(s, "");
        if stripped.len() == s.len() {
            break;
        }
        s = &s[s.len() - stripped.len()..];
    }
    s.trim().to_owned()
}

/// `text` without ticket tokens, also those that removing another one forms
/// (`[Ticket #[Ticket #4]5]`), in one pass: a token ends at a `]`, so each `]` copied checks
/// whether the text so far now ends with one, which never looks back further than a token's
/// length.
fn without_tokens(text: &str) -> String {
    // The longest token: "[ticket #" and 18 digits and "]", each letter at most 3 bytes
    // (the Kelvin sign matches k).
    const LONGEST: usize = 3 * 6 + 3 + 18 + 1;
    let mut out = String::with_capacity(text.len());
    for piece in text.split_inclusive(']') {
        out.push_str(piece);
        // A token ends with a digit and `]`, and holds a `#`.
        let mut from = out.len().saturating_sub(LONGEST);
        while !out.is_char_boundary(from) {
            from += 1;
        }
        let tail = &out[from..];
        if tail.ends_with(']')
            && tail[..tail.len() - 1].ends_with(|c: char| c.is_ascii_digit())
            && tail.contains('#')
        {
            if let Some(token) = TOKEN_AT_END.find(tail) {
                out.truncate(from + token.start());
            }
        }
    }
    out
}

/// The subject of a notice about ticket `id`.
pub fn notice_subject(id: i64, subject: &str) -> String {
    let subject = clean_subject(subject);
    if subject.is_empty() {
        format!("[Ticket #{id}]")
    } else {
        format!("[Ticket #{id}] {subject}")
    }
}

/// A ticket's description from its template: `%` is replaced by the subject.
pub fn description(template: &str, subject: &str) -> String {
    template.replace('%', &clean_subject(subject))
}

/// A notice's text: `%t` is the ticket id, `%W` its link (`ticket_url` with its own `%t`
/// replaced; the bare id when no link is configured).
pub fn expand(text: &str, id: Option<i64>, ticket_url: Option<&str>) -> String {
    let id = id.map(|id| id.to_string()).unwrap_or_default();
    let link = match ticket_url {
        Some(url) if !url.is_empty() => url.replace("%t", &id),
        _ => id.clone(),
    };
    text.replace("%W", &link).replace("%t", &id)
}

/// The new text of a reply: what comes before the quoted history (an attribution line such
/// as "On … wrote:", an "Original Message" separator, an Outlook header block), without
/// `>`-quoted lines. The whole body when that leaves nothing.
pub fn reply_text(body: &str) -> String {
    let lines: Vec<&str> = body.lines().collect();
    let mut kept = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let next = lines.get(i + 1).copied().unwrap_or("");
        if starts_history(line, next) {
            break;
        }
        if !line.trim_start().starts_with('>') {
            kept.push(*line);
        }
    }
    let text = kept.join("\n").trim().to_owned();
    if text.is_empty() {
        body.trim().to_owned()
    } else {
        text
    }
}

/// Whether `line` (followed by `next`) begins the quoted history of a reply.
fn starts_history(line: &str, next: &str) -> bool {
    static ATTRIBUTION: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"(?i)^(on|am|le|el|il|op|den|på|w dniu)\b.*(wrote|schrieb|écrit|escribió|scritto|geschreven|skrev|napisał).*:$")
            .expect("the attribution regex compiles")
    });
    let line = line.trim();
    let lower = line.to_ascii_lowercase();
    if lower.starts_with("-----original message-----")
        || lower.starts_with("-------- original message --------")
        || lower.starts_with("---------- forwarded message")
        || lower.starts_with("-----ursprüngliche nachricht-----")
    {
        return true;
    }
    // Outlook: a rule, or straight away "From: …" followed by "Sent: …" / "Date: …".
    let next = next.trim().to_ascii_lowercase();
    if (lower.starts_with("from:") || lower.starts_with("von:"))
        && ["sent:", "date:", "gesendet:", "to:", "an:"]
            .iter()
            .any(|h| next.starts_with(h))
    {
        return true;
    }
    // "On Mon, 1 Jan 2026 at 10:00, Alice <a@x> wrote:", possibly wrapped onto a second line.
    ATTRIBUTION.is_match(line)
        || (!line.ends_with(':')
            && next.ends_with(':')
            && ATTRIBUTION.is_match(&format!("{line} {next}")))
}

#[cfg(test)]
#[path = "mail_tests.rs"]
mod tests;

use super::*;

fn message(headers: &str) -> Message {
    Message::parse(format!("From: bob@example.org\r\n{headers}\r\nhello\r\n").as_bytes())
}

fn never_own(_: &str) -> bool {
    false
}

#[test]
fn automatic_mail_is_noise_and_people_are_not() {
    let cases = [
        (
            "",
            "bob@example.org",
            Some("null sender (a bounce or report)"),
        ),
        (
            "Auto-Submitted: auto-replied\r\n",
            "bob@example.org",
            Some("Auto-Submitted: auto-replied"),
        ),
        (
            "Auto-Submitted: Auto-Generated; owner-email=x@y\r\n",
            "bob@example.org",
            Some("Auto-Submitted: auto-generated"),
        ),
        ("Auto-Submitted: no\r\n", "bob@example.org", None),
        (
            "Precedence: bulk\r\n",
            "bob@example.org",
            Some("Precedence: bulk"),
        ),
        (
            "Precedence: JUNK\r\n",
            "bob@example.org",
            Some("Precedence: junk"),
        ),
        (
            "Precedence: list\r\n",
            "bob@example.org",
            Some("Precedence: list"),
        ),
        ("Precedence: first-class\r\n", "bob@example.org", None),
        (
            "X-Autoreply: yes\r\n",
            "bob@example.org",
            Some("automatic reply (X-Autoreply)"),
        ),
        (
            "Content-Type: multipart/report; report-type=delivery-status; boundary=b\r\n",
            "bob@example.org",
            Some("delivery status report"),
        ),
        ("Subject: hi\r\n", "bob@example.org", None),
    ];
    for (headers, sender, want) in cases {
        let envelope_from = if want == Some("null sender (a bounce or report)") {
            ""
        } else {
            sender
        };
        assert_eq!(
            noise(envelope_from, &message(headers), never_own).as_deref(),
            want,
            "{headers:?}"
        );
    }
    let from_daemon = Message::parse(b"From: MAILER-DAEMON@example.org\r\n\r\nx\r\n");
    assert_eq!(
        noise("x@example.org", &from_daemon, never_own).as_deref(),
        Some("sent by mailer-daemon (a bounce)")
    );
}

#[test]
fn mail_from_our_own_addresses_is_noise() {
    let own = |a: &str| a.eq_ignore_ascii_case("help@tickets.example.com");
    let m = Message::parse(b"From: Help <HELP@tickets.example.com>\r\n\r\nx\r\n");
    assert_eq!(
        noise("bounce@example.org", &m, own).as_deref(),
        Some("sent by mailops itself (HELP@tickets.example.com)")
    );
    let m = message("");
    assert_eq!(
        noise("help@tickets.example.com", &m, own).as_deref(),
        Some("sent by mailops itself (help@tickets.example.com)")
    );
}

#[test]
fn the_token_survives_prefixes_in_any_language() {
    for subject in [
        "[Ticket #42] Printer on fire",
        "Re: [Ticket #42] Printer on fire",
        "RE: Re: [ticket #42] Printer on fire",
        "AW: [Ticket #42] Printer on fire",
        "VS: SV: Fwd: [Ticket #42] Printer on fire",
        "Re[2]: [Ticket #42] Printer on fire",
        "Printer on fire [Ticket #42]",
    ] {
        assert_eq!(subject_ticket(subject), Some(42), "{subject}");
        assert_eq!(clean_subject(subject), "Printer on fire", "{subject}");
    }
    assert_eq!(subject_ticket("Ticket 42"), None);
    assert_eq!(subject_ticket("[Ticket #99999999999999999999]"), None);
    assert_eq!(clean_subject("Re: Rebooting"), "Rebooting");
    assert_eq!(clean_subject("Tree: fell"), "Tree: fell");
    // Removing a token never leaves another: cleaning twice changes nothing.
    for subject in [
        "[Ticket #[Ticket #4]5] disk",
        "Re: [Tic[Ticket #1]ket #2] Re: [TICKET #3]] disk",
        "[Ticket #[Ticket #[Ticket #1]2]3]disk [Ticket #12345678901234567890]",
    ] {
        let once = clean_subject(subject);
        assert!(subject_ticket(&once).is_none(), "{subject} -> {once}");
        assert_eq!(clean_subject(&once), once, "{subject}");
    }
    assert_eq!(clean_subject("[Ticket #[Ticket #4]5] disk"), "disk");
    assert_eq!(
        clean_subject("a [Ticket #1] b [ticket #2] c"),
        "a  b  c",
        "tokens anywhere go, the text around them stays"
    );
    assert_eq!(
        notice_subject(7, "Re: [Ticket #7] Re: disk"),
        "[Ticket #7] disk"
    );
    assert_eq!(notice_subject(7, ""), "[Ticket #7]");
}

#[test]
fn templates_expand() {
    assert_eq!(description("Email: %", "Fwd: VPN down"), "Email: VPN down");
    let url = Some("https://ops.example.com/t/%t");
    assert_eq!(
        expand("Ticket %t created: %W", Some(12), url),
        "Ticket 12 created: https://ops.example.com/t/12"
    );
    assert_eq!(expand("Ticket %t: %W", Some(12), None), "Ticket 12: 12");
    assert_eq!(expand("Not allowed.", None, url), "Not allowed.");
}

#[test]
fn replies_keep_only_their_new_text() {
    let cases = [
        (
            "Thanks, fixed.\n\nOn Mon, 2 Nov 2026 at 10:00, Help <help@x> wrote:\n> old\n> text",
            "Thanks, fixed.",
        ),
        (
            "Done\nOn Mon, 2 Nov 2026 at 10:00, Help Desk\n<help@x> wrote:\n> old",
            "Done",
        ),
        (
            "Erledigt.\n\nAm 02.11.2026 um 10:00 schrieb Help <help@x>:\n> alt",
            "Erledigt.",
        ),
        (
            "See below\n\n-----Original Message-----\nFrom: x\nold",
            "See below",
        ),
        (
            "Reply here\n\nFrom: Help <help@x>\nSent: Monday\nTo: me\n\nold text",
            "Reply here",
        ),
        ("top\n> quoted\nmore", "top\nmore"),
        ("> only quotes\n> here", "> only quotes\n> here"),
        ("No history at all.", "No history at all."),
    ];
    for (body, want) in cases {
        assert_eq!(reply_text(body), want, "{body:?}");
    }
}

//! `mailops policy test --to DESTINATION`: the ticket decision under the database's policies,
//! with the ticket a reply answers looked up there, and nothing written.

use crate::support;
use crate::support::db::TestDb;
use crate::support::postfix::{describe, run, unique_temp_dir};
use crate::support::serve::mailops;
use crate::support::services::needs;
use crate::tickets::POLICIES;

#[tokio::test]
async fn policy_test_shows_the_ticket_decision() {
    needs!(Database);
    let db = TestDb::with_setup(POLICIES).await;
    // A ticket Bob opened at the helpdesk.
    let ticket: i64 = db
        .client()
        .await
        .query_one(
            "INSERT INTO tickets (ticket_policy_id, severity, status, description, requester)
             SELECT id, 'minor', 'open', 'Email: Printer jammed', 'bob@example.org'
             FROM ticket_policies WHERE name = 'Helpdesk' RETURNING id",
            &[],
        )
        .await
        .expect("a ticket")
        .get(0);
    let dir = unique_temp_dir("mailops-policy-test-tickets");
    let (file, _) = support::config::write(
        &dir,
        &support::config::text(
            &db.url,
            "127.0.0.1:1",
            "",
            &["mon.example.com", "tickets.example.com"],
            "",
        ),
    );
    // `client`: the SMTP client's address (the config's mynetworks are the default loopback
    // ones); without it, an outside client, and nothing else verifies the sender here.
    let test = |from: &str, subject: &str, to: &str, client: Option<&str>| {
        let mail = dir.join("mail.eml");
        std::fs::write(
            &mail,
            format!("From: {from}\nTo: {to}\nSubject: {subject}\nMessage-ID: <m@example.org>\n\nStill jammed.\n"),
        )
        .expect("mail");
        let mut command = mailops(&file);
        command.args(["policy", "test", "--to", to]).arg(&mail);
        if let Some(client) = client {
            command.args(["--client", client]);
        }
        let out = run(&mut command);
        assert!(out.status.success(), "{}", describe(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let reply = format!("Re: [Ticket #{ticket}] Printer jammed");

    let text = test(
        "bob@example.org",
        &reply,
        "help@tickets.example.com",
        Some("127.0.0.1"),
    );
    assert!(
        text.contains(&format!(
            "answers: ticket {ticket} (requester bob@example.org)"
        )) && text.contains("sender: verified by mynetworks")
            && text.contains(&format!(
                "decision: add a note by bob@example.org to ticket {ticket}"
            ))
            && text.contains("notice: none (ticket_updated without [outbound])"),
        "{text}"
    );
    // The same reply from outside: anyone can write bob's address.
    let text = test("bob@example.org", &reply, "help@tickets.example.com", None);
    assert!(
        text.contains(
            "sender: not verified (spf=not checked dkim=not checked dmarc=not checked, client \
             not in mynetworks)"
        ) && text.contains(&format!(
            "bob@example.org may not write to ticket {ticket}: taken as a new request"
        )),
        "{text}"
    );
    let text = test(
        "mallory@example.net",
        &reply,
        "help@tickets.example.com",
        Some("127.0.0.1"),
    );
    assert!(
        text.contains(&format!(
            "mallory@example.net may not write to ticket {ticket}: taken as a new request"
        )) && text.contains("decision: open a ticket"),
        "{text}"
    );
    let text = test(
        "mallory@example.net",
        "Help",
        "reg@tickets.example.com",
        Some("127.0.0.1"),
    );
    assert!(
        text.contains("decision: refuse (mallory@example.net is not a registered user)"),
        "{text}"
    );
    // Only shown: nothing was stored, no ticket opened.
    let client = db.client().await;
    for (table, rows) in [("inbound_messages", 0), ("tickets", 1), ("ticket_notes", 0)] {
        let n: i64 = client
            .query_one(&format!("SELECT count(*) FROM {table}"), &[])
            .await
            .expect("count")
            .get(0);
        assert_eq!(n, rows, "{table}");
    }
}

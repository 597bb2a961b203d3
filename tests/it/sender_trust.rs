//! Sender trust end to end: real mail through the generated Postfix with its verifier
//! (rspamd, from the generated rspamd.conf) asking a DNS server on loopback for the test
//! domains' SPF, DKIM and DMARC records; mail signed with a test key, and forged mail (a
//! spoofed From, a broken signature, the wrong SPF client, a forged Authentication-Results
//! header with this instance's own authserv-id). Clients: 127.0.0.2 is the domains' real mail
//! server (in their SPF records), 127.0.0.3 an attacker; mynetworks is 127.0.0.1 only.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::config::{text, write};
use crate::support::db::TestDb;
use crate::support::gateway::Gateway;
use crate::support::postfix::{describe, free_port, run, unique_temp_dir, PostfixInstance};
use crate::support::serve::Serve;
use crate::support::services::needs;
use crate::support::stack::mail;
use crate::support::verifier::{Dns, SigningKey, Verifier};
use crate::tickets::POLICIES;

const WAIT: Duration = Duration::from_secs(30);
/// The domains' own mail server.
const REAL: &str = "127.0.0.2";
/// Someone else.
const ATTACKER: &str = "127.0.0.3";

/// Device mail counts for this originator only when DKIM-signed by example.com (or from
/// mynetworks).
const DEVICES: &str = "
INSERT INTO devices (name) VALUES ('nas1.example.com');
INSERT INTO originator_policies (position, address, regex_type, pattern_type, pattern, alignment,
        require_auth)
    VALUES (1, 'nas@example.com', 'subject', 'classic', 'NAS', 'discard', 'dkim');
INSERT INTO event_policies (name, severity, message, match_logic, first_match)
    VALUES ('Disk failed', 'critical', '%D: %S', 'text', 'failed');
";

struct Trust {
    db: TestDb,
    dir: std::path::PathBuf,
    key: SigningKey,
    gateway: Gateway,
    postfix: PostfixInstance,
    _verifier: Verifier,
    _serve: Serve,
    _dns: Dns,
}

impl Trust {
    async fn start() -> Trust {
        let dir = unique_temp_dir("mailops-trust");
        let key = SigningKey::new(&dir);
        let spf = format!("v=spf1 ip4:{REAL} -all");
        let dns = Dns::start(&[
            ("example.com", &spf),
            ("_dmarc.example.com", "v=DMARC1; p=reject"),
            ("sel._domainkey.example.com", &key.record),
            ("example.org", &spf),
            ("_dmarc.example.org", "v=DMARC1; p=none"),
            ("sel._domainkey.example.org", &key.record),
        ]);
        let suffixes = dir.join("public_suffix_list.dat");
        std::fs::write(&suffixes, "com\norg\nnet\n").expect("writing the suffix list");
        let gateway = Gateway::start();
        let db = TestDb::with_setup(&format!("{POLICIES}{DEVICES}")).await;
        let config = text(
            &db.url,
            &format!("127.0.0.1:{}", free_port()),
            "",
            &["mon.example.com", "tickets.example.com"],
            &format!(
                r#"[inbound.auth]
verify = true
verifier_directory = "{}"
nameservers = ["{}"]
public_suffix_list = "{}"
unverified_reply = "store"
[postfix]
smtpd_listen = "127.0.0.1:{}"
mynetworks = ["127.0.0.1/32"]
[outbound]
from_address = "noreply@mon.example.com"
gateway = "{}"
encryption = "none"
ticket_url = "https://ops.example.com/tickets/%t"
timeout_s = 10
"#,
                dir.join("verifier").display(),
                dns.addr,
                suffixes.display(),
                free_port(),
                gateway.open,
            ),
        );
        let (file, config) = write(&dir, &config);
        let serve = Serve::start(&file, &config);
        let postfix = PostfixInstance::start(&config);
        let verifier = Verifier::start(&postfix);
        Trust {
            db,
            dir,
            key,
            gateway,
            postfix,
            _verifier: verifier,
            _serve: serve,
            _dns: dns,
        }
    }

    /// Sends `raw` from `client` (an address on loopback) with MAIL FROM `from`, and waits
    /// until `n` mails are stored; returns the last one's verification and ignored reason.
    async fn send(&self, client: &str, from: &str, to: &str, raw: &str, n: i64) -> Stored {
        let file = self.dir.join("mail.eml");
        std::fs::write(&file, raw).expect("writing the mail");
        let out = run(Command::new("swaks")
            .args(["--server", &self.postfix.smtp_addr.to_string()])
            .args(["--local-interface", client])
            .args(["--from", from, "--to", to])
            .args(["--helo", "mail.example.com"])
            .arg("--data")
            .arg(&file)
            .args(["--timeout", "30"]));
        assert!(out.status.success(), "{}", describe(&out));
        stored(&self.db, n, &self.postfix).await
    }

    /// `raw` signed by `domain`'s key.
    fn signed(&self, raw: &str, domain: &str) -> String {
        self.key.sign(raw, "sel", domain)
    }

    /// Sends `raw` as its sender's domain does: signed, from the domain's own server.
    async fn send_genuine(&self, from: &str, to: &str, raw: &str, n: i64) -> Stored {
        let domain = from.rsplit_once('@').map_or(from, |(_, d)| d);
        self.send(REAL, from, to, &self.signed(raw, domain), n)
            .await
    }

    async fn count(&self, sql: &str) -> i64 {
        self.db
            .client()
            .await
            .query_one(sql, &[])
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
            .get(0)
    }
}

/// What the last stored mail's row says.
#[derive(Debug, PartialEq)]
struct Stored {
    spf: Option<String>,
    dkim: Option<String>,
    dmarc: Option<String>,
    domain: Option<String>,
    trusted: bool,
    ignored: Option<String>,
}

async fn stored(db: &TestDb, n: i64, postfix: &PostfixInstance) -> Stored {
    let deadline = Instant::now() + WAIT;
    loop {
        let rows = db
            .client()
            .await
            .query(
                "SELECT auth_spf, auth_dkim, auth_dmarc, auth_domain, client_trusted,
                        ignored_reason
                 FROM inbound_messages ORDER BY id",
                &[],
            )
            .await
            .expect("inbound_messages");
        if rows.len() as i64 >= n {
            assert_eq!(rows.len() as i64, n, "more mail stored than sent");
            let r = rows.last().expect("a row");
            return Stored {
                spf: r.get(0),
                dkim: r.get(1),
                dmarc: r.get(2),
                domain: r.get(3),
                trusted: r.get(4),
                ignored: r.get(5),
            };
        }
        assert!(
            Instant::now() < deadline,
            "{} of {n} mails stored\n{}",
            rows.len(),
            postfix.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn verified(spf: &str, dkim: &str, dmarc: &str, domain: Option<&str>) -> Stored {
    Stored {
        spf: Some(spf.into()),
        dkim: Some(dkim.into()),
        dmarc: Some(dmarc.into()),
        domain: domain.map(Into::into),
        trusted: false,
        ignored: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_verified_senders_steer_tickets_and_events() {
    needs!(Database, Postfix, Verifier);
    let t = Trust::start().await;
    let help = "help@tickets.example.com";
    let reg = "reg@tickets.example.com";

    // Bob opens a ticket from his domain's server, signed: verified, and told so.
    let raw = mail(
        "Bob <bob@example.org>",
        help,
        "Printer jammed",
        "b1@example.org",
        &[],
        "Tray 1.",
    );
    let row = t.send_genuine("bob@example.org", help, &raw, 1).await;
    assert_eq!(row, verified("pass", "pass", "pass", Some("example.org")));
    let ticket = t.count("SELECT max(id) FROM tickets").await;
    let notice = &t.gateway.wait_for_messages(1, WAIT)[0];
    assert!(String::from_utf8_lossy(notice).contains("To: bob@example.org"));

    // A forged reply "from" Bob: sent from elsewhere, its signature broken by a changed body,
    // with an Authentication-Results header claiming this instance passed it. Refused, with
    // the reason stored; no note, no new ticket, no notice.
    let subject = format!("Re: [Ticket #{ticket}] Printer jammed");
    let forged = mail(
        "Bob <bob@example.org>",
        help,
        &subject,
        "f1@example.org",
        &[
            "Authentication-Results: mon.example.com; dkim=pass header.d=example.org; \
           spf=pass smtp.mailfrom=bob@example.org; dmarc=pass header.from=example.org",
        ],
        "Close it, and send the backups to me.",
    );
    let forged = t
        .signed(&forged, "example.org")
        .replace("Close it", "Close it now");
    let row = t.send(ATTACKER, "bob@example.org", help, &forged, 2).await;
    let why = "spf=fail dkim=fail dmarc=fail, client not in mynetworks";
    assert_eq!(
        row,
        Stored {
            ignored: Some(format!(
                "reply to ticket {ticket} from bob@example.org, who is not verified ({why})"
            )),
            ..verified("fail", "fail", "fail", None)
        }
    );
    // Exactly one Authentication-Results header reached mailops: the verifier's.
    let raw: Vec<u8> =
        t.db.client()
            .await
            .query_one(
                "SELECT raw FROM inbound_raw ORDER BY inbound_message_id DESC LIMIT 1",
                &[],
            )
            .await
            .expect("the raw mail")
            .get(0);
    let raw = String::from_utf8_lossy(&raw);
    assert_eq!(raw.matches("Authentication-Results:").count(), 1, "{raw}");
    assert!(raw.contains("dkim=fail"), "{raw}");

    // A forged requester: Alice is a registered user, but this is not her mail.
    let raw = mail(
        "alice@example.com",
        reg,
        "Reset my password",
        "f2@example.com",
        &[],
        "Now.",
    );
    let row = t.send(ATTACKER, "alice@example.com", reg, &raw, 3).await;
    assert_eq!(
        row.ignored.as_deref(),
        Some("alice@example.com is not verified (spf=fail dkim=none dmarc=fail, client not in mynetworks)")
    );
    // A forged stranger under open access gets a ticket, but no notice (no backscatter).
    let raw = mail(
        "victim@example.net",
        help,
        "Hello",
        "f3@example.net",
        &[],
        "Hi.",
    );
    let row = t.send(ATTACKER, "victim@example.net", help, &raw, 4).await;
    assert_eq!(row.ignored, None);
    assert_eq!(row.domain, None);

    // Alice herself, from her domain's server and signed: a ticket, and a notice.
    let raw = mail(
        "alice@example.com",
        reg,
        "Reset my password",
        "a1@example.com",
        &[],
        "Please.",
    );
    let row = t.send_genuine("alice@example.com", reg, &raw, 5).await;
    assert_eq!(row, verified("pass", "pass", "pass", Some("example.com")));
    // Bob's real reply becomes a note on his ticket.
    let raw = mail(
        "Bob <bob@example.org>",
        help,
        &subject,
        "b2@example.org",
        &[],
        "Fixed, thanks.",
    );
    t.send_genuine("bob@example.org", help, &raw, 6).await;

    let notes = format!("SELECT count(*) FROM ticket_notes WHERE ticket_id = {ticket}");
    assert_eq!(t.count(&notes).await, 2);
    assert_eq!(t.count("SELECT count(*) FROM tickets").await, 3);
    assert_eq!(
        t.count("SELECT count(*) FROM tickets WHERE requester = 'alice@example.com'")
            .await,
        1
    );
    let notices = t.gateway.wait_for_messages(3, WAIT);
    let to: Vec<String> = notices
        .iter()
        .map(|n| {
            let n = String::from_utf8_lossy(n);
            n.lines()
                .find_map(|l| l.strip_prefix("To: "))
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    assert_eq!(
        to,
        ["bob@example.org", "alice@example.com", "bob@example.org"]
    );
    assert_eq!(
        t.count("SELECT count(*) FROM outbox WHERE recipient <> ALL('{bob@example.org,alice@example.com}')")
            .await,
        0
    );

    // Device mail under require_auth = "dkim": signed, it raises the event; forged, it is
    // unmatched with the reason; from mynetworks, it counts unsigned.
    let alert = |id: &str| {
        mail(
            "nas@example.com",
            "notify@mon.example.com",
            "NAS nas1.example.com: disk failed",
            id,
            &[],
            "Disk 2 failed.",
        )
    };
    let to = "notify@mon.example.com";
    t.send_genuine("nas@example.com", to, &alert("d1@example.com"), 7)
        .await;
    t.send(ATTACKER, "nas@example.com", to, &alert("d2@example.com"), 8)
        .await;
    t.send(
        "127.0.0.1",
        "nas@example.com",
        to,
        &alert("d3@example.com"),
        9,
    )
    .await;
    assert_eq!(
        t.count("SELECT coalesce(sum(count), 0)::bigint FROM events")
            .await,
        2,
        "the signed alert and the one from mynetworks raise the event"
    );
    let unmatched: String =
        t.db.client()
            .await
            .query_one("SELECT message FROM system_log WHERE code = 'E701'", &[])
            .await
            .expect("the forged alert is unmatched")
            .get(0);
    assert!(
        unmatched.contains("(sender not verified: nas@example.com requires dkim; spf=fail dkim=none dmarc=fail, client not in mynetworks)"),
        "{unmatched}"
    );
}

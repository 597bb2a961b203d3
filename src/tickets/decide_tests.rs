use super::*;
use crate::events::model::Severity;
use crate::route::{Route, Router};
use crate::tickets::model::{Messages, Queue, Status, User};
use crate::tickets::policies::Policies;

/// Alice and Carol are users, Alice is in the Service Desk queue; one policy per access rule.
fn state() -> State {
    let users = vec![
        User {
            id: 1,
            email: "alice@example.com".into(),
            name: None,
        },
        User {
            id: 2,
            email: "carol@example.com".into(),
            name: None,
        },
    ];
    let queues = vec![Queue {
        id: 7,
        name: "Service Desk".into(),
        member_ids: vec![1],
    }];
    let templates = vec![Template {
        id: 3,
        name: "Helpdesk default".into(),
        queue_id: Some(7),
        severity: Severity::Minor,
        status: Status::Open,
        description: "Email: %".into(),
    }];
    let policy = |id, destination: &str, access| TicketPolicy {
        id,
        name: destination.into(),
        destination: destination.into(),
        reply_address: destination.into(),
        template_id: 3,
        access,
        messages: Messages {
            created: "Ticket %t created".into(),
            updated: "Ticket %t updated".into(),
            failed: "failed".into(),
            not_registered: "not registered".into(),
            not_in_queue: "not in queue".into(),
        },
    };
    let policies = vec![
        policy(10, "help@tickets.example.com", Access::Open),
        policy(11, "reg@tickets.example.com", Access::Registered),
        policy(12, "queue@tickets.example.com", Access::Queue),
    ];
    State {
        router: Router::new(
            policies
                .iter()
                .map(|p| (p.destination.clone(), Route::Ticket))
                .collect::<Vec<_>>(),
        ),
        tickets: Policies::new(users, queues, templates, policies),
        ..State::default()
    }
}

fn outbound() -> Outbound {
    let text = "[database]\nurl = \"postgres://x/y\"\n[lmtp]\nlisten = \"127.0.0.1:1\"\n\
                [inbound]\nauthorized_domains = [\"mon.example.com\"]\n\
                [outbound]\nfrom_address = \"noreply@mon.example.com\"\n\
                gateway = \"smtp.example.com\"\nnotices_per_hour = 3\n";
    crate::config::Config::parse(text, None)
        .expect("config")
        .outbound
        .expect("outbound")
}

fn message(from: &str, headers: &str) -> Message {
    Message::parse(
        format!("From: {from}\r\nSubject: Printer jammed\r\n{headers}\r\nTray 1 again.\r\n")
            .as_bytes(),
    )
}

/// What is known of `message` sent to `destination`, answering `replied`, after `recent`
/// notices this hour, its sender verified as `verified` says.
fn facts<'a>(
    message: &'a Message,
    destination: &'a str,
    replied: Option<&'a Ticket>,
    recent: i64,
    verified: Result<Method, String>,
) -> Facts<'a> {
    Facts {
        envelope_from: message.from_address.as_deref().unwrap_or(""),
        message,
        destination,
        replied,
        recent_notices: recent,
        verified,
    }
}

/// The plan for a mail from a verified sender.
fn plan_for<'a>(
    state: &'a State,
    outbound: Option<&Outbound>,
    message: &'a Message,
    destination: &'a str,
    replied: Option<&'a Ticket>,
    recent: i64,
) -> Option<Plan<'a>> {
    let facts = facts(message, destination, replied, recent, Ok(Method::Dmarc));
    decide(state, outbound, &InboundAuth::default(), &facts).map(|(_, plan)| plan)
}

/// The plan for a mail from an unverified sender, under `auth`.
fn unverified_plan<'a>(
    state: &'a State,
    auth: &InboundAuth,
    message: &'a Message,
    destination: &'a str,
    replied: Option<&'a Ticket>,
) -> Option<Plan<'a>> {
    let why = "spf=fail dkim=none dmarc=fail, client not in mynetworks";
    let facts = facts(message, destination, replied, 0, Err(why.into()));
    decide(state, Some(&outbound()), auth, &facts).map(|(_, plan)| plan)
}

#[test]
fn an_unverified_sender_steers_no_ticket_and_gets_no_notice() {
    let state = state();
    let auth = InboundAuth::default();
    let why = "spf=fail dkim=none dmarc=fail, client not in mynetworks";
    let ticket = Ticket {
        id: 42,
        requester: "bob@example.org".into(),
        queue_id: Some(7),
    };
    // A forged reply "from" the requester is a new request, unannounced.
    let forged = message("bob@example.org", "");
    assert_eq!(
        unverified_plan(
            &state,
            &auth,
            &forged,
            "help@tickets.example.com",
            Some(&ticket)
        ),
        Some(Plan::Create {
            policy: state.tickets.policy("help@tickets.example.com").unwrap(),
            template: state.tickets.template(3).unwrap(),
            description: "Email: Printer jammed".into(),
            requester: "bob@example.org",
            instead_of_note: Some(42),
            notice: Notice::Unverified(Kind::Created),
        })
    );
    // Or stored with the reason, as configured.
    let store = InboundAuth {
        unverified_reply: UnverifiedReply::Store,
        ..InboundAuth::default()
    };
    assert_eq!(
        unverified_plan(
            &state,
            &store,
            &forged,
            "help@tickets.example.com",
            Some(&ticket)
        ),
        Some(Plan::Refuse {
            reason: format!("reply to ticket 42 from bob@example.org, who is not verified ({why})"),
            sender: "bob@example.org",
            notice: Notice::Unverified(Kind::Failed),
        })
    );
    // A registered user's or queue member's address, unverified, passes no access rule.
    let alice = message("alice@example.com", "");
    for (destination, kind) in [
        ("reg@tickets.example.com", Kind::NotRegistered),
        ("queue@tickets.example.com", Kind::NotInQueue),
    ] {
        assert_eq!(
            unverified_plan(&state, &auth, &alice, destination, None),
            Some(Plan::Refuse {
                reason: format!("alice@example.com is not verified ({why})"),
                sender: "alice@example.com",
                notice: Notice::Unverified(kind),
            })
        );
    }
    // Notices go to unverified senders only when configured.
    let notify = InboundAuth {
        notify_unverified: true,
        ..InboundAuth::default()
    };
    assert!(matches!(
        unverified_plan(&state, &notify, &forged, "help@tickets.example.com", None),
        Some(Plan::Create {
            notice: Notice::Send(Kind::Created),
            ..
        })
    ));
}

#[test]
fn anyone_opens_a_ticket_under_open_access() {
    let (state, o) = (state(), outbound());
    let m = message("bob@example.org", "");
    let Some(Plan::Create {
        policy,
        description,
        requester,
        instead_of_note,
        notice,
        ..
    }) = plan_for(&state, Some(&o), &m, "help@tickets.example.com", None, 0)
    else {
        panic!("a ticket is opened");
    };
    assert_eq!(policy.id, 10);
    assert_eq!(description, "Email: Printer jammed");
    assert_eq!(requester, "bob@example.org");
    assert_eq!(instead_of_note, None);
    assert_eq!(notice, Notice::Send(Kind::Created));
}

#[test]
fn access_rules_refuse_with_their_reason_and_notice() {
    let (state, o) = (state(), outbound());
    let stranger = message("bob@example.org", "");
    let carol = message("carol@example.com", "");
    let alice = message("Alice <Alice@Example.com>", "");
    let refused =
        |m: &Message, destination| match plan_for(&state, Some(&o), m, destination, None, 0) {
            Some(Plan::Refuse { reason, notice, .. }) => Some((reason, notice)),
            _ => None,
        };
    assert_eq!(
        refused(&stranger, "reg@tickets.example.com"),
        Some((
            "bob@example.org is not a registered user".into(),
            Notice::Send(Kind::NotRegistered)
        ))
    );
    // Carol is a user, so she passes "registered", but is not in the queue.
    assert_eq!(refused(&carol, "reg@tickets.example.com"), None);
    assert_eq!(
        refused(&carol, "queue@tickets.example.com"),
        Some((
            "carol@example.com is not a member of the template's queue".into(),
            Notice::Send(Kind::NotInQueue)
        ))
    );
    // Addresses compare without case.
    assert_eq!(refused(&alice, "queue@tickets.example.com"), None);
}

#[test]
fn a_reply_adds_a_note_only_from_someone_allowed() {
    let (state, o) = (state(), outbound());
    let ticket = Ticket {
        id: 42,
        requester: "bob@example.org".into(),
        queue_id: Some(7),
    };
    let destination = "help@tickets.example.com";
    let from_requester = message("bob@example.org", "");
    assert_eq!(
        plan_for(
            &state,
            Some(&o),
            &from_requester,
            destination,
            Some(&ticket),
            0
        ),
        Some(Plan::Note {
            ticket_id: 42,
            author: "bob@example.org",
            notice: Notice::Send(Kind::Updated),
        })
    );
    // A queue member writes to it too.
    let from_member = message("alice@example.com", "");
    assert!(matches!(
        plan_for(
            &state,
            Some(&o),
            &from_member,
            destination,
            Some(&ticket),
            0
        ),
        Some(Plan::Note { ticket_id: 42, .. })
    ));
    // Quoting the ticket is not enough: someone else's reply is a new request.
    let from_stranger = message("mallory@example.net", "");
    assert!(matches!(
        plan_for(
            &state,
            Some(&o),
            &from_stranger,
            destination,
            Some(&ticket),
            0
        ),
        Some(Plan::Create {
            instead_of_note: Some(42),
            requester: "mallory@example.net",
            ..
        })
    ));
}

#[test]
fn notices_are_held_past_the_hourly_share_or_without_outbound() {
    let (state, o) = (state(), outbound());
    let m = message("bob@example.org", "");
    let destination = "help@tickets.example.com";
    let notice = |outbound, recent| match plan_for(&state, outbound, &m, destination, None, recent)
    {
        Some(Plan::Create { notice, .. }) => notice,
        other => panic!("{other:?}"),
    };
    assert_eq!(notice(Some(&o), 2), Notice::Send(Kind::Created));
    assert_eq!(notice(Some(&o), 3), Notice::RateLimited(Kind::Created));
    assert_eq!(notice(None, 0), Notice::NoOutbound(Kind::Created));
}

#[test]
fn noise_is_ignored_and_an_unknown_destination_is_not_decided() {
    let (state, o) = (state(), outbound());
    let auto = message("bob@example.org", "Auto-Submitted: auto-replied\r\n");
    assert_eq!(
        plan_for(&state, Some(&o), &auto, "help@tickets.example.com", None, 0),
        Some(Plan::Ignore("Auto-Submitted: auto-replied".into()))
    );
    // Mail from mailops's own addresses is a loop, not a request.
    let own = message("noreply@mon.example.com", "");
    assert!(matches!(
        plan_for(&state, Some(&o), &own, "help@tickets.example.com", None, 0),
        Some(Plan::Ignore(_))
    ));
    let m = message("bob@example.org", "");
    assert_eq!(
        plan_for(&state, Some(&o), &m, "nobody@tickets.example.com", None, 0),
        None
    );
}

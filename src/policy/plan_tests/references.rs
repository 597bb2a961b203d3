//! References to what only the database has: allowed unless pruning, and a queue access that
//! needs its template's queue wherever the template is.

use super::*;

#[test]
fn references_may_name_what_only_the_database_has_unless_pruning() {
    let state = applied(FILE);
    let text = r#"
[[originator]]
address = "nas@example.com"
regex_type = "subject"
pattern_type = "classic"
pattern = "NAS"
alignment = "override"
default_device = "nas1.example.com"

[[event_policy]]
name = "NAS ok"
severity = "healthy"
match_logic = "text"
first_match = "ok"
clears = "Veeam job failed"

[[roundtrip]]
name = "NAS loop"
device = "nas1.example.com"
send_to = "probe@customer.example"
from = "rt@mon.example.com"
"#;
    let p = plan(&file(text), Some(&state), false).expect("the database has all three");
    assert_eq!(p.summary.originators.created, 1);
    assert_eq!(p.summary.roundtrips.created, 1);
    assert!(p.ops.contains(&Op::InsertRoundtrip(RoundtripPolicy {
        id: -1,
        name: "NAS loop".into(),
        device_id: 4242,
        send_to: "probe@customer.example".into(),
        from_address: "rt@mon.example.com".into(),
        // The defaults, as "Gmail loop" has them.
        ..state.model.roundtrips[1].clone()
    })));
    assert_eq!(
        plan(&file(text), Some(&state), true).unwrap_err(),
        [
            r#"originator "nas@example.com" (entry 1): default_device "nas1.example.com" is only in the database, and --prune deletes it (add the device to the file)"#,
            r#"event_policy "NAS ok": clears "Veeam job failed" is only in the database, and --prune deletes it (add the event policy to the file)"#,
            r#"roundtrip "NAS loop": device "nas1.example.com" is only in the database, and --prune deletes it (add the device to the file)"#,
        ]
    );
    let missing = text.replace("nas1.example.com", "nas9");
    assert_eq!(
        plan(&file(&missing), Some(&state), false).unwrap_err(),
        [
            r#"originator "nas@example.com" (entry 1): default_device "nas9" is not a device in this file or the database"#,
            r#"roundtrip "NAS loop": device "nas9" is not a device in this file or the database"#,
        ]
    );
}

#[test]
fn access_queue_needs_a_template_with_a_queue() {
    let state = applied(FILE);
    // In the file: the policy's own template.
    let text = FILE.replace("access = \"open\"", "access = \"queue\"");
    let problem = r#"ticket_policy "Front desk": access: "queue" admits the members of the template's queue, and ticket template "Walk-in" has no queue"#;
    assert_eq!(file(&text).to_model().unwrap_err(), [problem]);
    // Only in the database: the same.
    let only_policy = &text[text.find("[[ticket_policy]]").unwrap()..];
    assert_eq!(
        plan(&file(only_policy), Some(&state), false).unwrap_err(),
        [problem]
    );
    // A template the file empties while a policy only the database has needs its queue.
    let template = "[[ticket_template]]\nname = \"Helpdesk default\"\nseverity = \"minor\"\n";
    assert_eq!(
        plan(&file(template), Some(&state), false).unwrap_err(),
        [
            r#"ticket_template "Helpdesk default": queue: ticket policy "Helpdesk", which only the database has, has access "queue" and needs this template's queue"#
        ]
    );
    // With --prune that policy goes (and so does everything else the file lacks).
    assert!(plan(&file(template), Some(&state), true).is_ok());
}

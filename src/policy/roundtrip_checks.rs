//! The checks of the `[[roundtrip]]` entries that need nothing but the file.

use super::check::{check_mailbox, positive_seconds, unique_name, Kind, Problems, Seen};
use super::file::Entries;

/// The value checks of round trips. `timeout_s` may exceed `interval_s`: a probe may then still
/// be on its way when the next is sent, and each is timed on its own.
pub(crate) fn check_roundtrips(entries: &Entries, problems: &mut Problems) {
    let mut names = Seen::new(Kind::Roundtrip);
    for (i, r) in &entries.roundtrips {
        let mut at = |text: String| problems.entry(Kind::Roundtrip, *i, text);
        unique_name(&r.name, &mut names, *i, &mut at);
        if r.device.is_empty() {
            at("device: must not be empty".into());
        }
        for (key, address) in [("send_to", &r.send_to), ("from", &r.from)] {
            if let Err(why) = check_mailbox(address) {
                at(format!("{key}: {why}"));
            }
        }
        positive_seconds(r.interval_s, "interval_s", &mut at);
        positive_seconds(r.timeout_s, "timeout_s", &mut at);
        if r.body.trim().is_empty() {
            at("body: must not be empty (leave it out for the default text)".into());
        }
    }
}

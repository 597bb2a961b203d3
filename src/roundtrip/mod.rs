//! Email round-trip monitoring: probes mailed out through the gateway to a mailbox that
//! forwards them back to `notify@`, timed, and an event when one does not come back in time.

pub mod model;
pub mod schedule;
pub mod token;

use crate::message::Hop;

/// A reply's `Received:` headers as stored in `roundtrip_probes.hops`: oldest hop first, each
/// with the seconds it took since the hop before (where both have a time).
pub fn hops_json(received: &[Hop]) -> String {
    let mut previous: Option<i64> = None;
    let hops: Vec<serde_json::Value> = received
        .iter()
        .rev()
        .map(|hop| {
            let delay_s = match (previous, hop.at) {
                (Some(before), Some(at)) => Some(at - before),
                _ => None,
            };
            previous = hop.at.or(previous);
            serde_json::json!({
                "from": hop.from,
                "by": hop.by,
                "at": hop.at,
                "delay_s": delay_s,
            })
        })
        .collect();
    serde_json::Value::Array(hops).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hops_are_oldest_first_with_the_delay_each_added() {
        let hop = |by: &str, at: Option<i64>| Hop {
            from: Some("client".into()),
            by: Some(by.into()),
            at,
        };
        // As headers stand: newest first.
        let received = [
            hop("mx3", Some(1_000_012)),
            hop("mx2", None),
            hop("mx1", Some(1_000_000)),
        ];
        let hops: serde_json::Value = serde_json::from_str(&hops_json(&received)).expect("json");
        let delays: Vec<Option<i64>> = hops
            .as_array()
            .expect("array")
            .iter()
            .map(|h| h["delay_s"].as_i64())
            .collect();
        assert_eq!(delays, [None, None, Some(12)]);
        assert_eq!(hops[0]["by"], "mx1");
    }
}

//! What applying the `[[roundtrip]]` entries changes, decided without I/O like the rest of the
//! plan (with `--prune`, `plan_prune` deletes the ones the file lacks, before devices).

use super::check::{Kind, Problems};
use super::file::PolicyFile;
use super::plan::{by, provisional, write_row, DeviceIds, Existing, Op, Plan};
use crate::roundtrip::model::RoundtripPolicy;

/// Round-trip policies, keyed by name; `device` names a device of the file or, unless pruning,
/// of the database.
pub(super) fn plan_roundtrips(
    file: &PolicyFile,
    db: &Existing,
    devices: &DeviceIds,
    plan: &mut Plan,
    problems: &mut Problems,
) {
    let by_name = by(&db.model.roundtrips, |r| r.name.as_str());
    let mut counter = 0;
    for (i, r) in file.roundtrips.iter().enumerate() {
        let device_id = match devices.resolve(&r.device) {
            Ok(id) => id,
            Err(why) => {
                problems.entry(Kind::Roundtrip, i, format!("device {why}"));
                continue;
            }
        };
        let current = by_name.get(r.name.as_str()).copied();
        let want = RoundtripPolicy {
            id: current.map_or_else(|| provisional(&mut counter), |c| c.id),
            name: r.name.clone(),
            device_id,
            send_to: r.send_to.clone(),
            from_address: r.from.clone(),
            interval_s: r.interval_s,
            timeout_s: r.timeout_s,
            enabled: r.enabled,
            body: r.body.clone(),
            severity: r.severity,
        };
        write_row(
            want,
            current,
            &mut plan.summary.roundtrips,
            Op::InsertRoundtrip,
            Op::UpdateRoundtrip,
            &mut plan.ops,
        );
    }
}

//! What applying the `[[expect]]` entries changes, decided without I/O like the rest of the
//! plan (with `--prune`, `plan_prune` deletes the ones the file lacks, before devices).

use super::check::{Kind, Problems};
use super::file::PolicyFile;
use super::plan::{by, provisional, write_row, DeviceIds, Existing, Op, Plan};
use crate::expect::model::{ExpectPolicy, From};

/// Expected-mail policies, keyed by name; `device` names a device, and `originator` a named
/// originator, of the file or, unless pruning, of the database (an originator is stored by
/// name, as event policies' scopes store theirs).
pub(super) fn plan_expects(
    file: &PolicyFile,
    db: &Existing,
    devices: &DeviceIds,
    plan: &mut Plan,
    problems: &mut Problems,
) {
    let by_name = by(&db.model.expects, |e| e.name.as_str());
    let mut counter = 0;
    for (i, e) in file.expects.iter().enumerate() {
        let device_id = devices
            .resolve(&e.device)
            .map_err(|why| format!("device {why}"));
        let from = e.from().and_then(|from| match &from {
            From::Originator(name) => originator(name, file, db, devices).map(|()| from),
            From::Sender(_) => Ok(from),
        });
        let (device_id, from, every, grace_s) = match (device_id, from, e.every(), e.grace_s()) {
            (Ok(device_id), Ok(from), Ok(every), Ok(grace_s)) => (device_id, from, every, grace_s),
            (device_id, from, every, grace_s) => {
                let all = [device_id.err(), from.err(), every.err(), grace_s.err()];
                for why in all.into_iter().flatten() {
                    problems.entry(Kind::Expect, i, why);
                }
                continue;
            }
        };
        let current = by_name.get(e.name.as_str()).copied();
        let want = ExpectPolicy {
            id: current.map_or_else(|| provisional(&mut counter), |c| c.id),
            name: e.name.clone(),
            device_id,
            from,
            match_in: e.match_in,
            match_logic: e.match_logic,
            matches: e.matches.clone(),
            every,
            grace_s,
            severity: e.severity,
            failure: e.failure.clone(),
            success: e.success.clone(),
            default_outcome: e.default_outcome,
            start: e.start.clone(),
        };
        write_row(
            want,
            current,
            &mut plan.summary.expects,
            Op::InsertExpect,
            Op::UpdateExpect,
            &mut plan.ops,
        );
    }
}

/// Whether `name` is the name of an originator of the file or, as the scope allows, of the
/// database; `Err` is the problem, naming the key.
fn originator(
    name: &str,
    file: &PolicyFile,
    db: &Existing,
    devices: &DeviceIds,
) -> Result<(), String> {
    let named = |n: Option<&String>| (n.map(String::as_str) == Some(name)).then_some(());
    let in_file = file.originators.iter().find_map(|o| named(o.name.as_ref()));
    let in_db = db
        .model
        .originators
        .iter()
        .find_map(|o| named(o.name.as_ref()));
    devices
        .scope
        .resolve(name, in_file, in_db, "named originator")
        .map_err(|why| format!("originator {why}"))
}

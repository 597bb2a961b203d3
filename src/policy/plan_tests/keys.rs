//! The events entries of issue 15 (keys, severity maps, scopes, captures, named originators):
//! planned, exported and planned again as nothing; scopes and captures naming what exists.

use super::*;

/// A file with every key the events entries gained in issue 15.
const KEYED: &str = r#"
[[device]]
name = "db1.example.com"

[[originator]]
name = "nagios"
address = "nagios@*"
regex_type = "body"
pattern_type = "advanced"
pattern = '(?m)^Host: (?P<device>\S+)'
alignment = "discard"

[[originator]]
name = "cron"
address = "root@*"
regex_type = "header:X-Cron-Env"
pattern_type = "advanced"
pattern = 'HOSTNAME=(\S+)'
alignment = "discard"

[[event_policy]]
name = "Nagios service"
originators = ["nagios"]
devices = ["db1.example.com"]
match_in = "body"
match_logic = "regex"
first_match = '(?m)^Service: (?P<service>.+)$'
second_match = '(?m)^State: (?P<state>\w+)'
severity = "major"
severity_from = "state"
severity_map = { CRITICAL = "critical", OK = "healthy" }
key = "%D/%{service}"
key_map = { service = { "Disk /VAR" = "Disk /var" } }
message = "%{service} is %{state}"
clears = ["Legacy", "Other"]
expire_healthy_after_s = 86400
rate = "10/min"

[[event_policy]]
name = "Legacy"
severity = "minor"
match_logic = "text"
first_match = "legacy"

[[event_policy]]
name = "Other"
severity = "minor"
match_logic = "text"
first_match = "other"

[[event_policy]]
name = "Noise"
action = "suppress"
originators = ["root@*"]
match_logic = "text"
first_match = "This is a test"
"#;

#[test]
fn every_new_key_is_planned_exported_and_planned_again_as_nothing() {
    let state = applied(KEYED);
    let nagios = &state.model.event_policies[0];
    assert_eq!(nagios.key.as_deref(), Some("%D/%{service}"));
    assert_eq!(nagios.originators, ["nagios"]);
    assert_eq!(nagios.clears_ids, [2, 3]);
    assert_eq!(
        state.model.originators[1].regex_type.as_str(),
        "header:X-Cron-Env"
    );
    let exported = PolicyFile::from_model(&state.model);
    assert_eq!(PolicyFile::parse(&exported.to_toml()), Ok(exported.clone()));
    assert_eq!(plan(&exported, Some(&state), true).expect("plans").ops, []);
    assert_eq!(
        plan(&file(KEYED), Some(&state), false).expect("plans").ops,
        []
    );
}

#[test]
fn scopes_and_captures_must_name_what_exists() {
    let bad = KEYED
        .replace("originators = [\"nagios\"]", "originators = [\"nagois\"]")
        .replace("devices = [\"db1.example.com\"]", "devices = [\"db9\"]")
        .replace("key = \"%D/%{service}\"", "key = \"%D/%{servcie}\"");
    let problems = plan(&file(&bad), None, false).unwrap_err();
    assert_eq!(
        problems,
        [
            r#"event_policy "Nagios service": originators "nagois" is not an originator name or address in this file"#,
            r#"event_policy "Nagios service": devices "db9" is not a device in this file"#,
            r#"event_policy "Nagios service": key: the capture "servcie" is not a named group (?P<servcie>…) of first_match, second_match or an originator pattern its mail can come through"#,
        ]
    );
    // An unscoped policy may use what any originator captures; a scoped one only its own.
    let unscoped = KEYED.replace("originators = [\"nagios\"]\n", "").replace(
        "message = \"%{service} is %{state}\"",
        "message = \"%{device}: %{state}\"",
    );
    assert!(plan(&file(&unscoped), None, false).is_ok());
    let scoped = KEYED.replace(
        "message = \"%{service} is %{state}\"",
        "message = \"%{device}: %{state}\"",
    );
    assert!(
        plan(&file(&scoped), None, false).is_ok(),
        "nagios captures device"
    );
    let other = scoped.replace("originators = [\"nagios\"]", "originators = [\"cron\"]");
    assert_eq!(
        plan(&file(&other), None, false).unwrap_err(),
        [
            r#"event_policy "Nagios service": message: the capture "device" is not a named group (?P<device>…) of first_match, second_match or an originator pattern its mail can come through"#
        ]
    );
}

#[test]
fn naming_an_unnamed_originator_keeps_its_row() {
    let state = applied(FILE);
    let named = FILE.replacen(
        "[[originator]]\naddress = \"Veeam@Example.com\"",
        "[[originator]]\nname = \"veeam\"\naddress = \"Veeam@Example.com\"",
        1,
    );
    let p = plan(&file(&named), Some(&state), true).expect("plans");
    assert_eq!(p.summary.originators.updated, 1);
    assert_eq!(p.summary.originators.created, 0);
    assert_eq!(p.summary.originators.deleted, 0);
    let mut after = state.clone();
    p.execute_in_memory(&mut after);
    assert_eq!(after.model.originators[0].id, state.model.originators[0].id);
    assert_eq!(after.model.originators[0].name.as_deref(), Some("veeam"));
}

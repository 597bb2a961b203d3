//! The policy packs shipped with mailops (`packs/<name>.toml`), built into the binary so that a
//! policy file anywhere can include one as `pack:<name>`.

/// How an `include` names a pack.
pub const PREFIX: &str = "pack:";

/// Every pack: (name, text).
const PACKS: &[(&str, &str)] = &[
    (
        "alertmanager",
        include_str!("../../packs/alertmanager.toml"),
    ),
    ("apcupsd", include_str!("../../packs/apcupsd.toml")),
    ("bacula", include_str!("../../packs/bacula.toml")),
    ("cron", include_str!("../../packs/cron.toml")),
    ("grafana", include_str!("../../packs/grafana.toml")),
    ("icinga2", include_str!("../../packs/icinga2.toml")),
    ("mdadm", include_str!("../../packs/mdadm.toml")),
    ("monit", include_str!("../../packs/monit.toml")),
    ("nagios", include_str!("../../packs/nagios.toml")),
    ("nut", include_str!("../../packs/nut.toml")),
    (
        "proxmox-backup-server",
        include_str!("../../packs/proxmox-backup-server.toml"),
    ),
    ("proxmox-ve", include_str!("../../packs/proxmox-ve.toml")),
    ("smartd", include_str!("../../packs/smartd.toml")),
    ("veeam", include_str!("../../packs/veeam.toml")),
    ("zabbix", include_str!("../../packs/zabbix.toml")),
    ("zfs-zed", include_str!("../../packs/zfs-zed.toml")),
];

/// The text of the pack called `name`.
pub fn text(name: &str) -> Option<&'static str> {
    PACKS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, text)| *text)
}

/// The names of every pack.
pub fn names() -> Vec<&'static str> {
    PACKS.iter().map(|(name, _)| *name).collect()
}

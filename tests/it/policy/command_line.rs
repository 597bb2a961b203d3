//! `mailops policy apply` and `mailops policy export` as operators run them.

use std::process::Command;

use super::FILE;
use crate::support;
use crate::support::db::TestDb;
use crate::support::postfix::unique_temp_dir;
use crate::support::services::needs;
use mailops::policy;

/// The command line: problems on stderr with a failing exit status, summaries and exports on
/// stdout.
#[tokio::test]
async fn the_command_line_applies_and_exports() {
    needs!(Database);
    let db = TestDb::new().await;
    let dir = unique_temp_dir("mailops-policy");
    let config = dir.join("mailops.toml");
    std::fs::write(
        &config,
        support::config::text(
            "postgres://unused/unused",
            "127.0.0.1:0",
            "",
            &["mon.example.com"],
            "",
        ),
    )
    .unwrap();
    let mailops = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_mailops"))
            .arg("-c")
            .arg(&config)
            .args(args)
            .env("DATABASE_URL", &db.url)
            .env_remove("MAILOPS_DATABASE_URL")
            .env("RUST_BACKTRACE", "0")
            .output()
            .expect("mailops runs");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let good = dir.join("policies.toml");
    std::fs::write(&good, FILE).unwrap();
    let bad = dir.join("bad.toml");
    std::fs::write(
        &bad,
        FILE.replace("severity = \"major\"", "severity = \"fatal\"")
            .replace("id = 4242", "id = -1"),
    )
    .unwrap();

    let (ok, stdout, stderr) = mailops(&["policy", "apply", bad.to_str().unwrap()]);
    assert!(!ok, "{stdout}");
    assert!(
        stderr.contains("2 problems, nothing was written"),
        "{stderr}"
    );
    assert!(
        stderr.contains(r#"device "nas1.example.com": id: -1 is not a positive integer"#),
        "{stderr}"
    );
    assert!(
        stderr.contains(r#"event_policy "Veeam job failed": severity: unknown variant `fatal`"#),
        "{stderr}"
    );

    let (ok, stdout, stderr) = mailops(&["policy", "apply", "--dry-run", good.to_str().unwrap()]);
    assert!(ok, "{stderr}");
    assert!(
        stdout.ends_with("dry run: nothing was written\n"),
        "{stdout}"
    );
    let (ok, stdout, stderr) = mailops(&["policy", "apply", good.to_str().unwrap()]);
    assert!(ok, "{stderr}");
    assert!(
        stdout.starts_with("devices: 2 created, 0 updated, 0 unchanged, 0 deleted\n"),
        "{stdout}"
    );

    let (ok, exported, stderr) = mailops(&["policy", "export"]);
    assert!(ok, "{stderr}");
    assert_eq!(exported, policy::export(&db.pool).await.unwrap());
    std::fs::write(&good, &exported).unwrap();
    let (ok, stdout, stderr) = mailops(&["policy", "apply", "--prune", good.to_str().unwrap()]);
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("devices: 0 created, 0 updated, 2 unchanged, 0 deleted"),
        "{stdout}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

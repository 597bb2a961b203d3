//! The security properties a deployment relies on, checked on the real binary: the LMTP
//! socket is only for Postfix's group, secrets never reach the output of any command (even
//! at trace level, even when everything they guard fails), and a regex too large to run is
//! refused when the policy file is read.

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;

use crate::support;
use crate::support::db::TestDb;
use crate::support::postfix::{free_port, random_hex, unique_temp_dir};
use crate::support::services::needs;
use mailops::config::Config;
use mailops::outbound::outbox::{self, Notice};

/// `mailops -c CONFIG ARGS…` started with `umask` and `MAILOPS_LOG=log`, its stdout and stderr
/// going to `output`.
fn spawn(
    config_file: &Path,
    args: &[&str],
    umask: libc::mode_t,
    log: &str,
    output: &Path,
) -> Child {
    let out = std::fs::File::create(output).expect("output file");
    let mut command = support::serve::mailops(config_file);
    // SAFETY: umask(2) is async-signal-safe and touches no memory, as pre_exec requires.
    unsafe {
        command.pre_exec(move || {
            libc::umask(umask);
            Ok(())
        });
    }
    command
        .args(args)
        .env("MAILOPS_LOG", log)
        .env_remove("MAILOPS_SMTP_PASSWORD")
        .stdin(Stdio::null())
        .stdout(out.try_clone().expect("output file"))
        .stderr(out)
        .spawn()
        .expect("starting mailops")
}

/// Runs a command to its end; returns whether it succeeded and what it printed.
fn run(config_file: &Path, args: &[&str], dir: &Path) -> (bool, String) {
    let output = dir.join("output");
    let status = spawn(config_file, args, 0o022, "trace", &output)
        .wait()
        .expect("waiting for mailops");
    let text = std::fs::read_to_string(&output).expect("output");
    (status.success(), text)
}

/// SIGTERM, the exit, and what it printed.
fn stop(mut child: Child, output: &Path) -> String {
    let pid = i32::try_from(child.id()).expect("pid fits");
    // SAFETY: kill(2) with a pid we own; no memory is involved.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    child.wait().expect("waiting for mailops");
    std::fs::read_to_string(output).expect("output")
}

/// How long serve gets to do what a test waits for.
const WITHIN: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread")]
async fn the_lmtp_socket_is_only_for_postfixs_group_whatever_the_umask() {
    needs!(Database, Postfix);
    let db = TestDb::new().await;
    let dir = unique_temp_dir("mailops-security");
    let socket = dir.join("run/lmtp.sock");
    let file = dir.join("mailops.toml");
    std::fs::write(
        &file,
        support::config::text(
            &db.url,
            &format!("unix:{}", socket.display()),
            "socket_group = \"postfix\"",
            &["mon.example.com"],
            "",
        ),
    )
    .expect("config");
    // umask 000: bind(2) alone would make the socket 0777, writable by anyone.
    let output = dir.join("serve.log");
    let serve = spawn(&file, &["serve"], 0o000, "info", &output);
    support::wait_until("the socket", WITHIN, async || {
        std::os::unix::net::UnixStream::connect(&socket).is_ok()
    })
    .await;
    let meta = std::fs::metadata(&socket).expect("socket");
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.mode() & 0o7777, 0o660, "mode {:o}", meta.mode());
    assert_eq!(
        meta.gid(),
        mailops::group::id("postfix").expect("postfix group")
    );
    // The directory mailops made for it is not writable by others either.
    let parent = std::fs::metadata(socket.parent().expect("parent")).expect("directory");
    assert_eq!(parent.mode() & 0o002, 0, "mode {:o}", parent.mode());
    stop(serve, &output);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The secrets one config holds, each a value that appears nowhere else.
struct Secrets {
    database: String,
    smtp: String,
    client_secret: String,
    refresh_token: String,
}

impl Secrets {
    fn new() -> Secrets {
        Secrets {
            database: format!("dbpw{}", random_hex(8)),
            smtp: format!("smtppw{}", random_hex(8)),
            client_secret: format!("cs{}", random_hex(8)),
            refresh_token: format!("rt{}", random_hex(8)),
        }
    }

    /// Fails when `text` (what `what` printed) holds any of them.
    fn assert_absent(&self, what: &str, text: &str) {
        for secret in [
            &self.database,
            &self.smtp,
            &self.client_secret,
            &self.refresh_token,
        ] {
            assert!(
                !text.contains(secret.as_str()),
                "{what} printed a secret:\n{text}"
            );
        }
    }
}

/// `url` with `password` added to its user (`postgres://user@…` → `postgres://user:pw@…`).
fn with_password(url: &str, password: &str) -> String {
    let (scheme, rest) = url.split_once("://").expect("a URL");
    let (user, host) = rest.split_once('@').expect("a user in DATABASE_URL");
    let user = user.split(':').next().unwrap_or(user);
    format!("{scheme}://{user}:{password}@{host}")
}

/// Writes a config to `dir`: `auth` is `plain` (the SMTP password in a file) or `xoauth2`
/// (client secret and refresh token in files); the gateway and token endpoint refuse
/// connections.
fn write_config(dir: &Path, database_url: &str, s: &Secrets, auth: &str) -> PathBuf {
    let files = [
        ("smtp-password", &s.smtp),
        ("client-secret", &s.client_secret),
        ("refresh-token", &s.refresh_token),
    ];
    for (name, secret) in files {
        std::fs::write(dir.join(name), format!("{secret}\n")).expect("secret file");
    }
    let auth = match auth {
        "plain" => format!(
            "auth = \"plain\"\npassword_file = \"{}\"\n",
            dir.join("smtp-password").display()
        ),
        _ => format!(
            "auth = \"xoauth2\"\n[outbound.oauth2]\ntoken_url = \"http://127.0.0.1:{}/token\"\n\
             client_id = \"mailops\"\nclient_secret_file = \"{}\"\nrefresh_token_file = \"{}\"\n",
            free_port(),
            dir.join("client-secret").display(),
            dir.join("refresh-token").display()
        ),
    };
    let text = support::config::text(
        database_url,
        &format!("127.0.0.1:{}", free_port()),
        "",
        &["mon.example.com"],
        &format!(
            "[outbound]\nfrom_address = \"noreply@mon.example.com\"\ngateway = \"127.0.0.1:{}\"\n\
             encryption = \"none\"\nusername = \"mailops@mon.example.com\"\ntimeout_s = 2\n{auth}",
            free_port()
        ),
    );
    let file = dir.join(format!("mailops-{}.toml", random_hex(4)));
    std::fs::write(&file, text).expect("config");
    file
}

#[tokio::test(flavor = "multi_thread")]
async fn secrets_never_reach_the_output_even_at_trace_level() {
    needs!(Database);
    let db = TestDb::new().await;
    let dir = unique_temp_dir("mailops-security");
    let s = Secrets::new();
    let url = with_password(&db.url, &s.database);
    let refusing_db = format!(
        "postgres://mailops:{}@127.0.0.1:{}/mailops",
        s.database,
        free_port()
    );

    for auth in ["plain", "xoauth2"] {
        let file = write_config(&dir, &url, &s, auth);
        // check-config: a good config, then one with problems.
        let (ok, text) = run(&file, &["check-config"], &dir);
        assert!(ok, "{text}");
        s.assert_absent("check-config", &text);
        let broken = std::fs::read_to_string(&file)
            .expect("config")
            .replace("[lmtp]\n", "[lmtp]\ncolour = 1\n")
            .replace("timeout_s = 2", "timeout_s = 0");
        std::fs::write(&file, broken).expect("config");
        let (ok, text) = run(&file, &["check-config"], &dir);
        assert!(
            !ok && text.contains("lmtp.colour (line ") && text.contains("): unknown key"),
            "{text}"
        );
        s.assert_absent("check-config of a broken config", &text);

        // smtp-test: the gateway refuses.
        let file = write_config(&dir, &url, &s, auth);
        let (ok, text) = run(&file, &["smtp-test"], &dir);
        assert!(!ok && text.contains("cannot connect"), "{text}");
        s.assert_absent("smtp-test", &text);

        // serve: a notice to send, through a gateway that refuses.
        let config = Config::load(&file).expect("config");
        let o = config.outbound.as_ref().expect("[outbound]");
        let notice = Notice {
            to: "alice@example.com".into(),
            subject: "a notice".into(),
            body: "text\n".into(),
            auto_submitted: "auto-generated",
            kind: "ticket_created",
            ..Notice::default()
        };
        let id = outbox::enqueue(&**db.client().await, o, &notice)
            .await
            .expect("queued");
        let output = dir.join("serve.log");
        let serve = spawn(&file, &["serve"], 0o022, "trace", &output);
        support::wait_until("a failed attempt", WITHIN, async || {
            let row = db
                .client()
                .await
                .query_one("SELECT attempts FROM outbox WHERE id = $1", &[&id])
                .await
                .expect("outbox row");
            row.get::<_, i32>(0) > 0
        })
        .await;
        let text = stop(serve, &output);
        assert!(text.contains("not sent"), "{text}");
        s.assert_absent("serve", &text);

        // serve and migrate: the database refuses, or its URL cannot be read.
        let text = std::fs::read_to_string(&file).expect("config");
        std::fs::write(&file, text.replace(&url, &refusing_db)).expect("config");
        let serve = spawn(&file, &["serve"], 0o022, "trace", &output);
        support::wait_until("serve to retry the database", WITHIN, async || {
            text_of(&output).contains("database not ready")
        })
        .await;
        s.assert_absent("serve without a database", &stop(serve, &output));
        let (ok, text) = run(&file, &["migrate"], &dir);
        assert!(!ok, "{text}");
        s.assert_absent("migrate without a database", &text);
        let unreadable = refusing_db.replace("/mailops", ":port/mailops");
        std::fs::write(&file, text_of(&file).replace(&refusing_db, &unreadable)).expect("config");
        let (ok, text) = run(&file, &["migrate"], &dir);
        assert!(!ok, "{text}");
        s.assert_absent("migrate with a bad URL", &text);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn text_of(file: &Path) -> String {
    std::fs::read_to_string(file).expect("file")
}

#[test]
fn a_regex_too_large_to_run_is_refused_when_the_policy_file_is_read() {
    let dir = unique_temp_dir("mailops-security");
    let config = dir.join("mailops.toml");
    std::fs::write(
        &config,
        support::config::text(
            &format!("postgres://mailops@127.0.0.1:{}/mailops", free_port()),
            "127.0.0.1:2424",
            "",
            &["mon.example.com"],
            "",
        ),
    )
    .expect("config");
    let policies = dir.join("policies.toml");
    // Short to write, but it compiles to far more than the limit allows.
    std::fs::write(
        &policies,
        "[[device]]\nname = \"nas1\"\n\n[[event_policy]]\nname = \"huge\"\nseverity = \"major\"\n\
         match_logic = \"regex\"\nfirst_match = '\\w{1000}{1000}'\n",
    )
    .expect("policies");
    let message = dir.join("message.eml");
    std::fs::write(
        &message,
        "From: a@example.com\r\nSubject: x\r\n\r\nbody\r\n",
    )
    .expect("eml");
    let policies_arg = policies.to_str().expect("utf-8 path");
    for args in [
        vec!["policy", "apply", policies_arg],
        vec![
            "policy",
            "test",
            message.to_str().expect("utf-8"),
            "--policies",
            policies_arg,
        ],
    ] {
        let (ok, text) = run(&config, &args, &dir);
        assert!(!ok, "{args:?}: {text}");
        assert!(
            text.contains(
                "event_policy \"huge\": first_match: invalid regex: the regex is too large"
            ),
            "{args:?}: {text}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

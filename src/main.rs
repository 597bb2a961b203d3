//! The `mailops` command line: parse arguments, set up logging, call into the library.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use mailops::auth::Verification;
use mailops::config::Config;

/// Turns email into operations data in PostgreSQL.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// The config file [default: $MAILOPS_CONFIG, else ./mailops.toml, else
    /// /etc/mailops/mailops.toml]
    #[arg(short, long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the LMTP server Postfix delivers to.
    Serve,
    /// Apply the database migrations under sql/ (safe to run twice, or from two places at once).
    Migrate,
    /// Write Postfix's main.cf, master.cf and lookup tables for this config.
    PostfixConfig {
        /// Directory to write them to.
        #[arg(long)]
        out: PathBuf,
    },
    /// Check the config file and list every problem.
    CheckConfig,
    /// Test the outbound SMTP gateways: connect, TLS, authenticate; report each step.
    SmtpTest {
        /// Also send one test message to this address through each gateway.
        #[arg(long)]
        send_to: Option<String>,
    },
    /// Devices, originator and event policies, users, queues, ticket templates and ticket
    /// policies: apply a policy file, or export one.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
}

/// `mailops policy …`
#[derive(Subcommand)]
enum PolicyCommand {
    /// Make the database's policies what FILE says, in one transaction (applying it twice
    /// changes nothing); any problem is listed and nothing is written.
    Apply {
        /// The policy file (TOML; see docs/policies.md).
        file: PathBuf,
        /// Also delete the policies, devices, users, queues and templates FILE does not have.
        #[arg(long)]
        prune: bool,
        /// Check everything and report what would change, without writing it.
        #[arg(long)]
        dry_run: bool,
    },
    /// Write the database's policies to stdout, in the policy file format.
    Export,
    /// Show what a message would do (originator policies tried, device, events, rows; or, with
    /// --to a ticket destination, the ticket decision), without writing anything.
    Test {
        /// The message (.eml).
        message: PathBuf,
        /// Use this policy file instead of the database's policies.
        #[arg(long)]
        policies: Option<PathBuf>,
        /// The recipient: a ticket policy's destination shows what the ticket policy does
        /// (without it, or for notify@, the events decision).
        #[arg(long)]
        to: Option<String>,
        /// The SMTP client's address it came from, for `[postfix] mynetworks` (without it, a
        /// client outside them). The sender's SPF, DKIM and DMARC results are read from the
        /// mail's Authentication-Results header with this instance's authserv-id, as serve
        /// reads them.
        #[arg(long)]
        client: Option<std::net::IpAddr>,
    },
}

/// A failed command prints one line of what went wrong and why (never a backtrace) and exits 1.
#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // Each cause once: many errors already end with their source's words.
            let mut text = e.to_string();
            for cause in e.chain().skip(1).map(ToString::to_string) {
                if !text.contains(&cause) {
                    text = format!("{text}: {cause}");
                }
            }
            eprintln!("mailops: {text}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("MAILOPS_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        // Colour only on a terminal: a log file or journal gets plain lines.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    never_world_writable();
    let config_path = mailops::config::locate(cli.config.as_deref())?;
    let config = Config::load(&config_path)?;
    match cli.command {
        Command::Serve => {
            return_large_buffers();
            mailops::serve::run(config, shutdown_signal()).await?
        }
        Command::Migrate => {
            let applied = async {
                let pool = mailops::store::pool(&config.database.url, 1)?;
                let applied = mailops::store::migrate::run(&pool).await?;
                mailops::store::retention::partitions(&pool.get().await?).await?;
                mailops::serve::sync_recipients(&config, &pool).await?;
                anyhow::Ok(applied)
            }
            .await
            .with_context(|| in_database(&config))?;
            println!("migrations applied: {applied:?}");
        }
        Command::PostfixConfig { out } => {
            let written = mailops::postfix::write(&config, &out)
                .with_context(|| format!("writing {}", out.display()))?;
            for path in written {
                println!("{}", path.display());
            }
            match mailops::postfix::log_file(&config) {
                Some(file) => eprintln!("Postfix logs to {}", file.display()),
                None => eprintln!("Postfix logs to syslog (syslog_name postfix-mailops)"),
            }
        }
        Command::CheckConfig => {
            println!("{}: ok", config_path.display());
            println!(
                "postfix.mynetworks: {} may send mail to any domain through this instance",
                config.postfix.mynetworks.join(", ")
            );
            if !config.inbound.auth.verify {
                println!(
                    "inbound.auth.verify: off: senders are not checked, only clients in \
                     postfix.mynetworks are verified for tickets and require_auth"
                );
            }
        }
        Command::Policy { command } => policy(&config, command).await?,
        Command::SmtpTest { send_to } => smtp_test(&config, send_to.as_deref()).await?,
    }
    Ok(())
}

/// `mailops policy …`: summaries and exports on stdout, problems in the error.
async fn policy(config: &Config, command: PolicyCommand) -> anyhow::Result<()> {
    use mailops::policy::{self, PolicyFile};
    // One connection is enough: apply and export each use a single one.
    let database = || async {
        async {
            let pool = mailops::store::pool(&config.database.url, 1)?;
            mailops::store::migrate::check(&pool).await?;
            anyhow::Ok(pool)
        }
        .await
        .with_context(|| in_database(config))
    };
    match command {
        PolicyCommand::Apply {
            file,
            prune,
            dry_run,
        } => {
            let invalid = |e: policy::Error| anyhow::anyhow!("{}: {e}", file.display());
            let policies =
                PolicyFile::read(&file).map_err(|p| invalid(policy::Error::Invalid(p)))?;
            let options = policy::Options { prune, dry_run };
            let summary = policy::apply(&database().await?, &policies, &config.inbound, options)
                .await
                .map_err(invalid)?;
            print!("{summary}");
            if dry_run {
                println!("dry run: nothing was written");
            }
        }
        PolicyCommand::Export => print!("{}", policy::export(&database().await?).await?),
        PolicyCommand::Test {
            message,
            policies,
            to,
            client,
        } => {
            let raw = std::fs::read(&message)
                .with_context(|| format!("reading {}", message.display()))?;
            let envelope = mailops::envelope::Envelope {
                client_addr: client.map(|c| c.to_string()),
                ..Default::default()
            };
            let verify = mailops::auth::Settings::new(config);
            let (model, pool) = match &policies {
                Some(file) => {
                    let model = PolicyFile::read(file)
                        .and_then(|f| f.to_model())
                        .map_err(|p| {
                            anyhow::anyhow!("{}: {}", file.display(), policy::Error::Invalid(p))
                        })?;
                    (model, None)
                }
                None => {
                    let pool = database().await?;
                    (policy::load(&pool).await?, Some(pool))
                }
            };
            let tickets = mailops::tickets::policies::Policies::new(
                model.users,
                model.queues,
                model.templates,
                model.ticket_policies,
            );
            if let Some(to) = to.filter(|to| tickets.policy(to).is_some()) {
                let message = mailops::message::Message::parse_with_attachments(&raw);
                let sender = Verification::of(&message, &envelope, &verify);
                let mail = (&message, &sender);
                let report = ticket_test(config, tickets, mail, &to, pool.as_ref()).await?;
                print!("{report}");
                return Ok(());
            }
            let (compiled, problems) = mailops::events::policies::Policies::new(
                model.devices,
                model.originators,
                model.event_policies,
            );
            let (expects, more) = mailops::expect::evaluate::Expects::new(model.expects);
            for problem in problems.into_iter().chain(more) {
                eprintln!("left out: {problem}");
            }
            let message = mailops::message::Message::parse(&raw);
            let sender = Verification::of(&message, &envelope, &verify);
            let expected =
                |alert: &mailops::events::evaluate::Alert<'_>,
                 decision: &mailops::events::evaluate::Decision<'_>| {
                    use mailops::expect::evaluate::{describe, reports};
                    let reports = reports(&expects, alert, decision.aligned());
                    let device = |id| {
                        compiled
                            .device(id)
                            .map_or("?".into(), |d| d.name.to_owned())
                    };
                    describe(&reports, device)
                };
            let report = mailops::events::simulate::report(
                &compiled,
                &message,
                &sender,
                (&config.inbound).into(),
                expected,
            );
            print!("{report}");
        }
    }
    Ok(())
}

/// `mailops policy test --to DESTINATION`: the ticket decision for a mail to a ticket
/// destination. The ticket it answers is looked up in the database when the policies come from
/// there; no notices are counted as sent this hour.
async fn ticket_test(
    config: &Config,
    tickets: mailops::tickets::policies::Policies,
    (message, sender): (&mailops::message::Message, &Verification),
    to: &str,
    pool: Option<&deadpool_postgres::Pool>,
) -> anyhow::Result<String> {
    use mailops::tickets::{decide, handle};
    let own = mailops::route::config_recipients(&config.inbound);
    let state = mailops::state::State {
        router: mailops::route::Router::new(own),
        tickets,
        ..Default::default()
    };
    let replied = match pool {
        Some(pool) => handle::replied_ticket(&**pool.get().await?, message).await?,
        None => None,
    };
    let envelope_from = message.from_address.as_deref().unwrap_or("");
    let facts = decide::Facts {
        envelope_from,
        message,
        destination: to,
        replied: replied.as_ref(),
        recent_notices: 0,
        verified: sender.verified_by(&config.inbound.auth.trust),
    };
    let auth = &config.inbound.auth;
    let (policy, plan) = decide::decide(&state, config.outbound.as_ref(), auth, &facts)
        .context("no ticket policy for that destination")?;
    Ok(decide::report(policy, &facts, &plan))
}

/// `mailops smtp-test`: the report on stdout; non-zero when a gateway failed.
async fn smtp_test(config: &Config, send_to: Option<&str>) -> anyhow::Result<()> {
    use mailops::outbound::{smtp, smtp_test};
    let o = config
        .outbound
        .as_ref()
        .context("no [outbound] section in the config: nothing to test")?;
    let settings = smtp::Settings::new(o)?;
    let reports = smtp_test::run(o, &settings, send_to).await;
    for report in &reports {
        print!("{report}");
    }
    let pool = mailops::store::pool(&config.database.url, 1)?;
    if let Err(e) = smtp_test::save(&pool, &reports).await {
        eprintln!(
            "warning: the result was not saved: {}: {e}",
            in_database(config)
        );
    }
    let failed: Vec<String> = reports
        .iter()
        .filter_map(|r| {
            r.result
                .as_ref()
                .err()
                .map(|f| format!("{}: {f}", r.gateway))
        })
        .collect();
    if failed.is_empty() {
        Ok(())
    } else {
        anyhow::bail!("{}", failed.join("; "))
    }
}

/// Which database a failure was in: the config's URL, its password hidden.
fn in_database(config: &Config) -> String {
    format!(
        "database {}",
        mailops::config::redact_password(&config.database.url)
    )
}

/// Adds "others may not write" to the umask, whatever the service manager set. bind(2)
/// creates the LMTP socket with mode 0777 less the umask before `serve` sets 0660, and
/// connect(2) needs write permission: so no other user can connect in that moment.
fn never_world_writable() {
    // SAFETY: umask(2) only swaps the process's mask; it cannot fail.
    unsafe {
        let mask = libc::umask(0o022);
        libc::umask(mask | 0o002);
    }
}

/// Messages (up to `lmtp.max_message_size`) are held in buffers that glibc's malloc would, after
/// the first few were freed, carve from its heaps instead of mapping them: it raises its mmap
/// threshold each time a mapped buffer is freed. Heap memory is rarely given back, so peak RSS
/// would follow the largest messages ever seen times the sessions. A fixed threshold keeps every
/// buffer over 128 KiB mapped, and unmapped as soon as its message is stored.
fn return_large_buffers() {
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt(3) only sets an allocator parameter; glibc serialises it with allocation.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
    }
}

/// Completes on SIGTERM or SIGINT.
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("installing a SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("installing a SIGINT handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    tracing::info!("shutting down: finishing transactions in flight");
}

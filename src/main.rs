//! The `mailops` command line: parse arguments, set up logging, call into the library.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use mailops::config::Config;

/// Turns email into operations data in PostgreSQL.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// The config file.
    #[arg(short, long, global = true, default_value = "mailops.toml")]
    config: PathBuf,
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
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("MAILOPS_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let config = Config::load(&cli.config)?;
    match cli.command {
        Command::Serve => mailops::serve::run(config, shutdown_signal()).await?,
        Command::Migrate => {
            let pool = mailops::store::pool(&config.database.url, 1)?;
            let applied = mailops::store::migrate::run(&pool).await?;
            mailops::serve::sync_recipients(&config, &pool).await?;
            println!("migrations applied: {applied:?}");
        }
        Command::PostfixConfig { out } => {
            let written = mailops::postfix::write(&config, &out)
                .with_context(|| format!("writing {}", out.display()))?;
            for path in written {
                println!("{}", path.display());
            }
        }
        Command::CheckConfig => println!("{}: ok", cli.config.display()),
    }
    Ok(())
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

//! `mailops smtp-test`: connect to each gateway, report every step, optionally send one test
//! message, keep the result in PostgreSQL.

use deadpool_postgres::Pool;

use super::outbox::{compose, Notice};
use super::smtp::{self, Failure, Settings};
use crate::config::Outbound;
use crate::store;

/// One gateway's test.
#[derive(Debug, Clone)]
pub struct Report {
    /// `host:port`.
    pub gateway: String,
    /// What happened, step by step.
    pub steps: Vec<String>,
    /// How it ended.
    pub result: Result<(), Failure>,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "{}:", self.gateway)?;
        for step in &self.steps {
            writeln!(f, "  ok    {step}")?;
        }
        match &self.result {
            Ok(()) => writeln!(f, "  => ok"),
            Err(failure) => writeln!(f, "  FAIL  {failure}"),
        }
    }
}

/// Tests every configured gateway; with `send_to`, each also sends one test message.
pub async fn run(o: &Outbound, settings: &Settings, send_to: Option<&str>) -> Vec<Report> {
    let mut reports = Vec::new();
    for (host, port) in &settings.gateways {
        let mut steps = Vec::new();
        let result = async {
            let mut conn = smtp::connect(settings, host, *port, &mut |s| steps.push(s)).await?;
            if let Some(to) = send_to {
                let notice = Notice {
                    to: to.to_owned(),
                    subject: format!("mailops SMTP test through {host}:{port}"),
                    body: "This message was sent by `mailops smtp-test`.\n".into(),
                    auto_submitted: "auto-generated",
                    ..Notice::default()
                };
                let composed = compose(o, &notice).map_err(|e| Failure::Rejected {
                    permanent: true,
                    reply: e.to_string(),
                })?;
                let reply = smtp::transmit(&mut conn, &o.from_address, to, &composed.bytes).await?;
                steps.push(format!("test message to {to} accepted: {reply}"));
            }
            let _ = conn.quit().await;
            Ok(())
        }
        .await;
        reports.push(Report {
            gateway: format!("{host}:{port}"),
            steps,
            result,
        });
    }
    reports
}

/// Keeps each report as its gateway's last test result.
pub async fn save(pool: &Pool, reports: &[Report]) -> Result<(), store::Error> {
    let client = pool.get().await?;
    for r in reports {
        let report = r.to_string();
        let error = r.result.as_ref().err().map(ToString::to_string);
        client
            .execute(
                "INSERT INTO smtp_tests (gateway, ok, report, error) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (gateway) DO UPDATE SET tested_at = now(), ok = excluded.ok,
                     report = excluded.report, error = excluded.error",
                &[&r.gateway, &r.result.is_ok(), &report, &error],
            )
            .await?;
    }
    Ok(())
}

//! Clears events whose expiry has passed.

use std::time::Duration;

use deadpool_postgres::Pool;

use crate::stop::Stop;
use crate::{metrics, store};

/// How often active events are checked for expiry.
const EXPIRY_INTERVAL: Duration = Duration::from_secs(60);

/// Clears expired events every minute until told to stop.
pub async fn expire_events(pool: Pool, mut stop: Stop) {
    loop {
        let cleared = async {
            let client = pool.get().await?;
            Ok::<_, store::Error>(store::events::expire(&client).await?)
        };
        match cleared.await {
            Ok((0, _)) => {}
            Ok((n, tally)) => {
                metrics::get().events(tally.counts());
                tracing::info!(events = n, "expired events cleared")
            }
            Err(e) => tracing::warn!(error = %e, "clearing expired events"),
        }
        if !stop.sleep(EXPIRY_INTERVAL).await {
            return;
        }
    }
}

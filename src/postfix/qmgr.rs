//! Asking this instance's queue manager to retry deferred mail now, as `postqueue -f` does:
//! mail Postfix deferred while `mailops serve` or PostgreSQL was away would otherwise wait out
//! Postfix's back-off (five minutes at first, then longer).

use std::io;
use std::path::Path;

use tokio::io::AsyncWriteExt;

/// What `postqueue -f` sends the queue manager (Postfix's `mail_flush_deferred()`): forget
/// destinations marked dead (`F`), ignore the retry times (`A`), scan the deferred (`D`) and
/// incoming (`I`) queues.
const FLUSH_DEFERRED: &[u8] = b"FADI";

/// Triggers the queue manager listening at `<queue_directory>/public/qmgr` (a UNIX socket,
/// as the generated master.cf declares it). Needs access to `public/`: root, or the
/// `postdrop` group.
pub async fn flush_deferred(queue_directory: &Path) -> io::Result<()> {
    let path = queue_directory.join("public/qmgr");
    let mut trigger = tokio::net::UnixStream::connect(&path).await?;
    trigger.write_all(FLUSH_DEFERRED).await?;
    trigger.shutdown().await
}

//! Keeping an in-memory copy of one key range of the metadata store current on every node
//! (client quotas, dynamic configs): list the range, watch it from the listed revision, and
//! re-list on every change (a burst of events is one re-list), after a watch failure and every
//! [`RESYNC_PERIOD`] as a safety net. A change made through any node is therefore in force on
//! every node within a watch round trip.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use tierlog_metadata::MetadataStore;

/// Re-list at least this often even without watch events (the safety net).
const RESYNC_PERIOD: Duration = Duration::from_secs(5);
/// Pause after a failed list or watch.
const RETRY_DELAY: Duration = Duration::from_millis(250);

/// Calls `reload` (which re-lists the range into the copy) whenever the keys under `prefix`
/// may have changed, until `cancel`. `what` names the copy in logs.
pub(crate) async fn follow_prefix<F, Fut>(
    store: Arc<dyn MetadataStore>,
    prefix: &str,
    what: &str,
    mut reload: F,
    cancel: CancellationToken,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = tierlog_metadata::Result<()>>,
{
    loop {
        let opened = async {
            let from = store.current_revision().await? + 1;
            let watch = store.watch(prefix, from).await?;
            reload().await?;
            Ok::<_, tierlog_metadata::Error>(watch)
        }
        .await;
        let mut watch = match opened {
            Ok(w) => w,
            Err(e) => {
                warn!(error = %e, "reading {what} failed; retrying");
                tokio::select! {
                    () = cancel.cancelled() => return,
                    () = tokio::time::sleep(RETRY_DELAY) => continue,
                }
            }
        };
        loop {
            tokio::select! {
                biased;
                () = cancel.cancelled() => return,
                ev = watch.next() => match ev {
                    Some(Ok(_)) => {
                        while let Some(Some(Ok(_))) = futures::FutureExt::now_or_never(watch.next()) {}
                    }
                    Some(Err(e)) => {
                        debug!(error = %e, "{what} watch ended; re-watching");
                        break;
                    }
                    None => break,
                },
                () = tokio::time::sleep(RESYNC_PERIOD) => {}
            }
            if let Err(e) = reload().await {
                warn!(error = %e, "re-reading {what} failed");
                break;
            }
        }
    }
}

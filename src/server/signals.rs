//! SIGINT and SIGTERM as a future, for graceful shutdown.

use futures::StreamExt;
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook_async_std::Signals;

/// Completes when the process receives SIGINT or SIGTERM.
///
/// Pass it to [`Server::serve_until`](super::Server::serve_until).
pub async fn termination_signal() -> std::io::Result<()> {
    let mut signals = Signals::new([SIGINT, SIGTERM])?;
    if let Some(signal) = signals.next().await {
        log::info!("received signal {signal}, shutting down");
    }
    Ok(())
}

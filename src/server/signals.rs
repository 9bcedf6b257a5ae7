//! SIGINT and SIGTERM as a future, for graceful shutdown, on any runtime.

use futures::channel::oneshot;
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

/// Completes when the process receives SIGINT or SIGTERM.
///
/// Pass it to [`Server::serve_until`](super::Server::serve_until). The signals are read by
/// a small thread of its own, so this works the same on every runtime.
pub async fn termination_signal() -> std::io::Result<()> {
    let mut signals = Signals::new([SIGINT, SIGTERM])?;
    let (tx, rx) = oneshot::channel();
    std::thread::Builder::new()
        .name("milter-signals".into())
        .spawn(move || {
            if let Some(signal) = signals.forever().next() {
                let _ = tx.send(signal);
            }
        })?;
    if let Ok(signal) = rx.await {
        log::info!("received signal {signal}, shutting down");
    }
    Ok(())
}

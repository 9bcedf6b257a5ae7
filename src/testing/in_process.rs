//! A filter served in the same process, for unit tests: no socket file, no port.

use std::io;
use std::sync::Arc;

use async_std::os::unix::net::UnixStream;

use super::client::MilterClient;
use super::profile::Profile;
use crate::connection::{ConnectionConfig, serve_connection};
use crate::session::Filter;

/// Serves `filter` on one end of an in-memory socket pair, in a background task, and returns
/// a client on the other end, not yet negotiated.
///
/// The filter runs exactly as under [`Server`](crate::server::Server): the same connection
/// driver, timeouts from async-std.
///
/// ```
/// use async_milter::session::FnFilter;
/// use async_milter::testing::{in_process, Envelope, Profile, Reply};
/// use async_milter::{Error, Session, Verdict};
///
/// async fn scanner(session: &mut Session) -> Result<Verdict, Error> {
///     session.end_of_message().await?;
///     session.add_header("X-Scanned", "clean")?;
///     Ok(Verdict::Accept)
/// }
///
/// # async_std::task::block_on(async {
/// let mut client = in_process(FnFilter::new(scanner), Profile::postfix())?;
/// client.negotiate().await?;
/// let envelope = Envelope::new("<alice@example.com>", &["<bob@example.net>"]);
/// let outcome = client.send_message(&envelope, b"Subject: hi\r\n\r\nHello\r\n").await?;
/// assert_eq!(outcome.verdict, Reply::Accept);
/// assert_eq!(outcome.delivered.unwrap().header("X-Scanned"), Some(" clean"));
/// client.quit().await?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # });
/// ```
pub fn in_process<F: Filter>(filter: F, profile: Profile) -> io::Result<MilterClient<UnixStream>> {
    in_process_with(Arc::new(filter), profile, ConnectionConfig::default())
}

/// [`in_process`] with a shared filter and connection settings of your own (a shorter read
/// timeout, another reply for failing filters).
pub fn in_process_with<F: Filter>(
    filter: Arc<F>,
    profile: Profile,
    mut config: ConnectionConfig,
) -> io::Result<MilterClient<UnixStream>> {
    let (mta_side, filter_side) = UnixStream::pair()?;
    if config.sleep.is_none() {
        config.sleep = Some(crate::server::async_std_sleep());
    }
    async_std::task::spawn(async move {
        let _ = serve_connection(filter_side, filter, config, 0).await;
    });
    Ok(MilterClient::new(mta_side, profile))
}

//! A filter served in the same process, for unit tests: no socket file, no port.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};

use async_std::os::unix::net::UnixStream;

use crate::client::MilterClient;
use crate::client::Profile;
use crate::connection::Builder;
use crate::rt::AsyncStd;
use crate::session::Filter;

/// Connection ids for in-process filters, distinct within the process as a server's are.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Serves `filter` on one end of an in-memory socket pair, in a background task, and returns
/// a client on the other end, not yet negotiated.
///
/// The filter runs exactly as under [`Server`](crate::server::Server): the same connection
/// driver, timeouts from async-std, a connection id of its own.
///
/// ```
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
/// let mut client = in_process(scanner, Profile::postfix())?;
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
    in_process_with(&Builder::new(AsyncStd), filter, profile)
}

/// [`in_process`] with connection settings of your own (a shorter read timeout, another
/// reply for failing filters, a [`ManualClock`](crate::rt::ManualClock)); the builder's id
/// is replaced by a fresh one.
pub fn in_process_with<F: Filter>(
    builder: &Builder,
    filter: F,
    profile: Profile,
) -> io::Result<MilterClient<UnixStream>> {
    let (mta_side, filter_side) = UnixStream::pair()?;
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let connection = builder.clone().id(id).serve(filter_side, filter);
    async_std::task::spawn(async move {
        let _ = connection.await;
    });
    Ok(MilterClient::new(mta_side, profile))
}

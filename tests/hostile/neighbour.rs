//! Well-behaved MTA sessions through the library's test kit: the neighbour that runs beside
//! each case, and the fresh session after it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_milter::proto::Family;
use async_milter::testing::{Envelope, MilterClient, Modification, Profile, Reply};
use async_std::net::TcpStream;
use async_std::task::JoinHandle;
use futures::channel::oneshot;

/// The longest one kit step may take; a neighbour slowed beyond it counts as disturbed.
const STEP: Duration = Duration::from_secs(5);

const MESSAGE: &[u8] = b"From: <alice@example.com>\r\nSubject: neighbour\r\n\r\nhello\r\n";

/// A session past negotiation, CONNECT and HELO.
async fn greeted(addr: SocketAddr) -> Result<MilterClient<TcpStream>, String> {
    let stream = async_std::future::timeout(STEP, TcpStream::connect(addr))
        .await
        .map_err(|_| "connect timed out".to_owned())?
        .map_err(|e| format!("connect: {e}"))?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    let mut client = MilterClient::new(stream, Profile::postfix().with_timeout(STEP));
    client
        .negotiate()
        .await
        .map_err(|e| format!("negotiate: {e}"))?;
    let reply = client
        .connect("neighbour.example.com", Family::Inet, 40000, "192.0.2.7")
        .await
        .map_err(|e| format!("CONNECT: {e}"))?;
    if reply != Reply::Continue {
        return Err(format!("CONNECT answered {reply:?}"));
    }
    let reply = client
        .helo("neighbour.example.com")
        .await
        .map_err(|e| format!("HELO: {e}"))?;
    if reply != Reply::Continue {
        return Err(format!("HELO answered {reply:?}"));
    }
    Ok(client)
}

/// One message, which must be accepted with the fault target's header and nothing else.
async fn one_message(client: &mut MilterClient<TcpStream>) -> Result<(), String> {
    let envelope = Envelope::new("<alice@example.com>", &["<bob@example.net>"]);
    let outcome = client
        .send_message(&envelope, MESSAGE)
        .await
        .map_err(|e| format!("message: {e}"))?;
    let expected = [Modification::AddHeader {
        name: "X-Fault-Target".into(),
        value: "ok".into(),
    }];
    if outcome.verdict != Reply::Accept || outcome.modifications != expected {
        return Err(format!(
            "message got {:?} with {:?}",
            outcome.verdict, outcome.modifications
        ));
    }
    Ok(())
}

/// A fresh connection with one normal message and QUIT: the server still serves.
pub(crate) fn normal_session(addr: SocketAddr) -> Result<(), String> {
    async_std::task::block_on(async {
        let mut client = greeted(addr).await?;
        one_message(&mut client).await?;
        client.quit().await.map_err(|e| format!("QUIT: {e}"))
    })
    .map_err(|e| format!("normal session: {e}"))
}

/// A session that sends message after message while a case runs.
pub(crate) struct Neighbour {
    stop: Arc<AtomicBool>,
    task: JoinHandle<Result<usize, String>>,
}

impl Neighbour {
    /// Connects, negotiates and greets, then keeps sending messages in the background.
    pub(crate) fn start(addr: SocketAddr) -> Result<Self, String> {
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready) = oneshot::channel();
        let stopping = stop.clone();
        let task = async_std::task::spawn(async move {
            let mut client = match greeted(addr).await {
                Ok(client) => {
                    let _ = ready_tx.send(Ok(()));
                    client
                }
                Err(error) => {
                    let _ = ready_tx.send(Err(error.clone()));
                    return Err(error);
                }
            };
            let mut messages = 0;
            // Bounded: a case lasts seconds, a message milliseconds.
            while messages < 100_000 {
                one_message(&mut client)
                    .await
                    .map_err(|e| format!("message {}: {e}", messages + 1))?;
                messages += 1;
                if stopping.load(Ordering::Relaxed) {
                    break;
                }
            }
            client.quit().await.map_err(|e| format!("QUIT: {e}"))?;
            Ok(messages)
        });
        async_std::task::block_on(async_std::future::timeout(STEP, ready))
            .map_err(|_| "the neighbour did not get going".to_owned())?
            .map_err(|_| "the neighbour task ended".to_owned())?
            .map_err(|e| format!("neighbour: {e}"))?;
        Ok(Self { stop, task })
    }

    /// Stops after the message in flight; `Err` if any reply was not the normal one.
    pub(crate) fn finish(self) -> Result<usize, String> {
        self.stop.store(true, Ordering::Relaxed);
        async_std::task::block_on(async_std::future::timeout(STEP * 2, self.task))
            .map_err(|_| "the neighbour hung".to_owned())?
            .map_err(|e| format!("neighbour disturbed: {e}"))
    }
}

//! Graceful shutdown: a handle that tells connections to finish their message and close.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use futures::FutureExt;
use futures::channel::oneshot;
use futures::future::Shared;

type Signal = Shared<Pin<Box<dyn Future<Output = ()> + Send>>>;

/// Tells one connection, or every connection of a server, to shut down gracefully: a
/// connection between messages closes at once; one inside a message finishes it first.
///
/// Clones share one signal. Get one from [`Connection::shutdown_handle`](super::Connection::shutdown_handle).
#[derive(Clone)]
pub struct ShutdownHandle {
    trigger: Arc<Mutex<Option<oneshot::Sender<()>>>>,
    /// Set at once by `shutdown`; the signal tells waiters, this flag everyone else.
    begun: Arc<AtomicBool>,
    signal: Signal,
}

impl ShutdownHandle {
    pub(crate) fn new() -> Self {
        let (trigger, signal) = oneshot::channel::<()>();
        let signal: Pin<Box<dyn Future<Output = ()> + Send>> = Box::pin(signal.map(|_| ()));
        Self {
            trigger: Arc::new(Mutex::new(Some(trigger))),
            begun: Arc::new(AtomicBool::new(false)),
            signal: signal.shared(),
        }
    }

    /// Starts the graceful shutdown. Calling it again does nothing.
    pub fn shutdown(&self) {
        self.begun.store(true, Ordering::Release);
        let trigger = self
            .trigger
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(trigger) = trigger {
            let _ = trigger.send(());
        }
    }

    /// Whether the shutdown has begun.
    #[must_use]
    pub fn is_shutdown(&self) -> bool {
        self.begun.load(Ordering::Acquire)
    }

    /// Ready once the shutdown has begun.
    pub(crate) fn poll_shutdown(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        Pin::new(&mut self.signal).poll(cx)
    }
}

impl fmt::Debug for ShutdownHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShutdownHandle")
            .field("is_shutdown", &self.is_shutdown())
            .finish()
    }
}

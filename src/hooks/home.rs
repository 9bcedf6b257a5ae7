//! Where the per-connection value lives between the connection's filter calls, and the
//! close hook that runs when it goes.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex, PoisonError};

/// The close hook.
pub(crate) type CloseFn<S> = Arc<dyn Fn(&mut S) + Send + Sync>;

/// What a connection keeps between calls.
struct Slot<S> {
    value: Option<S>,
    /// The value has seen a CONNECT (a second one starts a new SMTP session: `QUIT_NC`).
    connected: bool,
}

/// The value's home, kept in the session's connection state, so it is dropped when the
/// connection ends; dropping it runs the close hook.
pub(crate) struct Home<S> {
    slot: Mutex<Slot<S>>,
    close: Option<CloseFn<S>>,
    connection: u64,
}

/// The connection-state entry (one per value type, made empty by `Default`).
pub(crate) struct HomeEntry<S>(pub(crate) Option<Arc<Home<S>>>);

impl<S> Default for HomeEntry<S> {
    fn default() -> Self {
        Self(None)
    }
}

impl<S> Home<S> {
    pub(crate) fn new(close: Option<CloseFn<S>>, connection: u64) -> Self {
        Self {
            slot: Mutex::new(Slot {
                value: None,
                connected: false,
            }),
            close,
            connection,
        }
    }
}

/// Runs the close hook on `value`, containing a panic (it runs while the connection is torn
/// down, where a panic would take the connection's task with it).
pub(crate) fn run_close<S>(close: Option<&CloseFn<S>>, value: &mut S, connection: u64) {
    if let Some(close) = close {
        if catch_unwind(AssertUnwindSafe(|| close(value))).is_err() {
            log::error!("connection {connection}: the close hook panicked");
        }
    }
}

impl<S> Drop for Home<S> {
    fn drop(&mut self) {
        let slot = self.slot.get_mut().unwrap_or_else(PoisonError::into_inner);
        if let Some(value) = slot.value.as_mut() {
            run_close(self.close.as_ref(), value, self.connection);
        }
    }
}

/// The value, taken out of its home for one filter call and put back when the call ends,
/// however it ends (returned, aborted, dropped because the connection closed).
pub(crate) struct Lease<S> {
    home: Arc<Home<S>>,
    pub(crate) value: Option<S>,
    pub(crate) connected: bool,
}

impl<S> Lease<S> {
    pub(crate) fn take(home: Arc<Home<S>>) -> Self {
        let (value, connected) = {
            let mut slot = home.slot.lock().unwrap_or_else(PoisonError::into_inner);
            (slot.value.take(), slot.connected)
        };
        Self {
            home,
            value,
            connected,
        }
    }

    pub(crate) fn close(&self) -> Option<&CloseFn<S>> {
        self.home.close.as_ref()
    }
}

impl<S> Drop for Lease<S> {
    fn drop(&mut self) {
        let mut slot = self
            .home
            .slot
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        slot.value = self.value.take();
        slot.connected = self.connected;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::{Home, Lease};

    #[test]
    fn the_value_goes_home_after_each_lease_and_closes_once_with_its_home() {
        let closed = Arc::new(AtomicUsize::new(0));
        let seen = closed.clone();
        let home = Arc::new(Home::<u32>::new(
            Some(Arc::new(move |value: &mut u32| {
                seen.fetch_add(*value as usize, Ordering::SeqCst);
            })),
            1,
        ));
        let mut lease = Lease::take(home.clone());
        assert_eq!(lease.value, None);
        lease.value = Some(40);
        drop(lease);
        let mut lease = Lease::take(home.clone());
        *lease.value.as_mut().unwrap() += 2;
        drop(home);
        assert_eq!(closed.load(Ordering::SeqCst), 0, "still leased");
        drop(lease);
        assert_eq!(closed.load(Ordering::SeqCst), 42);
    }
}

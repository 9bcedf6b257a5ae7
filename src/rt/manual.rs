//! A clock that moves only when told to, for deterministic timeout tests.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use super::{Sleep, Timer};

/// A [`Timer`] whose clock stands still until [`ManualClock::advance`] moves it.
///
/// Sleeps complete when the clock reaches their deadline, so a test can drive the read
/// timeout, progress reports and the shutdown grace period with no real waiting. Clones
/// share one clock.
///
/// ```
/// use std::time::Duration;
/// use async_milter::rt::{ManualClock, Timer};
///
/// let clock = ManualClock::new();
/// let start = clock.now();
/// let sleep = clock.sleep(Duration::from_secs(60));
/// clock.advance(Duration::from_secs(60));
/// futures::executor::block_on(sleep); // ready at once: the clock has reached its deadline
/// assert_eq!(clock.now() - start, Duration::from_secs(60));
/// ```
#[derive(Clone, Debug)]
pub struct ManualClock {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Debug)]
struct Inner {
    now: Instant,
    /// Pending sleeps: id, deadline, the waker of their latest poll.
    sleepers: Vec<(u64, Instant, Waker)>,
    next_id: u64,
}

impl ManualClock {
    /// A clock standing at the current instant.
    #[must_use]
    pub fn new() -> Self {
        Self {
            inner: Arc::new(Mutex::new(Inner {
                now: Instant::now(),
                sleepers: Vec::new(),
                next_id: 0,
            })),
        }
    }

    /// Moves the clock forward and wakes every sleep whose deadline has come.
    pub fn advance(&self, by: Duration) {
        let woken: Vec<Waker> = {
            let mut inner = self.lock();
            inner.now += by;
            let now = inner.now;
            let (due, waiting) = inner
                .sleepers
                .drain(..)
                .partition::<Vec<_>, _>(|(_, deadline, _)| *deadline <= now);
            inner.sleepers = waiting;
            due.into_iter().map(|(_, _, waker)| waker).collect()
        };
        woken.into_iter().for_each(Waker::wake);
    }

    /// How many sleeps are waiting for the clock to move (each counted at its latest poll).
    #[must_use]
    pub fn sleepers(&self) -> usize {
        self.lock().sleepers.len()
    }

    /// The deadlines of the waiting sleeps, soonest first: lets a test wait for one timer
    /// in particular when others are armed too.
    #[must_use]
    pub fn deadlines(&self) -> Vec<Instant> {
        let mut deadlines: Vec<Instant> = self
            .lock()
            .sleepers
            .iter()
            .map(|(_, deadline, _)| *deadline)
            .collect();
        deadlines.sort_unstable();
        deadlines
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Timer for ManualClock {
    fn now(&self) -> Instant {
        self.lock().now
    }

    fn sleep_until(&self, deadline: Instant) -> Sleep {
        let id = {
            let mut inner = self.lock();
            inner.next_id += 1;
            inner.next_id
        };
        Box::pin(ManualSleep {
            clock: self.clone(),
            deadline,
            id,
        })
    }
}

struct ManualSleep {
    clock: ManualClock,
    deadline: Instant,
    id: u64,
}

impl Future for ManualSleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut inner = self.clock.lock();
        inner.sleepers.retain(|(id, _, _)| *id != self.id);
        if inner.now >= self.deadline {
            return Poll::Ready(());
        }
        inner
            .sleepers
            .push((self.id, self.deadline, cx.waker().clone()));
        Poll::Pending
    }
}

impl Drop for ManualSleep {
    fn drop(&mut self) {
        self.clock
            .lock()
            .sleepers
            .retain(|(id, _, _)| *id != self.id);
    }
}

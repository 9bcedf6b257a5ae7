//! The loop that owns the socket: reads frames, hands them to the core and the filter call,
//! writes what the core answers, and keeps the timers.
//!
//! Works over any `futures::io` stream; time comes from the [`Timer`] it is given. The
//! protocol decisions are the core's ([`super::core`]); the filter call's life is
//! [`super::call`]'s. What is left here is I/O and waiting.

use std::future::poll_fn;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::io::{AsyncRead, AsyncWrite};
use log::{debug, warn};

use super::call::{FilterCall, Polled};
use super::config::ConnectionConfig;
use super::core::{CallAnswer, CallState, Core, Then};
use super::error::ConnectionError;
use super::shutdown::ShutdownHandle;
use crate::metrics::Stopwatch;
use crate::proto::{
    Agreed, Byte, Command, CommandKind, Frame, FrameDecoder, Needs, Response, negotiate,
};
use crate::rt::{Sleep, Timer};
use crate::session::{Event, Member};

/// What the output buffer starts with and shrinks back to: any reply but end-of-message
/// edits fits.
const OUT_CAPACITY: usize = 256;

/// Output capacity kept after a write: beyond it (a replaced body, say) the buffer is let
/// go after the write, so one large message does not pin its size for the connection's life.
const OUT_KEPT: usize = 64 * 1024;

/// One connection's I/O side.
pub(crate) struct Driver<S> {
    stream: S,
    decoder: FrameDecoder,
    out: Vec<u8>,
    timer: Arc<dyn Timer>,
    config: ConnectionConfig,
    id: u64,
    shutdown: ShutdownHandle,
    /// The timer of a wait for the MTA: the read timeout, and the moment an idle
    /// connection lets go of its buffers. It is armed once and kept across reads (a timer
    /// per read would cost the runtime a registration and a wake-up each time); when it
    /// fires early, because the MTA spoke meanwhile, it is armed again for what is left.
    read_timer: Option<Sleep>,
    /// When `read_timer` fires.
    read_timer_at: Option<Instant>,
    /// Which filters have settled on the current event (see `settle`).
    settled: Vec<bool>,
}

/// How waiting for the filters ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Settled {
    /// Each took the event (or returned); their states are recorded.
    Done,
    /// The MTA closed the connection meanwhile.
    Lost,
}

/// How long a connection waits with nothing buffered before it lets go of its buffers: far
/// above the gap between an MTA's commands in a busy session, short enough that thousands
/// of idle connections hold almost nothing.
const IDLE_RELEASE: Duration = Duration::from_millis(250);

/// Stack space an idle connection reads into, so it needs no buffer while it waits; the
/// first packets of most commands fit.
const IDLE_READ: usize = 1024;

/// One wait for a frame: when it began, when it times out, and which timeout that is.
#[derive(Clone, Copy)]
struct Wait {
    started: Instant,
    deadline: Option<Instant>,
    /// Waiting for OPTNEG (the negotiation timeout), not a later frame.
    negotiating: bool,
}

/// How one wait for bytes ended.
enum Waited {
    Read(usize),
    Stop,
}

impl<S> Driver<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    pub(crate) fn new(
        stream: S,
        timer: Arc<dyn Timer>,
        config: ConnectionConfig,
        id: u64,
        shutdown: ShutdownHandle,
    ) -> Self {
        Self {
            decoder: FrameDecoder::with_max_len(config.max_frame_len),
            stream,
            out: Vec::with_capacity(OUT_CAPACITY),
            timer,
            config,
            id,
            shutdown,
            read_timer: None,
            read_timer_at: None,
            settled: Vec::new(),
        }
    }

    /// Serves the connection until QUIT, end of stream, shutdown or an error.
    pub(crate) async fn run(&mut self, members: Vec<Member>) -> Result<(), ConnectionError> {
        let Some(agreed) = self.answer_optneg(&members).await? else {
            return Ok(());
        };
        let names = members.iter().map(|member| member.name.clone()).collect();
        let mut core = Core::new(self.id, agreed, &self.config, names);
        let mut calls: Vec<FilterCall> = members
            .into_iter()
            .map(|member| FilterCall::new(member, core.connection_data().clone()))
            .collect();
        let result = self.serve(&mut core, &mut calls).await;
        // Whatever happened, a filter still running is dropped now, not left to hang.
        calls.iter_mut().for_each(FilterCall::drop_running);
        result
    }

    /// Reads OPTNEG and answers it with what the filters need; `None` if the MTA went away
    /// first. Its own function so the negotiation's locals take no room in the connection's
    /// future while it serves.
    async fn answer_optneg(
        &mut self,
        members: &[Member],
    ) -> Result<Option<Agreed>, ConnectionError> {
        let Some(frame) = self.read_frame(None).await? else {
            return Ok(None);
        };
        let stopwatch = Stopwatch::start(&*self.timer);
        let Command::OptNeg(offer) = Command::decode_frame(&frame)? else {
            return Err(ConnectionError::Unexpected {
                command: Byte(frame.kind),
                expected: "OPTNEG",
            });
        };
        let needs = members
            .iter()
            .map(|member| member.filter.needs())
            .reduce(|all, needs| all.union(&needs))
            .unwrap_or_else(Needs::new);
        let agreed = negotiate(offer, &needs).map_err(ConnectionError::Negotiate)?;
        agreed.encode_reply(&mut self.out)?;
        self.flush().await?;
        stopwatch.replied(CommandKind::OptNeg, &*self.timer);
        Ok(Some(agreed))
    }

    async fn serve(
        &mut self,
        core: &mut Core,
        calls: &mut [FilterCall],
    ) -> Result<(), ConnectionError> {
        // Each call's state and own reply for the current event, reused from event to event.
        let mut answers: Vec<CallAnswer> = Vec::with_capacity(calls.len());
        let mut seqs: Vec<u64> = Vec::with_capacity(calls.len());
        // The connection data the sessions were last shown.
        let mut published = core.connection_data().clone();
        loop {
            if self.shutdown.is_shutdown() && !core.in_transaction() {
                debug!("connection {}: closing for shutdown", self.id);
                return Ok(());
            }
            let Some(frame) = self.read_frame(Some((&mut *core, &mut *calls))).await? else {
                return Ok(());
            };
            let stopwatch = Stopwatch::start(&*self.timer);
            let command = Command::decode_frame(&frame)?;
            let kind = command.kind();
            let event = Event::from_command(&command, &frame);
            let inbound = match &command {
                Command::OptNeg(_) => {
                    return Err(ConnectionError::Unexpected {
                        command: Byte(frame.kind),
                        expected: "a command after negotiation",
                    });
                }
                Command::Macro(macros) => match &event {
                    Some(event) => core.on_macro(macros.command(), event),
                    None => continue,
                },
                _ => core.on_command(kind, event.as_ref()),
            };
            // The event shares the frame's bytes; letting the frame go lets the decoder
            // reuse its buffer once the filters are done with the event.
            drop(frame);
            // Connection data changes at CONNECT, HELO and their macros only: tell the
            // sessions then, not at every frame.
            if !Arc::ptr_eq(&published, core.connection_data()) {
                published = core.connection_data().clone();
                for call in calls.iter_mut() {
                    call.publish(&published);
                }
            }
            if inbound.abort_call {
                end_calls(calls, true).await;
            }
            let event = match (inbound.then, event) {
                (Then::Close, _) => return Ok(()),
                (Then::AnswerDecided, _) => {
                    core.answer_decided(kind, &mut self.out)?;
                    self.flush().await?;
                    continue;
                }
                (Then::Nothing, _) | (_, None) => continue,
                (_, Some(event)) if kind == CommandKind::Macro => {
                    for call in calls.iter_mut() {
                        call.deliver_macro(event.clone());
                    }
                    continue;
                }
                (Then::StartAndDeliver, Some(event)) => {
                    for (index, call) in calls.iter_mut().enumerate() {
                        if core.takes_part(index) {
                            call.start(core.message_no(), core.take_spare_edits(index));
                        }
                    }
                    event
                }
                (Then::Deliver, Some(event)) => event,
            };
            seqs.clear();
            let last = calls.iter().rposition(FilterCall::is_running);
            let mut event = Some(event);
            for (index, call) in calls.iter_mut().enumerate() {
                let seq = match (&event, call.is_running()) {
                    // The last running filter gets the event itself, the others a copy.
                    (Some(_), true) if Some(index) == last => {
                        event.take().map_or(0, |event| call.deliver(event))
                    }
                    (Some(event), true) => call.deliver(event.clone()),
                    _ => 0,
                };
                seqs.push(seq);
            }
            answers.clear();
            answers.resize(calls.len(), (CallState::Idle, None));
            let at_eom = kind == CommandKind::EndOfMessage;
            if self.settle(core, calls, &mut answers, at_eom).await? == Settled::Lost {
                return Ok(());
            }
            for ((call, seq), (_, own)) in calls.iter_mut().zip(&seqs).zip(&mut answers) {
                if *seq != 0 {
                    *own = call.take_reply(*seq);
                }
            }
            let outbound = core.answer(kind, &answers, &mut self.out)?;
            self.flush().await?;
            if outbound.answer.is_some() {
                stopwatch.replied(kind, &*self.timer);
            }
            if outbound.message_over {
                end_calls(calls, false).await;
            }
        }
    }

    /// Polls every running filter until each takes the newest event and waits again, or
    /// returns (always, at end of message, sending PROGRESS meanwhile), recording each
    /// one's state in `answers`. They are polled side by side, so one busy filter delays
    /// the answer but not the others. The socket is watched so a closed connection drops
    /// the filters at once.
    async fn settle(
        &mut self,
        core: &mut Core,
        calls: &mut [FilterCall],
        answers: &mut [CallAnswer],
        at_eom: bool,
    ) -> Result<Settled, ConnectionError> {
        // Which filters have settled; the buffer is kept to spare an allocation per event.
        let mut settled = std::mem::take(&mut self.settled);
        settled.clear();
        settled.extend(calls.iter().map(|call| !call.is_running()));
        let result = self
            .settle_all(core, calls, answers, &mut settled, at_eom)
            .await;
        self.settled = settled;
        result
    }

    async fn settle_all(
        &mut self,
        core: &mut Core,
        calls: &mut [FilterCall],
        answers: &mut [CallAnswer],
        settled: &mut [bool],
        at_eom: bool,
    ) -> Result<Settled, ConnectionError> {
        let progress = self.config.progress_interval.filter(|_| at_eom);
        // Made only when a filter does not finish at once, which is the common case.
        let mut progress_timer: Option<Sleep> = None;
        loop {
            let step = poll_fn(|cx| {
                for (index, call) in calls.iter_mut().enumerate() {
                    let Some(done) = settled.get_mut(index) else {
                        continue;
                    };
                    if *done {
                        continue;
                    }
                    let state = match call.poll(cx) {
                        Poll::Ready(Polled::Idle) => CallState::Idle,
                        Poll::Ready(Polled::Returned(outcome)) => {
                            core.finished(index, outcome);
                            CallState::Finished
                        }
                        Poll::Ready(Polled::Parked(phase)) if !at_eom => CallState::Parked(phase),
                        Poll::Ready(Polled::Parked(_)) | Poll::Pending => continue,
                    };
                    *done = true;
                    if let Some((slot, _)) = answers.get_mut(index) {
                        *slot = state;
                    }
                }
                if settled.iter().all(|done| *done) {
                    return Poll::Ready(Ok(true));
                }
                loop {
                    match self.poll_read_ahead(cx) {
                        Poll::Ready(Ok(0)) => return Poll::Ready(Err(None)),
                        Poll::Ready(Err(error)) => return Poll::Ready(Err(Some(error))),
                        Poll::Ready(Ok(_)) => {}
                        Poll::Pending => break,
                    }
                }
                // A filter asked for PROGRESS itself (only end of message may be kept alive).
                let mut asked = false;
                for call in calls.iter_mut() {
                    // Every request is taken, so none lingers into a later wait.
                    asked |= call.take_progress_request();
                }
                if asked && at_eom {
                    return Poll::Ready(Ok(false));
                }
                if let Some(interval) = progress {
                    let timer = progress_timer.get_or_insert_with(|| self.timer.sleep(interval));
                    if timer.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(Ok(false));
                    }
                }
                Poll::Pending
            })
            .await;
            match step {
                Ok(true) => return Ok(Settled::Done),
                Err(None) => return Ok(Settled::Lost),
                Err(Some(error)) => return Err(ConnectionError::Io(error)),
                Ok(false) => {
                    progress_timer = None;
                    debug!(
                        "{}: filter still working, sending PROGRESS",
                        core.log_context()
                    );
                    Response::Progress.encode(&mut self.out)?;
                    self.flush().await?;
                }
            }
        }
    }

    // ===== I/O =====

    /// Writes the buffered output, giving up after the write timeout if the MTA does not
    /// take it.
    async fn flush(&mut self) -> Result<(), ConnectionError> {
        if self.out.is_empty() {
            return Ok(());
        }
        let Self {
            stream,
            out,
            timer,
            config,
            ..
        } = self;
        let mut written = 0;
        // Armed only when the MTA makes a write wait, which is rare.
        let mut deadline: Option<Sleep> = None;
        poll_fn(|cx| {
            let done = loop {
                let Some(rest) = out.get(written..).filter(|rest| !rest.is_empty()) else {
                    break Pin::new(&mut *stream).poll_flush(cx);
                };
                match Pin::new(&mut *stream).poll_write(cx, rest) {
                    Poll::Ready(Ok(0)) => {
                        break Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()));
                    }
                    Poll::Ready(Ok(n)) => written += n,
                    Poll::Ready(Err(error)) => break Poll::Ready(Err(error)),
                    Poll::Pending => break Poll::Pending,
                }
            };
            match done {
                Poll::Ready(result) => Poll::Ready(result.map_err(ConnectionError::Io)),
                Poll::Pending => {
                    let Some(timeout) = config.write_timeout else {
                        return Poll::Pending;
                    };
                    let sleep = deadline.get_or_insert_with(|| timer.sleep(timeout));
                    match sleep.as_mut().poll(cx) {
                        Poll::Ready(()) => Poll::Ready(Err(ConnectionError::WriteTimeout)),
                        Poll::Pending => Poll::Pending,
                    }
                }
            }
        })
        .await?;
        out.clear();
        if out.capacity() > OUT_KEPT {
            out.shrink_to(OUT_CAPACITY);
        }
        Ok(())
    }

    /// Reads until a whole frame is buffered; `None` at end of stream, or at shutdown
    /// between messages.
    ///
    /// The read timeout runs from when the MTA first makes us wait until the frame is
    /// whole, so a trickle of bytes cannot hold a connection open. Meanwhile a running
    /// filter keeps being polled, so its own timers and background work go on; a verdict it
    /// returns is recorded and answered at the next event.
    async fn read_frame(
        &mut self,
        mut filters: Option<(&mut Core, &mut [FilterCall])>,
    ) -> Result<Option<Frame>, ConnectionError> {
        if let Some(frame) = self.decoder.decode()? {
            return Ok(Some(frame));
        }
        // Before negotiation the shorter negotiation timeout applies.
        let timeout = match (&filters, self.config.negotiation_timeout) {
            (None, Some(timeout)) => Some(timeout),
            _ => self.config.read_timeout,
        };
        let started = self.timer.now();
        let wait = Wait {
            started,
            deadline: timeout.map(|timeout| started + timeout),
            negotiating: filters.is_none(),
        };
        let in_transaction = filters
            .as_ref()
            .is_some_and(|(core, _)| core.in_transaction());
        poll_fn(|cx| {
            if let Some((core, calls)) = &mut filters {
                for (index, call) in calls.iter_mut().enumerate() {
                    if let Poll::Ready(Polled::Returned(outcome)) = call.poll(cx) {
                        core.finished(index, outcome);
                    }
                }
            }
            loop {
                match self.poll_wait_read(cx, wait, in_transaction) {
                    Poll::Ready(Ok(Waited::Read(0))) => {
                        if self.decoder.buffered() > 0 {
                            match &filters {
                                Some((core, _)) => {
                                    warn!("{}: stream ended inside a frame", core.log_context());
                                }
                                None => {
                                    warn!("connection {}: stream ended inside a frame", self.id);
                                }
                            }
                        }
                        return Poll::Ready(Ok(None));
                    }
                    Poll::Ready(Ok(Waited::Read(_))) => match self.decoder.decode() {
                        Ok(Some(frame)) => return Poll::Ready(Ok(Some(frame))),
                        Ok(None) => {}
                        Err(error) => return Poll::Ready(Err(error.into())),
                    },
                    Poll::Ready(Ok(Waited::Stop)) => {
                        debug!("connection {}: closing for shutdown", self.id);
                        return Poll::Ready(Ok(None));
                    }
                    Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
                    Poll::Pending => return Poll::Pending,
                }
            }
        })
        .await
    }

    /// Waits for bytes, a shutdown between messages, or the read timeout; lets go of the
    /// buffers once the wait has lasted [`IDLE_RELEASE`] with nothing buffered.
    fn poll_wait_read(
        &mut self,
        cx: &mut Context<'_>,
        wait: Wait,
        in_transaction: bool,
    ) -> Poll<Result<Waited, ConnectionError>> {
        if let Poll::Ready(result) = self.poll_read_more(cx) {
            return Poll::Ready(result.map(Waited::Read).map_err(ConnectionError::Io));
        }
        // Between messages a shutdown closes the connection; inside one it waits.
        if !in_transaction && self.shutdown.poll_shutdown(cx).is_ready() {
            return Poll::Ready(Ok(Waited::Stop));
        }
        loop {
            let idle = self.decoder.buffered() == 0 && self.decoder.holds_storage();
            let release_at = idle.then(|| wait.started + IDLE_RELEASE);
            let wake_at = match (wait.deadline, release_at) {
                (Some(deadline), Some(release)) => Some(deadline.min(release)),
                (deadline, release) => deadline.or(release),
            };
            let Some(wake_at) = wake_at else {
                self.read_timer = None;
                self.read_timer_at = None;
                return Poll::Pending;
            };
            // Armed for a later moment (or not at all): arm for this one.
            if self.read_timer_at.is_none_or(|at| at > wake_at) {
                self.read_timer = Some(self.timer.sleep_until(wake_at));
                self.read_timer_at = Some(wake_at);
            }
            let Some(timer) = self.read_timer.as_mut() else {
                return Poll::Pending;
            };
            if timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            // Fired: time out, or let go of the buffers, or (armed for an earlier silence
            // that the MTA broke) arm again for what is left.
            self.read_timer = None;
            self.read_timer_at = None;
            let now = self.timer.now();
            if wait.deadline.is_some_and(|deadline| now >= deadline) {
                return Poll::Ready(Err(if wait.negotiating {
                    ConnectionError::NegotiationTimeout
                } else {
                    ConnectionError::Timeout
                }));
            }
            if release_at.is_some_and(|release| now >= release) {
                self.decoder.release();
                self.out = Vec::new();
            }
        }
    }

    /// Reads what the MTA sent into the decoder's free space or, until the decoder lends
    /// space (a new or idle connection, and after its first packet), into stack space first.
    fn poll_read_more(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<usize>> {
        if !self.decoder.lends_spare() {
            let mut scratch = [0; IDLE_READ];
            let read = Pin::new(&mut self.stream).poll_read(cx, &mut scratch);
            if let Poll::Ready(Ok(n)) = read {
                self.decoder.push(scratch.get(..n).unwrap_or_default());
            }
            return read;
        }
        let mut spare = self.decoder.spare();
        match Pin::new(&mut self.stream).poll_read(cx, &mut spare) {
            Poll::Ready(Ok(n)) => {
                spare.commit(n);
                Poll::Ready(Ok(n))
            }
            other => other,
        }
    }

    /// Reads ahead while the filter is busy, only to notice a closed connection; frames
    /// stay buffered for later, up to one maximum frame.
    fn poll_read_ahead(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<usize>> {
        if self.decoder.buffered() > self.decoder.max_len() as usize + 4 {
            return Poll::Pending;
        }
        self.poll_read_more(cx)
    }
}

/// Ends the message's calls (see [`FilterCall::end`]); one still running when the message
/// ends is aborted, so its awaits fail with `Error::Aborted`.
async fn end_calls(calls: &mut [FilterCall], abort: bool) {
    poll_fn(|cx| {
        for call in calls.iter_mut() {
            let running = call.is_running();
            call.end(abort || running, cx);
        }
        Poll::Ready(())
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rt::ManualClock;

    #[test]
    fn the_output_buffer_is_let_go_after_a_large_write() {
        let stream = futures::io::Cursor::new(Vec::new());
        let timer: Arc<dyn Timer> = Arc::new(ManualClock::new());
        let config = ConnectionConfig::default();
        let mut driver = Driver::new(stream, timer, config, 1, ShutdownHandle::new());
        driver.out.resize(8 * 1024 * 1024, b'x');
        futures::executor::block_on(driver.flush()).unwrap();
        assert_eq!(driver.stream.get_ref().len(), 8 * 1024 * 1024);
        assert!(
            driver.out.capacity() <= OUT_KEPT,
            "{}",
            driver.out.capacity()
        );
        // A small reply keeps its buffer: no allocation per reply.
        driver.out.extend_from_slice(b"\0\0\0\x01c");
        let kept = driver.out.as_ptr();
        futures::executor::block_on(driver.flush()).unwrap();
        driver.out.push(b'c');
        assert_eq!(driver.out.as_ptr(), kept);
    }

    /// An MTA side held in memory: reads take what the test queued, or wait.
    #[derive(Default)]
    struct Queued {
        incoming: std::collections::VecDeque<u8>,
    }

    impl AsyncRead for Queued {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
            buf: &mut [u8],
        ) -> Poll<std::io::Result<usize>> {
            if self.incoming.is_empty() {
                return Poll::Pending;
            }
            let n = buf.len().min(self.incoming.len());
            for (slot, byte) in buf.iter_mut().zip(self.incoming.drain(..n)) {
                *slot = byte;
            }
            Poll::Ready(Ok(n))
        }
    }

    impl AsyncWrite for Queued {
        fn poll_write(
            self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<std::io::Result<usize>> {
            Poll::Ready(Ok(buf.len()))
        }

        fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_close(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    #[test]
    fn an_idle_connection_lets_go_of_its_buffers_and_reads_on() {
        use std::task::Waker;

        let clock = ManualClock::new();
        let timer: Arc<dyn Timer> = Arc::new(clock.clone());
        let config = ConnectionConfig::default();
        let mut driver = Driver::new(Queued::default(), timer, config, 1, ShutdownHandle::new());
        let mut cx = Context::from_waker(Waker::noop());
        driver.stream.incoming.extend([0, 0, 0, 2, b'H', b'x']);
        let frame = futures::executor::block_on(driver.read_frame(None)).unwrap();
        assert_eq!(frame.map(|f| f.kind), Some(b'H'));
        assert!(driver.decoder.holds_storage());
        {
            let mut waiting = Box::pin(driver.read_frame(None));
            assert!(waiting.as_mut().poll(&mut cx).is_pending());
            clock.advance(IDLE_RELEASE.saturating_sub(Duration::from_millis(1)));
            assert!(waiting.as_mut().poll(&mut cx).is_pending());
        }
        assert!(driver.decoder.holds_storage(), "not idle long enough yet");
        {
            let mut waiting = Box::pin(driver.read_frame(None));
            assert!(waiting.as_mut().poll(&mut cx).is_pending());
            clock.advance(IDLE_RELEASE);
            assert!(waiting.as_mut().poll(&mut cx).is_pending());
        }
        assert!(!driver.decoder.holds_storage(), "released while idle");
        assert_eq!(driver.out.capacity(), 0);
        // The next frames are read through stack space, the large one into a new buffer.
        driver
            .stream
            .incoming
            .extend([0, 0, 0, 2, b'Q', b'y', 0, 0, 0x20, 0x01, b'B']);
        driver.stream.incoming.extend([b'z'; 0x2000]);
        let small = futures::executor::block_on(driver.read_frame(None)).unwrap();
        assert_eq!(small.map(|f| f.payload.to_vec()), Some(b"y".to_vec()));
        let large = futures::executor::block_on(driver.read_frame(None)).unwrap();
        assert_eq!(large.map(|f| f.payload.len()), Some(0x2000));
    }
}

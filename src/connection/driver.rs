//! The per-connection driver: reads frames, feeds the session, polls the filter, answers.
//!
//! Works over any `futures::io` stream and needs no runtime: time comes from the
//! configured [`Sleep`](super::Sleep). The filter future is polled here directly, so an
//! event reaches the filter without a channel hop or a task switch.

use std::any::Any;
use std::future::{Future, poll_fn};
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use futures::FutureExt;
use futures::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use log::{debug, error, info, warn};

use super::answer::{Answer, Decided, after_verdict, while_running};
use super::config::{ConnectionConfig, ShutdownSignal};
use super::error::ConnectionError;
use crate::proto::{
    Agreed, Byte, Command, CommandKind, Frame, FrameDecoder, MacroStage, ProtocolFlags, Response,
    negotiate,
};
use crate::session::{
    ConnectionData, EditQueue, Error, Event, Filter, Finished, HeaderLayout, Mailbox, Phase,
    Recycled, Session, SharedMailbox, Verdict, lock,
};

type CallOutput = Result<(Result<Verdict, Error>, Finished), Box<dyn Any + Send>>;
type FilterFuture = Pin<Box<dyn Future<Output = CallOutput> + Send>>;
type Timer = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Serves one MTA connection until QUIT, end of stream or a protocol error.
///
/// `id` names the connection in log lines. The stream is any `futures::io` stream: a
/// socket from any runtime (through its compatibility layer), or an in-memory pipe.
pub async fn serve_connection<S, F>(
    stream: S,
    filter: Arc<F>,
    config: ConnectionConfig,
    id: u64,
) -> Result<(), ConnectionError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
    F: Filter + ?Sized,
{
    let mut driver = Driver {
        decoder: FrameDecoder::with_max_len(config.max_frame_len),
        read_timer: None,
        stop: config.shutdown.clone(),
        stream,
        out: Vec::with_capacity(256),
        config,
        id,
        filter,
        conn: None,
        mailbox: Arc::new(std::sync::Mutex::new(Mailbox::default())),
        running: None,
        decided: None,
        edits: None,
        call_started: false,
        recycled: None,
        message_no: 0,
        transaction: Transaction::Closed,
        queue_id: None,
        postfix: false,
    };
    info!("connection {id}: opened");
    let result = driver.run().await;
    // Whatever happened, a filter still running is dropped now, not left to hang.
    driver.running = None;
    match &result {
        Ok(()) => info!("connection {id}: closed"),
        Err(error) => warn!("connection {id}: closed: {error}"),
    }
    result
}

struct Driver<S, F: ?Sized> {
    stream: S,
    decoder: FrameDecoder,
    /// The read timeout's timer. It is armed once and kept across reads (a timer per read
    /// would cost the runtime a registration and a wake-up each time); when it fires early,
    /// because the MTA spoke meanwhile, it is armed again for the rest of the silence.
    read_timer: Option<Timer>,
    /// The server's shutdown signal, kept so that waiting on it registers only once.
    stop: Option<ShutdownSignal>,
    out: Vec<u8>,
    config: ConnectionConfig,
    id: u64,
    filter: Arc<F>,
    conn: Option<Arc<ConnectionData>>,
    mailbox: SharedMailbox,
    running: Option<FilterFuture>,
    decided: Option<Decided>,
    edits: Option<EditQueue>,
    call_started: bool,
    /// Storage the last finished session left for the next one.
    recycled: Option<Recycled>,
    message_no: u64,
    transaction: Transaction,
    /// The MTA's queue id (macro `i`) for log lines, once sent.
    queue_id: Option<String>,
    /// The MTA has shown itself to be Postfix (macros before a header or body chunk, which
    /// Sendmail never sends); decides how header positions are numbered.
    postfix: bool,
}

/// Where the current message stands, for telling where one ends and the next begins.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Transaction {
    /// No message is open.
    Closed,
    /// A MAIL-stage macro packet arrived: the message has begun.
    Open,
    /// The MAIL command, or a packet of a later stage, arrived: a further MAIL-stage packet
    /// starts a new message even without ABORT.
    PastMail,
}

/// How waiting for the filter ended.
enum Settled {
    /// The filter took the event and waits for a later one.
    Parked(Phase),
    /// The filter returned.
    Finished,
    /// The MTA closed the connection meanwhile.
    Lost,
}

enum Step {
    Settled(Settled),
    Progress,
}

/// How waiting for bytes ended.
enum Waited {
    Read(usize),
    Stop,
}

impl<S, F> Driver<S, F>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
    F: Filter + ?Sized,
{
    async fn run(&mut self) -> Result<(), ConnectionError> {
        let Some(frame) = self.read_frame().await? else {
            return Ok(());
        };
        let Command::OptNeg(offer) = Command::decode_frame(&frame)? else {
            return Err(ConnectionError::Unexpected {
                command: Byte(frame.kind),
                expected: "OPTNEG",
            });
        };
        let agreed = negotiate(offer, &self.filter.needs()).map_err(ConnectionError::Negotiate)?;
        self.log_negotiation(&agreed);
        agreed.encode_reply(&mut self.out)?;
        self.flush().await?;
        self.conn = Some(Arc::new(ConnectionData::new(
            self.id,
            Arc::new(agreed),
            self.config.max_headers,
        )));

        loop {
            if self.stopping() && !self.in_transaction() {
                debug!("connection {}: closing for shutdown", self.id);
                return Ok(());
            }
            let Some(frame) = self.read_frame().await? else {
                return Ok(());
            };
            let command = Command::decode_frame(&frame)?;
            match command {
                Command::OptNeg(_) => {
                    return Err(ConnectionError::Unexpected {
                        command: Byte(frame.kind),
                        expected: "a command after negotiation",
                    });
                }
                // Outside a message ABORT means nothing: Postfix sends it after every
                // message and after a repeated HELO, which must not end a call that began
                // at connect.
                Command::Abort if self.in_transaction() => self.end_message(true).await,
                Command::Abort => {}
                Command::Quit => return Ok(()),
                Command::QuitNewConnection => {
                    self.end_message(true).await;
                    if let Some(conn) = &mut self.conn {
                        Arc::make_mut(conn).reset();
                    }
                }
                Command::Macro(macros) => {
                    if matches!(macros.command(), b'L' | b'B') {
                        self.postfix = true;
                    }
                    if let Some(event) = Event::from_command(&command, &frame) {
                        self.on_macro(event).await;
                    }
                }
                _ => {
                    let kind = command.kind();
                    let Some(event) = Event::from_command(&command, &frame) else {
                        continue;
                    };
                    drop(frame);
                    if !self.on_command(kind, event).await? {
                        return Ok(());
                    }
                }
            }
        }
    }

    fn in_transaction(&self) -> bool {
        self.transaction != Transaction::Closed
    }

    /// Whether the server is shutting down.
    fn stopping(&self) -> bool {
        self.config
            .shutdown
            .as_ref()
            .is_some_and(|s| s.peek().is_some())
    }

    fn agreed(&self) -> Arc<Agreed> {
        self.conn
            .as_ref()
            .map_or_else(|| unreachable!("negotiated first"), |c| c.agreed.clone())
    }

    fn log_negotiation(&self, agreed: &Agreed) {
        let id = self.id;
        info!(
            "connection {id}: negotiated version {} actions {:?} protocol {:?}",
            agreed.options.version, agreed.options.actions, agreed.options.protocol
        );
        if !agreed.missing_actions.is_empty() {
            warn!(
                "connection {id}: MTA does not allow {:?}; those edits will be refused",
                agreed.missing_actions
            );
        }
        if !agreed.missing_options.is_empty() {
            warn!(
                "connection {id}: MTA does not offer {:?}",
                agreed.missing_options
            );
        }
        if !agreed.missing_events.is_empty() {
            warn!(
                "connection {id}: protocol version {} never sends {:?}",
                agreed.options.version, agreed.missing_events
            );
        }
    }

    // ===== message boundaries =====

    /// Ends the open message if a packet of `phase` starts a new one without ABORT, then
    /// records that a packet of `phase` arrived (`is_mail_command`: the MAIL command
    /// itself, as opposed to its macros).
    async fn at_boundary(&mut self, phase: Phase, is_mail_command: bool) {
        let new_message = match phase {
            Phase::Connect | Phase::Helo => self.transaction != Transaction::Closed,
            Phase::Mail => self.transaction == Transaction::PastMail,
            _ => false,
        };
        if new_message {
            self.end_message(true).await;
        }
        if phase > Phase::Mail || is_mail_command {
            self.transaction = Transaction::PastMail;
        } else if phase == Phase::Mail && self.transaction == Transaction::Closed {
            self.transaction = Transaction::Open;
        }
    }

    fn start_call(&mut self) {
        let Some(conn) = self.conn.clone() else {
            return;
        };
        self.message_no += 1;
        lock(&self.mailbox).reset();
        let phase = if conn.helo.is_some() {
            Phase::Helo
        } else if conn.client.is_some() {
            Phase::Connect
        } else {
            Phase::Start
        };
        let recycled = self.recycled.take().unwrap_or_default();
        let session = Session::new(self.mailbox.clone(), conn, self.message_no, phase, recycled);
        let filter = self.filter.clone();
        let call = async move {
            let mut session = session;
            let result = filter.filter(&mut session).await;
            (result, session.finish())
        };
        self.running = Some(Box::pin(AssertUnwindSafe(call).catch_unwind()));
        self.call_started = true;
        self.decided = None;
        self.edits = None;
    }

    /// Ends the current message. On `abort` a running filter's awaits fail with
    /// [`Error::Aborted`] and it gets one last poll to return; its edits are dropped.
    async fn end_message(&mut self, abort: bool) {
        if let Some(mut running) = self.running.take() {
            if abort {
                lock(&self.mailbox).abort();
                let last = poll_fn(|cx| Poll::Ready(running.as_mut().poll(cx))).await;
                if let Poll::Ready(Ok((Err(error), _))) = last {
                    debug!("connection {}: filter ended after abort: {error}", self.id);
                }
            }
        }
        if abort && self.call_started {
            debug!("connection {}: message aborted", self.id);
        }
        self.decided = None;
        self.edits = None;
        self.call_started = false;
        self.transaction = Transaction::Closed;
        self.queue_id = None;
    }

    // ===== events =====

    async fn on_macro(&mut self, event: Event) {
        let Event::Macro { stage, raw } = &event else {
            return;
        };
        if let Some(queue_id) = find_queue_id(raw) {
            // Postfix repeats it before every command: keep the copy made the first time.
            if self.queue_id.as_deref().map(str::as_bytes) != Some(queue_id) {
                self.queue_id = Some(String::from_utf8_lossy(queue_id).into_owned());
            }
        }
        let phase = match stage {
            MacroStage::Connect => Phase::Connect,
            MacroStage::Helo => Phase::Helo,
            MacroStage::Mail => Phase::Mail,
            MacroStage::Rcpt => Phase::Rcpt,
            MacroStage::Data => Phase::Data,
            MacroStage::EndOfHeaders => Phase::EndOfHeaders,
            MacroStage::EndOfMessage => Phase::EndOfMessage,
        };
        self.at_boundary(phase, false).await;
        if ConnectionData::is_connection_event(&event) {
            if let Some(conn) = &mut self.conn {
                Arc::make_mut(conn).apply(&event);
            }
        }
        if !self.call_started {
            self.start_call();
        }
        if self.running.is_some() {
            lock(&self.mailbox).push_macro(event);
        }
    }

    /// Handles one command; returns false when the connection should close.
    async fn on_command(
        &mut self,
        kind: CommandKind,
        event: Event,
    ) -> Result<bool, ConnectionError> {
        let phase = Phase::of(kind);
        if let Event::Unknown(line) = &event {
            debug!("connection {}: unknown SMTP command {line}", self.id);
        }
        if let Some(phase) = phase {
            self.at_boundary(phase, kind == CommandKind::Mail).await;
        }
        if ConnectionData::is_connection_event(&event) {
            if let Some(conn) = &mut self.conn {
                Arc::make_mut(conn).apply(&event);
            }
        }
        if !self.call_started {
            self.start_call();
        }
        let agreed = self.agreed();
        let skip_allowed = agreed.options.protocol.contains(ProtocolFlags::SKIP);
        let at_eom = kind == CommandKind::EndOfMessage;

        let mut message_verdict = false;
        let answer = if self.running.is_some() {
            let seq = lock(&self.mailbox).push_command(event);
            let settled = self.settle(at_eom).await?;
            let own = lock(&self.mailbox).answer(seq);
            match settled {
                Settled::Lost => return Ok(false),
                Settled::Parked(waits_for) => while_running(phase, own, waits_for, skip_allowed),
                Settled::Finished => {
                    if let Some(reply) = own {
                        reply.into()
                    } else {
                        message_verdict = true;
                        self.decided_answer(phase, skip_allowed)
                    }
                }
            }
        } else {
            message_verdict = true;
            self.decided_answer(phase, skip_allowed)
        };

        if at_eom || agreed.expects_reply(kind) {
            if message_verdict && matches!(answer, Answer::Verdict(_) | Answer::EditsThen(_)) {
                if let Some(decided) = &mut self.decided {
                    decided.sent = true;
                }
            }
            self.send(&answer)?;
            self.flush().await?;
        }
        // After end of message, or a verdict for the whole message, the MTA sends nothing
        // more for it (Sendmail not even ABORT), so the message ends here.
        let message_over = message_verdict
            && matches!(answer, Answer::Verdict(_))
            && phase.is_some_and(Phase::is_message_wide)
            && self.decided.as_ref().is_some_and(|d| d.sent);
        if at_eom || message_over {
            self.end_message(false).await;
        }
        Ok(true)
    }

    fn decided_answer(&self, phase: Option<Phase>, skip_allowed: bool) -> Answer {
        match &self.decided {
            Some(decided) => after_verdict(decided, phase, skip_allowed),
            None => Answer::Continue,
        }
    }

    /// Polls the filter until it takes the newest event and waits again, or returns
    /// (always, at end of message). Meanwhile the socket is watched so a closed connection
    /// drops the filter at once.
    async fn settle(&mut self, at_eom: bool) -> Result<Settled, ConnectionError> {
        let progress = if at_eom {
            self.config.progress_interval
        } else {
            None
        };
        // Made only when the filter does not finish at once, which is the common case.
        let mut timer: Option<Timer> = None;
        loop {
            let step = poll_fn(|cx| {
                let Some(running) = &mut self.running else {
                    return Poll::Ready(Ok(Step::Settled(Settled::Finished)));
                };
                lock(&self.mailbox).clear_parked();
                if let Poll::Ready(output) = running.as_mut().poll(cx) {
                    self.running = None;
                    self.record_outcome(output);
                    return Poll::Ready(Ok(Step::Settled(Settled::Finished)));
                }
                {
                    let mailbox = lock(&self.mailbox);
                    if let (false, true, Some(phase)) =
                        (at_eom, mailbox.drained(), mailbox.parked())
                    {
                        return Poll::Ready(Ok(Step::Settled(Settled::Parked(phase))));
                    }
                }
                loop {
                    match self.poll_read_ahead(cx) {
                        Poll::Ready(Ok(0)) => return Poll::Ready(Ok(Step::Settled(Settled::Lost))),
                        Poll::Ready(Err(error)) => {
                            return Poll::Ready(Err(ConnectionError::Io(error)));
                        }
                        Poll::Ready(Ok(_)) => {}
                        Poll::Pending => break,
                    }
                }
                if let (Some(interval), Some(sleep)) = (progress, &self.config.sleep) {
                    let timer = timer.get_or_insert_with(|| sleep(interval));
                    if timer.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(Ok(Step::Progress));
                    }
                }
                Poll::Pending
            })
            .await?;
            match step {
                Step::Settled(settled) => return Ok(settled),
                Step::Progress => {
                    timer = None;
                    debug!(
                        "connection {}: filter still working, sending PROGRESS",
                        self.id
                    );
                    Response::Progress.encode(&mut self.out)?;
                    self.flush().await?;
                }
            }
        }
    }

    fn record_outcome(&mut self, output: CallOutput) {
        let id = self.id;
        let (verdict, edits, message_only) = match output {
            Ok((Ok(verdict), finished)) => {
                self.recycled = Some(finished.recycled);
                (verdict, Some(finished.edits), false)
            }
            Ok((Err(Error::Aborted), finished)) => {
                self.recycled = Some(finished.recycled);
                debug!("connection {id}: filter returned after abort");
                (Verdict::Continue, None, true)
            }
            Ok((Err(error), finished)) => {
                self.recycled = Some(finished.recycled);
                error!(
                    "connection {id}: filter failed: {error}; answering {:?}",
                    self.config.error_verdict
                );
                (self.config.error_verdict.clone(), None, true)
            }
            Err(panic) => {
                let message = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                error!(
                    "connection {id}: filter panicked: {message}; answering {:?}",
                    self.config.error_verdict
                );
                (self.config.error_verdict.clone(), None, true)
            }
        };
        let queue_id = self.queue_id.as_deref().unwrap_or("-");
        info!(
            "connection {id}: message {} (queue id {queue_id}): verdict {verdict:?}",
            self.message_no
        );
        self.decided = Some(Decided {
            verdict,
            has_edits: edits.as_ref().is_some_and(|e| !e.is_empty()),
            message_only,
            sent: false,
        });
        self.edits = edits;
    }

    fn send(&mut self, answer: &Answer) -> Result<(), ConnectionError> {
        match answer {
            Answer::Continue => Response::Continue.encode(&mut self.out)?,
            Answer::Skip => Response::Skip.encode(&mut self.out)?,
            Answer::Verdict(verdict) => verdict.encode(&mut self.out),
            Answer::EditsThen(verdict) => {
                let layout = self.header_layout();
                if let Some(edits) = &self.edits {
                    let start = self.out.len();
                    if let Err(error) = edits.encode(&mut self.out, layout) {
                        error!("connection {}: cannot send edits: {error}", self.id);
                        self.out.truncate(start);
                        Response::Tempfail.encode(&mut self.out)?;
                        return Ok(());
                    }
                }
                verdict.encode(&mut self.out);
            }
        }
        Ok(())
    }

    /// How this MTA numbers header positions: Postfix when it has sent macros before a
    /// header or body chunk (Sendmail never does), or its connect macro `v` names it;
    /// Sendmail when it sent connect macros otherwise (both MTAs do by default); plain
    /// (libmilter's documentation read literally) for a peer that sent none, such as
    /// miltertest.
    fn header_layout(&self) -> HeaderLayout {
        let Some(conn) = self.conn.as_ref() else {
            return HeaderLayout::Plain;
        };
        let named_postfix = conn
            .macros
            .get_in(MacroStage::Connect, "v")
            .is_some_and(|v| v.starts_with(b"Postfix"));
        if self.postfix || named_postfix {
            HeaderLayout::Postfix
        } else if conn.macros.pairs(MacroStage::Connect).next().is_some() {
            HeaderLayout::Sendmail {
                templates: self.config.sendmail_header_templates,
            }
        } else {
            HeaderLayout::Plain
        }
    }

    // ===== I/O =====

    async fn flush(&mut self) -> Result<(), ConnectionError> {
        if !self.out.is_empty() {
            self.stream.write_all(&self.out).await?;
            self.stream.flush().await?;
            self.out.clear();
        }
        Ok(())
    }

    /// Reads until a whole frame is buffered; `None` at end of stream, or at shutdown
    /// between messages.
    ///
    /// The read timeout runs from when the MTA first makes us wait until the frame is
    /// whole, so a trickle of bytes cannot hold a connection open. Meanwhile a running
    /// filter keeps being polled, so its own timers and background work go on.
    async fn read_frame(&mut self) -> Result<Option<Frame>, ConnectionError> {
        if let Some(frame) = self.decoder.decode()? {
            return Ok(Some(frame));
        }
        let since = Instant::now();
        poll_fn(|cx| {
            self.poll_idle_filter(cx);
            loop {
                match self.poll_wait_read(cx, since) {
                    Poll::Ready(Ok(Waited::Read(0))) => {
                        if self.decoder.buffered() > 0 {
                            warn!("connection {}: stream ended inside a frame", self.id);
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

    /// Polls a running filter while no event is pending, recording its verdict if it
    /// returns; the verdict is answered at the next event.
    fn poll_idle_filter(&mut self, cx: &mut Context<'_>) {
        if let Some(running) = &mut self.running {
            lock(&self.mailbox).clear_parked();
            if let Poll::Ready(output) = running.as_mut().poll(cx) {
                self.running = None;
                self.record_outcome(output);
            }
        }
    }

    /// Waits for bytes, a shutdown between messages, or the read timeout (counted from
    /// `since`, when the wait began).
    fn poll_wait_read(
        &mut self,
        cx: &mut Context<'_>,
        since: Instant,
    ) -> Poll<Result<Waited, ConnectionError>> {
        if let Poll::Ready(result) = self.poll_read_more(cx) {
            return Poll::Ready(result.map(Waited::Read).map_err(ConnectionError::Io));
        }
        // Between messages a shutdown closes the connection; inside one it waits.
        if !self.in_transaction() {
            if let Some(stop) = &mut self.stop {
                if Pin::new(stop).poll(cx).is_ready() {
                    return Poll::Ready(Ok(Waited::Stop));
                }
            }
        }
        if let (Some(timeout), Some(sleep)) = (self.config.read_timeout, &self.config.sleep) {
            loop {
                let timer = self.read_timer.get_or_insert_with(|| sleep(timeout));
                if timer.as_mut().poll(cx).is_pending() {
                    break;
                }
                match timeout.checked_sub(since.elapsed()) {
                    Some(rest) if !rest.is_zero() => self.read_timer = Some(sleep(rest)),
                    _ => {
                        self.read_timer = None;
                        return Poll::Ready(Err(ConnectionError::Timeout));
                    }
                }
            }
        }
        Poll::Pending
    }

    fn poll_read_more(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<usize>> {
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

/// The value of macro `i` in a MACRO packet's pairs, if present.
fn find_queue_id(raw: &[u8]) -> Option<&[u8]> {
    let mut parts = raw.split(|&b| b == 0);
    while let (Some(name), Some(value)) = (parts.next(), parts.next()) {
        if (name == b"i" || name == b"{i}") && !value.is_empty() {
            return Some(value);
        }
    }
    None
}

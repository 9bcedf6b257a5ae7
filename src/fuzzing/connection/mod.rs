//! The `connection` target: one whole connection (frame decoder, connection core, session,
//! edit queue) served over an in-memory stream to a scripted MTA, with a filter (or a
//! `FilterList` of two) whose awaits, edits and verdicts the input chooses too.
//!
//! Everything runs on the calling thread: the connection future is polled by hand with a
//! waker that only records a wake-up, and time is a [`ManualClock`] the harness moves only
//! while the filter sleeps or the MTA waits. The same input always plays the same way.
//!
//! Checked on every step, each as an assertion that fails the run:
//!
//! * no panic (a scripted filter panic is caught by the connection and becomes the error
//!   verdict);
//! * every response decodes, is at most 65535 bytes and answers a command that waits for
//!   one: exactly one final response per command the negotiated flags leave answered
//!   (none under `NR_*`, none for MACRO, ABORT, QUIT, `QUIT_NC`), in order, none missing once
//!   the connection has dealt with what was sent;
//! * the OPTNEG reply is the negotiated one;
//! * SKIP only in reply to a body chunk, and only with `SKIP` agreed; PROGRESS only while
//!   end of message waits; modifications only at end of message, before the final
//!   response, only with their action agreed, in the documented flush order, and only
//!   before a passing verdict;
//! * the answers follow what the filter decided (see `oracle`): its verdict where the
//!   documentation says it lands, its own refusal of a recipient or unknown command, and at
//!   end of message exactly the edits it queued (for a single filter; a list gets the
//!   other checks);
//! * memory stays bounded: the bytes the connection writes are bounded by what the input
//!   asked for, and while the filter holds a body chunk the connection reads ahead at most
//!   about one maximal frame;
//! * what a session hands the filter is consistent: headers in arrival order with handles
//!   counting from 0, no more recipients than arrived, body chunks in frame order, message
//!   numbers rising from call to call;
//! * the connection ends exactly when the MTA makes it end, with the matching result:
//!   QUIT or end of stream close cleanly; bytes that are not the protocol, a misplaced
//!   OPTNEG or a failed negotiation end it with that error; silence reaching the read
//!   timeout ends it with a timeout and shorter silence does not; a graceful shutdown ends
//!   it once no message is open; and the filter's call is dropped when it ends.

mod filter;
mod frames;
mod generate;
mod input;
mod mta;
mod oracle;
mod pipe;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use filter::{Probe, Scripted, SharedProbe, lock as probe};
use input::{Input, NeedsChoice, Offer, Settings};
use mta::{Ending, Mta};
use oracle::Oracle;
use pipe::{FilterEnd, SharedWire, Wire, lock as wire};

pub use filter::ScriptedPanic;
pub use generate::connection_input;

use crate::FilterList;
use crate::connection::{
    Builder, Connection, ConnectionConfig, ConnectionError, DEFAULT_MAX_HEADERS,
    DEFAULT_READ_TIMEOUT, ShutdownHandle,
};
use crate::proto::{
    Actions, CommandKind, DEFAULT_MAX_FRAME_LEN, Events, MacroStage, Needs, OptNeg, ProtocolFlags,
};
use crate::rt::{ManualClock, Timer};
use crate::session::Verdict;

/// Polls one stall may take before the connection counts as spinning.
const MAX_POLLS: usize = 10_000;

/// One-second clock steps one wait for a sleeping filter may take.
const MAX_SLEEP_STEPS: usize = 100_000;

/// How long the MTA stays silent for each `Op::Wait` choice, in seconds: around each read
/// timeout the settings offer.
const WAITS: [u64; 12] = [1, 5, 9, 10, 11, 59, 60, 61, 3600, 7209, 7210, 7211];

/// Fuzz target `connection`: see the module documentation for the input and the checks.
///
/// Installs (once) a panic hook that keeps the filter's scripted panics quiet and passes
/// every other panic to the hook that was there.
///
/// # Panics
///
/// When one of the checked properties does not hold.
pub fn connection(data: &[u8]) {
    quiet_scripted_panics();
    Harness::new(Input::read(data)).run();
}

/// What `data` means as an input of [`connection`]: the offer, needs, settings, the
/// filter's scripts and the MTA's operations, for reading a failing input.
#[must_use]
pub fn connection_input_text(data: &[u8]) -> String {
    format!("{:?}", Input::read(data))
}

/// Keeps panics whose payload is [`ScriptedPanic`] out of the output; every other panic
/// goes to the hook installed before (libFuzzer's aborts the process, as it must).
fn quiet_scripted_panics() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !info.payload().is::<ScriptedPanic>() {
                previous(info);
            }
        }));
    });
}

/// A waker that only records that it was woken.
#[derive(Default)]
struct Woken(AtomicBool);

impl Wake for Woken {
    fn wake(self: Arc<Self>) {
        self.0.store(true, Ordering::SeqCst);
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// The settings a [`Settings`] stands for.
struct Setup {
    config: ConnectionConfig,
    read_chunk: usize,
    write_chunk: usize,
}

impl Setup {
    fn new(settings: Settings) -> Self {
        let pick = |choices: &[usize], byte: u8| {
            choices
                .get(usize::from(byte) % choices.len())
                .copied()
                .unwrap_or(1)
        };
        let frame_lens = [DEFAULT_MAX_FRAME_LEN, 65_540, 4096, 300, 64];
        let read_timeouts = [
            Some(Duration::from_secs(60)),
            Some(Duration::from_secs(10)),
            Some(DEFAULT_READ_TIMEOUT),
            None,
        ];
        let progress = [
            Some(Duration::from_secs(5)),
            Some(Duration::from_secs(1)),
            None,
        ];
        let verdicts = [
            Verdict::Tempfail,
            Verdict::Reject,
            Verdict::Continue,
            Verdict::Accept,
            filter::verdict(6),
        ];
        let nth = |len: usize, byte: u8| usize::from(byte) % len;
        let config = ConnectionConfig {
            max_frame_len: frame_lens[nth(frame_lens.len(), settings.frame_len)],
            read_timeout: read_timeouts[nth(read_timeouts.len(), settings.timers)],
            progress_interval: progress[nth(progress.len(), settings.timers / 4)],
            error_verdict: verdicts[nth(verdicts.len(), settings.error_verdict)].clone(),
            // One timeout for the model to follow: the read timeout also bounds negotiation,
            // and writes (into a pipe the MTA side always drains) are not timed.
            negotiation_timeout: None,
            write_timeout: None,
            // Now and then a header limit a message can reach.
            max_headers: [DEFAULT_MAX_HEADERS, 3][nth(2, settings.error_verdict / 5)],
            ..ConnectionConfig::default()
        };
        Self {
            config,
            read_chunk: pick(&[65_536, 1, 3, 64, 4096, 700], settings.read_chunk),
            write_chunk: pick(&[65_536, 1, 7, 100], settings.write_chunk),
        }
    }
}

fn needs_of(choice: &NeedsChoice) -> Needs {
    match choice {
        NeedsChoice::Everything => Needs::everything(),
        NeedsChoice::Custom {
            events,
            answers,
            required,
            optional,
            options,
            macros,
        } => {
            let mut needs = Needs::new()
                .events(Events::from_bits(u32::from(*events)))
                .answers(Events::from_bits(u32::from(*answers)))
                .actions(Actions::from_bits(u32::from(*required)))
                .optional_actions(Actions::from_bits(u32::from(*optional)))
                .options(ProtocolFlags::from_bits(*options));
            if let Some((stage, names)) = macros {
                let stage = MacroStage::ALL[usize::from(*stage) % MacroStage::ALL.len()];
                needs = needs.macros(stage, &String::from_utf8_lossy(names));
            }
            needs
        }
    }
}

/// What the MTA did that ends the connection, at once or after the open message.
#[derive(Debug, Default)]
struct Acts {
    /// It closed its side.
    closed: bool,
    /// It asked for a graceful shutdown.
    shutdown: bool,
    /// It stayed silent up to the read timeout.
    timeout_due: bool,
}

/// One run: the connection, the MTA's view of it, and the filter's notes.
struct Harness {
    input: Input,
    clock: ManualClock,
    wire: SharedWire,
    probe: SharedProbe,
    connection: Option<Connection>,
    shutdown: ShutdownHandle,
    /// How the connection ended, once it did.
    result: Option<Result<(), ConnectionError>>,
    woken: Arc<Woken>,
    mta: Mta,
    oracle: Oracle,
    max_len: u32,
    read_timeout: Option<Duration>,
    progress_interval: Option<Duration>,
    /// Since when the connection has waited for a frame (see `wait`).
    silence_start: Instant,
    /// What the MTA did that may end the connection.
    acts: Acts,
    /// Seconds the clock moved, and `Op::Wait`s: bounds on PROGRESS.
    clock_steps: usize,
    /// The MTA does not wait for the filter before its next command.
    no_sync: bool,
}

impl Harness {
    fn new(input: Input) -> Self {
        let setup = Setup::new(input.settings);
        let needs = needs_of(&input.needs);
        let clock = ManualClock::new();
        let wire = Wire::new(setup.read_chunk, setup.write_chunk);
        let probe = Arc::new(Mutex::new(Probe::default()));
        let filter = |first| Scripted {
            scripts: input.scripts.clone(),
            first,
            calls: AtomicUsize::new(0),
            last_message: AtomicU64::new(0),
            needs: needs.clone(),
            probe: probe.clone(),
            clock: clock.clone(),
            panics: true,
        };
        let builder = Builder::new(clock.clone())
            .config(setup.config.clone())
            .id(1);
        let stream = FilterEnd(wire.clone());
        let connection = if input.list {
            let list = FilterList::new()
                .with("first", filter(0))
                .with("second", filter(1));
            builder.serve(stream, list)
        } else {
            builder.serve(stream, filter(0))
        };
        // The connection asks the MTA for the union of its filters' needs.
        let needs = if input.list {
            needs.union(&needs)
        } else {
            needs
        };
        let shutdown = connection.shutdown_handle();
        Self {
            silence_start: clock.now(),
            mta: Mta::new(setup.config.max_frame_len, needs),
            oracle: Oracle::new(setup.config.error_verdict.clone(), !input.list),
            max_len: setup.config.max_frame_len,
            read_timeout: setup.config.read_timeout,
            progress_interval: setup.config.progress_interval,
            input,
            clock,
            wire,
            probe,
            connection: Some(connection),
            shutdown,
            result: None,
            woken: Arc::new(Woken::default()),
            acts: Acts::default(),
            clock_steps: 0,
            no_sync: false,
        }
    }

    fn run(mut self) {
        let offer = match self.input.offer {
            Offer::Standard => Some(OptNeg::VERSION_6),
            Offer::Custom {
                version,
                actions,
                protocol,
            } => Some(OptNeg {
                version,
                actions: Actions::from_bits(actions),
                protocol: ProtocolFlags::from_bits(protocol),
            }),
            Offer::Missing => None,
        };
        if let Some(offer) = offer {
            self.send(&frames::optneg(offer));
        }
        let ops = std::mem::take(&mut self.input.ops);
        for op in &ops {
            if self.result.is_some() {
                break;
            }
            self.op(op);
        }
        self.finish();
    }

    // ===== driving =====

    /// Polls the connection until it waits for something outside it (bytes, the clock) or
    /// ends; what it wrote goes to the MTA side.
    fn stall(&mut self) {
        let waker = Waker::from(self.woken.clone());
        let mut cx = Context::from_waker(&waker);
        for _ in 0..MAX_POLLS {
            self.woken.0.store(false, Ordering::SeqCst);
            if let Some(connection) = &mut self.connection {
                if let Poll::Ready(result) = Pin::new(connection).poll(&mut cx) {
                    self.result = Some(result);
                    self.connection = None;
                }
            }
            let output = wire(&self.wire).take_output();
            self.mta.receive(&output);
            if self.connection.is_none() || !self.woken.0.load(Ordering::SeqCst) {
                return;
            }
        }
        panic!("the connection keeps waking itself without waiting for anything");
    }

    /// Stalls, then moves the clock a second at a time while the filter sleeps (the
    /// connection waits for it), until it does not.
    fn drive(&mut self) {
        self.stall();
        let mut steps = 0;
        while self.connection.is_some() && probe(&self.probe).sleepers > 0 {
            steps += 1;
            assert!(steps <= MAX_SLEEP_STEPS, "the filter sleeps for ever");
            self.check_read_ahead();
            self.clock.advance(Duration::from_secs(1));
            self.clock_steps += 1;
            self.stall();
        }
        if steps > 0 {
            // The connection dealt with what it had once the filter woke: silence starts.
            self.silence_start = self.clock.now();
        }
    }

    // ===== the MTA's operations =====

    fn op(&mut self, op: &input::Op) {
        log::trace!("fuzz: op {op:?}");
        match op {
            input::Op::Wait(choice) => {
                let seconds = WAITS[usize::from(*choice) % WAITS.len()];
                self.wait(Duration::from_secs(seconds));
            }
            input::Op::Close => self.close(),
            input::Op::Shutdown => self.begin_shutdown(),
            input::Op::NoSync => self.no_sync = !self.acts.shutdown,
            op => {
                if let Some(bytes) = frames::bytes(op, self.mta.next_frame()) {
                    self.send(&bytes);
                }
            }
        }
    }

    /// The MTA sends `bytes`; it waits for the filter unless told not to, and always after
    /// a frame that ends the connection and during a shutdown.
    fn send(&mut self, bytes: &[u8]) {
        if self.acts.closed {
            return;
        }
        let frames = self.mta.send(bytes);
        wire(&self.wire).send(bytes);
        if frames > 0 {
            self.silence_start = self.clock.now();
        }
        let waits_for_reply = self.mta.arrived.iter().any(|a| a.wants_reply);
        if self.mta.ending.is_some() || self.acts.shutdown || (waits_for_reply && !self.no_sync) {
            self.drive();
        } else {
            self.stall();
        }
        if waits_for_reply {
            self.no_sync = false;
        }
        self.digest();
    }

    /// The MTA stays silent for `duration` once the connection has dealt with everything.
    fn wait(&mut self, duration: Duration) {
        self.drive();
        self.digest();
        if self.connection.is_none() {
            return;
        }
        let silence = self.clock.now() - self.silence_start;
        self.clock.advance(duration);
        self.clock_steps += 1;
        if self
            .read_timeout
            .is_some_and(|timeout| silence + duration >= timeout)
        {
            self.acts.timeout_due = true;
        }
        self.stall();
        self.digest();
    }

    /// The MTA closes its side, possibly while the filter works.
    fn close(&mut self) {
        wire(&self.wire).close();
        self.acts.closed = true;
        self.drive();
        self.digest();
    }

    fn begin_shutdown(&mut self) {
        self.drive();
        self.digest();
        self.shutdown.shutdown();
        self.acts.shutdown = true;
        self.no_sync = false;
        self.stall();
        self.digest();
    }

    /// Ends the run: QUIT (or end of stream inside a frame), then the final checks.
    fn finish(&mut self) {
        if self.connection.is_some() && !self.acts.closed {
            self.drive();
            self.digest();
            match self.mta.next_frame() {
                Some(_) if self.connection.is_some() => {
                    self.send(&frames::bytes(&input::Op::Quit, None).unwrap_or_default());
                }
                _ => self.close(),
            }
        }
        if self.connection.is_some() {
            self.close();
        }
        assert!(
            self.connection.is_none(),
            "the connection outlived QUIT and end of stream"
        );
    }

    // ===== checks =====

    /// Once the connection has dealt with everything sent: checks the answers against the
    /// filter's notes, the bounds, and whether the connection should still be running.
    fn digest(&mut self) {
        let (violations, disorder) = {
            let mut shared = probe(&self.probe);
            let violations = std::mem::take(&mut shared.violations);
            (violations, std::mem::take(&mut shared.chunk_disorder))
        };
        assert!(violations.is_empty(), "a session showed {violations:?}");
        assert!(
            disorder.is_empty() || !self.mta.tags_trusted(),
            "a session showed {disorder:?}"
        );
        let sleeping = probe(&self.probe).sleepers > 0;
        if sleeping && self.connection.is_some() {
            self.check_read_ahead();
            self.check_budget();
            return;
        }
        if let Some(agreed) = &self.mta.agreed {
            self.oracle.skip = agreed.options.protocol.contains(ProtocolFlags::SKIP);
            self.oracle.mail_sent = !agreed.options.protocol.contains(ProtocolFlags::NO_MAIL);
        }
        let done = self.mta.take_done();
        let notes = std::mem::take(&mut probe(&self.probe).notes);
        for frame in &done {
            log::trace!(
                "fuzz: {:?} answered {:?}",
                frame.kind,
                frame.answer.as_ref().map(|a| a.kind)
            );
        }
        log::trace!("fuzz: notes {notes:?}");
        let asked = probe(&self.probe).progress_requests > 0;
        for frame in &done {
            if let Some(answer) = &frame.answer {
                assert!(
                    answer.progress == 0 || self.progress_interval.is_some() || asked,
                    "PROGRESS sent, neither configured nor asked for"
                );
            }
        }
        match done.as_slice() {
            [one] => {
                self.oracle.arrive(one);
                self.oracle.notes(notes);
                self.oracle.answer(one);
                if one.kind == CommandKind::QuitNewConnection {
                    self.oracle.fresh_session();
                }
            }
            many => {
                // Notes for several frames at once: which frame each belongs to is lost.
                let lost = !notes.is_empty();
                if lost {
                    self.oracle.lose_track();
                }
                for frame in many {
                    self.oracle.arrive(frame);
                    self.oracle.answer(frame);
                }
                self.oracle.notes(notes);
                if lost {
                    self.oracle.lose_track();
                }
            }
        }
        if self.connection.is_some() {
            if let Some(front) = self.mta.arrived.front() {
                panic!(
                    "no reply to {:?}, and the connection waits for the MTA",
                    front.kind
                );
            }
        }
        self.check_budget();
        self.check_end();
    }

    /// Whether the connection runs or ended as the MTA's actions say.
    fn check_end(&mut self) {
        let Some(result) = &self.result else {
            assert_eq!(
                self.mta.ending, None,
                "the connection goes on after what must end it"
            );
            assert!(
                !self.acts.closed,
                "the connection goes on after end of stream"
            );
            assert!(
                !self.acts.timeout_due,
                "the connection goes on after the read timeout"
            );
            assert!(
                !self.acts.shutdown || self.oracle.in_transaction(),
                "the connection goes on after a shutdown outside a message"
            );
            return;
        };
        let ending = self.mta.ending;
        let explained = match result {
            Ok(()) => ending == Some(Ending::Quit) || self.acts.closed || self.acts.shutdown,
            Err(ConnectionError::Decode(_)) => ending == Some(Ending::Decode),
            Err(ConnectionError::Unexpected { .. }) => ending == Some(Ending::Unexpected),
            Err(ConnectionError::Negotiate(_)) => ending == Some(Ending::Negotiate),
            Err(ConnectionError::Timeout | ConnectionError::NegotiationTimeout) => {
                self.acts.timeout_due
            }
            Err(ConnectionError::Encode(_)) => ending == Some(Ending::Unencodable),
            Err(_) => false,
        };
        assert!(
            explained,
            "the connection ended with {result:?}; the MTA sent {ending:?} and {:?}",
            self.acts
        );
        assert_eq!(
            probe(&self.probe).live_calls,
            0,
            "a filter call outlived its connection"
        );
    }

    /// What the connection wrote is bounded by what the input asked for: a bounded reply
    /// per command, the edits the filter queued, one PROGRESS per clock step or request.
    fn check_budget(&self) {
        let (edit_bytes, progress) = {
            let shared = probe(&self.probe);
            (shared.edit_bytes, shared.progress_requests)
        };
        let budget =
            4096 + 1024 * self.mta.sent_frames() + edit_bytes + 5 * (progress + self.clock_steps);
        assert!(
            self.mta.received <= budget,
            "the connection wrote {} bytes, more than {budget}",
            self.mta.received
        );
    }

    /// While the filter holds body chunk `n` and sleeps, the connection reads ahead at most
    /// one maximal frame beyond what it had buffered.
    fn check_read_ahead(&self) {
        let frame = probe(&self.probe).body_frame;
        let Some(end) = frame.and_then(|n| self.mta.tagged_end(n)) else {
            return;
        };
        let consumed = wire(&self.wire).consumed;
        let frame_max = self.max_len as usize + 4;
        let bound = frame_max + frame_max.max(4096);
        assert!(
            consumed <= end + bound,
            "the connection read {} bytes past the chunk its filter holds (bound {bound})",
            consumed - end
        );
    }
}

#[cfg(test)]
mod tests {
    use super::input::Input;

    #[test]
    fn generated_inputs_read_back_as_written() {
        for seed in 0..300 {
            let data = super::connection_input(seed);
            let input = Input::read(&data);
            assert_eq!(Input::read(&input.write()), input, "seed {seed}");
            assert_eq!(input.write(), data, "seed {seed}");
        }
    }
}

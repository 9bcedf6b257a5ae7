#!/usr/bin/env python3
"""End-to-end driver: real Postfix and Sendmail against a milter (run through scripts/e2e).

A *scenario* names a milter command, the socket kind it listens on, and a list of *cases*.
For every MTA the driver starts the milter, waits until its socket accepts connections,
starts a private MTA instance pointed at it, then for each case sends the case's messages over
SMTP, waits (bounded polling) until the MTA's queue has settled, and runs the case's checks.

Each check prints one line: `ok   MTA: scenario/case: what` or `FAIL MTA: ... (details)`.
The last line is `N passed, N failed`; the exit status is 1 if anything failed.

To add checks for another filter, append a Scenario to SCENARIOS (see conformance_cases()).
"""
import argparse
import os
import shlex
import shutil
import signal
import smtplib
import socket
import subprocess
import sys
import time
import traceback
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mta as M  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
REFMILTER = "%s %s {socket} --log {log}" % (shlex.quote(sys.executable),
                                            shlex.quote(os.path.join(HERE, "refmilter.py")))
# Where the release examples are: $E2E_BIN_DIR (set by scripts/e2e from CARGO_TARGET_DIR),
# else target/release/examples.
BIN_DIR = os.environ.get("E2E_BIN_DIR") or "target/release/examples"
DEFAULT_MILTER = "%s/conformance {socket}" % shlex.quote(BIN_DIR)
# The same conformance filter served on a multi-thread tokio runtime instead of async-std.
TOKIO_MILTER = "%s/conformance {socket} --runtime tokio" % shlex.quote(BIN_DIR)
SCENARIOS_BIN = os.path.join(BIN_DIR, "e2e_scenarios")
# The conformance filter written with hooks: every conformance check runs for it too.
HOOKS_MILTER = "%s/conformance_hooks {socket}" % shlex.quote(BIN_DIR)
# The conformance filter split across three filters served as one list: every check again.
CHAIN_MILTER = "%s/conformance_chain {socket}" % shlex.quote(BIN_DIR)
# The attachment policy filter (examples/attachment_policy.rs), on both MTAs.
ATTACHMENT_MILTER = "%s/attachment_policy {socket}" % shlex.quote(BIN_DIR)
# The release milter-check binary (built by scripts/test with --features cli), run against
# the Python reference milter: $E2E_MILTER_CHECK, else next to the examples directory.
MILTER_CHECK = os.environ.get("E2E_MILTER_CHECK") or os.path.join(
    os.path.dirname(os.path.normpath(BIN_DIR)), "milter-check")
SETTLE_TIMEOUT = 60      # seconds for a queue to drain after a message was accepted
MILTER_TIMEOUT = 60      # seconds for the milter socket to accept connections


# ------------------------------------------------------------------------------------------
# reporting

class Report:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def check(self, mta, what, ok, details=""):
        if ok:
            self.passed += 1
            print("ok   %s: %s" % (mta, what), flush=True)
        else:
            self.failed += 1
            d = " (%s)" % details if details else ""
            print("FAIL %s: %s%s" % (mta, what, d.replace("\n", "\n     ")), flush=True)
        return ok


# ------------------------------------------------------------------------------------------
# SMTP client side

class Reply:
    def __init__(self, code, text, raw=None):
        self.code = code
        self.text = text.decode(errors="replace") if isinstance(text, bytes) else text
        self.raw = list(raw or [])     # the reply lines as received, without CRLF

    def line(self):
        """Full reply as one string; continuation lines joined with ' / '."""
        return "%d %s" % (self.code, self.text.replace("\n", " / "))

    def __repr__(self):
        return repr(self.line())


class Sent:
    """What happened to one message on the SMTP side."""

    def __init__(self, spec):
        self.spec = spec
        self.connect = self.ehlo = self.mail = self.data = None
        self.rcpt = {}          # address -> Reply
        self.error = None

    def summary(self):
        parts = ["CONNECT %r" % (self.connect,), "EHLO %r" % (self.ehlo.code if self.ehlo else None,),
                 "MAIL %r" % (self.mail,)]
        parts += ["RCPT %s %r" % (r, v) for r, v in self.rcpt.items()]
        parts.append("DATA %r" % (self.data,))
        if self.error:
            parts.append("error %s" % self.error)
        return "; ".join(parts)


class Msg:
    """A message to send. `token` is put into X-Conformance-Run to find the delivered copies."""

    def __init__(self, mail_from, rcpts, subject="test", body=b"Hello World\r\n",
                 extra_headers=(), force=False):
        self.mail_from = mail_from
        self.rcpts = list(rcpts)
        self.subject = subject
        self.body = body if isinstance(body, bytes) else body.encode()
        self.extra_headers = list(extra_headers)
        self.force = force     # go on with RCPT/DATA even after MAIL failed
        self.token = None

    def headers(self):
        h = [("From", "<%s>" % self.mail_from if self.mail_from else "<>"),
             ("To", ", ".join("<%s>" % r for r in self.rcpts)),
             ("Subject", self.subject),
             ("Date", time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime())),
             ("Message-ID", "<%s@e2e.example.test>" % self.token),
             ("X-Conformance-Run", self.token)]
        return h + self.extra_headers

    def raw(self):
        head = b"".join(("%s: %s\r\n" % kv).encode() for kv in self.headers())
        return head + b"\r\n" + self.body


class _Tap:
    """File wrapper recording every reply line smtplib reads."""

    def __init__(self, f, owner):
        self.f = f
        self.owner = owner

    def readline(self, *a):
        line = self.f.readline(*a)
        if line:
            self.owner.raw.append(line.rstrip(b"\r\n").decode(errors="replace"))
        return line

    def close(self):
        self.f.close()


class RecSMTP(smtplib.SMTP):
    """smtplib.SMTP that keeps the raw lines of the last reply (self.raw)."""

    raw = []

    def getreply(self):
        if self.file is None and self.sock is not None:
            self.file = _Tap(self.sock.makefile("rb"), self)
        self.raw = []
        return super().getreply()

    def reply(self, code_msg):
        return Reply(code_msg[0], code_msg[1], self.raw)


def _transaction(c, s):
    """MAIL, RCPT..., DATA for one message on an open session; False when the session broke."""
    msg = s.spec
    s.mail = c.reply(c.mail(msg.mail_from))
    if s.mail.code // 100 != 2 and not msg.force:
        return True
    for r in msg.rcpts:
        s.rcpt[r] = c.reply(c.rcpt(r))
    if not any(v.code // 100 == 2 for v in s.rcpt.values()) and not msg.force:
        return True
    try:
        s.data = c.reply(c.data(msg.raw()))
    except smtplib.SMTPDataError as e:
        s.data = Reply(e.smtp_code, e.smtp_error, c.raw)
    return True


def smtp_session(port, msgs):
    """Sends msgs one after the other on ONE SMTP connection; returns a Sent per message."""
    sents = [Sent(m) for m in msgs]
    c = RecSMTP(timeout=120)
    cur = sents[0]
    try:
        greeting = c.reply(c.connect("127.0.0.1", port))
        for s in sents:
            s.connect = greeting
        ehlo = c.reply(c.ehlo("client.example.test"))
        for s in sents:
            s.ehlo = ehlo
        for i, s in enumerate(sents):
            cur = s
            if i:
                c.rset()
            _transaction(c, s)
        try:
            c.quit()
        except smtplib.SMTPException:
            pass
    except (smtplib.SMTPException, OSError) as e:
        cur.error = "%s: %s" % (type(e).__name__, e)
    finally:
        c.close()
    return sents


def smtp_send(port, msg):
    return smtp_session(port, [msg])[0]


# ------------------------------------------------------------------------------------------
# scenario model

class Case:
    """messages: list of Msg; check(ctx) runs assertions through ctx.expect().

    one_connection: send all messages on one SMTP connection (default: one each).
    driver: driver(run) sends the messages itself (see Run) and returns the Sent list in
    the order of `messages`; for cases that stop or restart the milter meanwhile."""

    def __init__(self, name, messages, check, one_connection=False, driver=None):
        self.name = name
        self.messages = messages
        self.check = check
        self.one_connection = one_connection
        self.driver = driver


class Run:
    """What a case driver gets: the MTA port, the Milter (stop/kill/start), the MTA, and
    `notes` (a dict handed to the check as ctx.notes)."""

    def __init__(self, port, milter, mta):
        self.port = port
        self.milter = milter
        self.mta = mta
        self.notes = {}

    def send(self, msg):
        return smtp_send(self.port, msg)


class Scenario:
    """milter: command template ({socket} = spec, {log} = a log file path under the work dir);
    socket: 'inet' or 'unix'."""

    def __init__(self, name, cases, milter=None, socket="inet"):
        self.name = name
        self.cases = cases
        self.milter = milter
        self.socket = socket


class Ctx:
    """Everything a case check can look at for one MTA."""

    def __init__(self, report, mta, scenario, case, sent, settled):
        self.report = report
        self.mta = mta                  # M.Postfix / M.Sendmail instance
        self.name = mta.name            # "postfix" / "sendmail"
        self.scenario = scenario
        self.case = case
        self.sent = sent                # list of Sent, same order as case.messages
        self.settled = settled
        self.notes = {}
        tokens = {s.spec.token for s in sent}
        self.delivered = [m for m in mta.deliveries() if m.header("X-Conformance-Run") in tokens]
        self.held = [m for m in mta.held() if m.header("X-Conformance-Run") in tokens]

    def expect(self, what, ok, details=""):
        return self.report.check(self.name, "%s/%s: %s" % (self.scenario.name, self.case.name, what),
                                 bool(ok), details)

    def delivered_for(self, sent):
        return [m for m in self.delivered if m.header("X-Conformance-Run") == sent.spec.token]

    def held_for(self, sent):
        return [m for m in self.held if m.header("X-Conformance-Run") == sent.spec.token]

    def log_tail(self, n=15):
        return M.tail(self.mta.log, n).rstrip()


# ------------------------------------------------------------------------------------------
# running

class Milter:
    def __init__(self, cmd, spec, work, name):
        self.cmd = cmd
        self.spec = spec
        self.log = os.path.join(work, "%s-milter.log" % name)
        self.pidfile = os.path.join(work, "pids", "milter.pgid")
        self.proc = None

    def start(self):
        argv = [a.replace("{socket}", self.spec).replace("{log}", self.log)
                for a in shlex.split(self.cmd)]
        if self.spec.startswith("unix:"):
            path = self.spec.split(":", 1)[1]
            os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
            os.chmod(os.path.dirname(path), 0o755)
            if os.path.exists(path):
                os.unlink(path)
        out = open(self.log, "ab")
        try:
            # umask 0: a unix socket the milter creates must be connectable by user postfix
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                         start_new_session=True, preexec_fn=lambda: os.umask(0))
        except OSError as e:
            raise RuntimeError("cannot start milter %r: %s" % (argv, e))
        finally:
            out.close()
        with open(self.pidfile, "w") as f:
            f.write("%d\n" % self.proc.pid)
        t0 = time.monotonic()
        ok = M.wait_for(lambda: self.proc.poll() is not None or M.socket_ready(self.spec),
                        MILTER_TIMEOUT)
        if self.proc.poll() is not None:
            raise RuntimeError("milter exited with status %s\n%s" % (self.proc.returncode,
                                                                    M.tail(self.log)))
        if not ok:
            raise RuntimeError("milter socket %s not ready after %ds\n%s" % (
                self.spec, MILTER_TIMEOUT, M.tail(self.log)))
        return time.monotonic() - t0

    def kill(self):
        """SIGKILL to the milter's process group (a crash, no clean shutdown)."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def log_text(self):
        try:
            with open(self.log, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def stop(self):
        if self.proc and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except OSError:
                pass
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        if os.path.exists(self.pidfile):
            os.unlink(self.pidfile)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_scenario(args, report, scenario, mta_name, timings):
    work = args.work
    cmd = scenario.milter or args.milter_cmd
    if scenario.socket == "unix":
        spec = "unix:%s/milter/%s.sock" % (work, scenario.name)
    else:
        spec = "inet:%d@127.0.0.1" % free_port()
    mta_port = free_port()
    if mta_name == "postfix":
        mta = M.Postfix(work, mta_port, spec)
    else:
        mta = M.Sendmail(work, mta_port, spec, args.sendmail_root)
    tag = "%s/%s" % (scenario.name, mta_name)
    milter = Milter(cmd, spec, work, "%s-%s" % (scenario.name, mta_name))
    try:
        try:
            timings["milter start %s" % tag] = milter.start()
            mta.start()
            timings["%s start" % mta_name] = mta.started
        except Exception as e:  # noqa: BLE001
            report.check(mta_name, "%s: setup (milter %s)" % (scenario.name, spec), False,
                         str(e).strip())
            return
        report.check(mta_name, "%s: milter listening on %s and MTA up on port %d" % (
            scenario.name, spec, mta_port), True)
        for case in scenario.cases:
            if args.k and not any(k in "%s/%s" % (scenario.name, case.name) for k in args.k):
                continue
            t0 = time.monotonic()
            for msg in case.messages:
                msg.token = "%s-%s" % (case.name, uuid.uuid4().hex[:12])
            run = Run(mta_port, milter, mta)
            run.case_messages = case.messages
            if case.driver:
                try:
                    sent = case.driver(run)
                except Exception:  # noqa: BLE001
                    report.check(mta_name, "%s/%s: driver ran" % (scenario.name, case.name),
                                 False, traceback.format_exc().strip())
                    continue
            elif case.one_connection:
                sent = smtp_session(mta_port, case.messages)
            else:
                sent = [smtp_send(mta_port, msg) for msg in case.messages]
            if args.verbose:
                for x in sent:
                    print("     %s %s/%s: %s" % (mta_name, scenario.name, case.name, x.summary()),
                          flush=True)
            settled = M.wait_for(lambda: not mta.busy(), SETTLE_TIMEOUT)
            ctx = Ctx(report, mta, scenario, case, sent, settled)
            ctx.notes = run.notes
            if not settled:
                ctx.expect("queue settled within %ds" % SETTLE_TIMEOUT, False, ctx.log_tail())
            try:
                case.check(ctx)
            except Exception:  # noqa: BLE001
                ctx.expect("check ran", False, traceback.format_exc().strip())
            timings["case %s/%s" % (tag, case.name)] = time.monotonic() - t0
    finally:
        try:
            mta.stop()
        finally:
            milter.stop()


# ------------------------------------------------------------------------------------------
# assertion helpers shared by scenarios

def norm_body(b):
    """Body with LF line ends and without trailing empty lines (MTAs differ there)."""
    return b.replace(b"\r\n", b"\n").rstrip(b"\n")


def show(b, n=120):
    b = bytes(b)
    return repr(b[:n]) + ("... (%d bytes)" % len(b) if len(b) > n else "")


def expect_reply(ctx, what, reply, exact=None, klass=None):
    if reply is None:
        return ctx.expect(what, False, "no reply recorded")
    if exact is not None:
        return ctx.expect(what, reply.line() == exact, "got %r, want %r" % (reply.line(), exact))
    return ctx.expect(what, reply.code // 100 == klass, "got %r, want %dxx" % (reply.line(), klass))


def expect_edited(ctx, copies, msg, where):
    """The conformance filter's end-of-message edits, on every copy (delivered or held)."""
    if not copies:
        return
    want_subject = "[conformance] " + msg.subject
    want_body = norm_body(msg.body.upper())
    problems = {k: [] for k in ("hdr", "subj", "run", "body", "sender")}
    for m in copies:
        who = "%s copy for %s" % (where, ",".join(m.recipients))
        xc = m.headers("X-Conformance")
        if xc != ["seen"]:
            problems["hdr"].append("%s: X-Conformance %r" % (who, xc))
        if m.headers("Subject") != [want_subject]:
            problems["subj"].append("%s: Subject %r" % (who, m.headers("Subject")))
        want_run = [msg.token] + [v for k, v in msg.extra_headers if k == "X-Conformance-Run"]
        if m.headers("X-Conformance-Run") != want_run:
            problems["run"].append("%s: X-Conformance-Run %r, want %r" % (
                who, m.headers("X-Conformance-Run"), want_run))
        if norm_body(m.body) != want_body:
            problems["body"].append("%s: body %s, want %s" % (who, show(m.body), show(want_body)))
        if M.bare(m.sender) != "changed-sender@example.com":
            problems["sender"].append("%s: envelope sender %r" % (who, m.sender))
    ctx.expect("%s: header X-Conformance: seen added" % where, not problems["hdr"],
               "; ".join(problems["hdr"]))
    ctx.expect("%s: Subject is %r" % (where, want_subject), not problems["subj"],
               "; ".join(problems["subj"]))
    ctx.expect("%s: X-Conformance-Run untouched" % where, not problems["run"],
               "; ".join(problems["run"]))
    ctx.expect("%s: body replaced by its upper case (%d bytes)" % (where, len(msg.body)),
               not problems["body"], "; ".join(problems["body"]))
    ctx.expect("%s: envelope sender changed to <changed-sender@example.com>" % where,
               not problems["sender"], "; ".join(problems["sender"]))


def rcpts_of(copies):
    out = set()
    for m in copies:
        out.update(M.bare(r) for r in m.recipients)
    return out


# ------------------------------------------------------------------------------------------
# the conformance filter (examples/conformance.rs)

MIXED_BODY = (b"Hello World,\r\nthis is the conformance test body.\r\n"
              b"Mixed Case: aBcDeF 123 !?\r\n.leading dot line\r\n\r\nlast line\r\n")


def big_body(size=1 << 20):
    line = b"The quick brown fox jumps over the lazy dog 0123456789 abcdefghijklmnopqrstuv\r\n"
    n = size // len(line) + 1
    return (line * n)[:size - 2] + b"\r\n"


def check_mail_reject(ctx):
    s = ctx.sent[0]
    want = {"postfix": "550 5.7.1 go away",
            "sendmail": "550 5.7.1 <reject@example.com>... go away"}[ctx.name]
    expect_reply(ctx, "MAIL FROM:<reject@example.com> rejected", s.mail, exact=want)
    rc = list(s.rcpt.values())
    ctx.expect("RCPT after the rejected MAIL is refused",
               rc and all(r.code // 100 == 5 for r in rc), "RCPT replies %r" % rc)
    ctx.expect("DATA after the rejected MAIL is refused",
               s.data is None or s.data.code // 100 != 2, "DATA reply %r" % (s.data,))
    ctx.expect("nothing delivered or held", not ctx.delivered and not ctx.held,
               "delivered %r held %r" % (ctx.delivered, ctx.held))


def check_rcpt_tempfail(ctx):
    s = ctx.sent[0]
    expect_reply(ctx, "RCPT TO:<tempfail@example.com> gets 4xx", s.rcpt.get("tempfail@example.com"),
                 klass=4)
    for r in ("first@example.com", "second@example.com"):
        expect_reply(ctx, "RCPT TO:<%s> accepted" % r, s.rcpt.get(r), klass=2)
    expect_reply(ctx, "message accepted at end of DATA", s.data, klass=2)
    copies = ctx.delivered_for(s)
    got = rcpts_of(copies)
    want = {"first@example.com", "second@example.com", "added@example.com"}
    ctx.expect("delivered to the other recipients (+ added), not to tempfail@",
               got == want, "delivered to %s, want %s" % (sorted(got), sorted(want)))
    expect_edited(ctx, copies, s.spec, "delivered")


def check_edits(ctx):
    s = ctx.sent[0]
    expect_reply(ctx, "message accepted at end of DATA", s.data, klass=2)
    copies = ctx.delivered_for(s)
    got = rcpts_of(copies)
    want = {"keep@example.com", "added@example.com"}
    ctx.expect("recipients: <added@example.com> added, <removeme@example.com> removed",
               got == want, "delivered to %s, want %s; %s" % (sorted(got), sorted(want),
                                                             s.summary()))
    ctx.expect("one delivered copy per recipient", len(copies) == len(want),
               "%d copies" % len(copies))
    ctx.expect("nothing held", not ctx.held_for(s), repr(ctx.held_for(s)))
    expect_edited(ctx, copies, s.spec, "delivered")


def check_quarantine(ctx):
    s = ctx.sent[0]
    expect_reply(ctx, "message accepted at end of DATA", s.data, klass=2)
    ctx.expect("nothing delivered", not ctx.delivered_for(s), repr(ctx.delivered_for(s)))
    held = ctx.held_for(s)
    where = {"postfix": "hold queue", "sendmail": "quarantine"}[ctx.name]
    ctx.expect("message is in the %s" % where, len(held) == 1,
               "held: %r\n%s" % (held, ctx.log_tail()))
    if not held:
        return
    h = held[0]
    if ctx.name == "sendmail":
        ctx.expect("quarantine reason is 'conformance quarantine'",
                   h.extra.get("quarantine_reason") == "conformance quarantine",
                   "reason %r" % h.extra.get("quarantine_reason"))
        listing = ctx.mta.list_quarantine()
        ctx.expect("sendmail -bp -qQ lists it", h.queue_id in listing and
                   "QUARANTINE: conformance quarantine" in listing, listing.strip())
    got = rcpts_of([h])
    want = {"keep@example.com", "added@example.com"}
    ctx.expect("held copy: recipients edited", got == want,
               "recipients %s, want %s" % (sorted(got), sorted(want)))
    expect_edited(ctx, held, s.spec, "held")


def conformance_cases():
    return [
        Case("mail-reject",
             [Msg("reject@example.com", ["someone@example.com"], force=True)],
             check_mail_reject),
        Case("rcpt-tempfail",
             [Msg("sender@example.com",
                  ["first@example.com", "tempfail@example.com", "second@example.com"],
                  subject="tempfail one recipient", body=MIXED_BODY)],
             check_rcpt_tempfail),
        Case("edits",
             [Msg("sender@example.com", ["keep@example.com", "removeme@example.com"],
                  subject="Hello edits", body=MIXED_BODY,
                  extra_headers=[("X-Conformance-Run", "second instance, Mixed Case")])],
             check_edits),
        Case("edits-1MiB-body",
             [Msg("sender@example.com", ["keep@example.com", "removeme@example.com"],
                  subject="big body", body=big_body())],
             check_edits),
        Case("quarantine",
             [Msg("sender@example.com", ["keep@example.com", "removeme@example.com"],
                  subject="please QuArAnTiNe me", body=MIXED_BODY)],
             check_quarantine),
    ]


# ------------------------------------------------------------------------------------------
# helpers for header checks

def raw_fields(m):
    """The delivered header block as a list of (name, raw bytes of the whole field, LF line
    ends, continuation lines included)."""
    out = []
    for line in m.head_raw.split(b"\n"):
        if line[:1] in (b" ", b"\t") and out:
            out[-1] = (out[-1][0], out[-1][1] + b"\n" + line)
        elif line and not line.startswith(b"From "):
            out.append((line.split(b":", 1)[0].decode(errors="replace"), line))
    return out


def raw_field(m, name):
    return [raw for n, raw in raw_fields(m) if n.lower() == name.lower()]


def value_of(raw):
    """Value of a raw field: after the colon and one space."""
    v = raw.split(b":", 1)[1]
    return v[1:] if v[:1] == b" " else v


def one_copy(ctx, s, what="message"):
    """The single delivered copy of s (checked), or None."""
    copies = ctx.delivered_for(s)
    ctx.expect("%s delivered once" % what, len(copies) == 1,
               "%d copies; %s\n%s" % (len(copies), s.summary(), ctx.log_tail(8)))
    return copies[0] if len(copies) == 1 else None


def names_values(m):
    return [(n, value_of(raw).decode(errors="replace")) for n, raw in raw_fields(m)]


# what Msg.headers() always sends, in this order
CLIENT_HEADERS = ["From", "To", "Subject", "Date", "Message-ID", "X-Conformance-Run"]


# ------------------------------------------------------------------------------------------
# e2e_scenarios: insert-headers

def check_insert_headers(ctx):
    s = ctx.sent[0]
    expect_reply(ctx, "message accepted at end of DATA", s.data, klass=2)
    m = one_copy(ctx, s)
    if m is None:
        return
    names = [n for n, _ in raw_fields(m)]
    shown = "order %s" % names
    recv = [i for i, n in enumerate(names) if n == "Received"]
    ctx.expect("the MTA adds exactly one Received header", len(recv) == 1, shown)
    ctx.expect("X-Top (Top) is the first header, above the MTA's own Received",
               names[:2] == ["X-Top", "Received"], shown)
    if "Subject" in names:
        i = names.index("Subject")
        ctx.expect("X-Before-Subject (Before(Subject)) is directly above Subject",
                   i > 0 and names[i - 1] == "X-Before-Subject", shown)
        ctx.expect("X-After-Subject (After(Subject)) is directly below Subject",
                   i + 1 < len(names) and names[i + 1] == "X-After-Subject", shown)
    ctx.expect("X-End (End) is the last header", names[-1:] == ["X-End"], shown)
    want = ["X-Top", "Received", "From", "To", "X-Before-Subject", "Subject",
            "X-After-Subject", "Date", "Message-ID", "X-Conformance-Run", "X-End"]
    ctx.expect("whole order: %s" % " ".join(want), names == want, shown)
    ctx.expect("inserted values are '1'",
               all(m.headers(n) == ["1"] for n in ("X-Top", "X-Before-Subject",
                                                    "X-After-Subject", "X-End")),
               repr([(n, m.headers(n)) for n in ("X-Top", "X-Before-Subject",
                                                 "X-After-Subject", "X-End")]))


# ------------------------------------------------------------------------------------------
# e2e_scenarios: second-header

SECOND_HEADER_EXTRA = [("X-Dup", "one"), ("X-Dup", "two"),
                       ("X-Del", "one"), ("X-Del", "two"),
                       ("X-Multi", "one"), ("X-Multi", "two"), ("X-Multi", "three"),
                       ("X-Mark", "original")]


def check_second_header(ctx):
    s = ctx.sent[0]
    expect_reply(ctx, "message accepted at end of DATA", s.data, klass=2)
    m = one_copy(ctx, s)
    if m is None:
        return
    nv = names_values(m)
    x = [(n, v) for n, v in nv if n.startswith("X-") and n != "X-Conformance-Run"]
    shown = "X- headers %s" % x
    ctx.expect("second X-Dup changed in place: X-Dup one, changed",
               [v for n, v in x if n == "X-Dup"] == ["one", "changed"], shown)
    ctx.expect("second X-Del deleted: X-Del one",
               [v for n, v in x if n == "X-Del"] == ["one"], shown)
    ctx.expect("X-Multi: first deleted and third changed in one message: two, changed",
               [v for n, v in x if n == "X-Multi"] == ["two", "changed"], shown)
    ctx.expect("X-Mark: header of the same name inserted Before(original), original changed: "
               "inserted, changed", [v for n, v in x if n == "X-Mark"] == ["inserted", "changed"],
               shown)
    want = [("X-Dup", "one"), ("X-Dup", "changed"), ("X-Del", "one"),
            ("X-Multi", "two"), ("X-Multi", "changed"),
            ("X-Mark", "inserted"), ("X-Mark", "changed")]
    ctx.expect("client X- headers in order: %s" % want, x == want, shown)
    ctx.expect("other headers untouched: %s" % CLIENT_HEADERS,
               [n for n, _ in nv if n in CLIENT_HEADERS] == CLIENT_HEADERS,
               "names %s" % [n for n, _ in nv])


# ------------------------------------------------------------------------------------------
# e2e_scenarios: folded-nonascii

FOLDED = "first line\r\n\tsecond line\r\n  third line"
UTF8 = "Grüße aus Köln ☃"


def check_folded_nonascii(ctx):
    s = ctx.sent[0]
    expect_reply(ctx, "message accepted at end of DATA", s.data, klass=2)
    m = one_copy(ctx, s)
    if m is None:
        return
    folded_lf = FOLDED.replace("\r\n", "\n").encode()
    utf8 = UTF8.encode()

    def exact(what, name, want):
        got = raw_field(m, name)
        ctx.expect(what, got == [name.encode() + b": " + want],
                   "got %r, want %r" % (got, [name.encode() + b": " + want]))

    exact("filter received the folded value joined by LF + original whitespace "
          "(X-Seen-Folded-Escaped)", "X-Seen-Folded-Escaped",
          b"first line\\n\\tsecond line\\n  third line")
    exact("folded value re-added by the filter arrives folded as received (X-Seen-Folded)",
          "X-Seen-Folded", folded_lf)
    exact("client's folded X-Folded delivered unchanged", "X-Folded", folded_lf)
    exact("filter received the UTF-8 value byte for byte (X-Seen-Utf8-Escaped)",
          "X-Seen-Utf8-Escaped", utf8.decode("latin-1").encode("ascii", "backslashreplace")
          .replace(b"\\x", b"\\x"))
    exact("filter saw valid UTF-8 (X-Seen-Utf8-Valid: yes)", "X-Seen-Utf8-Valid", b"yes")
    exact("UTF-8 value re-added by the filter delivered as UTF-8 bytes (X-Seen-Utf8)",
          "X-Seen-Utf8", utf8)
    exact("client's UTF-8 X-Utf8 delivered unchanged", "X-Utf8", utf8)
    exact("filter's own folded header delivered folded (X-Own-Folded)", "X-Own-Folded",
          b"own first line\n\town second line")
    exact("filter's own UTF-8 header delivered as UTF-8 bytes (X-Own-Utf8)", "X-Own-Utf8", utf8)


# ------------------------------------------------------------------------------------------
# e2e_scenarios: multiline-reply

def expect_two_line_reply(ctx, what, reply, exact):
    if reply is None:
        ctx.expect(what, False, "no reply")
        return
    lines = reply.raw
    ctx.expect("%s: 550, two lines, first '550-', last '550 '" % what,
               reply.code == 550 and len(lines) == 2 and lines[0].startswith("550-")
               and lines[1].startswith("550 "), "lines %r" % lines)
    joined = "\n".join(lines)
    ctx.expect("%s: '%%' arrives once, not doubled" % what,
               joined.count("%") == 1 and "100%" in joined, "lines %r" % lines)
    ctx.expect("%s: both texts intact ('first line 100%%' then 'second line')" % what,
               len(lines) == 2 and lines[0].endswith("first line 100%")
               and lines[1].endswith("second line"), "lines %r" % lines)
    ctx.expect("%s: exactly %r" % (what, exact), lines == exact, "lines %r" % lines)


MULTILINE_EXACT = {
    "postfix": {"mail": ["550-5.7.1 first line 100%", "550 5.7.1 second line"],
                "eom": ["550-5.7.1 first line 100%", "550 5.7.1 second line"]},
    # Sendmail puts the sender address into the first line of a reply at MAIL
    "sendmail": {"mail": ["550-5.7.1 <multiline-mail@example.com>... first line 100%",
                          "550 5.7.1 second line"],
                 "eom": ["550-5.7.1 first line 100%", "550 5.7.1 second line"]},
}


def check_multiline_mail(ctx):
    s = ctx.sent[0]
    expect_two_line_reply(ctx, "MAIL reply", s.mail, MULTILINE_EXACT[ctx.name]["mail"])
    ctx.expect("nothing delivered", not ctx.delivered, repr(ctx.delivered))


def check_multiline_eom(ctx):
    s = ctx.sent[0]
    expect_reply(ctx, "MAIL accepted", s.mail, klass=2)
    expect_two_line_reply(ctx, "end-of-DATA reply", s.data, MULTILINE_EXACT[ctx.name]["eom"])
    ctx.expect("nothing delivered", not ctx.delivered, repr(ctx.delivered))


# ------------------------------------------------------------------------------------------
# e2e_scenarios: connect-reject

CONNECT_REJECT_EXACT = {
    # (greeting, EHLO code, MAIL reply), as observed (NOTES.md): both refuse at the greeting,
    # still accept EHLO, and refuse MAIL; only Postfix passes the filter's text on.
    "postfix": ("554 e2e-postfix.example.test ESMTP not accepting connections", 250,
                "554 5.7.1 rejected at connect by e2e filter"),
    "sendmail": ("554 e2e.example.test ESMTP not accepting messages", 250,
                 "550 5.0.0 Command rejected"),
}


def check_connect_reject(ctx):
    s = ctx.sent[0]
    ctx.notes["replies"] = s.summary()
    ctx.expect("nothing delivered", not ctx.delivered, repr(ctx.delivered))
    refused = [r for r in (s.connect, s.ehlo, s.mail) if r is not None and r.code // 100 == 5]
    ctx.expect("the client is refused at the greeting, EHLO or MAIL (5xx)", refused,
               s.summary())
    ctx.expect("DATA never accepted", s.data is None or s.data.code // 100 != 2, s.summary())
    want = CONNECT_REJECT_EXACT[ctx.name]
    got = (s.connect.line() if s.connect else None, s.ehlo.code if s.ehlo else None,
           s.mail.line() if s.mail else None)
    ctx.expect("greeting / EHLO / MAIL exactly %r" % (want,), got == want, repr(got))


# ------------------------------------------------------------------------------------------
# e2e_scenarios: panic

PANIC_TEMPFAIL = {"postfix": "451 4.7.1 Service unavailable - try again later",
                  "sendmail": "451 4.3.2 Please try again later"}


def check_panic(ctx):
    first, second = ctx.sent
    ctx.expect("both messages went over one SMTP connection",
               first.connect is second.connect and first.connect is not None, "")
    expect_reply(ctx, "message 1 (subject 'panic'): tempfail at end of DATA", first.data,
                 exact=PANIC_TEMPFAIL[ctx.name])
    expect_reply(ctx, "message 2 on the same connection: MAIL accepted", second.mail, klass=2)
    expect_reply(ctx, "message 2: accepted at end of DATA", second.data, klass=2)
    ctx.expect("message 1 not delivered", not ctx.delivered_for(first),
               repr(ctx.delivered_for(first)))
    one_copy(ctx, second, "message 2")
    log = ctx.notes.get("milter_log") or ""
    ctx.expect("milter logged the panic", "filter panicked" in log, log[-600:])


def drive_panic(run):
    sent = smtp_session(run.port, [m for m in run.case_messages])
    run.notes["milter_log"] = run.milter.log_text()
    return sent


# ------------------------------------------------------------------------------------------
# e2e_scenarios: slow (milter killed mid-message)

# milter_default_action = tempfail (Postfix) / F=T (Sendmail): the MTAs' plain tempfail texts
SLOW_KILLED_EXACT = PANIC_TEMPFAIL
SLOW_DOWN_EXACT = PANIC_TEMPFAIL


def drive_slow(run):
    import threading
    slow_msg, down_msg, after_msg = run.case_messages
    box = {}
    t0 = time.monotonic()
    th = threading.Thread(target=lambda: box.update(sent=smtp_send(run.port, slow_msg)))
    th.start()
    sleeping = M.wait_for(lambda: "slow: sleeping" in run.milter.log_text(), 20)
    run.notes["reached_eom"] = bool(sleeping)
    t_kill = time.monotonic()
    run.milter.kill()
    th.join(120)
    run.notes["reply_after_kill"] = time.monotonic() - t_kill
    run.notes["slow_total"] = time.monotonic() - t0
    first = box.get("sent") or Sent(slow_msg)
    down = smtp_send(run.port, down_msg)          # milter down
    run.notes["restart"] = run.milter.start()
    after = smtp_send(run.port, after_msg)        # milter back
    return [first, down, after]


def check_slow(ctx):
    first, down, after = ctx.sent
    n = ctx.notes
    ctx.expect("the filter was sleeping at end of message when killed", n.get("reached_eom"),
               "no 'slow: sleeping' in the milter log")
    ctx.expect("the client got the end-of-DATA reply within 10 s of the kill (not after the "
               "30 s sleep)", n.get("reply_after_kill", 99) < 10,
               "%.1f s" % n.get("reply_after_kill", -1))
    expect_reply(ctx, "killed mid-message: temporary failure at end of DATA", first.data, klass=4)
    if SLOW_KILLED_EXACT[ctx.name] and first.data:
        expect_reply(ctx, "killed mid-message: exactly", first.data,
                     exact=SLOW_KILLED_EXACT[ctx.name])
    ctx.expect("killed mid-message: nothing delivered or held (the client keeps the message)",
               not ctx.delivered_for(first) and not ctx.held_for(first),
               "delivered %r held %r" % (ctx.delivered_for(first), ctx.held_for(first)))
    ctx.expect("killed mid-message: nothing left in the MTA queue", not queued(ctx, first),
               repr(queued(ctx, first)))
    got4 = [r for r in [down.mail] + list(down.rcpt.values()) + [down.data]
            if r is not None and r.code // 100 == 4]
    ctx.expect("milter down: the MTA still answers, with a temporary failure (4xx)",
               got4 and not down.error, down.summary())
    if SLOW_DOWN_EXACT[ctx.name]:
        expect_reply(ctx, "milter down: MAIL reply exactly", down.mail,
                     exact=SLOW_DOWN_EXACT[ctx.name])
    ctx.expect("milter down: nothing delivered", not ctx.delivered_for(down),
               repr(ctx.delivered_for(down)))
    expect_reply(ctx, "milter restarted: next message accepted", after.data, klass=2)
    one_copy(ctx, after, "after the restart, the message")
    ctx.notes["replies"] = "killed: %s | down: %s" % (first.summary(), down.summary())


def queued(ctx, sent):
    """Queue ids of sent's message still in the MTA queue (any queue)."""
    if ctx.name == "postfix":
        return [e for e in ctx.mta.queue() if e.get("queue_name") != "hold"
                and sent.spec.token in json_dump(e)]
    return [p for p in ctx.mta.queue_files("qf")]


def json_dump(e):
    import json
    return json.dumps(e)


# ------------------------------------------------------------------------------------------
# e2e_scenarios: two-filters (a FilterList whose two filters edit the same headers)

TWO_FILTERS_EXTRA = [("X-Same", "orig"), ("X-Gone", "orig"), ("X-Kept", "orig")]


def check_two_filters(ctx):
    s = ctx.sent[0]
    expect_reply(ctx, "message accepted at end of DATA", s.data, klass=2)
    m = one_copy(ctx, s)
    if m is None:
        return
    nv = names_values(m)
    names = [n for n, _ in nv]
    x = [(n, v) for n, v in nv if n.startswith("X-") and n != "X-Conformance-Run"]
    shown = "X- headers %s; order %s" % (x, names)
    ctx.expect("both change X-Same: the later filter's value, X-Same: second",
               [v for n, v in x if n == "X-Same"] == ["second"], shown)
    ctx.expect("first deletes X-Gone, second changes it: X-Gone: second",
               [v for n, v in x if n == "X-Gone"] == ["second"], shown)
    ctx.expect("first changes X-Kept, second deletes it: no X-Kept",
               [v for n, v in x if n == "X-Kept"] == [], shown)
    ctx.expect("X-Top-First (Top, from the first filter) is the first header",
               names[:1] == ["X-Top-First"], shown)
    ctx.expect("both added headers, the first filter's above the second's, at the end",
               names[-2:] == ["X-From-First", "X-From-Second"], shown)
    ctx.expect("other headers untouched: %s" % CLIENT_HEADERS,
               [n for n in names if n in CLIENT_HEADERS] == CLIENT_HEADERS, shown)


# ------------------------------------------------------------------------------------------

def scenario_cmd(name):
    return "%s %s {socket}" % (shlex.quote(SCENARIOS_BIN), name)


def e2e_scenarios():
    return [
        Scenario("insert-headers", [
            Case("positions", [Msg("sender@example.com", ["rcpt@example.com"],
                                   subject="insert headers")], check_insert_headers),
        ], milter=scenario_cmd("insert-headers")),
        Scenario("second-header", [
            Case("change-delete", [Msg("sender@example.com", ["rcpt@example.com"],
                                       subject="second header",
                                       extra_headers=SECOND_HEADER_EXTRA)],
                 check_second_header),
        ], milter=scenario_cmd("second-header")),
        Scenario("folded-nonascii", [
            Case("echo", [Msg("sender@example.com", ["rcpt@example.com"], subject="folded",
                              extra_headers=[("X-Folded", FOLDED), ("X-Utf8", UTF8)])],
                 check_folded_nonascii),
        ], milter=scenario_cmd("folded-nonascii")),
        Scenario("multiline-reply", [
            Case("at-mail", [Msg("multiline-mail@example.com", ["rcpt@example.com"])],
                 check_multiline_mail),
            Case("at-eom", [Msg("sender@example.com", ["rcpt@example.com"])],
                 check_multiline_eom),
        ], milter=scenario_cmd("multiline-reply")),
        Scenario("connect-reject", [
            Case("refused", [Msg("sender@example.com", ["rcpt@example.com"], force=True)],
                 check_connect_reject),
        ], milter=scenario_cmd("connect-reject")),
        Scenario("panic", [
            Case("two-on-one-connection",
                 [Msg("sender@example.com", ["rcpt@example.com"], subject="panic"),
                  Msg("sender@example.com", ["rcpt@example.com"], subject="after panic")],
                 check_panic, driver=drive_panic),
        ], milter=scenario_cmd("panic")),
        Scenario("slow", [
            Case("killed-mid-message",
                 [Msg("sender@example.com", ["rcpt@example.com"], subject="slow"),
                  Msg("sender@example.com", ["rcpt@example.com"], subject="milter down"),
                  Msg("sender@example.com", ["rcpt@example.com"], subject="after restart")],
                 check_slow, driver=drive_slow),
        ], milter=scenario_cmd("slow")),
        Scenario("two-filters", [
            Case("same-header", [Msg("sender@example.com", ["rcpt@example.com"],
                                     subject="two filters", extra_headers=TWO_FILTERS_EXTRA)],
                 check_two_filters),
        ], milter=scenario_cmd("two-filters")),
    ]


# ------------------------------------------------------------------------------------------
# attachment_policy (examples/attachment_policy.rs): refused at end of DATA, with its text

ATTACHMENT_HEADERS = [("MIME-Version", "1.0"),
                      ("Content-Type", 'multipart/mixed; boundary="b1"')]


def attachment_body(part_headers):
    """A multipart/mixed body: a text part and one base64 attachment (a DOS executable's
    first bytes) with the MIME headers `part_headers`."""
    return ("--b1\r\nContent-Type: text/plain\r\n\r\nPlease find it attached.\r\n"
            "--b1\r\n%sContent-Transfer-Encoding: base64\r\n\r\n"
            "TVqQAAMAAAAEAAAA//8AALgAAAA=\r\n--b1--\r\n" % part_headers).encode()


EXE_PART = ('Content-Type: application/octet-stream; name="invoice.exe"\r\n'
            'Content-Disposition: attachment; filename="invoice.exe"\r\n')
PDF_PART = ('Content-Type: application/pdf; name="invoice.pdf"\r\n'
            'Content-Disposition: attachment; filename="invoice.pdf"\r\n')
# The filter's reply, as the SMTP client gets it at end of DATA (the same on both MTAs:
# neither adds the sender address there, unlike a reply at MAIL on Sendmail).
ATTACHMENT_REFUSED = ('550 5.7.1 attachment "invoice.exe" refused: '
                      'executable content is not accepted here')


def check_attachment_refused(ctx):
    s = ctx.sent[0]
    expect_reply(ctx, "MAIL accepted", s.mail, klass=2)
    expect_reply(ctx, "RCPT accepted", s.rcpt.get("rcpt@example.com"), klass=2)
    expect_reply(ctx, "end of DATA: the filter's reply reaches the client, exactly %r"
                 % ATTACHMENT_REFUSED, s.data, exact=ATTACHMENT_REFUSED)
    ctx.expect("nothing delivered or held", not ctx.delivered and not ctx.held,
               "delivered %r held %r" % (ctx.delivered, ctx.held))


def check_attachment_clean(ctx):
    s = ctx.sent[0]
    expect_reply(ctx, "a PDF attachment: accepted at end of DATA", s.data, klass=2)
    m = one_copy(ctx, s)
    if m is None:
        return
    ctx.expect("delivered body untouched", norm_body(m.body) == norm_body(s.spec.body),
               "body %s" % show(m.body))


def attachment_scenario():
    return Scenario("attachment-policy", [
        Case("exe-refused", [Msg("sender@example.com", ["rcpt@example.com"],
                                 subject="your invoice", body=attachment_body(EXE_PART),
                                 extra_headers=ATTACHMENT_HEADERS)],
             check_attachment_refused),
        Case("pdf-delivered", [Msg("sender@example.com", ["rcpt@example.com"],
                                   subject="your invoice", body=attachment_body(PDF_PART),
                                   extra_headers=ATTACHMENT_HEADERS)],
             check_attachment_clean),
    ], milter=ATTACHMENT_MILTER)


# ------------------------------------------------------------------------------------------
# examples/dkim_sign and examples/dkim_verify. The signature is checked with dkimpy (Debian
# python3-dkim, installed by scripts/e2e), an implementation other than the signer's, with
# the test key's record handed to it in place of DNS.

DKIM_DATA = os.path.join(HERE, "..", "..", "tests", "data", "dkim")
AUTHSERV_ID = "mx.e2e.example.test"


def dkim_record(key):
    with open(os.path.join(DKIM_DATA, key + ".txt"), "rb") as f:
        return f.read().strip()


# Run by Debian's own python3, the one python3-dkim is installed for (`python3` on PATH may
# be another). argv: the record, the only name it answers; stdin: the message.
DKIMPY = """
import logging, sys, dkim
logging.basicConfig(level=logging.DEBUG, stream=sys.stdout, format="%(message)s")
record, name = sys.argv[1].encode(), sys.argv[2].encode()
asked = []
def dns(n, timeout=5):
    asked.append(n)
    return record if n == name else None
ok = dkim.verify(sys.stdin.buffer.read(), logger=logging.getLogger("dkim"), dnsfunc=dns)
print("asked %s: %s" % (asked, "verified" if ok else "NOT verified"))
sys.exit(0 if ok else 1)
"""


def dkim_verified(raw, key):
    """(verified, details) for a delivered message, through dkimpy with `key`'s record as
    the only DNS answer (for KEY._domainkey.example.com)."""
    lines = raw.replace(b"\r\n", b"\n").split(b"\n")
    if lines and lines[0].startswith(b"From "):
        lines = lines[1:]  # an mbox separator, not part of the message
    name = "%s._domainkey.example.com." % key
    try:
        r = subprocess.run(["/usr/bin/python3", "-c", DKIMPY, dkim_record(key).decode(), name],
                           input=b"\r\n".join(lines), stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        return False, "running dkimpy: %s" % e
    return r.returncode == 0, r.stdout.decode(errors="replace").strip()[-600:]


def check_dkim_sign(ctx):
    s = ctx.sent[0]
    expect_reply(ctx, "message accepted at end of DATA", s.data, klass=2)
    m = one_copy(ctx, s)
    if m is None:
        return
    names = [n for n, _ in raw_fields(m)]
    ctx.expect("DKIM-Signature is the first header, above the MTA's own Received",
               names[:2] == ["DKIM-Signature", "Received"], "order %s" % names)
    ok, details = dkim_verified(m.raw, "rsa")
    ctx.expect("the delivered message's signature verifies (dkimpy, the test key's record)",
               ok, details)
    ok, details = dkim_verified(m.raw.replace(b"Hello Bob", b"Hello Eve"), "rsa")
    ctx.expect("a copy with its body changed does not verify (the check can fail)", not ok,
               details)


def check_dkim_verify(ctx):
    s = ctx.sent[0]
    expect_reply(ctx, "message accepted at end of DATA", s.data, klass=2)
    m = one_copy(ctx, s)
    if m is None:
        return
    names = [n for n, _ in raw_fields(m)]
    ctx.expect("Authentication-Results is the first header, above the MTA's own Received",
               names[:2] == ["Authentication-Results", "Received"], "order %s" % names)
    results = " ".join(m.headers("Authentication-Results")).replace("\n", " ")
    ctx.expect("its authserv-id is %s" % AUTHSERV_ID,
               results.startswith(AUTHSERV_ID + ";"), results)
    ctx.expect("spf=pass for the sender's domain (fixed record: the loopback network)",
               "spf=pass" in results and "smtp.mailfrom=sender@example.com" in results, results)
    ctx.expect("dkim=none for an unsigned message", "dkim=none" in results, results)


def dkim_scenarios(work):
    records = os.path.join(work, "dkim-records.txt")
    with open(records, "wb") as f:
        f.write(b"example.com v=spf1 ip4:127.0.0.0/8 -all\n")
    sign = "%s/dkim_sign {socket} --key %s --selector rsa --domain example.com" % (
        shlex.quote(BIN_DIR), shlex.quote(os.path.join(DKIM_DATA, "rsa.pem")))
    verify = "%s/dkim_verify {socket} --authserv-id %s --records %s" % (
        shlex.quote(BIN_DIR), AUTHSERV_ID, shlex.quote(records))
    return [
        Scenario("dkim-sign", [
            Case("signed", [Msg("sender@example.com", ["rcpt@example.com"], subject="sign me",
                                body=b"Hello Bob,\r\n\r\ntrailing spaces   \r\n\r\n")],
                 check_dkim_sign),
        ], milter=sign),
        Scenario("dkim-verify", [
            Case("results", [Msg("sender@example.com", ["rcpt@example.com"],
                                 subject="check me")], check_dkim_verify),
        ], milter=verify),
    ]


def scenarios(args):
    unix_cases = [c for c in conformance_cases() if c.name in ("mail-reject", "edits")]
    out = [
        Scenario("conformance", conformance_cases()),
        Scenario("conformance-unix", unix_cases, socket="unix"),
    ]
    if not args.validate:
        # The library's own conformance example again, on tokio (whatever --milter-cmd says).
        out.append(Scenario("conformance-tokio", conformance_cases(), milter=TOKIO_MILTER))
        out += [
            Scenario("conformance_hooks", conformance_cases(), milter=HOOKS_MILTER),
            Scenario("conformance_hooks-unix", unix_cases, milter=HOOKS_MILTER, socket="unix"),
            Scenario("conformance_chain", conformance_cases(), milter=CHAIN_MILTER),
            Scenario("conformance_chain-unix", unix_cases, milter=CHAIN_MILTER, socket="unix"),
        ]
        out += e2e_scenarios()
        out.append(attachment_scenario())
        out += dkim_scenarios(args.work)
    return out


# ------------------------------------------------------------------------------------------
# miltertest (OpenDKIM's MTA simulator) against the conformance filter

MILTERTEST_LUA = os.path.join(HERE, "conformance.lua")


def run_miltertest(args, report, timings, name="miltertest", milter_cmd=None):
    """Runs conformance.lua with miltertest against the conformance filter (or another
    `milter_cmd` with the same behaviour); every `CHECK ok|FAIL what` line it prints becomes
    one report line."""
    milter_cmd = milter_cmd or args.milter_cmd
    exe = shutil.which("miltertest")
    if not exe:
        report.check(name, "conformance.lua: miltertest installed", False,
                     "no miltertest binary (Debian package miltertest)")
        return
    spec = "inet:%d@127.0.0.1" % free_port()
    milter = Milter(milter_cmd, spec, args.work, name.replace(" ", "-"))
    t0 = time.monotonic()
    try:
        try:
            milter.start()
        except Exception as e:  # noqa: BLE001
            report.check(name, "conformance.lua: setup (milter %s)" % spec, False, str(e).strip())
            return
        try:
            r = subprocess.run([exe, "-s", MILTERTEST_LUA, "-D", "socket=" + spec],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120)
            out, rc = r.stdout.decode(errors="replace"), r.returncode
        except subprocess.TimeoutExpired as e:
            out, rc = (e.stdout or b"").decode(errors="replace"), "timeout"
    finally:
        milter.stop()
    checks = 0
    other = []
    for line in out.splitlines():
        if line.startswith("CHECK ok "):
            checks += 1
            report.check(name, "conformance.lua: " + line[len("CHECK ok "):], True)
        elif line.startswith("CHECK FAIL "):
            checks += 1
            what, _, details = line[len("CHECK FAIL "):].partition(" (")
            report.check(name, "conformance.lua: " + what, False, details.rstrip(")"))
        else:
            other.append(line)
    report.check(name, "conformance.lua: script ran to the end (exit status 0)",
                 rc == 0 and checks > 0,
                 "exit %s after %d checks; other output: %s; milter log: %s" % (
                     rc, checks, " | ".join(other)[-400:], M.tail(milter.log, 5).strip()))
    timings[name] = time.monotonic() - t0


# ------------------------------------------------------------------------------------------
# milter-check (the crate's command-line tool) against the Python reference milter

MILTER_CHECK_MESSAGE = (b"From: <sender@example.com>\r\nTo: <keep@example.com>\r\n"
                        b"Subject: Hello check\r\n\r\nHello World\r\n")


def milter_check_json(report, name, spec, extra):
    """Runs `milter-check --json SOCKET` with `extra` arguments and the message on standard
    input; returns (exit status, parsed report) or (None, None) after reporting a failure."""
    import json
    argv = [MILTER_CHECK, "--json", "--timeout", "10", spec] + extra
    try:
        r = subprocess.run(argv, input=MILTER_CHECK_MESSAGE, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        report.check(name, "%s: ran" % " ".join(extra), False, str(e))
        return None, None
    try:
        out = json.loads(r.stdout.decode(errors="replace"))
    except ValueError as e:
        report.check(name, "%s: JSON report" % " ".join(extra), False,
                     "%s; stdout %r; stderr %r" % (e, r.stdout[-300:], r.stderr[-300:]))
        return None, None
    return r.returncode, out


def run_milter_check(report, timings, work, name="milter-check"):
    """milter-check against refmilter.py (which speaks the protocol itself, standard library
    only): negotiation seen, the reference behaviour (conformance.rs's) decoded from --json,
    exit statuses as documented, as Postfix and as Sendmail."""
    import json
    if not os.access(MILTER_CHECK, os.X_OK):
        report.check(name, "binary present", False,
                     "%s missing; build it: cargo build --release --features cli "
                     "--bin milter-check" % MILTER_CHECK)
        return
    spec = "inet:%d@127.0.0.1" % free_port()
    milter = Milter(REFMILTER, spec, work, name)
    t0 = time.monotonic()
    try:
        try:
            milter.start()
        except Exception as e:  # noqa: BLE001
            report.check(name, "refmilter: setup (%s)" % spec, False, str(e).strip())
            return
        for mta in ("postfix", "sendmail"):
            what = "refmilter as %s" % mta
            rcpts = ["--rcpt", "keep@example.com", "--rcpt", "removeme@example.com",
                     "--rcpt", "tempfail@example.com"]
            code, out = milter_check_json(report, name, spec, ["--mta", mta] + rcpts)
            if out is None:
                continue
            details = json.dumps(out)[:1500]
            neg = out.get("negotiated") or {}
            report.check(name, "%s: negotiated version 6 with every edit action" % what,
                         neg.get("version") == 6 and {"ADD_HEADERS", "CHANGE_BODY", "ADD_RCPT",
                                                      "DELETE_RCPT", "CHANGE_HEADERS",
                                                      "QUARANTINE", "CHANGE_FROM"}
                         <= set(neg.get("actions") or []), repr(neg))
            replies = {(st["stage"], st.get("arg")): st["reply"] for st in out.get("stages", [])}
            report.check(name, "%s: RCPT <tempfail@example.com> tempfailed, the others continue"
                         % what, replies.get(("rcpt", "<tempfail@example.com>")) == "tempfail"
                         and replies.get(("rcpt", "<keep@example.com>")) == "continue",
                         repr(replies))
            mods = [(m.get("kind"), m.get("name") or m.get("rcpt") or m.get("sender"),
                     m.get("value")) for m in out.get("modifications", [])]
            want = [("add_header", "X-Conformance", "seen"),
                    ("change_header", "Subject", "[conformance] Hello check"),
                    ("add_rcpt", "<added@example.com>", None),
                    ("delete_rcpt", "<removeme@example.com>", None),
                    ("change_from", "<changed-sender@example.com>", None)]
            report.check(name, "%s: the five reference edits decoded" % what,
                         all(w in mods for w in want), "got %r" % mods)
            body = [m.get("body") for m in out.get("modifications", [])
                    if m.get("kind") == "replace_body"]
            report.check(name, "%s: body replaced by its upper case" % what,
                         body and "".join(body).replace("\r\n", "\n") == "HELLO WORLD\n",
                         repr(body))
            delivered = out.get("delivered") or {}
            report.check(name, "%s: accepted (exit 0), delivered to keep@ and added@" % what,
                         code == 0 and out.get("verdict") == "accept"
                         and sorted(delivered.get("recipients") or [])
                         == ["<added@example.com>", "<keep@example.com>"],
                         "exit %s; %s" % (code, details))
            code, out = milter_check_json(report, name, spec,
                                          ["--mta", mta, "--from", "reject@example.com"])
            if out is None:
                continue
            report.check(name, "%s: MAIL <reject@example.com> rejected with "
                         "'550 5.7.1 go away' (exit 3)" % what,
                         code == 3 and out.get("outcome") == "rejected"
                         and out.get("reply_text") == "550 5.7.1 go away"
                         and out.get("delivered") is None,
                         "exit %s; %r" % (code, out))
    finally:
        milter.stop()
    timings[name] = time.monotonic() - t0


# ------------------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--work", required=True, help="scratch directory (created by scripts/e2e)")
    ap.add_argument("--sendmail-root", required=True, help="unpacked sendmail-bin package")
    ap.add_argument("--milter-cmd", default=os.environ.get("E2E_MILTER_CMD", DEFAULT_MILTER),
                    help="milter command; {socket} -> inet:PORT@127.0.0.1 or unix:/path "
                         "(default: $E2E_MILTER_CMD or %(default)s)")
    ap.add_argument("--validate", action="store_true",
                    help="use the Python reference milter (scripts/e2e.d/refmilter.py)")
    ap.add_argument("--mta", action="append", choices=["postfix", "sendmail"],
                    help="run only this MTA (repeatable)")
    ap.add_argument("-v", "--verbose", action="store_true", help="print the SMTP replies")
    ap.add_argument("-k", action="append", help="run only cases whose scenario/case contains this")
    args = ap.parse_args()
    if args.validate:
        args.milter_cmd = REFMILTER
    if not args.validate:
        # conformance also runs as conformance-tokio whatever --milter-cmd is
        for exe in [shlex.split(DEFAULT_MILTER)[0], SCENARIOS_BIN]:
            if not os.access(exe, os.X_OK):
                print("e2e: %s not found; build it first: cargo build --release --examples"
                      " (or run with --validate for the Python reference milter)" % exe,
                      file=sys.stderr)
    os.makedirs(os.path.join(args.work, "pids"), exist_ok=True)
    report = Report()
    timings = {}
    t0 = time.monotonic()
    print("e2e: milter command: %s" % args.milter_cmd, flush=True)
    # -k miltertest runs them all; -k conformance_hooks (say) also its own miltertest run.
    miltertests = [("miltertest", None)]
    if not args.validate:
        miltertests += [("miltertest conformance_hooks", HOOKS_MILTER),
                        ("miltertest conformance_chain", CHAIN_MILTER)]
    for name, milter_cmd in miltertests:
        if not args.k or any(k in "miltertest" or (milter_cmd and k in name) for k in args.k):
            run_miltertest(args, report, timings, name, milter_cmd)
    if not args.k or any(k in "milter-check" for k in args.k):
        run_milter_check(report, timings, args.work)
    for mta_name in args.mta or ["postfix", "sendmail"]:
        for sc in scenarios(args):
            if args.k and not any(k in sc.name or any(k in "%s/%s" % (sc.name, c.name)
                                                      for c in sc.cases) for k in args.k):
                continue
            run_scenario(args, report, sc, mta_name, timings)
    timings["total"] = time.monotonic() - t0
    print("e2e: timings: " + ", ".join("%s %.2fs" % kv for kv in timings.items()),
          file=sys.stderr, flush=True)
    print("%d passed, %d failed" % (report.passed, report.failed), flush=True)
    return 1 if report.failed or report.passed == 0 else 0


if __name__ == "__main__":
    sys.exit(main())

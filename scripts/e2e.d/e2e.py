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
DEFAULT_MILTER = "target/release/examples/conformance {socket}"
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
    def __init__(self, code, text):
        self.code = code
        self.text = text.decode(errors="replace") if isinstance(text, bytes) else text

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
        parts = ["MAIL %r" % (self.mail,)]
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


def smtp_send(port, msg):
    s = Sent(msg)
    c = smtplib.SMTP(timeout=120)
    try:
        s.connect = Reply(*c.connect("127.0.0.1", port))
        s.ehlo = Reply(*c.ehlo("client.example.test"))
        s.mail = Reply(*c.mail(msg.mail_from))
        if s.mail.code // 100 != 2 and not msg.force:
            return s
        for r in msg.rcpts:
            s.rcpt[r] = Reply(*c.rcpt(r))
        if not any(v.code // 100 == 2 for v in s.rcpt.values()) and not msg.force:
            return s
        try:
            s.data = Reply(*c.data(msg.raw()))
        except smtplib.SMTPDataError as e:
            s.data = Reply(e.smtp_code, e.smtp_error)
        try:
            c.quit()
        except smtplib.SMTPException:
            pass
    except (smtplib.SMTPException, OSError) as e:
        s.error = "%s: %s" % (type(e).__name__, e)
    finally:
        c.close()
    return s


# ------------------------------------------------------------------------------------------
# scenario model

class Case:
    """messages: list of Msg; check(ctx) runs assertions through ctx.expect()."""

    def __init__(self, name, messages, check):
        self.name = name
        self.messages = messages
        self.check = check


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
            sent = []
            for msg in case.messages:
                msg.token = "%s-%s" % (case.name, uuid.uuid4().hex[:12])
                sent.append(smtp_send(mta_port, msg))
            if args.verbose:
                for x in sent:
                    print("     %s %s/%s: %s" % (mta_name, scenario.name, case.name, x.summary()),
                          flush=True)
            settled = M.wait_for(lambda: not mta.busy(), SETTLE_TIMEOUT)
            ctx = Ctx(report, mta, scenario, case, sent, settled)
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


def scenarios(args):
    unix_cases = [c for c in conformance_cases() if c.name in ("mail-reject", "edits")]
    return [
        Scenario("conformance", conformance_cases()),
        Scenario("conformance-unix", unix_cases, socket="unix"),
    ]


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
    if not args.validate and args.milter_cmd == DEFAULT_MILTER:
        exe = DEFAULT_MILTER.split()[0]
        if not os.access(exe, os.X_OK):
            print("e2e: %s not found; build it first: cargo build --release --example conformance"
                  " (or run with --validate for the Python reference milter)" % exe,
                  file=sys.stderr)
    os.makedirs(os.path.join(args.work, "pids"), exist_ok=True)
    report = Report()
    timings = {}
    t0 = time.monotonic()
    print("e2e: milter command: %s" % args.milter_cmd, flush=True)
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

"""Private Postfix and Sendmail instances for the e2e tests (used by e2e.py).

Everything lives under a work directory; /etc/postfix and /etc/mail are never written.
"""
import email
import email.policy
import glob
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
FQDN = "e2e.example.test"


def wait_for(pred, timeout, interval=0.05):
    """Poll pred() until it returns a truthy value or timeout seconds pass; returns the value."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(interval)
        interval = min(interval * 1.5, 0.5)


def alive(pid):
    """True if pid runs (a zombie counts as dead: pid 1 may not reap orphans in containers)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def port_open(host, port):
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def unix_open(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.settimeout(0.5)
        s.connect(path)
        return True
    except OSError:
        return False
    finally:
        s.close()


def socket_ready(spec):
    if spec.startswith("inet:"):
        port, host = spec[5:].split("@")
        return port_open(host, int(port))
    return unix_open(spec.split(":", 1)[1])


def run(cmd, check=True, **kw):
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)
    if check and r.returncode != 0:
        raise RuntimeError("%s failed (%d): %s" % (" ".join(cmd), r.returncode, r.stdout.strip()))
    return r.stdout


def tail(path, n=30):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except OSError:
        return "(no %s)" % path


class Message:
    """A message as the MTA delivered or held it: envelope + raw bytes + parsed headers."""

    def __init__(self, sender, recipients, raw, where, queue_id=None, extra=None):
        self.sender = sender
        self.recipients = list(recipients)
        self.raw = raw
        self.where = where          # "delivered" or "held"
        self.queue_id = queue_id
        self.extra = extra or {}
        head, sep, body = raw.replace(b"\r\n", b"\n").partition(b"\n\n")
        self.head_raw = head
        self.body = body if sep else b""
        self.msg = email.message_from_bytes(raw, policy=email.policy.compat32)

    def header_names(self):
        return [k for k, _ in self.msg.items()]

    def headers(self, name):
        return [str(v) for v in (self.msg.get_all(name) or [])]

    def header(self, name):
        v = self.headers(name)
        return v[0] if v else None

    def __repr__(self):
        return "<%s qid=%s from=%s to=%s %d bytes>" % (
            self.where, self.queue_id, self.sender, self.recipients, len(self.raw))


def bare(addr):
    return (addr or "").strip().strip("<>").lower()


class MTA:
    name = "?"

    def __init__(self, work, port, milter_spec):
        self.work = work
        self.port = port
        self.milter_spec = milter_spec
        self.dir = os.path.join(work, self.name)
        self.out = os.path.join(self.dir, "deliveries")
        self.started = None

    def prepare_dirs(self):
        if os.path.exists(self.dir):
            shutil.rmtree(self.dir)
        os.makedirs(self.out)
        os.chmod(self.dir, 0o755)
        os.chmod(self.out, 0o1777)   # pipe(8) runs the delivery agent as nobody
        shutil.copy(os.path.join(HERE, "deliver.py"), os.path.join(self.dir, "deliver.py"))
        os.chmod(os.path.join(self.dir, "deliver.py"), 0o755)
        self.deliver = os.path.join(self.dir, "deliver.py")

    def deliveries(self):
        res = []
        for js in sorted(glob.glob(os.path.join(self.out, "*.json"))):
            with open(js) as f:
                meta = json.load(f)
            with open(js[:-5] + ".eml", "rb") as f:
                raw = f.read()
            res.append(Message(meta["sender"], meta["recipients"], raw, "delivered",
                               meta["queue_id"], meta))
        return res

    def wait_ready(self, timeout=30):
        if not wait_for(lambda: port_open("127.0.0.1", self.port), timeout):
            raise RuntimeError("%s did not listen on port %d within %ds\n%s" % (
                self.name, self.port, timeout, tail(self.log)))


# --------------------------------------------------------------------------------------------
class Postfix(MTA):
    name = "postfix"

    def config(self):
        """Returns (main.cf, master.cf) text."""
        d = self.dir
        main = f"""\
# async-milter e2e: private Postfix instance (postfix -c {d}/etc)
compatibility_level = 3.6
queue_directory = {d}/queue
data_directory = {d}/data
command_directory = /usr/sbin
daemon_directory = /usr/lib/postfix/sbin
shlib_directory = /usr/lib/postfix
meta_directory = /etc/postfix
mail_owner = postfix
setgid_group = postdrop
syslog_name = postfix-e2e
maillog_file_prefixes = {d}
maillog_file = {d}/maillog
myhostname = e2e-postfix.example.test
mydomain = example.test
myorigin = $myhostname
mydestination =
relay_domains =
local_recipient_maps =
alias_maps =
alias_database =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
smtpd_peername_lookup = no
smtpd_error_sleep_time = 0
smtpd_authorized_xclient_hosts = 127.0.0.0/8
local_header_rewrite_clients =
transport_maps = static:save
save_destination_recipient_limit = 1
smtpd_milters = {self.milter_spec_postfix()}
milter_protocol = 6
milter_default_action = tempfail
milter_connect_timeout = 10s
message_size_limit = 20480000
biff = no
"""
        svc = "unix  -       -       n       -       -"
        master = f"""\
# service type  private unpriv  chroot  wakeup  maxproc command + args
127.0.0.1:{self.port} inet n - n - - smtpd
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   {svc}       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  {svc}       proxymap
showq     unix  n       -       n       -       -       showq
error     {svc}       error
retry     {svc}       error
discard   {svc}       discard
smtp      {svc}       smtp
relay     {svc}       smtp
local     unix  -       n       n       -       -       local
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
save      unix  -       n       n       -       -       pipe
  flags= user=nobody argv={self.deliver} {self.out} postfix ${{queue_id}} ${{sender}} ${{recipient}}
"""
        return main, master

    def milter_spec_postfix(self):
        s = self.milter_spec
        if s.startswith("inet:"):
            port, host = s[5:].split("@")
            return "inet:%s:%s" % (host, port)
        return s  # unix:/path

    def start(self):
        t0 = time.monotonic()
        self.prepare_dirs()
        self.etc = os.path.join(self.dir, "etc")
        os.makedirs(self.etc)
        for sub in ("queue", "data"):
            os.makedirs(os.path.join(self.dir, sub))
        shutil.chown(os.path.join(self.dir, "data"), "postfix")
        main, master = self.config()
        with open(os.path.join(self.etc, "main.cf"), "w") as f:
            f.write(main)
        with open(os.path.join(self.etc, "master.cf"), "w") as f:
            f.write(master)
        self.log = os.path.join(self.dir, "maillog")
        run(["postfix", "-c", self.etc, "start"])
        self.wait_ready()
        self.started = time.monotonic() - t0

    def stop(self):
        etc = getattr(self, "etc", None)
        if etc and os.path.exists(os.path.join(etc, "main.cf")):
            run(["postfix", "-c", self.etc, "stop"], check=False)
            # master exits asynchronously; wait until the pid file is gone
            pidf = os.path.join(self.dir, "queue", "pid", "master.pid")
            wait_for(lambda: not self._master_alive(pidf), 10)
            self.started = None

    @staticmethod
    def _master_alive(pidf):
        try:
            return alive(int(open(pidf).read().strip()))
        except (OSError, ValueError):
            return False

    def queue(self):
        out = run(["postqueue", "-c", self.etc, "-j"], check=False)
        res = []
        for line in out.splitlines():
            line = line.strip()
            if line.startswith("{"):
                res.append(json.loads(line))
        return res

    def busy(self):
        """True while some message is still queued for delivery (hold and deferred are settled)."""
        return any(e.get("queue_name") not in ("hold", "deferred") for e in self.queue())

    def held(self):
        res = []
        for e in self.queue():
            if e.get("queue_name") != "hold":
                continue
            res.append(self.read_queue_file(e["queue_id"]))
        return res

    def read_queue_file(self, qid):
        env = run(["postcat", "-c", self.etc, "-e", "-q", qid], check=False)
        content = subprocess.run(["postcat", "-c", self.etc, "-h", "-b", "-q", qid],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE).stdout
        sender, rcpts = None, []
        for line in env.splitlines():
            if line.startswith("sender: "):
                sender = line[len("sender: "):]
            elif line.startswith("recipient: "):
                rcpts.append(line[len("recipient: "):])
        # drop postcat's section banners
        lines = [l for l in content.split(b"\n") if not l.startswith(b"*** ")]
        raw = b"\n".join(lines)
        return Message(sender, rcpts, raw, "held", qid, {"postcat_envelope": env})


# --------------------------------------------------------------------------------------------
class Sendmail(MTA):
    name = "sendmail"

    def __init__(self, work, port, milter_spec, root):
        super().__init__(work, port, milter_spec)
        self.root = root
        self.binary = os.path.join(root, "usr/libexec/sendmail/sendmail")
        self.syslogd = None

    def mc(self):
        d = self.dir
        return f"""\
divert(-1)
# async-milter e2e: private Sendmail daemon
divert(0)dnl
include(`/usr/share/sendmail/cf/m4/cf.m4')dnl
VERSIONID(`async-milter e2e')dnl
OSTYPE(`linux')dnl
define(`confDOMAIN_NAME', `{FQDN}')dnl
define(`QUEUE_DIR', `{d}/mqueue')dnl
define(`confPID_FILE', `{d}/sendmail.pid')dnl
define(`STATUS_FILE', `{d}/statistics')dnl
define(`ALIAS_FILE', `{d}/aliases')dnl
define(`HELP_FILE', `{d}/helpfile')dnl
define(`confSERVICE_SWITCH_FILE', `{d}/service.switch')dnl
define(`confHOSTS_FILE', `{d}/hosts')dnl
define(`confDONT_PROBE_INTERFACES', `True')dnl
define(`confDELIVERY_MODE', `background')dnl
define(`confLOG_LEVEL', `13')dnl
define(`confMILTER_LOG_LEVEL', `13')dnl
define(`confTO_IDENT', `0s')dnl
define(`confBIND_OPTS', `-DNSRCH -DEFNAMES')dnl
FEATURE(`nocanonify')dnl
FEATURE(`promiscuous_relay')dnl
FEATURE(`accept_unresolvable_domains')dnl
FEATURE(`accept_unqualified_senders')dnl
DAEMON_OPTIONS(`Port={self.port}, Addr=127.0.0.1, Name=MTA')dnl
INPUT_MAIL_FILTER(`e2e', `S={self.milter_spec}, F=T, T=C:30s;S:300s;R:300s;E:600s')dnl
MAILER(`local')dnl
LOCAL_RULE_0
R$* < @ $+ . > $*	$#save $@ $2 $: $1 @ $2
R$* < @ $+ > $*	$#save $@ $2 $: $1 @ $2
R$+	$#save $@ {FQDN} $: $1
MAILER_DEFINITIONS
Msave,	P=/usr/bin/python3, F=lsnDFMS, E=\\n, T=DNS/RFC822/X-Unix,
	A=python3 {self.deliver} {self.out} sendmail $i $g $u
"""

    def start(self):
        t0 = time.monotonic()
        self.prepare_dirs()
        d = self.dir
        mq = os.path.join(d, "mqueue")
        os.makedirs(mq, mode=0o700)
        for name, text in (
            ("aliases", "postmaster: root\n"),
            ("helpfile", ""),
            ("statistics", ""),
            ("service.switch", "hosts files\naliases files\n"),
            ("hosts", "127.0.0.1 %s e2e localhost\n" % FQDN),
            ("nsswitch.conf", "passwd: files\ngroup: files\nshadow: files\nhosts: files\n"),
        ):
            with open(os.path.join(d, name), "w") as f:
                f.write(text)
        with open(os.path.join(d, "sendmail.mc"), "w") as f:
            f.write(self.mc())
        r = subprocess.run(["m4", os.path.join(d, "sendmail.mc")], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
        if r.returncode != 0:
            raise RuntimeError("m4 failed: " + r.stderr)
        cf = r.stdout
        self.cf = os.path.join(d, "sendmail.cf")
        with open(self.cf, "w") as f:
            f.write(cf)
        self.log = os.path.join(d, "syslog")
        pids = os.path.join(self.work, "pids")
        os.makedirs(pids, exist_ok=True)
        sock = os.path.join(d, "log.sock")
        spid = os.path.join(pids, "sendmail-syslogd.pid")
        self.syslogd = subprocess.Popen(
            [sys.executable, os.path.join(HERE, "syslogd.py"), sock, self.log, spid],
            stdin=subprocess.DEVNULL)
        if not wait_for(lambda: os.path.exists(spid) and os.path.exists(sock), 10):
            raise RuntimeError("syslog receiver did not start")
        # unshare: own hostname (FQDN, else sendmail sleeps 60 s), own /etc/hosts, nsswitch,
        # and /dev (a tmpfs with the few nodes needed plus our syslog socket at /dev/log).
        r = subprocess.run(
            ["unshare", "--uts", "--mount", "--propagation", "private",
             "/bin/sh", os.path.join(HERE, "sendmail-ns.sh"), d, FQDN, self.binary, self.cf],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if r.returncode != 0:
            raise RuntimeError("sendmail start failed: %s\n%s" % (r.stdout, tail(self.log)))
        self.wait_ready()
        self.started = time.monotonic() - t0

    def pid(self):
        try:
            return int(open(os.path.join(self.dir, "sendmail.pid")).readline())
        except (OSError, ValueError):
            return None

    def in_ns(self, cmd):
        pid = self.pid()
        return run(["nsenter", "-t", str(pid), "-u", "-m"] + cmd, check=False)

    def stop(self):
        pid = self.pid()
        if pid:
            try:
                os.kill(pid, 15)
            except OSError:
                pass
            wait_for(lambda: not alive(pid), 10)
        if self.syslogd:
            self.syslogd.terminate()
            self.syslogd.wait()
            self.syslogd = None
        self.started = None

    def queue_files(self, prefix):
        return glob.glob(os.path.join(self.dir, "mqueue", prefix + "*"))

    def busy(self):
        # qf = queued (in delivery or deferred); xf = transcript being written
        return bool(self.queue_files("qf"))

    def list_quarantine(self):
        return self.in_ns([self.binary, "-C", self.cf, "-bp", "-qQ"])

    def held(self):
        return [self.read_qf(p) for p in sorted(self.queue_files("hf"))]

    def read_qf(self, path):
        qid = os.path.basename(path)[2:]
        with open(path, "rb") as f:
            lines = f.read().split(b"\n")
        sender, rcpts, reason, headers = None, [], None, []
        for line in lines:
            if not line:
                continue
            if line[:1] in (b" ", b"\t") and headers:
                headers[-1] += b"\n" + line
                continue
            t, v = line[:1], line[1:]
            if t == b"S":
                sender = v.decode(errors="replace")
            elif t == b"R":
                rcpts.append(v.decode(errors="replace").split(":", 1)[-1])
            elif t == b"q":
                reason = v.decode(errors="replace")
            elif t == b"H":
                if b"\x81" not in v:   # skip headers holding unexpanded macros (Return-Path)
                    headers.append(re.sub(rb"^\?[^?]*\?", b"", v))
        try:
            with open(os.path.join(os.path.dirname(path), "df" + qid), "rb") as f:
                body = f.read()
        except OSError:
            body = b""
        raw = b"\n".join(headers) + b"\n\n" + body
        return Message(sender, rcpts, raw, "held", qid, {"quarantine_reason": reason})

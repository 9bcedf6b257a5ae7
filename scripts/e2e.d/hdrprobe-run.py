#!/usr/bin/env python3
"""Runs hdrprobe.py behind private Postfix and Sendmail instances and prints each delivered
header block (how NOTES.md "Header positions" was found). As root, after scripts/e2e has
installed everything once:

  python3 scripts/e2e.d/hdrprobe-run.py CASES_FILE [postfix|sendmail ...]

CASES_FILE: one message per line, "[Name=value,Name=value|]OPS" (extra client headers, then the
X-Probe-Ops value), e.g.  "X-Dup=a,X-Dup=b|m 1 X-Dup; m 2 X-Dup changed"  or  "i 0 X-Top".
The work directory (under /run) is printed at the end; remove it when done.
"""
import os
import smtplib
import socket
import subprocess
import sys
import tempfile
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import mta as M  # noqa: E402

SM_ROOT = os.path.join(os.environ.get("E2E_CACHE", "/var/cache/async-milter-e2e"), "sendmail-root")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    cases = [l.rstrip("\n") for l in open(sys.argv[1]) if l.strip() and not l.startswith("#")]
    which = sys.argv[2:] or ["postfix", "sendmail"]
    work = tempfile.mkdtemp(dir="/run", prefix="hdrprobe.")
    os.chmod(work, 0o755)
    os.makedirs(os.path.join(work, "pids"))
    for name in which:
        spec = "inet:%d@127.0.0.1" % free_port()
        milter = subprocess.Popen([sys.executable, os.path.join(HERE, "hdrprobe.py"), spec,
                                   os.path.join(work, "probe.log")])
        M.wait_for(lambda: M.socket_ready(spec), 10)
        port = free_port()
        mta = (M.Postfix(work, port, spec) if name == "postfix"
               else M.Sendmail(work, port, spec, SM_ROOT))
        mta.start()
        try:
            sent = []
            for case in cases:
                extra, ops = case.split("|", 1) if "|" in case else ("", case)
                tok = uuid.uuid4().hex[:10]
                sent.append((tok, case))
                hdrs = ("From: <s@example.com>\r\nTo: <r@example.com>\r\nSubject: probe\r\n"
                        "X-Conformance-Run: %s\r\n" % tok)
                for e in [x for x in extra.split(",") if x]:
                    hdrs += e.replace("=", ": ", 1) + "\r\n"
                hdrs += "X-Probe-Ops: %s\r\n" % ops
                c = smtplib.SMTP("127.0.0.1", port)
                c.ehlo("c.example.test")
                c.sendmail("s@example.com", ["r@example.com"], (hdrs + "\r\nbody\r\n").encode())
                c.quit()
            M.wait_for(lambda: not mta.busy() and len(mta.deliveries()) >= len(cases), 30)
            got = {}
            for m in mta.deliveries():
                for line in m.head_raw.split(b"\n"):
                    if line.startswith(b"X-Conformance-Run: "):
                        got[line.split(b": ", 1)[1].decode()] = m
            for tok, case in sent:
                print("==", name, "::", case)
                m = got.get(tok)
                if m is None:
                    print("   (not delivered)")
                    continue
                for line in m.head_raw.decode(errors="replace").split("\n"):
                    print("   ", line[:100])
        finally:
            mta.stop()
            milter.terminate()
            milter.wait()
    print("work directory:", work)


if __name__ == "__main__":
    main()

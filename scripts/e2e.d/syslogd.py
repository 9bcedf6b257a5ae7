#!/usr/bin/env python3
"""Minimal syslog receiver: datagram unix socket -> text file (one line per message).

usage: syslogd.py SOCKET_PATH LOG_FILE PID_FILE
Sendmail logs only through syslog(3), i.e. /dev/log; sendmail-ns.sh bind-mounts SOCKET_PATH
onto /dev/log inside Sendmail's private mount namespace.
"""
import os, socket, sys, time

path, logfile, pidfile = sys.argv[1:4]
if os.path.exists(path):
    os.unlink(path)
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path)
os.chmod(path, 0o666)
with open(pidfile, "w") as f:
    f.write("%d\n" % os.getpid())
with open(logfile, "ab", buffering=0) as out:
    while True:
        data = s.recv(65536)
        out.write(b"%.3f " % time.time() + data.rstrip(b"\0\n") + b"\n")

#!/usr/bin/env python3
"""Reference peer: a tiny milter speaking the raw milter protocol (version 6), standard library only.

It implements the behaviour specified for the Rust `conformance` example, so the e2e checks can
be validated against real MTAs before (and independently of) the Rust library:

  * MAIL FROM:<reject@example.com>  -> "550 5.7.1 go away"
  * RCPT TO:<tempfail@example.com>  -> tempfail for that recipient only
  * at end of message: add "X-Conformance: seen", Subject -> "[conformance] " + old,
    add <added@example.com>, delete <removeme@example.com>, body -> ASCII upper case,
    envelope sender -> <changed-sender@example.com>; Subject containing "quarantine"
    (any case) -> also quarantine "conformance quarantine". X-Conformance-Run untouched.

Usage: refmilter.py inet:PORT@127.0.0.1 | unix:/path [--log FILE]
"""
import os
import socket
import socketserver
import struct
import sys
import threading

# actions: ADDHDRS CHGBODY ADDRCPT DELRCPT CHGHDRS QUARANTINE CHGFROM
ACTIONS = 0x01 | 0x02 | 0x04 | 0x08 | 0x10 | 0x20 | 0x40
LOG = None
LOCK = threading.Lock()


def log(*a):
    if LOG:
        with LOCK:
            LOG.write(" ".join(str(x) for x in a) + "\n")
            LOG.flush()


def addr_key(a):
    return a.strip().strip("<>").lower()


class Conn(socketserver.BaseRequestHandler):
    def setup(self):
        if self.request.family != socket.AF_UNIX:
            self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.reset()

    def reset(self):
        self.subject = None
        self.body = []

    def read_packet(self):
        while True:
            if len(self.buf) >= 4:
                (n,) = struct.unpack(">I", self.buf[:4])
                if len(self.buf) >= 4 + n:
                    pkt = self.buf[4:4 + n]
                    self.buf = self.buf[4 + n:]
                    return pkt[:1], pkt[1:]
            chunk = self.request.recv(65536)
            if not chunk:
                return None, None
            self.buf += chunk

    @staticmethod
    def pkt(code, payload=b""):
        return struct.pack(">I", len(payload) + 1) + code + payload

    def send(self, *pkts):
        self.request.sendall(b"".join(pkts))

    def handle(self):
        log("connection")
        while True:
            code, data = self.read_packet()
            if code is None:
                log("eof")
                return
            if code == b"O":
                ver, act, proto = struct.unpack(">III", data[:12])
                log("optneg", ver, hex(act), hex(proto))
                # want every event, no NR bits, no leading-space option
                self.send(self.pkt(b"O", struct.pack(">III", 6, ACTIONS & act, 0)))
            elif code == b"D":
                pass
            elif code == b"C":
                log("connect", data.split(b"\0")[0].decode(errors="replace"))
                self.send(self.pkt(b"c"))
            elif code == b"H":
                self.send(self.pkt(b"c"))
            elif code == b"M":
                self.reset()
                sender = data.split(b"\0")[0].decode(errors="replace")
                log("mail", sender)
                if addr_key(sender) == "reject@example.com":
                    self.send(self.pkt(b"y", b"550 5.7.1 go away\0"))
                else:
                    self.send(self.pkt(b"c"))
            elif code == b"R":
                rcpt = data.split(b"\0")[0].decode(errors="replace")
                log("rcpt", rcpt)
                if addr_key(rcpt) == "tempfail@example.com":
                    self.send(self.pkt(b"t"))
                else:
                    self.send(self.pkt(b"c"))
            elif code == b"L":
                parts = data.split(b"\0")
                if parts[0].lower() == b"subject":
                    self.subject = parts[1]
                self.send(self.pkt(b"c"))
            elif code == b"B":
                self.body.append(data)
                self.send(self.pkt(b"c"))
            elif code in (b"T", b"N", b"U"):
                self.send(self.pkt(b"c"))
            elif code == b"E":
                self.eom()
                self.reset()
            elif code == b"A":
                self.reset()
            elif code in (b"Q", b"K"):
                if code == b"Q":
                    log("quit")
                    return
            else:
                log("unknown command", code)
                return

    def eom(self):
        subj = self.subject if self.subject is not None else b""
        out = [
            self.pkt(b"h", b"X-Conformance\0seen\0"),
            self.pkt(b"m", struct.pack(">I", 1) + b"Subject\0[conformance] " + subj + b"\0"),
            self.pkt(b"+", b"<added@example.com>\0"),
            self.pkt(b"-", b"<removeme@example.com>\0"),
            self.pkt(b"e", b"<changed-sender@example.com>\0"),
        ]
        body = b"".join(self.body).upper()
        if not body:
            out.append(self.pkt(b"b", b""))
        for i in range(0, len(body), 65535):
            out.append(self.pkt(b"b", body[i:i + 65535]))
        if b"quarantine" in subj.lower():
            out.append(self.pkt(b"q", b"conformance quarantine\0"))
        out.append(self.pkt(b"a"))
        log("eom", "subject=%r" % subj, "body=%d" % len(body))
        self.send(*out)


class TCPServer(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    allow_reuse_address = True


class UnixServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


def main():
    global LOG
    args = sys.argv[1:]
    if "--log" in args:
        i = args.index("--log")
        LOG = open(args[i + 1], "a")
        del args[i:i + 2]
    spec = args[0]
    if spec.startswith("inet:"):
        port, host = spec[5:].split("@")
        srv = TCPServer((host, int(port)), Conn)
    elif spec.startswith("unix:") or spec.startswith("local:"):
        path = spec.split(":", 1)[1]
        if os.path.exists(path):
            os.unlink(path)
        srv = UnixServer(path, Conn)
        os.chmod(path, 0o666)
    else:
        sys.exit("bad socket spec " + spec)
    log("listening", spec)
    srv.serve_forever()


if __name__ == "__main__":
    main()

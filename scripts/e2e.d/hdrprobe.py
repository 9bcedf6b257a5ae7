#!/usr/bin/env python3
"""Header-position probe milter (how NOTES.md "Header positions" was found).

Executes the raw INSHEADER/CHGHEADER/ADDHEADER ops listed in the message's X-Probe-Ops header
("i IDX NAME [VALUE]; m IDX NAME [VALUE] (no value: delete); h NAME [VALUE]") at end of
message, in the order listed, then accepts. Logs the headers and macros it saw.

usage: hdrprobe.py inet:PORT@127.0.0.1 [LOGFILE]   (driven by hdrprobe-run.py)
"""
import os, socket, socketserver, struct, sys

LOG = open(sys.argv[2], "a") if len(sys.argv) > 2 else None

def log(*a):
    if LOG:
        LOG.write(" ".join(map(str, a)) + "\n"); LOG.flush()

def pkt(code, payload=b""):
    return struct.pack(">I", len(payload) + 1) + code + payload

class Conn(socketserver.BaseRequestHandler):
    def handle(self):
        buf = b""; ops = b""; seen = []
        while True:
            while True:
                if len(buf) >= 4:
                    (n,) = struct.unpack(">I", buf[:4])
                    if len(buf) >= 4 + n:
                        code, data = buf[4:5], buf[5:4 + n]; buf = buf[4 + n:]; break
                c = self.request.recv(65536)
                if not c: return
                buf += c
            if code == b"O":
                ver, act, proto = struct.unpack(">III", data[:12])
                self.request.sendall(pkt(b"O", struct.pack(">III", 6, 0x1ff & act, 0)))
            elif code == b"D": log("macro", data[:1], data[1:])
            elif code == b"L":
                name, value = data.split(b"\0")[:2]
                seen.append((name, value))
                if name.lower() == b"x-probe-ops": ops = value
                self.request.sendall(pkt(b"c"))
            elif code in b"CHMRTNBU" and len(code) == 1:
                if code == b"M": seen = []; ops = b""
                self.request.sendall(pkt(b"c"))
            elif code == b"E":
                log("seen", seen)
                out = []
                for op in [o.strip() for o in ops.split(b";") if o.strip()]:
                    p = op.split(b" ", 3)
                    if p[0] == b"i":
                        out.append(pkt(b"i", struct.pack(">I", int(p[1])) + p[2] + b"\0" + (p[3] if len(p) > 3 else b"1") + b"\0"))
                    elif p[0] == b"m":
                        out.append(pkt(b"m", struct.pack(">I", int(p[1])) + p[2] + b"\0" + (p[3] if len(p) > 3 else b"") + b"\0"))
                    elif p[0] == b"h":
                        out.append(pkt(b"h", p[1] + b"\0" + (b" ".join(p[2:]) or b"1") + b"\0"))
                log("ops", ops)
                out.append(pkt(b"a"))
                self.request.sendall(b"".join(out))
            elif code == b"A": pass
            elif code in (b"Q", b"K"): return
            else: return

class S(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True; allow_reuse_address = True

port, host = sys.argv[1][5:].split("@")
S((host, int(port)), Conn).serve_forever()

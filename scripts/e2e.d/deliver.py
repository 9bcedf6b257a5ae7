#!/usr/bin/python3
"""Delivery agent for the e2e MTAs (Postfix pipe(8) service, Sendmail prog mailer).

usage: deliver.py OUTDIR MTA QUEUE_ID SENDER RECIPIENT...
Saves stdin as OUTDIR/<name>.eml and the envelope as OUTDIR/<name>.json (written last,
atomically: the driver waits for .json files).
"""
import json, os, sys, time

out, mta, qid, sender, rcpts = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:]
data = sys.stdin.buffer.read()
name = "%s-%s-%d-%d" % (mta, qid, time.time_ns(), os.getpid())
with open(os.path.join(out, name + ".eml"), "wb") as f:
    f.write(data)
meta = {"mta": mta, "queue_id": qid, "sender": sender, "recipients": rcpts,
        "uid": os.getuid(), "size": len(data), "time": time.time()}
tmp = os.path.join(out, "." + name + ".json")
with open(tmp, "w") as f:
    json.dump(meta, f)
os.rename(tmp, os.path.join(out, name + ".json"))

#!/usr/bin/env python3
"""The original lab's way of telling another system, for comparison: an
external client that polls for one pending delivery per transaction, signs
it and posts it with one blocking HTTP call, then marks it delivered.  It
talks to PostgreSQL through one long-lived psql process (no driver needed).
urllib opens a new connection for every POST, as a Python worker calling
requests.post without a Session does.

    delivery_poller.py DATABASE COUNT
"""
import base64
import hashlib
import hmac
import subprocess
import sys
import time
import urllib.request

SEP = "\x1f"
db, count = sys.argv[1], int(sys.argv[2])
psql = subprocess.Popen(["psql", "-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-F", SEP, "-d", db],
                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)


def run(sql):
    """Send SQL, return the rows it printed (until the marker)."""
    psql.stdin.write(sql + "\n\\echo __done__\n")
    psql.stdin.flush()
    rows = []
    for line in psql.stdout:
        line = line.rstrip("\n")
        if line == "__done__":
            return rows
        if line:
            rows.append(line.split(SEP))
    raise SystemExit("psql ended")


sent = 0
while sent < count:
    rows = run("BEGIN;\n"
               "SELECT d.id, s.url, k.secret, d.payload::text FROM integration.deliveries d"
               "  JOIN integration.subscriptions s ON s.id = d.subscription_id"
               "  JOIN integration.subscription_secrets k ON k.subscription_id = s.id"
               " WHERE d.status = 'pending' ORDER BY d.event_seq LIMIT 1 FOR UPDATE OF d SKIP LOCKED;")
    if not rows:
        run("COMMIT;")
        break
    delivery_id, url, secret, body = rows[0]
    ts = str(int(time.time()))
    key = base64.b64decode(secret[len("whsec_"):])
    sig = base64.b64encode(hmac.new(key, f"{delivery_id}.{ts}.{body}".encode(), hashlib.sha256).digest()).decode()
    req = urllib.request.Request(url, data=body.encode(), method="POST", headers={
        "content-type": "application/cloudevents+json", "webhook-id": delivery_id,
        "webhook-timestamp": ts, "webhook-signature": "v1," + sig})
    with urllib.request.urlopen(req, timeout=10) as resp:
        status = resp.status
    run(f"UPDATE integration.deliveries SET status = 'delivered', attempts = attempts + 1, last_http_status = {status},"
        f" first_attempt_at = clock_timestamp(), delivered_at = clock_timestamp() WHERE id = '{delivery_id}';\nCOMMIT;")
    sent += 1
psql.stdin.close()
psql.wait()
print(sent)

"""TAP output and the HTTP, JWT and psql helpers of the Python suites.

The Python suites of test/suites/ import this module (the shell suites
source tap.sh).  Each ok()/not ok line is what test/run counts; done()
prints the plan and gives the exit status.  The HTTP helpers talk to the
gateway named by EL_HTTP_URL, the tokens are signed with EL_JWT_SECRET.
"""
import base64
import hashlib
import hmac
import http.client
import json
import os
import socket
import subprocess
import sys
import time
import traceback
import urllib.parse

URL = urllib.parse.urlparse(os.environ.get("EL_HTTP_URL", ""))
HOST, PORT = URL.hostname, URL.port
SECRET = os.environ.get("EL_JWT_SECRET", "").encode()

n = 0
failed = 0


def ok(cond, desc, diag=None):
    """One test line; on failure diag (any value) is printed as # comments."""
    global n, failed
    n += 1
    print(("ok %d - %s" if cond else "not ok %d - %s") % (n, desc), flush=True)
    if not cond:
        failed += 1
        if diag is not None:
            print("#   " + str(diag).replace("\n", "\n#   "), flush=True)
    return cond


def done():
    """Print the plan; the suite's exit status (1 if any test failed)."""
    print("1..%d" % n, flush=True)
    return 1 if failed else 0


def run(main, teardown=None):
    """Run main, then teardown; exit with done()'s status.

    A crash of either is a failed test, not a silent pass.
    """
    try:
        main()
    except Exception as e:
        traceback.print_exc(file=sys.stdout)
        ok(False, "suite ran to the end: %s" % e)
    finally:
        if teardown is not None:
            try:
                teardown()
            except Exception as e:
                ok(False, "teardown: %s" % e)
    sys.exit(done())


def psql(sql, db="lab"):
    """Run sql in db; its unaligned output, or RuntimeError with psql's stderr."""
    env = dict(os.environ, PGOPTIONS="-c client_min_messages=warning")
    out = subprocess.run(["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", db, "-c", sql],
                         capture_output=True, text=True, env=env)
    if out.returncode != 0:
        raise RuntimeError("psql failed: %s\n%s" % (sql, out.stderr))
    return out.stdout.strip()


def request(method, path, body=None, headers=None, timeout=30, source=None):
    """One request on its own connection, from address source if given.

    Returns (status, headers with lower-case names, body bytes).
    """
    conn = http.client.HTTPConnection(HOST, PORT, timeout=timeout,
                                      source_address=(source, 0) if source else None)
    try:
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
        if isinstance(body, str):
            body = body.encode()
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def rpc(name, body=None, token=None, headers=None, timeout=30):
    """POST /rpc/name; returns (status, parsed JSON or None, headers)."""
    h = {"Content-Type": "application/json"}
    if token:
        h["Authorization"] = "Bearer " + token
    h.update(headers or {})
    status, hdrs, data = request("POST", "/rpc/" + name, body if body is not None else b"", h, timeout)
    try:
        doc = json.loads(data) if data else None
    except ValueError:
        doc = None
    return status, doc, hdrs


def raw(data, source="127.0.0.1", timeout=5):
    """Send bytes, read until the server closes; returns (response bytes, closed by the server)."""
    with socket.create_connection((HOST, PORT), timeout=timeout, source_address=(source, 0)) as sock:
        sock.sendall(data)
        out = b""
        try:
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    return out, True
                out += chunk
        except socket.timeout:
            return out, False
        except ConnectionResetError:
            return out, True


def wait_healthy(seconds=60):
    """Poll GET /health until it answers 200: that answer, else the last answer or error."""
    deadline = time.time() + seconds
    last = None
    while time.time() < deadline:
        try:
            last = request("GET", "/health", timeout=5)
            if last[0] == 200:
                return last
        except OSError as e:
            last = e
        time.sleep(0.2)
    return last


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwt(claims, secret=None, alg="HS256", header=None):
    """A JWT of claims signed with HMAC (alg HS256 or HS512; "none" leaves it unsigned).

    header replaces the default {"alg": alg, "typ": "JWT"}; the signature still uses alg.
    """
    head = b64(json.dumps(header or {"alg": alg, "typ": "JWT"}).encode())
    signing = "%s.%s" % (head, b64(json.dumps(claims).encode()))
    if alg == "none":
        return signing + "."
    digest = {"HS256": hashlib.sha256, "HS512": hashlib.sha512}[alg]
    return "%s.%s" % (signing, b64(hmac.new(SECRET if secret is None else secret, signing.encode(), digest).digest()))

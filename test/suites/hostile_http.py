#!/usr/bin/env python3
"""Hostile clients against the real gateway (prints TAP).

Every attack of the gateway's trust model, against the gateway that
test/services/gateway.sh configures (EL_HTTP_URL, EL_JWT_SECRET) in
database lab: becoming a superuser from inside a request, slow clients,
unfinished bodies, a call stuck on a stalled S3, malformed framing,
cross-site writes, DNS rebinding, CORS, token edge cases and what errors
tell anonymous callers.  Loopback only; every slow client is bounded in
count and time.  Attackers connect from other loopback addresses
(127.0.0.2, ...) than the probes (127.0.0.1), as a remote attacker would.
Settings changed here are reset at the end.
"""
import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import tap  # noqa: E402
from tap import HOST, PORT, jwt, ok, psql, raw, request, rpc, wait_healthy  # noqa: E402

TREE = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def set_settings(**settings):
    for name, value in settings.items():
        if value is None:
            psql("ALTER SYSTEM RESET enterprise_lab.%s" % name)
        else:
            psql("ALTER SYSTEM SET enterprise_lab.%s = '%s'" % (name, value))
    psql("SELECT pg_reload_conf()")
    time.sleep(1.5)  # the gateways reload at their next wake-up (at most a second)


def timed_health(source="127.0.0.1"):
    t0 = time.monotonic()
    try:
        s, _, _ = request("GET", "/health", timeout=10, source=source)
    except OSError as e:
        s = repr(e)
    return s, (time.monotonic() - t0) * 1000


def gateway_pids():
    return [int(p) for p in psql("SELECT pid FROM pg_stat_activity WHERE backend_type = 'enterprise_lab gateway'").split()]


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


SETUP = r"""
CREATE EXTENSION IF NOT EXISTS enterprise_lab;
-- A throwaway SECURITY INVOKER function in api that tries every way up to
-- a superuser; it reports what each attempt did.
CREATE FUNCTION api.hostile_test_escalate(body jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
  result jsonb := '{}';
  attempt text;
BEGIN
  FOREACH attempt IN ARRAY ARRAY['SET SESSION AUTHORIZATION postgres', 'SET ROLE postgres',
                                  'SELECT set_config(''session_authorization'', ''postgres'', true)',
                                  'RESET SESSION AUTHORIZATION'] LOOP
    BEGIN
      EXECUTE attempt;
      result := result || jsonb_build_object(attempt,
        CASE WHEN (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN 'superuser' ELSE 'no superuser' END);
    EXCEPTION WHEN OTHERS THEN
      result := result || jsonb_build_object(attempt, SQLSTATE);
    END;
  END LOOP;
  RETURN result || jsonb_build_object('session_user', session_user, 'current_user', current_user);
END $$;
CREATE FUNCTION api.hostile_test_size(body jsonb) RETURNS jsonb LANGUAGE sql AS $$
  SELECT jsonb_build_object('length', length(body::text))
$$;
"""

TEARDOWN = r"""
DROP FUNCTION IF EXISTS api.hostile_test_escalate(jsonb), api.hostile_test_size(jsonb);
"""

SETTINGS = ("http_read_timeout", "http_max_buffered", "http_host_names", "http_cors_origins",
            "jwt_secret", "s3_endpoint", "s3_timeout", "s3_connect_timeout")


def main():
    psql(TEARDOWN)
    psql(SETUP)
    h = wait_healthy()
    ok(isinstance(h, tuple) and h[0] == 200, "the gateway is up", h)

    # ------------------------------------------------------------ no way to superuser
    # The function does reach a superuser when a superuser calls it: the attempts are real.
    direct = json.loads(psql("SELECT api.hostile_test_escalate('{}')"))
    ok(direct.get("SET ROLE postgres") == "superuser", "control: from a superuser session the function gets there",
       direct)
    op = jwt({"role": "lab_operator", "sub": "operator.one", "exp": int(time.time()) + 600})
    admin = jwt({"role": "lab_admin", "sub": "admin.one", "exp": int(time.time()) + 600})
    for who, token in (("anonymous", None), ("an operator", op), ("an admin", admin)):
        s, d, _ = rpc("hostile_test_escalate", {}, token=token)
        ok(s == 200 and d and all(d.get(k) == "42501" for k in
                                  ("SET SESSION AUTHORIZATION postgres", "SET ROLE postgres",
                                   "SELECT set_config('session_authorization', 'postgres', true)")),
           "%s: SET SESSION AUTHORIZATION / SET ROLE postgres from an invoker function fail (42501)" % who, (s, d))
        ok(d and d.get("RESET SESSION AUTHORIZATION") == "no superuser" and d.get("session_user") == "lab_authenticator",
           "%s: resetting leaves the authenticator, no superuser" % who, d)
    s, d, _ = rpc("hostile_test_escalate", {}, token=jwt({"role": "postgres", "exp": int(time.time()) + 600}))
    ok(s == 403, "a token naming the superuser is refused (403)", (s, d))
    users = psql("SELECT string_agg(DISTINCT a.usename || ':' || r.rolsuper, ',') FROM pg_stat_activity a "
                 "JOIN pg_roles r ON r.rolname = a.usename WHERE a.backend_type = 'enterprise_lab gateway'")
    ok(users == "lab_authenticator:false", "every gateway process is connected as the authenticator, no superuser",
       users)

    # ------------------------------------------------------------ several processes
    pids = gateway_pids()
    workers = int(psql("SHOW enterprise_lab.http_workers"))
    ok(len(pids) == workers and workers >= 2, "%d gateway processes serve the port" % workers, pids)

    # ------------------------------------------------------------ strict HTTP
    cases = [
        ("duplicate Content-Length",
         b"POST /rpc/hostile_test_size HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
         b"Content-Length: 2\r\nContent-Length: 2\r\n\r\n{}"),
        ("Content-Length with Transfer-Encoding",
         b"POST /rpc/hostile_test_size HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
         b"Content-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n"),
        ("'Transfer-Encoding :' with a space",
         b"POST /rpc/hostile_test_size HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
         b"Transfer-Encoding : chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n"),
        ("HTTP/1.1 without Host",
         b"GET /health HTTP/1.1\r\n\r\n"),
        ("two Host headers",
         b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nHost: evil.example\r\n\r\n"),
    ]
    for name, data in cases:
        out, closed = raw(data)
        ok(out.startswith(b"HTTP/1.1 400 ") and closed, "%s -> 400 and the connection is closed" % name, out[:160])
    out, closed = raw(b"POST /rpc/hostile_test_size HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                      b"Content-Length: 2\r\nConnection: close\r\n\r\n{}")
    ok(out.startswith(b"HTTP/1.1 200 "), "control: the same request framed correctly -> 200", out[:160])

    # ------------------------------------------------------------ cross-site writes
    before = psql("SELECT count(*) FROM intake.submissions")
    form = ("requester_name=Evil&requester_email=evil@example.test&description=x"
            "&request_type=incident&priority=high&team=operations")
    json_text = json.dumps({"requester_name": "Evil Form", "requester_email": "evil@example.test",
                            "description": "Posted by a form of another site.", "request_type": "incident",
                            "priority": "high", "team": "operations",
                            "customer_id": "10000000-0000-4000-8000-000000000002"})
    for ctype, body in (("text/plain", json_text), ("application/x-www-form-urlencoded", form),
                        ("multipart/form-data; boundary=x", "--x\r\n\r\n" + json_text + "\r\n--x--\r\n")):
        s, d, _ = rpc("submit_request", body, headers={"Content-Type": ctype})
        ok(s == 415 and d and d.get("code") == "PGRST107", "a %s body on /rpc/ -> 415 PGRST107" % ctype.split(";")[0],
           (s, d))
    ok(psql("SELECT count(*) FROM intake.submissions") == before, "... and nothing was submitted")
    s, d, _ = rpc("hostile_test_size", {"a": 1}, headers={"Content-Type": "application/json; charset=utf-8"})
    ok(s == 200, "application/json with a charset is accepted", (s, d))

    # DNS rebinding: another name for this address.
    for method, path in (("GET", "/"), ("GET", "/health"), ("POST", "/rpc/hostile_test_size")):
        s, hdrs, body = request(method, path, b"{}" if method == "POST" else None,
                                {"Host": "evil.example:%d" % PORT, "Content-Type": "application/json"})
        ok(s == 421, "%s %s with Host: evil.example -> 421" % (method, path), (s, body[:120]))
    for host in ("127.0.0.1:%d" % PORT, "localhost:%d" % PORT, "LOCALHOST", "[::1]:%d" % PORT):
        s, _, _ = request("GET", "/health", headers={"Host": host})
        ok(s == 200, "Host: %s is served" % host, s)
    set_settings(http_host_names="lab.example.test, other.example.test")
    s, _, _ = request("GET", "/health", headers={"Host": "lab.example.test:%d" % PORT})
    ok(s == 200, "a name in enterprise_lab.http_host_names is served after a reload", s)
    s, _, _ = request("GET", "/health", headers={"Host": "evil.example"})
    ok(s == 421, "... and others still are not", s)

    # CORS: preflight by the allow-list; writes from other origins refused.
    pre = {"Origin": "https://app.example.test", "Access-Control-Request-Method": "POST",
           "Access-Control-Request-Headers": "authorization, content-type"}
    s, hdrs, _ = request("OPTIONS", "/rpc/hostile_test_size", headers=pre)
    ok(s == 403 and "access-control-allow-origin" not in hdrs, "a preflight from an origin not allowed -> 403", (s, hdrs))
    s, d, hdrs = rpc("hostile_test_size", {}, headers={"Origin": "https://evil.example"})
    ok(s == 403 and d.get("code") == "EL403", "a POST from another origin -> 403", (s, d))
    s, d, hdrs = rpc("hostile_test_size", {}, headers={"Origin": "http://127.0.0.1:%d" % PORT})
    ok(s == 200 and "access-control-allow-origin" not in hdrs, "a POST from the gateway's own origin is served", (s, d))
    set_settings(http_cors_origins="https://app.example.test")
    s, hdrs, _ = request("OPTIONS", "/rpc/hostile_test_size", headers=pre)
    ok(s == 204 and hdrs.get("access-control-allow-origin") == "https://app.example.test"
       and "POST" in hdrs.get("access-control-allow-methods", "")
       and "authorization" in hdrs.get("access-control-allow-headers", "").lower(),
       "a preflight from an allowed origin -> 204 with the CORS headers", (s, hdrs))
    s, d, hdrs = rpc("hostile_test_size", {}, headers={"Origin": "https://app.example.test"})
    ok(s == 200 and hdrs.get("access-control-allow-origin") == "https://app.example.test"
       and "Origin" in hdrs.get("vary", ""), "a call from an allowed origin carries Access-Control-Allow-Origin", hdrs)
    s, d, _ = rpc("hostile_test_size", {}, headers={"Origin": "https://app.example.test.evil.example"})
    ok(s == 403, "an origin that only starts like an allowed one -> 403", (s, d))
    set_settings(http_cors_origins=None, http_host_names=None)

    # ------------------------------------------------------------ tokens as PostgREST reads them
    now = int(time.time())
    cases = [
        ("exp as a string", {"role": "lab_operator", "exp": str(now + 600)}, None, 401, "PGRST303"),
        ("nbf as a string", {"role": "lab_operator", "nbf": str(now - 600)}, None, 401, "PGRST303"),
        ("exp as null", {"role": "lab_operator", "exp": None}, None, 401, "PGRST303"),
        ("exp as an object", {"role": "lab_operator", "exp": {"v": now + 600}}, None, 401, "PGRST303"),
        ("iat in the future", {"role": "lab_operator", "iat": now + 600}, None, 401, "PGRST303"),
        ("an unknown crit header", {"role": "lab_operator"},
         {"alg": "HS256", "typ": "JWT", "crit": ["x-unknown"], "x-unknown": 1}, 401, "PGRST301"),
        ("alg hs256 (lower case)", {"role": "lab_operator"}, {"alg": "hs256", "typ": "JWT"}, 401, "PGRST301"),
        ("expired 60 s ago", {"role": "lab_operator", "exp": now - 60}, None, 401, "PGRST303"),
        ("expired 10 s ago (within the 30 s clock skew)", {"role": "lab_operator", "exp": now - 10}, None, 200, None),
        ("valid from 10 s from now (within the skew)", {"role": "lab_operator", "nbf": now + 10}, None, 200, None),
        ("exp as a fraction", {"role": "lab_operator", "exp": now + 600.5}, None, 200, None),
    ]
    for name, claims, header, status, code in cases:
        s, d, hdrs = rpc("hostile_test_size", {}, token=jwt(claims, header=header))
        good = s == status and (code is None or (d and d.get("code") == code))
        if status == 401:
            good = good and hdrs.get("www-authenticate", "").startswith('Bearer error="invalid_token"')
        ok(good, "a token with %s -> %d%s" % (name, status, " " + code if code else ""), (s, d, hdrs.get("www-authenticate")))
    short = "too-short-a-secret-31-characters"[:31]
    # Secrets live in files only the server's user reads (src/secrets.c).
    short_file = os.path.join(os.environ["EL_TEST_WORK"], "short_jwt_secret")
    with open(short_file, "w") as f:
        f.write(short + "\n")
    os.chmod(short_file, 0o600)
    shutil.chown(short_file, "postgres")
    set_settings(jwt_secret="@" + short_file)
    s, d, _ = rpc("hostile_test_size", {}, token=jwt({"role": "lab_operator"}, secret=short.encode()))
    ok(s == 500 and d.get("code") == "PGRST300", "a secret shorter than 32 characters is a configuration error (500)",
       (s, d))
    set_settings(jwt_secret=None)
    s, d, _ = rpc("hostile_test_size", {}, token=op)
    ok(s == 200, "the configured secret works again", (s, d))

    # ------------------------------------------------------------ slow clients
    set_settings(http_read_timeout="3s")
    attackers = []
    for i in range(64):
        try:
            sock = socket.create_connection((HOST, PORT), timeout=5, source_address=("127.0.0.2", 0))
            sock.sendall(b"G")
            attackers.append(sock)
        except OSError:
            pass
    ok(len(attackers) == 64, "64 slow clients connected from one address", len(attackers))
    stop = threading.Event()

    def drip():
        while not stop.is_set():
            for sock in attackers:
                try:
                    sock.send(b"E")
                except OSError:
                    pass
            stop.wait(1)

    dripper = threading.Thread(target=drip)
    dripper.start()
    probes = []
    t_end = time.time() + 2.5
    while time.time() < t_end:
        probes.append(timed_health())
        time.sleep(0.1)
    ok(all(s == 200 and ms < 1000 for s, ms in probes),
       "while they drip one byte a second, /health answers every time (%d probes, slowest %.0f ms)"
       % (len(probes), max(ms for _, ms in probes)), probes[:10])
    time.sleep(3)
    closed = 0
    for sock in attackers:
        sock.settimeout(0.5)
        try:
            if sock.recv(100) == b"":
                closed += 1
        except ConnectionResetError:
            closed += 1
        except (socket.timeout, OSError):
            pass
    stop.set()
    dripper.join()
    ok(closed == len(attackers), "the total deadline (http_read_timeout 3s) closed every slow client within 6 s",
       "%d of %d closed" % (closed, len(attackers)))
    for sock in attackers:
        sock.close()

    # One address cannot hold more than http_max_connections_per_ip per process.
    per_ip = int(psql("SHOW enterprise_lab.http_max_connections_per_ip"))
    log_before = open(os.environ["EL_LOG"], errors="replace").read().count("enterprise_lab gateway: ")
    socks = []
    for i in range(per_ip * workers + 8):
        try:
            socks.append(socket.create_connection((HOST, PORT), timeout=5, source_address=("127.0.0.5", 0)))
        except OSError:
            pass
    time.sleep(0.5)
    open_ones = 0
    for sock in socks:
        sock.settimeout(0.2)
        try:
            if sock.recv(100) != b"":
                open_ones += 1
        except socket.timeout:
            open_ones += 1
        except OSError:
            pass
        sock.close()
    ok(open_ones <= per_ip * workers,
       "%d connections from one address: the gateway keeps at most %d x %d of them open (%d)"
       % (len(socks), workers, per_ip, open_ones))
    s, ms = timed_health()
    ok(s == 200, "... and /health from another address is served meanwhile (%.0f ms)" % ms, s)
    logged = open(os.environ["EL_LOG"], errors="replace").read().count("enterprise_lab gateway: ") - log_before
    ok(logged <= workers, "... and the refusals cost at most one log line per gateway process (%d)" % logged)

    # A slow body is cut by the same deadline.
    t0 = time.monotonic()
    with socket.create_connection((HOST, PORT), timeout=10, source_address=("127.0.0.3", 0)) as sock:
        sock.sendall(b"POST /rpc/hostile_test_size HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 100\r\n\r\n{")
        end = "open"
        try:
            while time.monotonic() - t0 < 8:
                sock.send(b" ")
                time.sleep(0.5)
        except OSError:
            end = "closed"
    ok(end == "closed" and time.monotonic() - t0 < 6, "a body sent a byte at a time is cut at the deadline",
       (end, time.monotonic() - t0))

    # Unfinished bodies: the memory budget across connections.
    set_settings(http_read_timeout="4s", http_max_buffered="40MB")
    rss_before = {p: rss_kb(p) for p in gateway_pids()}
    big = 3 * 1024 * 1024
    holders = []
    answers = []
    for i in range(16):
        sock = socket.create_connection((HOST, PORT), timeout=5, source_address=("127.0.0.4", 0))
        sock.sendall(b"POST /rpc/hostile_test_size HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n" % (15 * 1024 * 1024))
        try:
            sock.sendall(b"[" + b"1," * (big // 2))
        except OSError:
            pass
        holders.append(sock)
    time.sleep(0.5)
    for sock in holders:
        sock.settimeout(0.3)
        try:
            answers.append(sock.recv(1000))
        except (socket.timeout, OSError):
            answers.append(b"")
    refused = sum(1 for a in answers if a.startswith(b"HTTP/1.1 503 ") and b"EL503" in a)
    growth = max(rss_kb(p) - rss_before.get(p, 0) for p in gateway_pids()) / 1024
    ok(refused == 14, "16 unfinished 15 MiB bodies: the 2 that fit in http_max_buffered (40MB) are read, "
       "14 get 503 at once (%d)" % refused, answers[:3])
    ok(growth < 40, "... and no gateway process grew by more than 40 MB (largest growth %.1f MB)" % growth)
    s, ms = timed_health()
    ok(s == 200, "/health still answers meanwhile (%.0f ms)" % ms, s)
    for sock in holders:
        sock.close()
    time.sleep(5)
    s, d, _ = rpc("hostile_test_size", [1] * (big // 4))
    ok(s == 200 and d.get("length", 0) > big // 2, "the budget is free again once they are gone", (s, d))
    set_settings(http_read_timeout=None, http_max_buffered=None)

    # ------------------------------------------------------------ a call stuck on a stalled S3
    stall_port = int(subprocess.run([sys.executable, "-c", "import socket; s=socket.socket(); s.bind(('127.0.0.1', 0)); "
                                     "print(s.getsockname()[1])"], capture_output=True, text=True).stdout)
    stall_log = os.path.join(os.environ.get("EL_TEST_WORK") or tempfile.gettempdir(), "hostile-stall.log")
    stall = subprocess.Popen(["/usr/bin/python3", os.path.join(TREE, "test", "s3", "stalling_server.py"),
                              "--listen", "127.0.0.1:%d" % stall_port, "--log", stall_log])
    try:
        for _ in range(50):
            try:
                socket.create_connection(("127.0.0.1", stall_port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        set_settings(s3_endpoint="http://127.0.0.1:%d" % stall_port, s3_timeout="6s")
        document = {"file_name": "stalled.txt", "content_type": "text/plain",
                    "content_base64": base64.b64encode(b"stalled upload").decode()}
        body = {"requester_name": "Stalled Upload", "requester_email": "stalled@example.test",
                "description": "Uploaded while S3 stalls.", "request_type": "incident", "priority": "high",
                "team": "operations", "customer_id": "10000000-0000-4000-8000-000000000002", "document": document}
        result = {}

        def stuck_call():
            t0 = time.monotonic()
            result["answer"] = rpc("submit_request", body, timeout=30)
            result["ms"] = (time.monotonic() - t0) * 1000

        caller = threading.Thread(target=stuck_call)
        caller.start()
        for _ in range(50):  # until the upload has reached the stalled S3
            if os.path.exists(stall_log) and "PUT" in open(stall_log).read():
                break
            time.sleep(0.1)
        probes = [timed_health() for _ in range(10)]
        ok(all(s == 200 and ms < 100 for s, ms in probes),
           "while one call is stuck on a stalled S3, /health answers within 100 ms (10 probes, slowest %.0f ms)"
           % max(ms for _, ms in probes), probes)
        s, d, _ = rpc("hostile_test_size", {"x": 1}, timeout=5)
        ok(s == 200, "... and other calls are served", (s, d))
        caller.join(30)
        s, d, _ = result.get("answer", (None, None, None))
        text = json.dumps(d)
        ok(s is not None and s >= 500 and result["ms"] > 5000, "the stuck call fails after s3_timeout (%s)" % s, (s, d))
        ok(str(stall_port) not in text and "stalled.txt" not in text and "enterprise_lab." not in text
           and "s3_" not in text and "bucket" not in text.lower(),
           "its error tells the anonymous caller no endpoint, object key or setting name", d)
        # An unreachable endpoint: the error names the endpoint and the setting in the server log only.
        stall.kill()
        stall.wait()
        set_settings(s3_endpoint="http://127.0.0.1:%d" % stall_port, s3_connect_timeout="1s")
        s, d, _ = rpc("submit_request", dict(body, requester_email="unreachable@example.test"))
        text = json.dumps(d)
        ok(s is not None and s >= 400 and str(stall_port) not in text and "enterprise_lab." not in text
           and "s3_" not in text, "an unreachable S3 is reported to an anonymous caller without its address", (s, d))
        s, d, _ = rpc("submit_request", dict(body, requester_email="unreachable.op@example.test"), token=op)
        ok(s is not None and s >= 400 and d and d.get("message") != "The request could not be completed",
           "... while a token holder gets the message", (s, d))
    finally:
        if stall.poll() is None:
            stall.kill()
        set_settings(s3_endpoint=None, s3_timeout=None, s3_connect_timeout=None)

    # ------------------------------------------------------------ health costs the same at any size
    rn = psql("SELECT request_number FROM intake.submit_request('Health Backlog', 'backlog@example.test', "
              "'A backlog for the health check.', 'incident', 'low', 'operations', "
              "'10000000-0000-4000-8000-000000000002')")
    sid = psql("SELECT submission_id FROM source_system.service_requests WHERE request_number = '%s'" % rn)
    # 12000 retries that are not due: a backlog the workers leave alone.
    psql("INSERT INTO integration.events (submission_id, event_type, source_system, aggregate_type, aggregate_id, "
         "event_status, next_attempt_at) SELECT '%s', 'HostileBacklog', 'test', 'service_request', gen_random_uuid(), "
         "'failed', now() + interval '1 day' FROM generate_series(1, 12000)" % sid)
    try:
        s, d, _ = rpc("health", {})
        ok(s == 200 and d.get("pending_events") == 10000, "api.health counts a backlog of 12000 up to 10000", (s, d))
        t0 = time.monotonic()
        s, _, body = request("GET", "/health")
        ms = (time.monotonic() - t0) * 1000
        doc = json.loads(body) if s == 200 else {}
        ok(s == 200 and doc.get("pending_events") == 10000 and ms < 100,
           "GET /health: the same bounded count, in %.0f ms" % ms, (s, body[:200]))
        calls = psql("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'enterprise_lab gateway' "
                     "AND usename <> 'lab_authenticator'")
        ok(calls == "0", "... asked by a gateway that is no superuser")
    finally:
        psql("DELETE FROM integration.events WHERE event_type = 'HostileBacklog'")


def teardown():
    for name in SETTINGS:
        psql("ALTER SYSTEM RESET enterprise_lab.%s" % name)
    psql("SELECT pg_reload_conf()")
    psql(TEARDOWN)


if __name__ == "__main__":
    tap.run(main, teardown)

#!/usr/bin/env python3
"""HTTP tests of the built-in gateway (prints TAP).

Runs against the gateway that test/services/gateway.sh configures
(EL_HTTP_URL, EL_JWT_SECRET) in database lab.  Test-only functions
api.http_test_* give each SQLSTATE on demand; they, the files added to the
web directory and a test table are removed at the end.
"""
import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import tap  # noqa: E402
from tap import HOST, PORT, b64, jwt, ok, psql, request, rpc, wait_healthy  # noqa: E402


def set_setting(name, value):
    psql("ALTER SYSTEM SET %s = %s" % (name, value))
    psql("SELECT pg_reload_conf()")


def set_request_timeout(value):
    set_setting("enterprise_lab.http_request_timeout", value)


def wait_health(accept, seconds=30):
    """Poll /health until accept(status, document) holds; the last answer or None."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            st, _, body = request("GET", "/health", timeout=5)
            doc = json.loads(body)
            if accept(st, doc):
                return st, doc
        except (OSError, ValueError):
            pass
        time.sleep(0.2)
    return None


# ---------------------------------------------------------------- setup

SETUP = r"""
CREATE EXTENSION IF NOT EXISTS enterprise_lab;
CREATE ROLE http_test_outsider NOLOGIN;
GRANT USAGE ON SCHEMA api TO http_test_outsider;

CREATE TABLE public.http_test_writes (id serial PRIMARY KEY, note text);
GRANT ALL ON public.http_test_writes, public.http_test_writes_id_seq TO PUBLIC;

CREATE FUNCTION api.http_test_echo(body jsonb) RETURNS jsonb LANGUAGE sql AS $$
  SELECT jsonb_build_object('body', body, 'current_user', current_user, 'session_user', session_user,
                            'claims', current_setting('request.jwt.claims', true)::jsonb,
                            'path', current_setting('request.path', true))
$$;
CREATE FUNCTION api.http_test_raise(body jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
  IF body ? 'detail' THEN
    RAISE EXCEPTION USING ERRCODE = body->>'code', MESSAGE = body->>'message',
          DETAIL = body->>'detail', HINT = body->>'hint';
  END IF;
  RAISE EXCEPTION USING ERRCODE = body->>'code', MESSAGE = 'test error';
END $$;
CREATE FUNCTION api.http_test_sleep(body jsonb) RETURNS jsonb LANGUAGE sql AS $$
  SELECT jsonb_build_object('slept', pg_sleep((body->>'seconds')::float8) IS NULL)
$$;
CREATE FUNCTION api.http_test_write(body jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO public.http_test_writes (note) VALUES (body->>'note');
  IF (body->>'fail')::boolean THEN
    RAISE EXCEPTION 'failing after the write' USING ERRCODE = 'P0001';
  END IF;
  RETURN jsonb_build_object('written', body->>'note');
END $$;
CREATE FUNCTION api.http_test_operator_only(body jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT '{"ok": true}'::jsonb $$;
REVOKE EXECUTE ON FUNCTION api.http_test_operator_only(jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api.http_test_operator_only(jsonb) TO lab_operator;
CREATE FUNCTION api.http_test_two_args(a jsonb, b jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT a $$;
CREATE FUNCTION api.http_test_text_arg(a text) RETURNS jsonb LANGUAGE sql AS $$ SELECT to_jsonb(a) $$;
"""

TEARDOWN = r"""
DROP FUNCTION IF EXISTS api.http_test_echo(jsonb), api.http_test_raise(jsonb), api.http_test_sleep(jsonb),
  api.http_test_write(jsonb), api.http_test_operator_only(jsonb), api.http_test_two_args(jsonb, jsonb),
  api.http_test_text_arg(text);
DROP TABLE IF EXISTS public.http_test_writes;
DO $$
BEGIN
  IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'http_test_outsider') THEN
    IF EXISTS (SELECT FROM pg_namespace WHERE nspname = 'api') THEN
      REVOKE ALL ON SCHEMA api FROM http_test_outsider;
    END IF;
    DROP ROLE http_test_outsider;
  END IF;
END $$;
"""

web_dir = os.path.join(subprocess.run([os.path.join(os.environ["EL_BINDIR"], "pg_config"), "--sharedir"],
                                      capture_output=True, text=True, check=True).stdout.strip(),
                       "extension", "enterprise_lab_web")
created_files = []


def add_web_file(rel, content=None, symlink_to=None):
    path = os.path.join(web_dir, rel)
    if os.path.lexists(path):
        return
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if symlink_to:
        os.symlink(symlink_to, path)
    else:
        with open(path, "wb") as f:
            f.write(content)
    created_files.append(path)


def teardown():
    for path in reversed(created_files):
        if os.path.lexists(path):
            os.unlink(path)
    try:
        os.rmdir(os.path.join(web_dir, "http-test-sub"))
    except OSError:
        pass
    try:
        set_request_timeout("DEFAULT")
        set_setting("enterprise_lab.database", "DEFAULT")
        set_setting("enterprise_lab.http_max_body", "DEFAULT")
        set_setting("enterprise_lab.http_anon_role", "DEFAULT")
        psql("DROP DATABASE IF EXISTS http_test_noext WITH (FORCE)")
        psql(TEARDOWN)
    except RuntimeError as e:
        print("# teardown: %s" % e)


def main():
    psql(TEARDOWN)
    psql(SETUP)

    # ------------------------------------------------------------ health
    h = wait_healthy()
    ok(isinstance(h, tuple) and h[0] == 200, "GET /health answers 200 once the extension exists", h)
    doc = json.loads(h[2]) if isinstance(h, tuple) else {}
    ok(doc.get("status") == "ok" and doc.get("database") is True, "health says the database is reachable", doc)
    ok(isinstance(doc.get("workers_running"), int) and doc["workers_running"] >= 1,
       "health counts the running event workers", doc)
    ok(isinstance(doc.get("pending_events"), int), "health counts pending events", doc)
    ok(h[1].get("content-type", "").startswith("application/json"), "health is JSON")

    # ------------------------------------------------------------ rpc basics
    s, d, hdr = rpc("http_test_echo", {"a": [1, "x"]})
    ok(s == 200 and d["body"] == {"a": [1, "x"]}, "POST /rpc/<name> passes the JSON body as the one argument", d)
    ok(d and d["current_user"] == "lab_anon", "without a token the call runs as the anonymous role", d)
    ok(d and d["session_user"] == "lab_authenticator", "the session user is the authenticator", d)
    ok(d and d["claims"] == {"role": "lab_anon"}, "request.jwt.claims holds the anonymous role", d)
    ok(d and d["path"] == "/rpc/http_test_echo", "request.path is set", d)
    ok(hdr.get("content-type", "").startswith("application/json"), "rpc answers are JSON")
    s, d, _ = rpc("http_test_echo")
    ok(s == 200 and d["body"] == {}, "a missing body is {}", d)
    s, d, _ = rpc("http_test_echo", "[1, 2]")
    ok(s == 200 and d["body"] == [1, 2], "any JSON value is passed on; the function judges it", d)
    s, d, _ = rpc("http_test_echo", {"t": "ä😀"})
    ok(s == 200 and d["body"] == {"t": "ä😀"}, "UTF-8 survives the round trip", d)

    # ------------------------------------------------------------ bad requests
    for body, what in (("{", "truncated JSON"), ("{'a': 1}", "single quotes"), ("nope", "a bare word"),
                       (b"{\"a\": \"\xff\"}", "invalid UTF-8"), (b"{}\x00trailing", "a NUL byte")):
        s, d, _ = rpc("http_test_echo", body)
        ok(s == 400 and d and d.get("code") == "PGRST102" and set(d) == {"code", "message", "details", "hint"},
           "bad JSON (%s) -> 400 PGRST102 in PostgREST's error shape" % what, (s, d))

    s, d, _ = rpc("no_such_function", {})
    ok(s == 404 and d["code"] == "PGRST202", "unknown function -> 404", (s, d))
    for path in ("../integration.process_events", "..%2fintegration.process_events", "integration.process_events",
                 "%2e%2e/integration.process_events", "pg_sleep", "version", "pg_read_file", "current_setting",
                 "http_test_two_args", "http_test_text_arg", "http_test_echo;select", "http_test_echo%00",
                 "", "a" * 70, "HTTP_TEST_ECHO"):
        s, d, _ = rpc(path, {})
        ok(s == 404 and d and d.get("code") == "PGRST202", "no function outside api(jsonb): /rpc/%s -> 404" % path[:40],
           (s, d))
    s, _, _ = request("POST", "/rpc/http_test_echo/extra", b"{}")
    ok(s == 404, "/rpc/<name>/more -> 404")
    s, d, _ = request("GET", "/rpc/http_test_echo")[0], None, None
    ok(s == 405, "GET /rpc/<name> -> 405")
    s = request("PUT", "/rpc/http_test_echo", b"{}")[0]
    ok(s == 405, "PUT -> 405")
    s = request("DELETE", "/")[0]
    ok(s == 405, "DELETE / -> 405")
    s, _, body = request("POST", "/somewhere", b"{}")
    ok(s == 404 and json.loads(body)["code"] == "PGRST125", "POST outside /rpc/ -> 404")

    # ------------------------------------------------------------ status mapping
    cases = [("P0001", False, 400), ("22023", False, 400), ("22P02", False, 400), ("23502", False, 400),
             ("23514", False, 400), ("22001", False, 400), ("23505", False, 409), ("23503", False, 409),
             ("PT404", False, 404), ("PT409", False, 409), ("PT418", False, 418), ("42883", False, 404),
             ("42P01", False, 404), ("42501", False, 401), ("42501", True, 403), ("28000", False, 403),
             ("25006", False, 405), ("40001", False, 500), ("57014", False, 500), ("53300", False, 503),
             ("08006", False, 503), ("XX000", False, 500), ("P0002", False, 500), ("2D000", False, 500),
             ("54000", False, 500), ("42P17", False, 500), ("0L000", False, 403), ("HV000", False, 500),
             ("42703", False, 400), ("22012", False, 400)]
    op = jwt({"role": "lab_operator", "sub": "operator.one", "exp": int(time.time()) + 300})
    for code, with_token, expected in cases:
        # Server errors keep their text from anonymous callers (checked below); a token holder sees it.
        s, d, _ = rpc("http_test_raise", {"code": code, "message": "m-" + code, "detail": "d", "hint": "h"},
                      token=op if with_token or expected >= 500 else None)
        ok(s == expected and d == {"code": code, "message": "m-" + code, "details": "d", "hint": "h"},
           "SQLSTATE %s%s -> %d with code, message, details, hint" % (
               code, " (with a token)" if with_token or expected >= 500 else "", expected), (s, d))
        if expected >= 500 and not with_token:
            s, d, _ = rpc("http_test_raise", {"code": code, "message": "m-" + code, "detail": "d", "hint": "h"})
            ok(s == expected and d == {"code": code, "message": "The request could not be completed",
                                       "details": None, "hint": "The server log has the details."},
               "SQLSTATE %s -> %d without a token: code only, no message, details or hint" % (code, expected),
               (s, d))
    s, d, _ = rpc("http_test_raise", {"code": "P0001"})
    ok(s == 400 and d["details"] is None and d["hint"] is None, "empty detail and hint are null", d)

    # ------------------------------------------------------------ roles and tokens
    s, d, _ = rpc("http_test_operator_only", {})
    ok(s == 401 and d["code"] == "42501", "anonymous call of a function it may not execute -> 401", (s, d))
    s, d, _ = rpc("http_test_operator_only", {}, token=jwt({"role": "lab_auditor"}))
    ok(s == 403 and d["code"] == "42501", "a token's role without EXECUTE -> 403", (s, d))
    s, d, _ = rpc("http_test_operator_only", {}, token=op)
    ok(s == 200 and d == {"ok": True}, "the operator's token may call it", (s, d))
    s, d, _ = rpc("http_test_echo", {}, token=op)
    ok(s == 200 and d["current_user"] == "lab_operator" and d["claims"]["sub"] == "operator.one"
       and d["claims"]["role"] == "lab_operator", "a valid HS256 token sets the role and request.jwt.claims", d)
    s, d, _ = rpc("http_test_echo", {}, token=jwt({"sub": "no.role"}))
    ok(s == 200 and d["current_user"] == "lab_anon" and d["claims"] == {"sub": "no.role"},
       "a token without a role claim runs as the anonymous role", d)
    for role in ("postgres", "http_test_outsider", "lab_authenticator_missing"):
        s, d, _ = rpc("http_test_echo", {}, token=jwt({"role": role}))
        ok(s in (400, 403) and d["code"] in ("42501", "22023") and s == (403 if d["code"] == "42501" else 400),
           "a role not granted to the authenticator (%s) cannot be assumed" % role, (s, d))
    s, d, _ = rpc("http_test_echo", {}, token=jwt({"role": "postgres"}))
    ok(s == 403, "a token claiming the superuser -> 403", (s, d))

    now = int(time.time())
    bad_tokens = [
        ("expired", jwt({"role": "lab_operator", "exp": now - 60}), "PGRST303"),
        ("not yet valid", jwt({"role": "lab_operator", "nbf": now + 3600}), "PGRST303"),
        ("signed with another secret", jwt({"role": "lab_operator"}, secret=b"not-the-secret"), "PGRST301"),
        ("alg none", jwt({"role": "lab_operator"}, alg="none"), "PGRST301"),
        ("HS512", jwt({"role": "lab_operator"}, alg="HS512"), "PGRST301"),
        ("malformed", "abc.def", "PGRST301"),
        ("garbage", "not a token at all", "PGRST301"),
        ("tampered payload", (lambda t: t.split(".")[0] + "." + b64(b'{"role":"postgres"}') + "." + t.split(".")[2])(
            jwt({"role": "lab_anon"})), "PGRST301"),
        ("role not a string", jwt({"role": ["lab_admin"]}), "PGRST303"),
    ]
    for what, token, code in bad_tokens:
        s, d, hdr = rpc("http_test_echo", {}, token=token)
        ok(s == 401 and d and d["code"] == code and hdr.get("www-authenticate", "").startswith("Bearer"),
           "%s token -> 401 %s" % (what, code), (s, d))
    s, d, _ = rpc("http_test_echo", {}, headers={"Authorization": "Basic dXNlcjpwdw=="})
    ok(s == 401, "a non-Bearer Authorization header -> 401", (s, d))

    # ------------------------------------------------------------ one transaction per request
    s, d, _ = rpc("http_test_write", {"note": "kept"})
    s2, d2, _ = rpc("http_test_write", {"note": "rolled back", "fail": True})
    rows = psql("SELECT string_agg(note, ',' ORDER BY id) FROM public.http_test_writes")
    ok(s == 200 and s2 == 400 and rows == "kept", "a failing call leaves nothing written; a good one commits",
       (s, s2, rows))

    # ------------------------------------------------------------ body limit
    limit = int(psql("SELECT setting FROM pg_settings WHERE name = 'enterprise_lab.http_max_body'"))
    # Announced too large: refused from the headers, before any of the body is read.
    with socket.create_connection((HOST, PORT), timeout=10) as sock:
        sock.sendall(b"POST /rpc/http_test_echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n" % (limit + 1))
        raw = sock.recv(65536)
    ok(raw.startswith(b"HTTP/1.1 413 ") and b'"PGRST413"' in raw,
       "a body announced over http_max_body (Content-Length) -> 413 before it is sent", raw[:200])
    conn = http.client.HTTPConnection(HOST, PORT, timeout=60)
    conn.putrequest("POST", "/rpc/http_test_echo")
    conn.putheader("Transfer-Encoding", "chunked")
    conn.endheaders()
    chunk = b"a" * (1024 * 1024)
    sent = 0
    try:
        conn.send(b'%x\r\n{"x": "\r\n' % 7)
        while sent <= limit:
            conn.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            sent += len(chunk)
        conn.send(b'2\r\n"}\r\n0\r\n\r\n')
        r = conn.getresponse()
        cs, cd = r.status, r.read()
    except OSError as e:
        cs, cd = None, e
    conn.close()
    ok(cs == 413, "a chunked body over the limit -> 413", (cs, cd))
    s, d, _ = rpc("http_test_echo", b'{"x": "' + b"a" * (limit - 100) + b'"}')
    ok(s == 200 and len(d["body"]["x"]) == limit - 100, "a body just under the limit is accepted", s)

    # ------------------------------------------------------------ static files
    add_web_file("index.html", b"<!doctype html><title>test</title>")
    add_web_file("http-test.css", b"body{}")
    add_web_file("http-test-sub/a.js", b"export const a = 1;")
    add_web_file("http-test.png", b"\x89PNG\r\n\x1a\n")
    add_web_file(".http-test-hidden", b"hidden")
    add_web_file("http-test-escape.txt", symlink_to="/etc/hostname")
    s, hdr, body = request("GET", "/")
    ok(s == 200 and hdr.get("content-type", "").startswith("text/html") and body.startswith(b"<"),
       "GET / serves index.html as text/html", (s, hdr))
    ok(hdr.get("x-content-type-options") == "nosniff", "static files are sent with nosniff")
    conn = http.client.HTTPConnection(HOST, PORT, timeout=10)
    statuses = []
    for method, path, body in (("GET", "/", None), ("POST", "/rpc/http_test_echo", b"{}"), ("GET", "/health", None),
                               ("POST", "/rpc/no_such_function", b"{}")):
        conn.request(method, path, body=body)
        r = conn.getresponse()
        r.read()
        statuses.append((r.status, r.getheader("Connection")))
    conn.close()
    ok([st for st, _ in statuses] == [200, 200, 200, 404] and all(c != "close" for _, c in statuses),
       "one kept-alive connection serves several requests", statuses)
    s, hdr, body = request("HEAD", "/")
    ok(s == 200 and body == b"", "HEAD / answers without a body")
    for path, ctype in (("/http-test.css", "text/css"), ("/http-test-sub/a.js", "text/javascript"),
                        ("/http-test.png", "image/png")):
        s, hdr, _ = request("GET", path)
        ok(s == 200 and hdr.get("content-type", "").startswith(ctype), "%s is served as %s" % (path, ctype),
           (s, hdr.get("content-type")))
    secret = open(os.path.join(web_dir, "..", "enterprise_lab.control"), "rb").read()
    for path in ("/../enterprise_lab.control", "/%2e%2e/enterprise_lab.control", "/%2E%2E/enterprise_lab.control",
                 "/..%2fenterprise_lab.control", "/%2e%2e%2fenterprise_lab.control",
                 "/%252e%252e/enterprise_lab.control", "/%252e%252e%252fenterprise_lab.control",
                 "/http-test-sub/../../enterprise_lab.control", "/http-test-sub/%2e%2e/%2e%2e/enterprise_lab.control",
                 "/..\\enterprise_lab.control", "/%5c..%5centerprise_lab.control", "//etc/passwd",
                 "/.%2e/enterprise_lab.control", "/%c0%ae%c0%ae/enterprise_lab.control",
                 "/./index.html", "/.http-test-hidden", "/http-test-escape.txt", "/etc/passwd",
                 "/http-test-sub", "/http-test-sub/", "/missing.html", "/index.html%00.png"):
        s, hdr, body = request("GET", path)
        ok(s == 404 and secret not in body and b"root:" not in body, "GET %s -> 404, nothing leaks" % path,
           (s, body[:80]))
    # Raw request lines, as a client that does not normalise paths sends them.
    for line in (b"GET /../../../../etc/passwd HTTP/1.1", b"GET ../enterprise_lab.control HTTP/1.1",
                 b"GET http://x/../enterprise_lab.control HTTP/1.1"):
        with socket.create_connection((HOST, PORT), timeout=10) as sock:
            sock.sendall(line + b"\r\nHost: x\r\nConnection: close\r\n\r\n")
            raw = b""
            while True:
                part = sock.recv(65536)
                if not part:
                    break
                raw += part
        status_line = raw.split(b"\r\n", 1)[0]
        ok(b" 200 " not in status_line and secret not in raw and b"root:" not in raw,
           "raw %s is refused" % line.decode(), status_line)

    # ------------------------------------------------------------ timeout
    set_request_timeout("'1s'")
    time.sleep(1)
    started = time.time()
    s, d, _ = rpc("http_test_sleep", {"seconds": 5})
    took = time.time() - started
    ok(s == 500 and d["code"] == "57014" and took < 4.5,
       "a call over http_request_timeout is cancelled -> 500 57014", (s, d, round(took, 2)))
    s, d, _ = rpc("http_test_echo", {})
    ok(s == 200, "the next request is not cancelled by the previous timeout", (s, d))
    set_request_timeout("DEFAULT")

    # The other settings take effect on reload too.
    set_setting("enterprise_lab.http_max_body", "'2kB'")
    set_setting("enterprise_lab.http_anon_role", "'http_test_no_such_role'")
    time.sleep(1)
    s, d, _ = rpc("http_test_echo", {"x": "a" * 3000})
    ok(s == 413, "a lowered http_max_body applies after a reload", (s, d))
    s, d, _ = rpc("http_test_echo", {}, token=jwt({"role": "lab_operator", "exp": int(time.time()) + 300}))
    ok(s == 500 and d["code"] == "F0000" and "http_test_no_such_role" in d["message"],
       "a missing anonymous role is a server error (500), not the client's", (s, d))
    s, d, _ = rpc("http_test_echo", {})
    ok(s == 500 and d["code"] == "F0000" and "http_test_no_such_role" not in json.dumps(d),
       "... whose text anonymous callers do not see", (s, d))
    set_setting("enterprise_lab.http_max_body", "DEFAULT")
    set_setting("enterprise_lab.http_anon_role", "DEFAULT")
    time.sleep(1)
    s, d, _ = rpc("http_test_echo", {"x": "a" * 3000})
    ok(s == 200, "settings back to their defaults", (s, d))

    # ------------------------------------------------------------ slow clients, workers, concurrency
    # A client that sends half its headers and stalls must not hold up others.
    stalled = socket.create_connection((HOST, PORT), timeout=10)
    stalled.sendall(b"POST /rpc/http_test_echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"a\":")
    started = time.time()
    s, d, _ = rpc("http_test_echo", {"while": "stalled"}, timeout=5)
    ok(s == 200 and time.time() - started < 2, "a stalled client does not block other requests", s)
    stalled.close()

    # While the gateway is busy in one long call, the event workers (other
    # processes) keep turning new submissions into cases.
    before = int(psql("SELECT count(*) FROM operational.operation_cases"))
    slow = threading.Thread(target=lambda: rpc("http_test_sleep", {"seconds": 3}))
    slow.start()
    time.sleep(0.3)
    psql("SELECT intake.submit_request('Busy Gateway', 'busy@example.test', 'Submitted while the gateway sleeps.', "
         "'incident', 'high', 'operations', '10000000-0000-4000-8000-000000000002')")
    deadline = time.time() + 2.5
    while time.time() < deadline and int(psql("SELECT count(*) FROM operational.operation_cases")) == before:
        time.sleep(0.1)
    processed_during = slow.is_alive() and int(psql("SELECT count(*) FROM operational.operation_cases")) > before
    slow.join()
    ok(processed_during, "the workers process events while the gateway is busy")

    results = []
    lock = threading.Lock()
    run = "%x" % int(time.time() * 1000)

    def submit(i):
        r = rpc("submit_request", {"requester_name": "Parallel %d" % i,
                                   "requester_email": "parallel-%s-%d@example.test" % (run, i),
                                   "description": "Concurrent request %d through the gateway." % i,
                                   "request_type": "incident", "priority": "high", "team": "operations",
                                   "customer_id": "10000000-0000-4000-8000-000000000002"})
        r2 = request("GET", "/health")
        with lock:
            results.append((r[0], r[1], r2[0]))

    threads = [threading.Thread(target=submit, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    ok(len(results) == 20 and all(r[0] == 200 and r[1].get("request_number") and r[2] == 200 for r in results),
       "20 parallel submissions and health checks all succeed", [r[0] for r in results])
    integrated = False
    deadline = time.time() + 30
    while time.time() < deadline:
        if psql("SELECT count(*) FILTER (WHERE s.lifecycle_status = 'integrated') = 20 FROM source_system.service_requests s "
                "JOIN intake.submissions i ON i.submission_id = s.submission_id "
                "WHERE i.requester_email LIKE 'parallel-%s-%%@example.test'" % run) == "t":
            integrated = True
            break
        time.sleep(0.2)
    ok(integrated, "the workers integrate all 20 submissions made through the gateway")
    s, _, body = request("GET", "/health")
    ok(s == 200 and json.loads(body)["status"] == "ok", "the gateway is healthy afterwards")

    # ------------------------------------------------------------ the api schema itself, over HTTP
    s, ref, _ = rpc("reference_data", {})
    ok(s == 200 and ref.get("customers") and ref.get("request_types"), "api.reference_data over HTTP", s)
    customer = ref["customers"][0]
    body = {"requester_name": "Http Client", "requester_email": "http.client@example.test",
            "description": "Submitted through the gateway.", "request_type": "incident", "priority": "high",
            "team": "operations", "customer_id": customer["id"]}
    s, d, _ = rpc("submit_request", body)
    ok(s == 200 and d.get("request_number") and d.get("submission_id"), "api.submit_request -> 200", (s, d))
    sid = d.get("submission_id")
    s, d, _ = rpc("submit_request", dict(body, colour="blue"))
    ok(s == 400 and d["code"] == "22023" and "colour" in d["message"], "an unknown key -> 400 naming it", (s, d))
    s, d, _ = rpc("submit_request", {k: v for k, v in body.items() if k != "description"})
    ok(s == 400 and d["code"] == "23502" and "description" in d["message"], "a missing field -> 400 naming it",
       (s, d))
    s, d, _ = rpc("submit_request", dict(body, priority=3))
    ok(s == 400 and d["code"] == "22023" and "priority" in d["message"], "a wrong JSON type -> 400 naming it", (s, d))
    s, d, _ = rpc("submission_detail", {"submission_id": "00000000-0000-4000-8000-000000000000"})
    ok(s == 404 and d["code"] == "PT404", "an unknown submission -> 404 (PT404)", (s, d))

    detail = None
    deadline = time.time() + 15
    while time.time() < deadline:
        s, detail, _ = rpc("submission_detail", {"submission_id": sid})
        if s == 200 and detail.get("case") and detail["case"].get("processing_status") == "open":
            break
        time.sleep(0.2)
    ok(detail and detail.get("case") and detail["case"]["processing_status"] == "open",
       "the workers open its case, visible through the gateway", detail and detail.get("case"))
    case_id = detail["case"]["id"] if detail and detail.get("case") else None
    move = {"case_id": case_id, "new_status": "in_progress", "reason": "picked up over HTTP"}
    s, d, _ = rpc("set_case_status", move)
    ok(s == 401 and d["code"] == "42501", "set_case_status without a token -> 401", (s, d))
    s, d, _ = rpc("set_case_status", move, token=jwt({"role": "lab_auditor", "sub": "auditor.one"}))
    ok(s == 403 and d["code"] == "42501", "... as an auditor -> 403", (s, d))
    s, d, _ = rpc("set_case_status", move, token=jwt({"role": "lab_operator", "sub": "operator.two",
                                                      "teams": ["finance_ops"]}))
    ok(s == 403, "... as an operator of another team -> 403", (s, d))
    ops = jwt({"role": "lab_operator", "sub": "operator.one", "teams": ["operations"],
               "exp": int(time.time()) + 300})
    s, d, _ = rpc("set_case_status", move, token=ops)
    ok(s == 200 and d["processing_status"] == "in_progress" and d["changed_by"] == "operator.one",
       "... as an operator of its team -> 200, changed by the token's subject", (s, d))
    s, d, _ = rpc("set_case_status", dict(move, new_status="open"), token=ops)
    ok(s == 400 and d["code"] == "23514" and "completed" in (d["details"] or ""),
       "a transition the workflow does not allow -> 400, the allowed ones in details", (s, d))
    s, d, _ = rpc("submissions", {"q": "Submitted through the gateway."})
    s2, d2, _ = rpc("submissions", {"q": "Submitted through the gateway."}, token=ops)
    ok(s == 200 and s2 == 200 and d["items"] and d["items"][0]["requester_email"] is None
       and d2["items"][0]["requester_email"] == "http.client@example.test",
       "requester e-mails are hidden from the anonymous role only", (d.get("items", [{}])[:1], d2.get("items", [{}])[:1]))

    # ------------------------------------------------------------ no extension, no database: 503, no crash loop
    psql("CREATE DATABASE http_test_noext")
    set_setting("enterprise_lab.database", "'http_test_noext'")
    h = wait_health(lambda st, d: st == 503 and d.get("extension") is False and d.get("database") is True)
    ok(h is not None, "without the extension in its database, /health -> 503 (extension false)", h)
    s, d, _ = rpc("http_test_echo", {})
    ok(s == 503 and d["code"] == "PGRST002", "... and /rpc -> 503 PGRST002", (s, d))
    set_setting("enterprise_lab.database", "'http_test_missing'")
    h = wait_health(lambda st, d: st == 503 and d.get("database") is False)
    ok(h is not None, "without its database, /health -> 503 (database false)", h)
    s, d, _ = rpc("http_test_echo", {})
    ok(s == 503 and d["code"] == "PGRST001", "... /rpc -> 503 PGRST001", (s, d))
    s, _, _ = request("GET", "/")
    ok(s == 200, "... and the dashboard files are still served", s)
    time.sleep(3)
    ok(psql("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'enterprise_lab gateway'")
       == psql("SHOW enterprise_lab.http_workers"),
       "http_workers gateway processes, not a crash loop")
    set_setting("enterprise_lab.database", "DEFAULT")
    h = wait_health(lambda st, d: st == 200 and d.get("status") == "ok")
    ok(h is not None, "back in its database, the gateway is healthy again", h)
    s, d, _ = rpc("http_test_echo", {})
    ok(s == 200, "... and serves calls", (s, d))


tap.run(main, teardown)

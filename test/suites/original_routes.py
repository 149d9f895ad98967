#!/usr/bin/env python3
"""The original lab's HTTP routes on the built-in gateway (prints TAP).

Real HTTP against the gateway test/services/gateway.sh configures
(EL_HTTP_URL, EL_JWT_SECRET) in database lab, with documents stored in the
S3-compatible server test/services/s3.sh starts: every route, wrong
methods and paths, the token rules of the case route, bad bodies and
queries, and multipart uploads.
"""
import base64
import json
import os
import socket
import sys
import time
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import tap  # noqa: E402
from tap import HOST, PORT, jwt, ok, psql  # noqa: E402


def request(method, path, body=None, headers=None, token=None):
    """One request on its own connection: (status, headers, parsed JSON or raw bytes)."""
    h = dict(headers or {})
    if token:
        h["Authorization"] = "Bearer " + token
    if isinstance(body, (dict, list)):
        body = json.dumps(body)
        h.setdefault("Content-Type", "application/json")
    status, hdrs, data = tap.request(method, path, body, h, timeout=60)
    try:
        doc = json.loads(data) if data else None
    except ValueError:
        doc = data
    return status, hdrs, doc


def token(role, sub, teams=("service_desk", "operations", "finance_ops", "security")):
    return jwt({"role": role, "sub": sub, "teams": list(teams), "exp": int(time.time()) + 3600})


OPERATOR = token("lab_operator", "operator.routes")
ADMIN = token("lab_admin", "admin.routes")
AUDITOR = token("lab_auditor", "auditor.routes")


def multipart(fields, files=(), boundary="el-routes-boundary"):
    """A multipart/form-data body: fields {name: value}, files [(part, filename, type, bytes)]."""
    out = b""
    for k, v in fields.items():
        out += ("--%s\r\nContent-Disposition: form-data; name=\"%s\"\r\n\r\n" % (boundary, k)).encode()
        out += v.encode() + b"\r\n"
    for part, filename, ctype, data in files:
        out += ("--%s\r\nContent-Disposition: form-data; name=\"%s\"; filename=\"%s\"\r\n"
                "Content-Type: %s\r\n\r\n" % (boundary, part, filename, ctype)).encode()
        out += data + b"\r\n"
    out += ("--%s--\r\n" % boundary).encode()
    return out, {"Content-Type": "multipart/form-data; boundary=" + boundary}


# A small, valid one-page PDF.
PDF = (b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
       b"2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj\n"
       b"3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 200 200]>>endobj\n"
       b"trailer<</Root 1 0 R>>\n%%EOF\n")

FORM = {"intake_method": "portal", "requester_name": "Form User", "requester_email": "form.user@example.test",
        "request_description": "A request with an attachment.", "request_type": "document_review",
        "priority": "medium", "assigned_team": "service_desk"}

BODY = {"intake_method": "portal", "requester_name": "Route User", "requester_email": "route.user@example.test",
        "request_description": "Created through the original route.", "request_type": "incident",
        "priority": "high", "assigned_team": "operations"}


def error_shape(d):
    return isinstance(d, dict) and set(d) == {"code", "message", "details", "hint"}


def open_case():
    """A new submission, processed: the id of its open case."""
    s, _, d = request("POST", "/intake/submissions", BODY)
    assert s == 201, (s, d)
    deadline = time.time() + 30
    while time.time() < deadline:
        psql("SELECT integration.process_events(100)")
        case = psql("SELECT c.id FROM operational.operation_cases c JOIN source_system.service_requests r"
                    " ON r.id = c.service_request_id WHERE r.submission_id = '%s'" % d["submission_id"])
        if case:
            return case
        time.sleep(0.2)
    raise RuntimeError("no case for submission %s" % d["submission_id"])


def main():
    psql("CREATE EXTENSION IF NOT EXISTS enterprise_lab")
    psql("SELECT document_repo.ensure_bucket()")
    psql("SELECT enterprise_lab.load_demo_data()")

    # ------------------------------------------------------------ POST /intake/submissions (JSON)
    s, h, d = request("POST", "/intake/submissions", BODY)
    ok(s == 201 and isinstance(d, dict) and d.get("submission_id") and d.get("request_number"),
       "POST /intake/submissions with the original's JSON body -> 201 with submission_id and request_number", (s, d))
    sub = d.get("submission_id") if isinstance(d, dict) else None
    ok(sub and psql("SELECT request_description FROM intake.submissions WHERE submission_id = '%s'" % sub)
       == "Created through the original route.", "the submission is in intake.submissions with its description")
    ok(h.get("content-type", "").startswith("application/json"), "the answer is JSON")
    ok(isinstance(d, dict) and d.get("submission_status") == "received", "the answer has its submission_status", d)
    ok(sub and psql("SELECT c.code FROM intake.submissions s JOIN reference.customers c ON c.id = s.customer_id"
                    " WHERE s.submission_id = '%s'" % sub) == "UNASSIGNED",
       "without customer_id the submission is the UNASSIGNED customer's")

    s, _, d = request("POST", "/intake/submissions", {k: v for k, v in BODY.items() if k != "request_description"})
    ok(s == 400 and error_shape(d) and d["code"] == "23502" and "description" in d["message"],
       "a missing request_description -> 400 23502 naming the field", (s, d))
    s, _, d = request("POST", "/intake/submissions", dict(BODY, admin=True))
    ok(s == 400 and d["code"] == "22023" and "unknown key \"admin\"" in d["message"] and d["hint"],
       "an unknown key -> 400 22023 with the allowed keys as hint", (s, d))
    s, _, d = request("POST", "/intake/submissions", dict(BODY, assigned_team="no_such_team"))
    ok(s in (400, 409) and error_shape(d), "an unknown team -> 4xx in PostgREST's error shape", (s, d))
    s, _, d = request("POST", "/intake/submissions", "{", {"Content-Type": "application/json"})
    ok(s == 400 and d["code"] == "PGRST102", "invalid JSON -> 400 PGRST102, as on /rpc", (s, d))
    s, _, d = request("POST", "/intake/submissions", "[1]", {"Content-Type": "application/json"})
    ok(s == 400 and d["code"] == "22023", "a JSON array -> 400 22023", (s, d))
    s, _, d = request("POST", "/intake/submissions", "hello", {"Content-Type": "text/plain"})
    ok(s == 415 and d["code"] == "PGRST107", "text/plain -> 415 PGRST107", (s, d))
    s, _, d = request("POST", "/intake/submissions?customer_id=abc", BODY)
    ok(s == 400 and d["code"] == "22P02", "query-string values reach the function and are checked", (s, d))
    s, _, d = request("POST", "/rpc/original_submit_request", BODY)
    ok(s == 200 and d.get("submission_id"), "the same function answers POST /rpc/original_submit_request", (s, d))

    # ------------------------------------------------------------ multipart
    body, hdr = multipart(FORM, [("file", "addendum.pdf", "application/pdf", PDF)])
    s, _, d = request("POST", "/intake/submissions", body, hdr)
    ok(s == 201 and d.get("document_id"), "multipart with a small PDF -> 201 with a document_id", (s, d))
    if s == 201:
        row = psql("SELECT original_file_name || '|' || content_type || '|' || size_bytes || '|' || status"
                   " FROM document_repo.documents WHERE id = '%s'" % d["document_id"])
        ok(row == "addendum.pdf|application/pdf|%d|stored" % len(PDF),
           "the PDF is stored through document_repo with its name, type and size", row)
        got = psql("SELECT encode(document_repo.download_document('%s'), 'base64')" % d["document_id"])
        ok(base64.b64decode(got) == PDF, "the stored bytes are the uploaded bytes")

    body, hdr = multipart(dict(FORM, document_type="contract"), [("file", "signed.pdf", "application/pdf", PDF)])
    s, _, d = request("POST", "/intake/submissions", body, hdr)
    ok(s == 201 and psql("SELECT document_type FROM document_repo.documents WHERE id = '%s'" % d.get("document_id"))
       == "contract", "the form's document_type field classifies the file", (s, d))
    body, hdr = multipart(dict(FORM, document_type="love_letter"), [("file", "x.pdf", "application/pdf", PDF)])
    s, _, d = request("POST", "/intake/submissions", body, hdr)
    ok(s == 400 and d["code"] == "22023" and "love_letter" in d["message"], "an unknown document_type -> 400 22023",
       (s, d))
    body, hdr = multipart(dict(FORM, document_type="contract"), [("file", "", "application/octet-stream", b"")])
    s, _, d = request("POST", "/intake/submissions", body, hdr)
    ok(s == 201 and d.get("document_id") is None, "a document_type without a file describes nothing", (s, d))

    body, hdr = multipart(FORM, [("document", "notes.txt", "text/plain", b"plain text\n")])
    s, _, d = request("POST", "/intake/submissions", body, hdr)
    ok(s == 201 and d.get("document_id"), "the file may also come as part \"document\"", (s, d))

    body, hdr = multipart(FORM, [("file", "", "application/octet-stream", b"")])
    s, _, d = request("POST", "/intake/submissions", body, hdr)
    ok(s == 201 and d.get("document_id") is None, "an empty file input means no document", (s, d))

    before = psql("SELECT count(*) FROM intake.submissions")
    body, hdr = multipart(FORM, [("file", "setup.exe", "application/x-msdownload", b"MZ\x90\x00binary")])
    s, _, d = request("POST", "/intake/submissions", body, hdr)
    rs, _, rd = request("POST", "/rpc/submit_request", {
        "requester_name": "x", "requester_email": "x@example.test", "description": "x",
        "request_type": "incident", "priority": "low", "team": "operations",
        "customer_id": "10000000-0000-4000-8000-000000000001",
        "document": {"file_name": "setup.exe", "content_type": "application/x-msdownload",
                     "content_base64": base64.b64encode(b"MZ\x90\x00binary").decode()}})
    ok(s == 400 and d["code"] == rd["code"] and s == rs and d["message"] == 'file type ".exe" is not allowed',
       "an .exe is refused with the same status and SQLSTATE as through /rpc (%s)" % rd.get("code"), (s, d, rs, rd))
    ok(psql("SELECT count(*) FROM intake.submissions") == before, "... and leaves no submission")

    body, hdr = multipart(FORM, [("file", "report.pdf", "application/pdf", b"\x89PNG\r\n\x1a\nnot a pdf")])
    s, _, d = request("POST", "/intake/submissions", body, hdr)
    ok(s == 400 and d["code"] == "22023", "a PNG named .pdf is refused -> 400 22023", (s, d))

    body, hdr = multipart(FORM, [("file", "a.txt", "text/plain", b"a"), ("file", "b.txt", "text/plain", b"b")])
    s, _, d = request("POST", "/intake/submissions", body, hdr)
    ok(s == 400 and "at most one file" in d["message"], "two files -> 400", (s, d))

    body, hdr = multipart(dict(FORM, requester_name="x" * 20000))
    s, _, d = request("POST", "/intake/submissions", body, hdr)
    ok(s == 400 and "longer than" in d["message"], "a form field over 16384 bytes -> 400", (s, d))

    body, hdr = multipart(dict(FORM, **{"f%d" % i: "v" for i in range(40)}))
    s, _, d = request("POST", "/intake/submissions", body, hdr)
    ok(s == 400 and "at most 32 fields" in d["message"], "more than 32 fields -> 400", (s, d))

    body, hdr = multipart(dict(FORM, surprise="1"))
    s, _, d = request("POST", "/intake/submissions", body, hdr)
    ok(s == 400 and d["code"] == "22023" and "surprise" in d["message"], "an unknown form field -> 400 22023", (s, d))

    body, hdr = multipart(dict(FORM, requester_name="caf\u00e9"))
    body = body.replace("café".encode(), b"caf\xe9")
    s, _, d = request("POST", "/intake/submissions", body, hdr)
    ok(s == 400 and "UTF-8" in d["message"], "a field that is not UTF-8 -> 400", (s, d))

    s, _, d = request("POST", "/intake/submissions", b"--x\r\nnonsense", {"Content-Type": "multipart/form-data"})
    ok(s == 400 and "boundary" in d["message"], "multipart without a boundary -> 400", (s, d))

    body, hdr = multipart(FORM, [("file", "a.txt", "text/plain", b"abc")])
    s, _, d = request("POST", "/intake/submissions", body[:-30], hdr)
    ok(s == 400 and d["code"] == "PGRST102", "a multipart body cut short -> 400", (s, d))

    big = b"a" * (10 * 1024 * 1024 + 1)
    body, hdr = multipart(FORM, [("file", "big.txt", "text/plain", big)])
    s, _, d = request("POST", "/intake/submissions", body, hdr)
    ok(s == 400 and d["code"] == "22001", "a file over the 10 MB document limit -> 400 22001", (s, d))

    limit = int(psql("SELECT setting FROM pg_settings WHERE name = 'enterprise_lab.http_max_body'"))
    with socket.create_connection((HOST, PORT), timeout=10) as sock:
        sock.sendall(b"POST /intake/submissions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     b"Content-Type: multipart/form-data; boundary=x\r\nContent-Length: %d\r\n\r\n" % (limit + 1))
        raw = sock.recv(65536)
    ok(raw.startswith(b"HTTP/1.1 413 "), "a form over enterprise_lab.http_max_body -> 413 before it is sent", raw[:200])

    s, _, d = request("POST", "/intake/submissions", "requester_name=Url+Encoded&intake_method=portal"
                      "&requester_email=u%40example.test&request_description=d&request_type=incident"
                      "&priority=low&assigned_team=operations",
                      {"Content-Type": "application/x-www-form-urlencoded"})
    ok(s == 201 and d.get("submission_id"), "an urlencoded form is read by the same post processor", (s, d))

    # ------------------------------------------------------------ PATCH /operational/cases/{id}/status
    case = open_case()
    path = "/operational/cases/%s/status" % case
    change = {"new_status": "in_progress", "changed_by": "dashboard-user", "change_reason": "Start downstream processing"}
    s, h, d = request("PATCH", path, change)
    ok(s == 401 and d["code"] == "42501" and "operator token" in d["message"],
       "PATCH without a token -> 401 saying an operator token is needed", (s, d))
    ok("./scripts/demo" in (d.get("hint") or ""), "... with a hint on where to get one", d)
    ok(h.get("www-authenticate", "").startswith("Bearer"), "... and WWW-Authenticate: Bearer", h)
    s, _, d = request("PATCH", path, change, token="not.a.token")
    ok(s == 401, "a bad token -> 401", (s, d))
    s, _, d = request("PATCH", path, change, token=AUDITOR)
    ok(s == 403 and d["code"] == "42501", "an auditor -> 403 42501", (s, d))

    s, _, d = request("PATCH", path, change, token=OPERATOR)
    ok(s == 200 and d.get("operation_case_id") == case and d.get("new_status") == "in_progress",
       "an operator moves the case -> 200 with operation_case_id and new_status", (s, d))
    ok(isinstance(d, dict) and d.get("changed_by") == "operator.routes",
       "an operator's changed_by is the token's subject, not the body's", d)
    hist = psql("SELECT changed_by || '|' || change_reason FROM operational.case_status_history"
                " WHERE case_id = '%s' AND new_status = 'in_progress'" % case)
    ok(hist == "operator.routes|Start downstream processing", "the history records the subject and the reason", hist)

    s, _, d = request("PATCH", path, dict(change, new_status="completed", changed_by="dashboard-user"), token=ADMIN)
    ok(s == 200 and d.get("changed_by") == "dashboard-user", "an admin's changed_by is recorded as given", (s, d))
    hist = psql("SELECT changed_by FROM operational.case_status_history WHERE case_id = '%s'"
                " AND new_status = 'completed'" % case)
    ok(hist == "dashboard-user", "... in the history too", hist)
    s, _, d = request("PATCH", path, dict(change, new_status="in_progress"), token=ADMIN)
    ok(s == 409, "a terminal case -> 409", (s, d))

    case2 = open_case()
    path2 = "/operational/cases/%s/status" % case2
    s, _, d = request("PATCH", path2, {"new_status": "in_progress"}, token=ADMIN)
    ok(s == 200 and d.get("changed_by") == "admin.routes", "an admin without changed_by is its subject", (s, d))
    s, _, d = request("PATCH", path2, {"new_status": "open"}, token=OPERATOR)
    ok(s == 400 and d["code"] == "23514", "a move the transitions forbid -> 400 23514", (s, d))
    s, _, d = request("PATCH", path2, {"new_status": "in_progress", "whatever": 1}, token=OPERATOR)
    ok(s == 400 and d["code"] == "22023", "an unknown key -> 400 22023", (s, d))
    s, _, d = request("PATCH", path2, {"new_status": 5}, token=OPERATOR)
    ok(s == 400 and d["code"] == "22023", "new_status not a string -> 400 22023", (s, d))
    s, _, d = request("PATCH", path2, {"new_status": "in_progress", "changed_by": "x" * 201}, token=ADMIN)
    ok(s == 400 and d["code"] == "22001", "changed_by over 200 characters -> 400 22001", (s, d))
    s, _, d = request("PATCH", path2, "{", {"Content-Type": "application/json"}, token=OPERATOR)
    ok(s == 400 and d["code"] == "PGRST102", "invalid JSON -> 400 PGRST102", (s, d))
    s, _, d = request("PATCH", path2, "new_status=x", {"Content-Type": "application/x-www-form-urlencoded"},
                      token=OPERATOR)
    ok(s == 415, "a form body on the case route -> 415", (s, d))
    s, _, d = request("PATCH", "/operational/cases/%s/status" % uuid.uuid4(), change, token=OPERATOR)
    ok(s == 404 and d["code"] == "PT404", "an unknown case -> 404 PT404", (s, d))
    s, _, d = request("PATCH", "/operational/cases/not-a-uuid/status", change, token=OPERATOR)
    ok(s == 400 and d["code"] == "22P02", "a case id that is not a UUID -> 400 22P02", (s, d))
    s, _, d = request("PATCH", path2, dict(change, operation_case_id=str(uuid.uuid4())), token=OPERATOR)
    ok(s == 200 and d.get("operation_case_id") == case2, "the path's id wins over one in the body", (s, d))
    team_only = token("lab_operator", "other.team", teams=("security",))
    case3 = open_case()
    s, _, d = request("PATCH", "/operational/cases/%s/status" % case3, change, token=team_only)
    ok(s == 403 and d["code"] == "42501", "an operator of another team -> 403", (s, d))

    # ------------------------------------------------------------ GET /dashboard/...
    s, h, d = request("GET", "/dashboard/submissions")
    ok(s == 200 and isinstance(d, list) and len(d) > 5, "GET /dashboard/submissions -> a list", (s, d))
    first = d[0] if isinstance(d, list) and d else {}
    for key in ("submission_id", "created_at", "request_type", "priority", "assigned_team", "submission_status",
                "requester_name", "request_number"):
        ok(key in first, "submissions carry the original's %s" % key, first)
    ok(first.get("requester_email") is None, "the anonymous caller sees no e-mail address", first)
    s, _, d = request("GET", "/dashboard/submissions", token=OPERATOR)
    ok(s == 200 and d[0].get("requester_email"), "an operator does", d[0] if isinstance(d, list) else d)

    s, _, page = request("GET", "/dashboard/submissions?limit=2&offset=1")
    ok(s == 200 and len(page) == 2 and page[0]["submission_id"] == d[1]["submission_id"],
       "limit and offset page the list", (s, page))
    for q, what in (("limit=0", "limit 0"), ("limit=201", "limit 201"), ("limit=abc", "a limit that is no number"),
                    ("offset=-1", "a negative offset"), ("sort=name", "an unknown parameter")):
        s, _, e = request("GET", "/dashboard/submissions?" + q)
        ok(s == 400 and error_shape(e) and e["code"] == "22023", "%s -> 400 22023" % what, (s, e))

    s, _, d = request("GET", "/dashboard/submissions/%s" % sub)
    ok(s == 200 and d["submission"]["submission_id"] == sub and d["submission"].get("request_description"),
       "GET /dashboard/submissions/{id}: the submission with the original's names", (s, d))
    ok(d and d["submission"].get("requester_email") is None and d.get("service_request") and d.get("events"),
       "... its layers, without the e-mail for the anonymous caller", d)
    ok(all("event_status" in e for e in d.get("events", [])), "... events carry event_status", d.get("events"))
    s, _, d = request("GET", "/dashboard/submissions/%s" % uuid.uuid4())
    ok(s == 404 and d["code"] == "PT404", "an unknown submission -> 404", (s, d))
    s, _, d = request("GET", "/dashboard/submissions/12")
    ok(s == 400 and d["code"] == "22P02", "a submission id that is not a UUID -> 400 22P02", (s, d))
    s, _, d = request("GET", "/dashboard/submissions", "{}", {"Content-Type": "application/json"})
    ok(s == 400 and d["code"] == "PGRST102", "a GET with a body -> 400", (s, d))

    s, _, d = request("GET", "/dashboard/events?limit=3")
    ok(s == 200 and isinstance(d, list) and len(d) == 3 and all("event_status" in e and "event_id" in e for e in d),
       "GET /dashboard/events: events of every submission with event_status", (s, d))
    ok(len({e["submission_id"] for e in request("GET", "/dashboard/events?limit=50")[2]}) > 1,
       "... across submissions")
    s, _, d = request("GET", "/dashboard/sync-logs?limit=2&offset=1")
    ok(s == 200 and isinstance(d, list) and len(d) == 2 and "outcome" in d[0] and "sync_log_id" in d[0],
       "GET /dashboard/sync-logs pages the sync logs", (s, d))
    s, _, d = request("GET", "/dashboard/lineage")
    ok(s == 200 and isinstance(d, list) and len(d) > 2 and {"from_type", "to_type", "relationship", "submission_id"}
       <= set(d[0]), "GET /dashboard/lineage: lineage records of every submission", (s, d))
    s, h, d = request("HEAD", "/dashboard/events")
    ok(s == 200 and d is None and h.get("content-type", "").startswith("application/json"),
       "HEAD /dashboard/events -> 200 without a body", (s, h))

    # ------------------------------------------------------------ GET /reference/...
    for route, key in (("customers", "customer_id"), ("agreements", "agreement_id"), ("request-types", "code"),
                       ("priorities", "rank"), ("teams", "code")):
        s, _, d = request("GET", "/reference/" + route)
        ok(s == 200 and isinstance(d, list) and d and key in d[0], "GET /reference/%s -> a list with %s" % (route, key),
           (s, d))
    s, _, d = request("GET", "/reference/teams?list=customers")
    ok(s == 200 and "rank" not in d[0] and "email" not in d[0] and "name" in d[0],
       "a query parameter cannot change which list a route reads", (s, d))

    # ------------------------------------------------------------ methods and paths
    for method, route, allow in (("GET", "/intake/submissions", "POST"),
                                 ("DELETE", "/intake/submissions", "POST"),
                                 ("PUT", "/operational/cases/%s/status" % case, "PATCH"),
                                 ("GET", "/operational/cases/%s/status" % case, "PATCH"),
                                 ("POST", "/dashboard/events", "GET, HEAD"),
                                 ("PATCH", "/reference/teams", "GET, HEAD")):
        s, h, d = request(method, route)
        ok(s == 405 and h.get("allow") == allow and error_shape(d),
           "%s %s -> 405 with Allow: %s" % (method, route.replace(case, "{id}"), allow), (s, h.get("allow"), d))
    for route in ("/dashboard/nothing", "/intake/submissions/extra", "/operational/cases//status",
                  "/reference/", "/dashboard/submissions/a/b"):
        s, _, d = request("GET", route)
        ok(s == 404 and error_shape(d) and d["code"] == "PGRST125", "GET %s -> 404 JSON" % route, (s, d))
    s, h, _ = request("OPTIONS", "/operational/cases/%s/status" % case, headers={"Origin": "http://%s:%d" % (HOST, PORT)})
    ok(s == 204 and "PATCH" in h.get("access-control-allow-methods", ""), "a preflight allows PATCH", (s, h))
    s, _, d = request("POST", "/intake/submissions", BODY, {"Origin": "https://evil.example"})
    ok(s == 403, "a form post from a foreign origin -> 403 (no cross-site submissions)", (s, d))


tap.run(main)

// A webhook receiver for the tests: verifies every request with the
// Standard Webhooks reference library and parses every body with the
// CloudEvents SDK, answers as it is told, and writes one JSON line per
// request to its log (which the tests load into PostgreSQL).
//
//   node receiver.js PORT LOGFILE
//
// Control, per path (one path per subscription):
//   POST /control {"path": "/a", "secret": "whsec_...", "mode": "ok" | "500" | "429" |
//                  "503" | "410" | "stall" | "close", "retry_after": 2, "times": 3, "delay_ms": 0}
// "times" limits the mode to the next N requests; then the path answers 204 again.
// Each message replaces the path's earlier one (the secret is kept).
'use strict';
const http = require('http');
const fs = require('fs');
const path = require('path');
const deps = path.join(__dirname, '..', '..', '.deps', 'node_modules');
const { Webhook } = require(path.join(deps, 'standardwebhooks'));
const { HTTP } = require(path.join(deps, 'cloudevents'));

const port = Number(process.argv[2]);
const log = fs.openSync(process.argv[3], 'a');
const paths = new Map();
const MAX_BODY = 1024 * 1024;

function record(entry) {
  fs.writeSync(log, JSON.stringify(entry) + '\n');
}

const server = http.createServer((req, res) => {
  const chunks = [];
  let size = 0;
  req.on('data', (c) => {
    size += c.length;
    if (size > MAX_BODY) { req.destroy(); return; }
    chunks.push(c);
  });
  req.on('end', () => {
    const body = Buffer.concat(chunks).toString('utf8');
    if (req.url === '/control') {
      const c = JSON.parse(body);
      // Each control message replaces the path's behaviour; the secret stays.
      const old = paths.get(c.path) || {};
      paths.set(c.path, Object.assign({ mode: 'ok', secret: old.secret }, c));
      res.writeHead(204).end();
      return;
    }
    const p = paths.get(req.url) || { mode: 'ok' };
    const entry = { at: Date.now(), path: req.url, webhook_id: req.headers['webhook-id'] || null,
                    webhook_timestamp: req.headers['webhook-timestamp'] || null, verified: false };
    try {
      if (!p.secret) throw new Error('no secret for this path');
      new Webhook(p.secret).verify(body, req.headers);
      entry.verified = true;
    } catch (e) {
      entry.error = String(e.message || e);
    }
    try {
      const ce = HTTP.toEvent({ headers: req.headers, body });
      entry.ce_id = ce.id; entry.type = ce.type; entry.subject = ce.subject; entry.source = ce.source;
      entry.specversion = ce.specversion; entry.time = ce.time;
      entry.seq = ce.data && ce.data.event ? ce.data.event.seq : null;
      entry.new_status = ce.data && ce.data.event && ce.data.event.payload ? ce.data.event.payload.new_status || null : null;
      entry.canonical_status = ce.data && ce.data.canonical_object ? ce.data.canonical_object.lifecycle_status : null;
    } catch (e) {
      entry.error = (entry.error ? entry.error + '; ' : '') + 'cloudevent: ' + String(e.message || e);
    }
    let mode = p.mode;
    if (p.times !== undefined) {
      if (p.times <= 0) mode = 'ok'; else p.times -= 1;
    }
    if (!entry.verified || entry.error) mode = 'reject';
    entry.answer = mode;
    record(entry);
    const answer = () => {
      switch (mode) {
        case 'ok': res.writeHead(204).end(); break;
        case 'reject': res.writeHead(400, { 'content-type': 'text/plain' }).end(entry.error || 'rejected'); break;
        case '429': case '503':
          res.writeHead(Number(mode), p.retry_after !== undefined ? { 'retry-after': String(p.retry_after) } : {})
             .end('slow down');
          break;
        case 'stall': break;            // never answer: the sender's timeout ends it
        case 'close': req.socket.destroy(); break;
        default: res.writeHead(Number(mode), { 'content-type': 'text/plain' }).end('answer ' + mode);
      }
    };
    if (p.delay_ms) setTimeout(answer, p.delay_ms); else answer();
  });
});
server.keepAliveTimeout = 60000;
server.listen(port, '127.0.0.1', () => console.log(`receiver listening on ${port}`));
process.on('SIGTERM', () => process.exit(0));

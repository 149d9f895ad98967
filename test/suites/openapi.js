#!/usr/bin/env node
// GET /openapi.json and GET /docs of the built-in gateway: the description
// api.openapi() generates is OpenAPI 3.1 as @apidevtools/swagger-parser
// validates it, lists every api function as POST /rpc/<name> with its
// COMMENT and every route of the gateway (enterprise_lab.http_routes());
// the generator describes routes of every shape and refuses malformed ones;
// Swagger UI, in Debian's chromium driven by playwright-core, renders every
// operation.
'use strict';
const path = require('path');
const { execFileSync } = require('child_process');

const TREE = path.resolve(__dirname, '../..');
const SwaggerParser = require(path.join(TREE, '.deps/node_modules/@apidevtools/swagger-parser'));
const { chromium } = require(path.join(TREE, '.deps/node_modules/playwright-core'));
const URL_BASE = (process.env.EL_HTTP_URL || '').replace(/\/$/, '');

let n = 0;
let failed = 0;
function ok(cond, description, diag) {
  n += 1;
  if (cond) console.log(`ok ${n} - ${description}`);
  else {
    failed += 1;
    console.log(`not ok ${n} - ${description}`);
    if (diag) String(diag).split('\n').forEach((l) => console.log(`#   ${l}`));
  }
  return cond;
}
function is(got, expected, description) {
  return ok(got === expected, description, `got:      ${JSON.stringify(got)}\nexpected: ${JSON.stringify(expected)}`);
}
function psql(sql, ...options) {
  return execFileSync('psql', ['-X', '-A', '-t', '-q', '-v', 'ON_ERROR_STOP=1', ...options, '-d', 'lab', '-c', sql], {
    encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, PGOPTIONS: '-c client_min_messages=warning' },
  }).trim();
}
// The error psql prints, SQLSTATE included.
function psqlError(sql) {
  try {
    psql(sql, '-v', 'VERBOSITY=verbose');
    return '';
  } catch (e) {
    return String(e.stderr);
  }
}
async function description() {
  const res = await fetch(`${URL_BASE}/openapi.json`);
  return { res, doc: await res.json() };
}

// Routes of every shape, as the gateway's route table declares them, for
// the generator alone (enterprise_lab.openapi_document()).
const SAMPLE_ROUTES = [
  { method: 'PATCH', path: '/operational/cases/{operation_case_id}/status', api_function: 'health', needs_token: true },
  { method: 'GET', path: '/dashboard/submissions', api_function: 'submissions', query_parameters: 'page,page_size' },
  { method: 'POST', path: '/intake/submissions', api_function: 'submit_request', ok_status: 201,
    summary: 'Submit an intake request', content_types: 'application/json,multipart/form-data' },
];
const sqlJson = (v) => `'${JSON.stringify(v).replace(/'/g, "''")}'::jsonb`;

async function main() {
  if (!URL_BASE) throw new Error('EL_HTTP_URL is not set (run through ./test/run)');
  psql('CREATE EXTENSION IF NOT EXISTS enterprise_lab CASCADE');
  const { res, doc } = await description();
  is(res.status, 200, 'GET /openapi.json answers 200');
  ok(/^application\/json/.test(res.headers.get('content-type')), 'as application/json');
  is(doc.openapi, '3.1.0', 'the description is OpenAPI 3.1');

  try {
    await SwaggerParser.validate(structuredClone(doc));
    ok(true, '@apidevtools/swagger-parser validates it');
  } catch (e) {
    ok(false, '@apidevtools/swagger-parser validates it', e.message);
  }
  const broken = structuredClone(doc);
  broken.paths['/rpc/health'].post.responses['200'] = { content: {} };
  let refused = false;
  try {
    await SwaggerParser.validate(broken);
  } catch (e) {
    refused = true;
  }
  ok(refused, 'and refuses a copy with a response lacking its description (the check can fail)');

  const functions = psql(`SELECT string_agg(p.proname || '|' || coalesce(obj_description(p.oid, 'pg_proc'), ''), E'\\n' ORDER BY p.proname)
                            FROM pg_proc p WHERE p.pronamespace = 'api'::regnamespace
                             AND p.pronargs = 1 AND p.proargtypes[0] = 'jsonb'::regtype`).split('\n');
  const missing = [];
  const undocumented = [];
  for (const line of functions) {
    const [name, comment] = line.split('|');
    const op = doc.paths[`/rpc/${name}`] && doc.paths[`/rpc/${name}`].post;
    if (!op) missing.push(name);
    else if (!comment || op.description !== comment || !op.summary) undocumented.push(name);
  }
  ok(functions.length >= 15 && missing.length === 0,
    `every api function (${functions.length}) is POST /rpc/<name>`, `missing: ${missing.join(', ')}`);
  ok(undocumented.length === 0, 'each with a summary and its COMMENT as description', `not so: ${undocumented.join(', ')}`);
  const health = doc.paths['/rpc/health'].post;
  is(health.summary, 'Liveness', "the summary is the COMMENT's first sentence");
  ok(health.requestBody.content['application/json'].schema.type === 'object', 'the request body is a JSON object');
  is(health.responses['400'].$ref, '#/components/responses/BadRequest', '4xx answers refer to the error responses');
  is(JSON.stringify(doc.components.schemas.Error.required), '["code","message"]',
    "the error body is PostgREST's (code, message, details, hint)");
  const bearer = doc.components.securitySchemes.bearerAuth;
  is(`${bearer.type} ${bearer.scheme}`, 'http bearer', 'the security scheme is an HTTP bearer token');
  is(bearer.bearerFormat, 'JWT', 'a JWT');
  is(JSON.stringify(health.security), '[{},{"bearerAuth":[]}]', 'a function the anonymous role may call needs no token');
  is(JSON.stringify(doc.paths['/rpc/set_case_status'].post.security), '[{"bearerAuth":[]}]',
    'one it may not call needs a token');

  const routes = psql("SELECT string_agg(lower(method) || ' ' || path, E'\\n') FROM enterprise_lab.http_routes()")
    .split('\n').filter((r) => r);
  const absent = routes.filter((r) => { const [m, p] = r.split(' '); return !(doc.paths[p] && doc.paths[p][m]); });
  ok(absent.length === 0, `every route of the gateway (enterprise_lab.http_routes(): ${routes.length}) is described`,
    `absent: ${absent.join(', ')}`);

  // The original lab's routes, as the gateway serves them.
  const live = doc.paths['/operational/cases/{operation_case_id}/status'];
  ok(live && live.patch && JSON.stringify(live.patch.security) === '[{"bearerAuth":[]}]'
     && live.patch.parameters[0].name === 'operation_case_id',
  "PATCH /operational/cases/{operation_case_id}/status is described, with its path parameter and a required token");
  const submit = doc.paths['/intake/submissions'] && doc.paths['/intake/submissions'].post;
  ok(submit && submit.responses['201'] && submit.requestBody.content['multipart/form-data'],
    'POST /intake/submissions answers 201 and takes JSON or a form');
  ok(['/dashboard/submissions', '/dashboard/submissions/{submission_id}', '/dashboard/events', '/dashboard/lineage',
    '/dashboard/sync-logs', '/reference/customers', '/reference/teams'].every((p) => doc.paths[p] && doc.paths[p].get),
  'the GET /dashboard/... and /reference/... routes are described');
  is((doc.paths['/dashboard/events'].get.parameters || []).map((p) => `${p.name}:${p.in}`).join(','),
    'limit:query,offset:query', 'the paged ones with their limit and offset');

  // The generator on routes of every shape.
  const sample = JSON.parse(psql(`SELECT enterprise_lab.openapi_document(${sqlJson(SAMPLE_ROUTES)})`));
  try {
    await SwaggerParser.validate(structuredClone(sample));
    ok(true, 'a description with routes of every shape validates too');
  } catch (e) {
    ok(false, 'a description with routes of every shape validates too', e.message);
  }
  const patch = sample.paths['/operational/cases/{operation_case_id}/status'].patch;
  is(JSON.stringify(patch.parameters.map((p) => [p.name, p.in, p.required])), '[["operation_case_id","path",true]]',
    'a {name} in a route is a required path parameter');
  ok(patch.requestBody && patch.requestBody.content['application/json'], 'a PATCH route takes a JSON body');
  is(patch.description, doc.paths['/rpc/health'].post.description, "a route is described by its function's COMMENT");
  is(JSON.stringify(patch.security), '[{"bearerAuth":[]}]', 'a route that needs a token requires one, whatever its function');
  is(JSON.stringify(sample.paths['/dashboard/submissions'].get.security), '[{},{"bearerAuth":[]}]',
    'one open to the anonymous role does not');
  is(sample.paths['/dashboard/submissions'].get.parameters.map((p) => `${p.name}:${p.in}`).join(','),
    'page:query,page_size:query', 'a GET route lists its query parameters');
  const intake = sample.paths['/intake/submissions'].post;
  is(Object.keys(intake.requestBody.content).sort().join(','), 'application/json,multipart/form-data',
    'a route taking uploads lists both content types');
  is(intake.summary, 'Submit an intake request', "a route's own summary wins");
  ok(intake.responses['201'] && !intake.responses['200'], 'a route that creates answers 201');
  for (const [route, why] of [
    [{ method: 'GET', path: '/a/../b', api_function: 'health' }, 'a path with ".."'],
    [{ method: 'TRACE', path: '/x', api_function: 'health' }, 'a method the gateway does not serve'],
    [{ method: 'GET', path: '/x', api_function: 'Health; DROP' }, 'a function name that is not one'],
    [{ method: 'GET', path: '/x', api_function: 'health', ok_status: 404 }, 'a success status that is not 2xx'],
  ]) {
    ok(/ERROR:  22023: openapi_document: route .* is not valid/.test(psqlError(`SELECT enterprise_lab.openapi_document(${sqlJson([route])})`)),
      `the generator refuses ${why} (22023)`);
  }
  ok(/ERROR:  22023: openapi_document: routes must be a JSON array/.test(psqlError("SELECT enterprise_lab.openapi_document('{}')")),
    'and routes that are not an array (22023)');
  const bad = await fetch(`${URL_BASE}/rpc/openapi`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{"x": 1}' });
  const badBody = await bad.json();
  ok(bad.status === 400 && badBody.code === '22023' && /unknown key "x"/.test(badBody.message),
    'POST /rpc/openapi with an unknown key gets 400 (22023)', JSON.stringify(badBody));

  // Swagger UI, in the browser.
  for (const p of ['/docs', '/docs/']) {
    const r = await fetch(`${URL_BASE}${p}`);
    ok(r.status === 200 && /swagger-ui-bundle\.js/.test(await r.text()), `GET ${p} serves the Swagger UI page`);
  }
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', headless: true, args: ['--no-sandbox', '--disable-gpu'] });
  try {
    const page = await browser.newPage();
    const errors = [];
    page.on('pageerror', (e) => errors.push(e.message));
    page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
    await page.goto(`${URL_BASE}/docs`);
    let shown = [];
    try {
      await page.waitForSelector('.opblock', { timeout: 20000 });
      shown = await page.locator('.opblock .opblock-summary').evaluateAll(
        (els) => els.map((e) => e.textContent.replace(/\s+/g, ' ').trim()));
    } catch (e) {
      errors.push(e.message.split('\n')[0]);
    }
    const operations = Object.values(doc.paths).reduce((t, item) => t + Object.keys(item).length, 0);
    ok(shown.length === operations, `Swagger UI lists every operation (${operations})`, shown.join('\n'));
    ok(await page.locator('.opblock-summary-path', { hasText: '/rpc/submit_request' }).count() === 1,
      'POST /rpc/submit_request among them');
    ok(await page.locator('.btn.authorize').count() === 1, 'with an Authorize button for the bearer token');
    ok(errors.length === 0, 'and no error in the page (its Content-Security-Policy included)', errors.join('\n'));
  } finally {
    await browser.close();
  }
}

main().catch((e) => ok(false, 'the suite ran to its end', e.stack)).finally(() => {
  console.log(`1..${n}`);
  process.exit(failed === 0 ? 0 : 1);
});

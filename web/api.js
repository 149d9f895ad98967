// The API client: POST <base>rpc/<name> with a JSON body, as PostgREST and
// the built-in gateway both serve it.  Errors carry PostgREST's error body
// (code, message, details, hint).

import config from './config.js';
import * as auth from './auth.js';

const base = new URL(config.apiBase || './', document.baseURI);

export class ApiError extends Error {
  constructor(status, body) {
    super(body.message || `HTTP ${status}`);
    this.status = status;
    this.code = body.code ?? null;
    this.details = body.details ?? null;
    this.hint = body.hint ?? null;
    this.column = body.column ?? null;
  }
}

async function call(name, body, token) {
  // Prefer: older PostgREST versions pass the body as the single jsonb
  // argument only when asked; newer ones do it anyway and ignore this.
  const headers = { 'Content-Type': 'application/json', Accept: 'application/json', Prefer: 'params=single-object' };
  if (token) headers.Authorization = `Bearer ${token}`;
  let response;
  try {
    response = await fetch(new URL(`rpc/${name}`, base), {
      method: 'POST', headers, body: JSON.stringify(body ?? {}), cache: 'no-store', credentials: 'omit',
    });
  } catch (e) {
    throw new ApiError(0, { message: `The API cannot be reached (${e.message}).` });
  }
  const text = await response.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = null; }
  if (!response.ok) {
    throw new ApiError(response.status, data && typeof data === 'object' ? data : { message: text || response.statusText });
  }
  return data;
}

// An error as one readable sentence or three: message, details, hint.
export function describe(e) {
  const message = String(e.message || 'Request failed');
  return [/[.!?]$/.test(message) ? message : `${message}.`, e.details, e.hint].filter(Boolean).join(' ');
}

// Reads and writes use the signed-in token.  A rejected token (401) is
// dropped, so the console keeps working anonymously (reads are retried
// without it), and the caller learns why through onTokenRejected.
const WRITES = new Set(['submit_request', 'set_case_status', 'replay_event']);
let tokenRejected = () => {};
export function onTokenRejected(fn) { tokenRejected = fn; }

export async function rpc(name, body = {}) {
  const sent = auth.token();
  try {
    return await call(name, body, sent);
  } catch (e) {
    if (e instanceof ApiError && e.status === 401 && sent) {
      // Several calls may fail with the same token; sign out once.
      if (auth.token() === sent) {
        auth.signOut();
        tokenRejected(e);
      }
      if (!WRITES.has(name)) return call(name, body, null);
    }
    throw e;
  }
}

// The operator's token: kept for this tab only (sessionStorage), sent as
// Authorization: Bearer.  Its claims are decoded for display; the server
// verifies the signature.

const KEY = 'enterprise_lab.jwt';
const listeners = new Set();

function decodePart(part) {
  const b64 = part.replace(/-/g, '+').replace(/_/g, '/');
  const bin = atob(b64 + '='.repeat((4 - (b64.length % 4)) % 4));
  return JSON.parse(new TextDecoder().decode(Uint8Array.from(bin, (c) => c.charCodeAt(0))));
}

// Claims of a compact JWS, or an Error saying what is wrong with it.
export function parseToken(token) {
  const parts = token.trim().split('.');
  if (parts.length !== 3 || parts.some((p) => !/^[A-Za-z0-9_-]*$/.test(p)) || !parts[0] || !parts[1]) {
    return new Error('This is not a JWT (expected three base64url parts separated by dots).');
  }
  let claims;
  try { claims = decodePart(parts[1]); } catch { return new Error('The token payload is not JSON.'); }
  if (typeof claims !== 'object' || claims === null) return new Error('The token payload is not a JSON object.');
  if (typeof claims.role !== 'string') return new Error('The token has no role claim.');
  if (typeof claims.exp === 'number' && claims.exp * 1000 < Date.now()) return new Error('The token has expired.');
  return claims;
}

export function token() {
  return sessionStorage.getItem(KEY);
}

export function claims() {
  const t = token();
  if (!t) return null;
  const c = parseToken(t);
  return c instanceof Error ? null : c;
}

export function signIn(t) {
  const c = parseToken(t);
  if (c instanceof Error) throw c;
  sessionStorage.setItem(KEY, t.trim());
  listeners.forEach((fn) => fn(c));
  return c;
}

export function signOut() {
  sessionStorage.removeItem(KEY);
  listeners.forEach((fn) => fn(null));
}

export function onChange(fn) {
  listeners.add(fn);
}

export function teams(c) {
  if (!c) return [];
  if (Array.isArray(c.teams)) return c.teams.map(String);
  return c.team ? [String(c.team)] : [];
}

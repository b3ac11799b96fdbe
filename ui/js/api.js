// The management API client: HTTP basic auth with the credentials kept in sessionStorage.
// Every failure becomes an ApiError whose `kind` says what went wrong (auth, down, http).

const KEY = 'ottermq.auth';

export class ApiError extends Error {
  constructor(kind, status, message) {
    super(message);
    this.kind = kind; // 'auth' | 'down' | 'http'
    this.status = status;
  }
}

export function credentials() {
  return sessionStorage.getItem(KEY);
}

export function setCredentials(user, pass) {
  sessionStorage.setItem(KEY, btoa(unescape(encodeURIComponent(`${user}:${pass}`))));
  sessionStorage.setItem(KEY + '.user', user);
}

export function userName() {
  return sessionStorage.getItem(KEY + '.user') || '';
}

export function clearCredentials() {
  sessionStorage.removeItem(KEY);
  sessionStorage.removeItem(KEY + '.user');
}

const listeners = { auth: [], up: [], down: [] };
export function on(ev, f) { listeners[ev].push(f); }
function emit(ev, arg) { for (const f of listeners[ev]) f(arg); }

/** Calls the API; `auth` overrides the stored credentials (used by the login form). */
export async function api(path, { method = 'GET', body, auth, timeout = 10000 } = {}) {
  // X-Requested-With: the server then leaves out WWW-Authenticate on a 401, so the browser
  // does not pop up its own login dialog over the UI's.
  const headers = { 'Authorization': 'Basic ' + (auth || credentials() || ''), 'X-Requested-With': 'XMLHttpRequest' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(), timeout);
  let resp;
  try {
    resp = await fetch('api' + path, {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body),
      signal: ctl.signal, cache: 'no-store',
    });
  } catch (e) {
    emit('down', e);
    throw new ApiError('down', 0, 'Cannot reach the OtterMQ management server.');
  } finally {
    clearTimeout(timer);
  }
  emit('up');
  if (resp.status === 401) {
    if (!auth) emit('auth');
    throw new ApiError('auth', 401, 'Wrong username or password');
  }
  const text = await resp.text();
  let data = null;
  if (text) {
    try { data = JSON.parse(text); } catch { data = text; }
  }
  if (!resp.ok) {
    const reason = data && data.reason ? data.reason : `HTTP ${resp.status}`;
    throw new ApiError('http', resp.status, reason);
  }
  return data;
}

export const vpath = (vhost, name) => `${encodeURIComponent(vhost)}/${encodeURIComponent(name)}`;

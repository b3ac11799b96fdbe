// Entry point: login, hash routing (#/, #/queues, #/queues/{vhost}/{name}, ...), the
// broker-down banner, and the lifecycle of each page's timers.

import { api, ApiError, credentials, setCredentials, clearCredentials, userName, on } from './api.js';
import { stateBox } from './dom.js';
import * as overview from './overview.js';
import * as lists from './lists.js';
import * as queue from './queue.js';
import * as exchange from './exchange.js';

const app = document.getElementById('app');
const banner = document.getElementById('banner');
let cleanup = null;
let loginNote = '';

/** What each page gets: a poller that stops when the page goes, and the sample interval. */
function pageContext() {
  const timers = [];
  let alive = true;
  return {
    interval: Number(sessionStorage.getItem('ottermq.interval') || 5),
    alive: () => alive,
    /** Runs `f` now and then every `ms`, never two at once, until the page changes. */
    every(ms, f) {
      let t = null;
      const tick = async () => {
        if (!alive) return;
        try { await f(); } catch (e) { handleError(e); }
        if (alive) t = setTimeout(tick, typeof ms === 'function' ? ms() : ms);
        timers.push(t);
      };
      tick();
    },
    stop() { alive = false; timers.forEach(clearTimeout); },
  };
}

function handleError(e) {
  if (e instanceof ApiError && (e.kind === 'auth' || e.kind === 'down')) return; // banner / login handle these
  console.error(e);
}

on('down', () => {
  banner.hidden = false;
  banner.textContent = 'Cannot reach OtterMQ at ' + location.host + ': the broker may be down or restarting. Retrying…';
});
on('up', () => { banner.hidden = true; });
on('auth', () => {
  clearCredentials();
  loginNote = 'Your session is no longer valid: log in again.';
  showLogin();
});

function showLogin() {
  if (cleanup) { cleanup(); cleanup = null; }
  document.getElementById('top').hidden = true;
  app.replaceChildren();
  const login = document.getElementById('login');
  login.hidden = false;
  const err = document.getElementById('login-error');
  err.hidden = !loginNote;
  err.textContent = loginNote;
  document.getElementById('login-user').focus();
}

document.getElementById('login-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const user = document.getElementById('login-user').value;
  const pass = document.getElementById('login-pass').value;
  const err = document.getElementById('login-error');
  const btn = document.getElementById('login-submit');
  btn.disabled = true;
  err.hidden = true;
  try {
    const auth = btoa(unescape(encodeURIComponent(`${user}:${pass}`)));
    await api('/whoami', { auth });
    setCredentials(user, pass);
    loginNote = '';
    document.getElementById('login-pass').value = '';
    start();
  } catch (e) {
    err.hidden = false;
    err.textContent = e.kind === 'auth' ? 'Wrong username or password'
      : e.kind === 'down' ? 'Cannot reach the OtterMQ management server. Is the broker running?'
        : 'Login failed: ' + e.message;
  } finally {
    btn.disabled = false;
  }
});

document.getElementById('logout').addEventListener('click', () => {
  clearCredentials();
  loginNote = '';
  showLogin();
});

function route() {
  const parts = location.hash.replace(/^#\/?/, '').split('/').map(decodeURIComponent);
  const [page, vhost, name] = parts;
  if (!page) return ['overview', () => overview];
  if ((page === 'queues' || page === 'exchanges') && vhost !== undefined && name !== undefined) {
    return [page, page === 'queues' ? () => queue : () => exchange, { vhost, name }];
  }
  if (lists.PAGES[page]) return [page, () => lists, { page }];
  return [null];
}

async function render() {
  if (!credentials()) return showLogin();
  if (cleanup) { cleanup(); cleanup = null; }
  const [nav, mod, params] = route();
  for (const a of document.querySelectorAll('#nav a')) a.classList.toggle('active', a.dataset.nav === nav);
  app.replaceChildren();
  if (!nav) {
    app.append(stateBox('No such page. Go to the overview.', 'error'));
    return;
  }
  const ctx = pageContext();
  const extra = mod().mount(app, params || {}, ctx);
  cleanup = () => { ctx.stop(); if (typeof extra === 'function') extra(); };
}

async function start() {
  document.getElementById('login').hidden = true;
  document.getElementById('top').hidden = false;
  document.getElementById('who-name').textContent = userName();
  // The sample interval paces every page's refresh.
  try {
    const m = await api('/metrics/overview');
    if (m && m.interval_seconds) sessionStorage.setItem('ottermq.interval', String(m.interval_seconds));
  } catch (e) {
    if (e.kind === 'auth') return;
  }
  render();
}

window.addEventListener('hashchange', () => { if (credentials()) render(); });
if (credentials()) start(); else showLogin();

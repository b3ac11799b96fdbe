// Small DOM helpers and formatters shared by every page.

/** h('div.card', {onclick}, child, 'text') builds an element. */
export function h(tag, attrs, ...children) {
  const [name, ...classes] = tag.split('.');
  const el = document.createElement(name || 'div');
  if (classes.length) el.className = classes.join(' ');
  if (attrs && (typeof attrs !== 'object' || attrs instanceof Node || Array.isArray(attrs))) {
    children.unshift(attrs);
    attrs = null;
  }
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k in el && k !== 'list' && typeof v !== 'string') el[k] = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export function fmtNum(v, digits = 0) {
  if (v === null || v === undefined || Number.isNaN(v)) return '–';
  return Number(v).toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: 0 });
}

/** Axis labels: whole numbers when large, one decimal when small. */
export function fmtAxis(v) {
  return Math.abs(v) < 10 && v % 1 !== 0 ? fmtNum(v, 1) : fmtNum(v);
}

export function fmtRate(v) {
  if (v === null || v === undefined) return '–';
  return (v >= 100 ? fmtNum(v, 0) : fmtNum(v, 1)) + '/s';
}

export function fmtBytes(v) {
  if (v === null || v === undefined) return '–';
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (v >= 1024 && i < u.length - 1) { v /= 1024; i++; }
  return (i ? v.toFixed(1) : String(v)) + ' ' + u[i];
}

/** Microseconds to a readable latency. */
export function fmtUs(v) {
  if (v === null || v === undefined) return '–';
  if (v < 10) return (Math.round(v * 10) / 10) + ' µs';
  if (v < 1000) return Math.round(v) + ' µs';
  if (v < 1e6) return (v / 1000).toFixed(v < 1e4 ? 2 : v < 1e5 ? 1 : 0) + ' ms';
  return (v / 1e6).toFixed(2) + ' s';
}

export function fmtAge(sec) {
  if (sec === null || sec === undefined) return '–';
  if (sec < 1) return (sec * 1000).toFixed(0) + ' ms';
  if (sec < 120) return sec.toFixed(1) + ' s';
  if (sec < 7200) return (sec / 60).toFixed(1) + ' min';
  return (sec / 3600).toFixed(1) + ' h';
}

export function stat(key, value, id) {
  return h('div.stat', { dataset: id ? { stat: id } : undefined }, h('div.v', value), h('div.k', key));
}

export function stateBox(text, kind = '') {
  return h('div.state' + (kind ? '.' + kind : ''), { role: kind === 'error' ? 'alert' : 'status' }, text);
}

/** A modal confirmation; resolves true when the user confirms. */
export function confirmAction(text, okLabel = 'Confirm') {
  const dlg = document.getElementById('confirm');
  document.getElementById('confirm-text').textContent = text;
  document.getElementById('confirm-ok').textContent = okLabel;
  return new Promise((resolve) => {
    dlg.addEventListener('close', () => resolve(dlg.returnValue === 'ok'), { once: true });
    dlg.returnValue = '';
    dlg.showModal();
  });
}

export const enc = encodeURIComponent;

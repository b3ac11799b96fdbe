// Exchange detail: rate chart, bindings from and to it, and a publish form.

import { api, ApiError, vpath } from './api.js';
import { h, fmtNum, fmtRate, stat, stateBox, confirmAction, enc } from './dom.js';
import { LiveChart, durationSelect, currentDuration, durationMs } from './charts.js';

const CHART = { id: 'exchange-rates', title: 'Message rates', fmt: fmtRate,
  series: [{ label: 'in', key: 'published' }, { label: 'routed', key: 'routed' }, { label: 'unroutable', key: 'unroutable' }] };

export function mount(root, { vhost, name }, ctx) {
  const path = vpath(vhost, name);
  const display = name === 'amq.default' ? '(AMQP default)' : name;
  let duration = currentDuration();
  const msg = h('div', { id: 'exchange-message', role: 'status' });
  const statsEl = h('div.stats', stateBox('Loading…'));
  const chartsEl = h('div.grid.charts');
  const bindingsEl = h('div.table-wrap', 'Loading…');
  root.append(
    h('div.row.spread', h('h1', 'Exchange ', h('span', { id: 'exchange-name' }, display), h('span.muted', ` in ${vhost}`)),
      h('div.row', h('span.muted', 'Charts show'), durationSelect((d) => { duration = d; refresh(); }))),
    msg, statsEl, chartsEl);
  const chart = new LiveChart(chartsEl, CHART);
  const key = h('input', { id: 'xpublish-key', 'aria-label': 'Routing key' });
  const payload = h('textarea', { id: 'xpublish-payload', 'aria-label': 'Payload' }, 'hello');
  const headers = h('textarea', { id: 'xpublish-headers', 'aria-label': 'Headers (JSON)', placeholder: '{"x-key": "value"}' });
  const persistent = h('input', { type: 'checkbox', id: 'xpublish-persistent' });
  const result = h('div', { id: 'xpublish-result', role: 'status' });

  root.append(h('div.two.section',
    h('div.card', h('h2', 'Bindings from this exchange'), bindingsEl),
    h('div.card.form', h('h2', 'Publish a message'),
      h('label', 'Routing key', key), h('label', 'Payload', payload), h('label', 'Headers (JSON object, optional)', headers),
      h('label.row', persistent, 'Persistent (delivery mode 2)'),
      h('div.row', h('button', { id: 'xpublish-send', onclick: publish }, 'Publish message')), result)));

  async function publish() {
    let props = {};
    if (headers.value.trim()) {
      try { props.headers = JSON.parse(headers.value); } catch { result.replaceChildren(h('p.error', 'Headers must be a JSON object.')); return; }
    }
    if (persistent.checked) props.delivery_mode = 2;
    if (!await confirmAction(`Publish to exchange "${display}" with routing key "${key.value}"?`, 'Publish')) return;
    try {
      const r = await api(`/exchanges/${path}/publish`, { method: 'POST', body: { properties: props, routing_key: key.value, payload: payload.value, payload_encoding: 'string' } });
      result.replaceChildren(h('p.' + (r.routed ? 'ok' : 'error'), r.routed ? 'Published and routed.' : 'Published, but no queue matched: the message was dropped.'));
      refresh();
    } catch (e) { result.replaceChildren(h('p.error', 'Publish failed: ' + e.message)); }
  }

  let gone = false;
  async function refresh() {
    if (gone) return;
    let e, m, bindings;
    try {
      [e, m, bindings] = await Promise.all([api(`/exchanges/${path}`), api(`/metrics/exchanges/${path}?duration=${duration}`), api('/bindings')]);
    } catch (err) {
      if (err instanceof ApiError && err.status === 404) {
        gone = true; statsEl.replaceChildren(); chartsEl.replaceChildren();
        msg.replaceChildren(stateBox(`Exchange "${display}" does not exist in vhost "${vhost}".`, 'error'));
        return;
      }
      throw err;
    }
    if (!ctx.alive()) return;
    const t = m.totals || {};
    statsEl.replaceChildren(
      stat('Type', e.type), stat('Durable', e.durable ? 'yes' : 'no'), stat('Auto-delete', e.auto_delete ? 'yes' : 'no'),
      stat('Internal', e.internal ? 'yes' : 'no'), stat('Published in', fmtNum(t.publish_in)), stat('Routed out', fmtNum(t.publish_out)),
      stat('Unroutable', fmtNum(t.unroutable)));
    const s = m.series || {};
    chart.load(CHART.series.map((x) => s[x.key] || []), durationMs(duration));
    const src = e.name;
    const mine = bindings.filter((b) => b.source === src && b.vhost === vhost);
    bindingsEl.replaceChildren(src === '' ? h('p.muted', 'The default exchange routes to the queue named by the routing key; it has no explicit bindings.')
      : mine.length ? h('table', h('thead', h('tr', h('th', 'To'), h('th', 'Routing key'), h('th', 'Arguments'))),
        h('tbody', mine.map((b) => h('tr',
          h('td', b.destination_type === 'queue' ? h('a', { href: `#/queues/${enc(vhost)}/${enc(b.destination)}` }, b.destination) : h('a', { href: `#/exchanges/${enc(vhost)}/${enc(b.destination)}` }, b.destination + ' (exchange)')),
          h('td', b.routing_key), h('td', JSON.stringify(b.arguments))))))
        : h('p.muted', 'No bindings: messages published here are unroutable.'));
  }
  ctx.every(() => ctx.interval * 1000, refresh);
  return () => chart.destroy();
}

// Queue detail: depth, rate and time-in-queue charts, consumers, bindings, and the actions
// (purge, delete, publish a test message, get messages), each confirmed before it runs.

import { api, ApiError, vpath } from './api.js';
import { h, fmtAxis, fmtNum, fmtRate, fmtBytes, fmtUs, fmtAge, stat, stateBox, confirmAction, enc } from './dom.js';
import { LiveChart, durationSelect, currentDuration, durationMs } from './charts.js';

const CHARTS = [
  { id: 'queue-depth', title: 'Queued messages', fmt: fmtAxis,
    series: [{ label: 'ready', key: 'messages_ready' }, { label: 'unacked', key: 'messages_unacked' }] },
  { id: 'queue-rates', title: 'Message rates', fmt: fmtRate,
    series: [{ label: 'incoming', key: 'published' }, { label: 'deliver', key: 'delivered' },
      { label: 'ack', key: 'acked' }, { label: 'redeliver', key: 'redelivered' }] },
  { id: 'queue-latency', title: 'Time in queue', fmt: fmtUs,
    series: ['p50', 'p95', 'p99'].map((p) => ({ label: p, key: `latency_${p}_us` })) },
];

export function mount(root, { vhost, name }, ctx) {
  const path = vpath(vhost, name);
  let duration = currentDuration();
  const msg = h('div', { id: 'queue-message', role: 'status' });
  const statsEl = h('div.stats', { id: 'queue-stats' }, stateBox('Loading…'));
  const chartsEl = h('div.grid.charts');
  const consumersEl = h('div.table-wrap', 'Loading…');
  const bindingsEl = h('div.table-wrap', 'Loading…');
  const getOut = h('div.msgs', { id: 'get-result' });
  const typeEl = h('span.subtitle');
  const header = h('div.row.spread',
    h('h1', 'Queue ', h('span', { id: 'queue-name' }, name), h('span.muted.subtitle', `in vhost ${vhost} `), typeEl),
    h('div.row', h('span.muted', 'Charts show'), durationSelect((d) => { duration = d; refresh(true); })));
  root.append(header, msg, statsEl, chartsEl);
  const charts = CHARTS.map((c) => new LiveChart(chartsEl, c));

  const purgeBtn = h('button.danger', { id: 'purge', onclick: purge }, 'Purge messages');
  const ifUnused = h('input', { type: 'checkbox', id: 'if-unused' });
  const ifEmpty = h('input', { type: 'checkbox', id: 'if-empty' });
  const deleteBtn = h('button.danger', { id: 'delete-queue', onclick: del }, 'Delete queue');
  const pubKey = h('input', { value: name, id: 'publish-key', 'aria-label': 'Routing key' });
  const pubBody = h('textarea', { id: 'publish-payload', 'aria-label': 'Payload' }, 'test message');
  const pubPersist = h('input', { type: 'checkbox', id: 'publish-persistent' });
  const getCount = h('input', { type: 'number', min: 1, max: 1000, value: 1, id: 'get-count', style: 'width:80px' });
  const getMode = h('select', { id: 'get-mode' },
    h('option', { value: 'ack_requeue_true' }, 'Requeue (look only)'),
    h('option', { value: 'reject_requeue_true' }, 'Reject, requeue'),
    h('option', { value: 'ack_requeue_false' }, 'Ack (remove from the queue)'),
    h('option', { value: 'reject_requeue_false' }, 'Reject, no requeue (remove)'));

  root.append(
    h('div.two.section',
      h('div.card', h('h2', 'Consumers'), consumersEl),
      h('div.card', h('h2', 'Bindings'), bindingsEl)),
    h('div.two.section',
      h('div.card.form', h('h2', 'Publish a test message'),
        h('p.muted', 'Sent through the default exchange; the routing key is this queue by default.'),
        h('label', 'Routing key', pubKey), h('label', 'Payload', pubBody),
        h('label.row', pubPersist, 'Persistent (delivery mode 2)'),
        h('div.row', h('button', { id: 'publish-send', onclick: publish }, 'Publish message'))),
      h('div.card.form', h('h2', 'Get messages'),
        h('div.row', h('label', 'Count', getCount), h('label', 'Mode', getMode)),
        h('div.row', h('button', { id: 'get-messages', onclick: getMessages }, 'Get messages')), getOut)),
    h('div.card.section.form', h('h2', 'Danger zone'),
      h('div.row', purgeBtn, h('span.muted', 'Removes every ready message (unacknowledged ones stay with their consumers).')),
      h('div.row', deleteBtn, h('label.row', ifUnused, 'only if unused'), h('label.row', ifEmpty, 'only if empty'))),
  );

  const say = (text, kind = 'ok') => msg.replaceChildren(h('p.' + kind, text));

  async function purge() {
    if (!await confirmAction(`Purge every ready message from queue "${name}"?`, 'Purge')) return;
    try { await api(`/queues/${path}/contents`, { method: 'DELETE' }); say(`Queue "${name}" purged.`); refresh(false); } catch (e) { say('Purge failed: ' + e.message, 'error'); }
  }

  async function del() {
    if (!await confirmAction(`Delete queue "${name}" and its bindings? Consumers are cancelled.`, 'Delete')) return;
    const q = new URLSearchParams();
    if (ifUnused.checked) q.set('if-unused', 'true');
    if (ifEmpty.checked) q.set('if-empty', 'true');
    try {
      await api(`/queues/${path}?${q}`, { method: 'DELETE' });
      location.hash = '#/queues';
    } catch (e) { say('Delete failed: ' + e.message, 'error'); }
  }

  async function publish() {
    if (!await confirmAction(`Publish this message with routing key "${pubKey.value}"?`, 'Publish')) return;
    try {
      const r = await api(`/exchanges/${enc(vhost)}/amq.default/publish`, { method: 'POST', body: {
        properties: pubPersist.checked ? { delivery_mode: 2 } : {}, routing_key: pubKey.value,
        payload: pubBody.value, payload_encoding: 'string' } });
      say(r.routed ? 'Message published and routed.' : 'Message published but not routed (no queue matched).', r.routed ? 'ok' : 'error');
      refresh(false);
    } catch (e) { say('Publish failed: ' + e.message, 'error'); }
  }

  async function getMessages() {
    const mode = getMode.value;
    if (!mode.endsWith('requeue_true') && !await confirmAction(`Take up to ${getCount.value} message(s) out of "${name}"? They are removed from the queue.`, 'Get and remove')) return;
    try {
      const list = await api(`/queues/${path}/get`, { method: 'POST', body: {
        count: Number(getCount.value) || 1, ackmode: mode, encoding: 'auto', truncate: 50000 } });
      getOut.replaceChildren(...(list.length ? list.map((m, i) => h('div',
        h('div.row.spread', h('strong', `Message ${i + 1}`), h('span.muted', `${m.payload_bytes} bytes, ${m.redelivered ? 'redelivered' : 'first delivery'}, exchange "${m.exchange}", key "${m.routing_key}"`)),
        Object.keys(m.properties).length ? h('pre.msg', JSON.stringify(m.properties)) : null,
        h('pre.msg', m.payload_encoding === 'base64' ? `(base64) ${m.payload}` : m.payload)))
        : [h('p.muted', 'The queue is empty.')]));
      refresh(false);
    } catch (e) { getOut.replaceChildren(h('p.error', 'Get failed: ' + e.message)); }
  }

  function renderStats(q, m) {
    const c = m.current || {};
    statsEl.replaceChildren(
      stat('Ready', fmtNum(q.messages_ready), 'ready'),
      stat('Unacked', fmtNum(q.messages_unacknowledged), 'unacked'),
      stat('Total', fmtNum(q.messages), 'total'),
      stat('Ready bytes', fmtBytes(q.message_bytes_ready), 'bytes'),
      stat('Consumers', fmtNum(q.consumers), 'consumers'),
      stat('Oldest message', fmtAge(q.oldest_message_age_seconds), 'oldest'),
      stat('Incoming', fmtRate(q.message_stats && q.message_stats.publish_details.rate), 'incoming'),
      stat('Deliver', fmtRate(q.message_stats && q.message_stats.deliver_get_details.rate), 'deliver'),
    );
    typeEl.replaceChildren(...[q.type, q.durable ? 'durable' : 'transient', q.auto_delete ? 'auto-delete' : '', q.exclusive ? 'exclusive' : '']
      .filter(Boolean).map((t) => h('span.tag', t)));
    void c;
  }

  function renderConsumers(list) {
    const mine = list.filter((c) => c.queue.name === name && c.queue.vhost === vhost);
    consumersEl.replaceChildren(mine.length ? h('table', h('thead', h('tr', h('th', 'Tag'), h('th', 'Channel'), h('th', 'Ack'), h('th.num', 'Prefetch'))),
      h('tbody', mine.map((c) => h('tr', h('td', c.consumer_tag), h('td', c.channel_details.name), h('td', c.ack_required ? 'manual' : 'auto'), h('td.num', fmtNum(c.prefetch_count))))))
      : h('p.muted', 'No consumers.'));
  }

  function renderBindings(list) {
    const mine = list.filter((b) => b.destination_type === 'queue' && b.destination === name && b.vhost === vhost);
    bindingsEl.replaceChildren(h('table', h('thead', h('tr', h('th', 'From exchange'), h('th', 'Routing key'), h('th', 'Arguments'))),
      h('tbody',
        h('tr', h('td', '(AMQP default)'), h('td', name), h('td.muted', 'implicit')),
        mine.map((b) => h('tr', h('td', h('a', { href: `#/exchanges/${enc(b.vhost)}/${enc(b.source)}` }, b.source)), h('td', b.routing_key), h('td', JSON.stringify(b.arguments)))))));
  }

  let gone = false;
  let fullLoaded = false;
  async function refresh(reloadSeries) {
    if (gone) return;
    let q, m;
    try {
      [q, m] = await Promise.all([api(`/queues/${path}`), api(`/metrics/queues/${path}?duration=${duration}`)]);
    } catch (e) {
      if (e instanceof ApiError && e.status === 404) {
        gone = true;
        statsEl.replaceChildren();
        chartsEl.replaceChildren();
        msg.replaceChildren(stateBox(`Queue "${name}" does not exist in vhost "${vhost}" (it may have been deleted).`, 'error'));
        return;
      }
      throw e;
    }
    if (!ctx.alive()) return;
    renderStats(q, m);
    const series = m.series || {};
    // The per-queue series come whole with each refresh (one object, a few KB).
    charts.forEach((ch, i) => ch.load(CHARTS[i].series.map((s) => series[s.key] || []), durationMs(duration)));
    if (reloadSeries || !fullLoaded) fullLoaded = true;
    const [consumers, bindings] = await Promise.all([api('/consumers'), api('/bindings')]);
    if (!ctx.alive()) return;
    renderConsumers(consumers);
    renderBindings(bindings);
  }
  ctx.every(() => ctx.interval * 1000, () => refresh(false));
  return () => charts.forEach((c) => c.destroy());
}

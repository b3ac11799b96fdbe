// Sortable, filterable, paged lists of queues, exchanges, connections, channels and consumers.
// Queues, exchanges and connections are paged by the server (?page=&page_size=&name=&sort=),
// so a broker with thousands of queues costs one page per refresh; channels and consumers are
// paged in the browser. Connection and channel rates come from two readings of their counts.

import { api, ApiError } from './api.js';
import { h, fmtNum, fmtRate, fmtAge, stateBox, enc } from './dom.js';

const get = (o, path) => path.split('.').reduce((v, k) => (v == null ? v : v[k]), o);
const rate = (path) => (r) => fmtRate(get(r, path));
const qlink = (r) => h('a', { href: `#/queues/${enc(r.vhost)}/${enc(r.name)}` }, r.name);
const xlink = (r) => h('a', { href: `#/exchanges/${enc(r.vhost)}/${enc(r.name || 'amq.default')}` }, r.name || '(AMQP default)');

export const PAGES = {
  queues: {
    title: 'Queues', endpoint: '/queues', server: true, defaultSort: 'name', key: (r) => r.vhost + '/' + r.name,
    empty: 'No queues yet. Declare one from a client (queue.declare) and it shows here.',
    columns: [
      { label: 'Name', sort: 'name', cell: qlink },
      { label: 'Vhost', sort: 'vhost', cell: (r) => r.vhost },
      { label: 'Features', cell: (r) => [r.durable ? 'D' : '', r.auto_delete ? 'AD' : '', r.exclusive ? 'Excl' : ''].filter(Boolean).join(' ') },
      { label: 'Ready', sort: 'messages_ready', num: true, cell: (r) => fmtNum(r.messages_ready) },
      { label: 'Unacked', sort: 'messages_unacknowledged', num: true, cell: (r) => fmtNum(r.messages_unacknowledged) },
      { label: 'Total', sort: 'messages', num: true, cell: (r) => fmtNum(r.messages) },
      { label: 'Consumers', sort: 'consumers', num: true, cell: (r) => fmtNum(r.consumers) },
      { label: 'Incoming', sort: 'message_stats.publish_details.rate', num: true, cell: rate('message_stats.publish_details.rate') },
      { label: 'Deliver', sort: 'message_stats.deliver_get_details.rate', num: true, cell: rate('message_stats.deliver_get_details.rate') },
      { label: 'Ack', sort: 'message_stats.ack_details.rate', num: true, cell: rate('message_stats.ack_details.rate') },
      { label: 'Oldest message', sort: 'oldest_message_age_seconds', num: true, cell: (r) => fmtAge(r.oldest_message_age_seconds) },
    ],
  },
  exchanges: {
    title: 'Exchanges', endpoint: '/exchanges', server: true, defaultSort: 'name', key: (r) => r.vhost + '/' + r.name,
    empty: 'No exchanges.',
    columns: [
      { label: 'Name', sort: 'name', cell: xlink },
      { label: 'Vhost', sort: 'vhost', cell: (r) => r.vhost },
      { label: 'Type', sort: 'type', cell: (r) => h('span.tag', r.type) },
      { label: 'Features', cell: (r) => [r.durable ? 'D' : '', r.auto_delete ? 'AD' : '', r.internal ? 'I' : ''].filter(Boolean).join(' ') },
      { label: 'Rate in', sort: 'message_stats.publish_in_details.rate', num: true, cell: rate('message_stats.publish_in_details.rate') },
      { label: 'Rate out', sort: 'message_stats.publish_out_details.rate', num: true, cell: rate('message_stats.publish_out_details.rate') },
    ],
  },
  connections: {
    title: 'Connections', endpoint: '/connections', server: true, defaultSort: 'name', key: (r) => r.name, rates: true,
    empty: 'No client connections right now.',
    columns: [
      { label: 'Name', sort: 'name', cell: (r) => r.name },
      { label: 'Peer', sort: 'peer_host', cell: (r) => `${r.peer_host}:${r.peer_port}` },
      { label: 'User', sort: 'user', cell: (r) => r.user },
      { label: 'Vhost', sort: 'vhost', cell: (r) => r.vhost },
      { label: 'Client', cell: (r) => (r.client_properties && (r.client_properties.product || r.client_properties.platform)) || '' },
      { label: 'Channels', sort: 'channels', num: true, cell: (r) => fmtNum(r.channels) },
      { label: 'Publish', num: true, cell: (r) => fmtRate(r._rates && r._rates.publish) },
      { label: 'Deliver', num: true, cell: (r) => fmtRate(r._rates && r._rates.deliver_get) },
    ],
  },
  channels: {
    title: 'Channels', endpoint: '/channels', server: false, defaultSort: 'name', key: (r) => r.name, rates: true,
    empty: 'No open channels.',
    columns: [
      { label: 'Channel', sort: 'name', cell: (r) => r.name },
      { label: 'User', sort: 'user', cell: (r) => r.user },
      { label: 'Vhost', sort: 'vhost', cell: (r) => r.vhost },
      { label: 'Consumers', sort: 'consumer_count', num: true, cell: (r) => fmtNum(r.consumer_count) },
      { label: 'Unacked', sort: 'messages_unacknowledged', num: true, cell: (r) => fmtNum(r.messages_unacknowledged) },
      { label: 'Publish', num: true, cell: (r) => fmtRate(r._rates && r._rates.publish) },
      { label: 'Deliver', num: true, cell: (r) => fmtRate(r._rates && r._rates.deliver_get) },
      { label: 'Ack', num: true, cell: (r) => fmtRate(r._rates && r._rates.ack) },
    ],
  },
  consumers: {
    title: 'Consumers', endpoint: '/consumers', server: false, defaultSort: 'consumer_tag', key: (r) => r.channel_details.name + r.consumer_tag,
    empty: 'No consumers.', filterOn: (r) => `${r.consumer_tag} ${r.queue.name}`,
    columns: [
      { label: 'Tag', sort: 'consumer_tag', cell: (r) => r.consumer_tag },
      { label: 'Queue', sort: 'queue.name', cell: (r) => qlink({ vhost: r.queue.vhost, name: r.queue.name }) },
      { label: 'Channel', sort: 'channel_details.name', cell: (r) => r.channel_details.name },
      { label: 'Ack required', cell: (r) => (r.ack_required ? 'yes' : 'no') },
      { label: 'Exclusive', cell: (r) => (r.exclusive ? 'yes' : 'no') },
      { label: 'Prefetch', sort: 'prefetch_count', num: true, cell: (r) => fmtNum(r.prefetch_count) },
    ],
  },
};

const PAGE_SIZE = 50;

function compare(a, b) {
  if (a == null && b == null) return 0;
  if (a == null) return -1;
  if (b == null) return 1;
  if (typeof a === 'number' && typeof b === 'number') return a - b;
  return String(a).localeCompare(String(b));
}

/** A list table bound to one page config; `opts.fixed` hides the filter (used in details). */
export function mount(root, { page }, ctx) {
  const cfg = PAGES[page];
  const st = { page: 1, sort: cfg.defaultSort, rev: false, name: '' };
  const prev = new Map(); // key -> {t, counts} for browser-side rates
  const filter = h('input', { type: 'search', placeholder: 'Filter by name', id: 'list-filter', 'aria-label': 'Filter by name',
    oninput: () => { st.name = filter.value; st.page = 1; refresh(); } });
  const info = h('span.muted', { id: 'list-info' });
  const body = h('div.table-wrap', stateBox('Loading…'));
  const pager = h('div.pager');
  root.append(h('div.row.spread', h('h1', cfg.title), h('div.row', filter, info)), h('div.card', body, pager));

  async function fetchRows() {
    if (cfg.server) {
      const q = new URLSearchParams({ page: st.page, page_size: PAGE_SIZE, name: st.name, sort: st.sort, sort_reverse: st.rev });
      let r;
      try {
        r = await api(`${cfg.endpoint}?${q}`);
      } catch (e) {
        if (e instanceof ApiError && e.status === 400 && st.page > 1) { st.page = 1; return fetchRows(); }
        throw e;
      }
      return { rows: r.items, total: r.total_count, filtered: r.filtered_count, pages: r.page_count };
    }
    let rows = await api(cfg.endpoint);
    const total = rows.length;
    if (st.name) {
      const n = st.name.toLowerCase();
      rows = rows.filter((r) => (cfg.filterOn ? cfg.filterOn(r) : r.name || '').toLowerCase().includes(n));
    }
    rows.sort((a, b) => compare(get(a, st.sort), get(b, st.sort)));
    if (st.rev) rows.reverse();
    const pages = Math.max(1, Math.ceil(rows.length / PAGE_SIZE));
    st.page = Math.min(st.page, pages);
    return { rows: rows.slice((st.page - 1) * PAGE_SIZE, st.page * PAGE_SIZE), total, filtered: rows.length, pages };
  }

  function addRates(rows) {
    const now = Date.now();
    for (const r of rows) {
      const k = cfg.key(r);
      const c = r.message_stats || {};
      const p = prev.get(k);
      if (p && now > p.t) {
        const dt = (now - p.t) / 1000;
        r._rates = {};
        for (const f of Object.keys(c)) r._rates[f] = Math.max(0, (c[f] - (p.c[f] || 0)) / dt);
      }
      prev.set(k, { t: now, c });
    }
  }

  function render(res) {
    if (cfg.rates) addRates(res.rows);
    info.textContent = res.filtered === res.total ? `${fmtNum(res.total)} total` : `${fmtNum(res.filtered)} of ${fmtNum(res.total)}`;
    if (!res.total) { body.replaceChildren(stateBox(cfg.empty)); pager.replaceChildren(); return; }
    if (!res.rows.length) { body.replaceChildren(stateBox('Nothing matches the filter.')); pager.replaceChildren(); return; }
    const head = h('tr', cfg.columns.map((c) => {
      const th = h('th' + (c.num ? '.num' : ''), c.label);
      if (c.sort) {
        th.classList.add('sortable');
        if (st.sort === c.sort) th.classList.add('sorted');
        if (st.sort === c.sort && st.rev) th.classList.add('rev');
        th.addEventListener('click', () => {
          if (st.sort === c.sort) st.rev = !st.rev; else { st.sort = c.sort; st.rev = !!c.num; }
          refresh();
        });
      }
      return th;
    }));
    body.replaceChildren(h('table', { id: `${page}-table` }, h('thead', head),
      h('tbody', res.rows.map((r) => h('tr', cfg.columns.map((c) => h('td' + (c.num ? '.num' : ''), c.cell(r))))))));
    pager.replaceChildren(
      h('button.secondary', { disabled: st.page <= 1, onclick: () => { st.page--; refresh(); } }, 'Previous'),
      h('span.muted', { id: 'pager-info' }, `Page ${st.page} of ${res.pages}`),
      h('button.secondary', { disabled: st.page >= res.pages, onclick: () => { st.page++; refresh(); } }, 'Next'),
    );
  }

  let seq = 0;
  async function refresh() {
    const mine = ++seq;
    try {
      const res = await fetchRows();
      if (mine === seq && ctx.alive()) render(res);
    } catch (e) {
      if (mine !== seq) return;
      if (e.kind === 'http') body.replaceChildren(stateBox('Could not load: ' + e.message, 'error'));
      throw e;
    }
  }
  ctx.every(() => Math.max(ctx.interval, 2) * 1000, refresh);
}

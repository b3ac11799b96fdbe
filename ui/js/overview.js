// Overview: message rates, queued messages, time in queue and object counts as live charts,
// plus the current gauges and latency percentiles. One /api/metrics/overview request per
// sample interval keeps the charts moving; whole series are loaded only when the page opens
// or the duration changes (and once a minute for the long, coarse-tier durations).

import { api, ApiError } from './api.js';
import { h, fmtAxis, fmtNum, fmtRate, fmtBytes, fmtUs, stat, stateBox } from './dom.js';
import { LiveChart, durationSelect, currentDuration, durationMs } from './charts.js';

const RATE_SERIES = ['publish', 'deliver', 'ack', 'confirm', 'redeliver', 'return'];
const CHARTS = [
  { id: 'rates', title: 'Message rates', fmt: fmtRate,
    series: RATE_SERIES.map((k) => ({ label: k, metric: k, pick: (m) => m.rates && m.rates[k] })) },
  { id: 'queued', title: 'Queued messages', fmt: fmtAxis,
    series: [
      { label: 'ready', metric: 'ready', pick: (m) => m.gauges && m.gauges.messages_ready },
      { label: 'unacked', metric: 'unacked', pick: (m) => m.gauges && m.gauges.messages_unacked },
    ] },
  { id: 'latency', title: 'Time in queue', fmt: fmtUs,
    series: ['p50', 'p95', 'p99'].map((p) => ({ label: p, metric: `latency_${p}_us`,
      pick: (m) => m.latency_us && m.latency_us.time_in_queue && m.latency_us.time_in_queue[p] })) },
  { id: 'objects', title: 'Connections, channels, consumers', fmt: fmtAxis,
    series: ['connections', 'channels', 'consumers'].map((k) => ({ label: k, metric: k,
      pick: (m) => m.gauges && m.gauges[k] })) },
];

/** Whether a duration is served from the fine tier (appendable sample by sample). */
const isFine = (d) => durationMs(d) <= 10 * 60 * 1000;

export function mount(root, _params, ctx) {
  const statsEl = h('div.stats', { id: 'overview-stats' });
  const chartsEl = h('div.grid.charts');
  const latEl = h('div.card.section', h('h2', 'Latency percentiles (last interval)'), h('div.table-wrap', { id: 'latency-table' }, 'Loading…'));
  const status = h('div', { id: 'overview-status' });
  let duration = currentDuration();
  root.append(
    h('div.row.spread', h('h1', 'Overview'), h('div.row', h('span.muted', 'Charts show'), durationSelect((d) => { duration = d; loadSeries(); }))),
    status, statsEl, chartsEl, latEl,
  );
  const charts = CHARTS.map((c) => new LiveChart(chartsEl, c));
  let lastLoad = 0;

  async function loadSeries() {
    lastLoad = Date.now();
    const lists = await Promise.all(CHARTS.map((c) => Promise.all(c.series.map((s) =>
      api(`/metrics/timeseries/${s.metric}?duration=${duration}`).then((r) => r.points)))));
    if (!ctx.alive()) return;
    charts.forEach((ch, i) => ch.load(lists[i], durationMs(duration)));
  }

  function renderStats(m, ov) {
    const g = m.gauges || {};
    const o = (ov && ov.object_totals) || {};
    statsEl.replaceChildren(
      stat('Publish', fmtRate(m.rates && m.rates.publish), 'publish'),
      stat('Deliver', fmtRate(m.rates && m.rates.deliver), 'deliver'),
      stat('Ready', fmtNum(g.messages_ready), 'ready'),
      stat('Unacked', fmtNum(g.messages_unacked), 'unacked'),
      stat('Connections', fmtNum(g.connections ?? o.connections), 'connections'),
      stat('Channels', fmtNum(g.channels ?? o.channels), 'channels'),
      stat('Consumers', fmtNum(g.consumers ?? o.consumers), 'consumers'),
      stat('Queues', fmtNum(g.queues ?? o.queues), 'queues'),
      stat('Exchanges', fmtNum(g.exchanges ?? o.exchanges), 'exchanges'),
      stat('Memory (RSS)', fmtBytes(g.memory_rss_bytes), 'memory'),
    );
    const lat = m.latency_us || {};
    const names = { time_in_queue: 'Time in queue', deliver_to_ack: 'Deliver to ack',
      publish_to_confirm: 'Publish to confirm', publish_to_route: 'Publish to route' };
    document.getElementById('latency-table').replaceChildren(h('table',
      h('thead', h('tr', h('th', 'Latency'), h('th.num', 'p50'), h('th.num', 'p95'), h('th.num', 'p99'))),
      h('tbody', Object.entries(names).map(([k, label]) => {
        const p = lat[k];
        return h('tr', h('td', label), ['p50', 'p95', 'p99'].map((q) => h('td.num', p ? fmtUs(p[q]) : 'no traffic')));
      }))));
  }

  let first = true;
  ctx.every(() => ctx.interval * 1000, async () => {
    let m;
    try {
      m = await api('/metrics/overview');
    } catch (e) {
      if (first && e instanceof ApiError && e.kind === 'http') {
        status.replaceChildren(stateBox('Could not load metrics: ' + e.message, 'error'));
      }
      throw e;
    }
    if (m.interval_seconds) ctx.interval = m.interval_seconds;
    if (first) {
      first = false;
      await loadSeries();
      status.replaceChildren();
    } else if (!isFine(duration) && Date.now() - lastLoad > 60000) {
      await loadSeries();
    }
    if (m.sample_timestamp === null || m.sample_timestamp === undefined) {
      status.replaceChildren(stateBox('Waiting for the first metrics sample (every ' + ctx.interval + ' s)…'));
    } else if (isFine(duration)) {
      charts.forEach((ch, i) => ch.append(m.sample_timestamp, CHARTS[i].series.map((s) => s.pick(m) ?? null)));
    }
    renderStats(m, null);
  });

  return () => charts.forEach((c) => c.destroy());
}

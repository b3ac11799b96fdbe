// Live time-series charts on uPlot (vendor/uPlot.iife.min.js, global `uPlot`).
// A chart holds aligned columns [times(s), series1, series2, ...]; pages load a whole window
// once, then append one sample per interval and drop what falls out of the window.

import { h } from './dom.js';

const COLORS = ['#2b6f77', '#e07b39', '#5b8def', '#c0392b', '#8e44ad', '#27ae60', '#7f8c8d'];

export class LiveChart {
  /**
   * @param {HTMLElement} parent where the chart card goes
   * @param {{id:string,title:string,series:{label:string,color?:string}[],fmt:(v:number)=>string}} opts
   */
  constructor(parent, opts) {
    this.opts = opts;
    this.windowMs = 5 * 60 * 1000;
    this.rows = new Map(); // ts ms -> values[]
    this.plotEl = h('div.plot');
    this.note = h('div.empty', 'Loading…');
    this.card = h('div.card.chart', { dataset: { chart: opts.id } },
      h('h2', opts.title), this.plotEl, this.note);
    parent.append(this.card);
    const fmt = opts.fmt || ((v) => String(v));
    this.u = new uPlot({
      width: this.width(), height: 190,
      cursor: { drag: { x: false, y: false } },
      scales: { x: { time: true }, y: { range: (u, min, max) => [0, max > 0 ? max * 1.1 : 1] } },
      axes: [
        { stroke: '#637282', grid: { stroke: '#eef1f4' } },
        { stroke: '#637282', grid: { stroke: '#eef1f4' }, size: 72, values: (u, vals) => vals.map(fmt) },
      ],
      series: [{}].concat(opts.series.map((s, i) => ({
        label: s.label, stroke: s.color || COLORS[i % COLORS.length], width: 2,
        value: (u, v) => (v === null || v === undefined ? '–' : fmt(v)),
        spanGaps: false, points: { show: false },
      }))),
    }, this.columns(), this.plotEl);
    // The test suite reads the chart's data from here.
    this.card._chart = this;
    this.resize = new ResizeObserver(() => {
      const w = this.width();
      if (w !== this.u.width) this.u.setSize({ width: w, height: 190 });
    });
    this.resize.observe(this.card);
  }

  width() {
    return Math.max(200, (this.card ? this.card.clientWidth : 400) - 30);
  }

  /** Replaces everything with whole series: `lists[i]` is `[[ms, v], ...]` for series i. */
  load(lists, windowMs) {
    this.windowMs = windowMs;
    this.rows.clear();
    lists.forEach((points, i) => {
      for (const [t, v] of points || []) this.cell(t)[i] = v;
    });
    this.redraw();
  }

  /** Adds one sample (ignored when not newer than the last one). */
  append(ts, values) {
    const last = this.lastTs();
    if (last !== null && ts <= last) return false;
    const row = this.cell(ts);
    values.forEach((v, i) => { row[i] = v === undefined ? null : v; });
    this.redraw();
    return true;
  }

  lastTs() {
    let last = null;
    for (const t of this.rows.keys()) if (last === null || t > last) last = t;
    return last;
  }

  cell(t) {
    let row = this.rows.get(t);
    if (!row) { row = this.opts.series.map(() => null); this.rows.set(t, row); }
    return row;
  }

  columns() {
    const times = [...this.rows.keys()].sort((a, b) => a - b);
    const cols = [times.map((t) => t / 1000)];
    this.opts.series.forEach((_, i) => cols.push(times.map((t) => this.rows.get(t)[i])));
    return cols;
  }

  redraw() {
    const newest = this.lastTs();
    if (newest !== null) {
      for (const t of [...this.rows.keys()]) if (t < newest - this.windowMs) this.rows.delete(t);
    }
    const cols = this.columns();
    this.u.setData(cols);
    const n = cols[0].length;
    this.note.hidden = n > 0;
    this.plotEl.hidden = n === 0;
    if (!n) this.note.textContent = 'No samples yet: the first one arrives within one sample interval.';
  }

  /** Number of non-null points per series (what the UI test checks). */
  pointCounts() {
    return this.u.data.slice(1).map((col) => col.filter((v) => v !== null && v !== undefined).length);
  }

  destroy() {
    this.resize.disconnect();
    this.u.destroy();
  }
}

export const DURATIONS = [
  ['1m', 60], ['5m', 300], ['10m', 600], ['30m', 1800], ['1h', 3600], ['2h', 7200],
];

/** The duration selector; remembers the choice for the session. */
export function durationSelect(onChange) {
  const cur = sessionStorage.getItem('ottermq.duration') || '5m';
  const sel = h('select', { id: 'duration', 'aria-label': 'Chart duration',
    onchange: () => { sessionStorage.setItem('ottermq.duration', sel.value); onChange(sel.value); } },
  DURATIONS.map(([k]) => h('option', { value: k, selected: k === cur }, 'Last ' + k.replace('m', ' min').replace('h', ' h'))));
  return sel;
}

export function currentDuration() {
  return sessionStorage.getItem('ottermq.duration') || '5m';
}

export function durationMs(d) {
  const found = DURATIONS.find(([k]) => k === d);
  return (found ? found[1] : 300) * 1000;
}

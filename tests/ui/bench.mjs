// UI cost with many queues (run by tests/ui/bench.sh, not by the test suite): page load time
// (navigation to first chart drawn with data / first table page shown), steady network cost
// per minute on the overview and the queue list, and the longest main-thread task.
// Env: BASE_URL, MEASURE_SECS (default 60).

import { chromium } from 'playwright-core';

const BASE = process.env.BASE_URL;
const SECS = Number(process.env.MEASURE_SECS || 60);
const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox'] });
const results = {};

async function session(name, hash, ready) {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  await ctx.addInitScript(() => {
    sessionStorage.setItem('ottermq.auth', btoa('guest:guest'));
    sessionStorage.setItem('ottermq.auth.user', 'guest');
    window.__longest = 0;
    new PerformanceObserver((l) => { for (const e of l.getEntries()) window.__longest = Math.max(window.__longest, e.duration); })
      .observe({ type: 'longtask', buffered: true });
  });
  const page = await ctx.newPage();
  let bytes = 0;
  let requests = 0;
  page.on('requestfinished', async (req) => {
    const s = await req.sizes().catch(() => null);
    if (s) { bytes += s.responseBodySize + s.responseHeadersSize; requests++; }
  });
  const t0 = Date.now();
  await page.goto(BASE + '/' + hash);
  await page.waitForFunction(ready, null, { timeout: 60000, polling: 50 });
  const loadMs = Date.now() - t0;
  const loadBytes = bytes;
  await page.waitForTimeout(2000);
  bytes = 0; requests = 0;
  await page.waitForTimeout(SECS * 1000);
  const perMin = bytes * 60 / SECS;
  const reqPerMin = requests * 60 / SECS;
  const longest = await page.evaluate(() => window.__longest);
  results[name] = { load_ms: loadMs, load_bytes: loadBytes, bytes_per_min: Math.round(perMin), requests_per_min: Math.round(reqPerMin), longest_task_ms: Math.round(longest) };
  return { page, ctx };
}

const ov = await session('overview', '#/', () => {
  const c = document.querySelector('[data-chart="rates"]');
  return c && c._chart && c._chart.u.data[0].length > 0;
});
await ov.ctx.close();

const ql = await session('queues', '#/queues', () => document.querySelectorAll('#queues-table tbody tr').length > 0);
// Responsiveness with 1,000 queues: sort by depth, go to the next page, filter.
const p = ql.page;
const timed = async (what, act, done) => {
  const t = Date.now();
  await act();
  await p.waitForFunction(done, null, { timeout: 30000, polling: 20 });
  results.queues[what + '_ms'] = Date.now() - t;
};
await timed('sort', () => p.click('th:text-is("Ready")'), () => document.querySelector('th.sorted') && document.querySelector('th.sorted').textContent === 'Ready');
await timed('next_page', () => p.click('button:text-is("Next")'), () => (document.getElementById('pager-info') || {}).textContent?.startsWith('Page 2'));
await timed('filter', () => p.fill('#list-filter', 'bench-09'), () => (document.getElementById('list-info') || {}).textContent?.includes(' of '));
results.queues.rows_in_dom = await p.evaluate(() => document.querySelectorAll('#queues-table tbody tr').length);
await ql.ctx.close();
await browser.close();
console.log(JSON.stringify(results, null, 1));

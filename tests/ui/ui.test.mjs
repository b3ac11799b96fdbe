// The management UI in real headless Chromium (Debian's /usr/bin/chromium via playwright-core)
// against a running OtterMQ with a load generator publishing (started by run.sh).
// Env: BASE_URL (http://127.0.0.1:port), OUT_DIR (screenshots), LOAD_QUEUE, PURGE_QUEUE.

import { chromium } from 'playwright-core';
import fs from 'node:fs';
import path from 'node:path';

const BASE = process.env.BASE_URL;
const OUT = process.env.OUT_DIR || 'test-output/ui';
const LOAD_QUEUE = process.env.LOAD_QUEUE || 'ui-load';
const PURGE_QUEUE = process.env.PURGE_QUEUE || 'ui-purge';
fs.mkdirSync(OUT, { recursive: true });

let passed = 0;
let failed = 0;
async function check(name, page, f) {
  const t0 = Date.now();
  try {
    await f();
    passed++;
    console.log(`ok   ${name} (${Date.now() - t0} ms)`);
  } catch (e) {
    failed++;
    console.log(`FAIL ${name}: ${e.stack || e}`);
    if (page) await page.screenshot({ path: path.join(OUT, `failed-${name.replace(/\W+/g, '-')}.png`), fullPage: true }).catch(() => {});
  }
}

function assert(cond, msg) { if (!cond) throw new Error(msg); }

/** Point counts and the largest value per series of the chart with data-chart=id. */
async function chartData(page, id) {
  return page.evaluate((id) => {
    const card = document.querySelector(`[data-chart="${id}"]`);
    if (!card || !card._chart) return null;
    const u = card._chart.u;
    return {
      labels: u.series.slice(1).map((s) => s.label),
      nonZero: u.data.slice(1).map((col) => col.filter((v) => typeof v === 'number' && v > 0).length),
      points: u.data[0].length,
      last: u.data.slice(1).map((col) => col[col.length - 1]),
    };
  }, id);
}

async function waitFor(what, f, timeoutMs = 30000) {
  const end = Date.now() + timeoutMs;
  let last;
  while (Date.now() < end) {
    last = await f();
    if (last && last.ok) return last;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`timed out waiting for ${what}; last: ${JSON.stringify(last)}`);
}

async function statValue(page, id) {
  const t = await page.locator(`[data-stat="${id}"] .v`).first().textContent();
  return Number((t || '').replace(/[^0-9.]/g, ''));
}

const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox'] });
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  const consoleErrors = [];
  page.on('pageerror', (e) => consoleErrors.push(String(e)));

  await check('wrong password shows the error', page, async () => {
    await page.goto(BASE + '/');
    await page.fill('#login-user', 'guest');
    await page.fill('#login-pass', 'not-the-password');
    await page.click('#login-submit');
    const err = page.locator('#login-error');
    await err.waitFor({ state: 'visible', timeout: 10000 });
    const text = await err.textContent();
    assert(text.includes('Wrong username or password'), `error text was "${text}"`);
    assert(await page.locator('#top').isHidden(), 'navigation must stay hidden');
    await page.screenshot({ path: path.join(OUT, 'login-error.png') });
  });

  await check('login shows the overview', page, async () => {
    await page.fill('#login-user', 'guest');
    await page.fill('#login-pass', 'guest');
    await page.click('#login-submit');
    await page.locator('h1', { hasText: 'Overview' }).waitFor({ timeout: 10000 });
    assert((await page.locator('#who-name').textContent()) === 'guest', 'user name shown');
  });

  await check('overview charts draw live data from the load generator', page, async () => {
    // Every rate the load generator drives (publish, deliver, ack, confirm) gets points above
    // zero, appended sample by sample without a reload.
    const before = await chartData(page, 'rates');
    const r = await waitFor('rate series with data', async () => {
      const d = await chartData(page, 'rates');
      if (!d) return null;
      const by = Object.fromEntries(d.labels.map((l, i) => [l, d.nonZero[i]]));
      return { ok: by.publish >= 3 && by.deliver >= 3 && by.ack >= 3 && by.confirm >= 3, by, points: d.points };
    });
    console.log('     rates chart non-zero points:', JSON.stringify(r.by));
    const q = await waitFor('queued chart has points', async () => {
      const d = await chartData(page, 'queued');
      return { ok: d && d.points >= 3, d };
    });
    assert(q.d.labels.join() === 'ready,unacked', 'queued series');
    const lat = await waitFor('time in queue has data', async () => {
      const d = await chartData(page, 'latency');
      // p99: most messages wait 0 µs (delivered as they arrive); the few that wait for an ack
      // show in the tail.
      return { ok: d && d.nonZero[2] >= 1, d };
    });
    void lat;
    const after = await chartData(page, 'rates');
    assert(before === null || after.points >= before.points, 'points grow without a reload');
    const publish = await statValue(page, 'publish');
    assert(publish > 0, `publish rate card shows ${publish}`);
    assert(await statValue(page, 'connections') >= 2, 'connections card');
    await page.screenshot({ path: path.join(OUT, 'overview.png'), fullPage: true });
  });

  await check('duration selector reloads the charts', page, async () => {
    await page.selectOption('#duration', '1m');
    await waitFor('1 min window', async () => {
      const d = await chartData(page, 'rates');
      return { ok: d && d.points > 0 && d.points <= 62, d: d && d.points };
    });
    await page.selectOption('#duration', '5m');
  });

  await check('queue list filters, sorts and opens a queue', page, async () => {
    await page.click('nav a[data-nav="queues"]');
    await page.locator('#queues-table').waitFor({ timeout: 10000 });
    await page.fill('#list-filter', PURGE_QUEUE);
    await waitFor('filtered list', async () => {
      const n = await page.locator('#queues-table tbody tr').count();
      const first = n ? await page.locator('#queues-table tbody tr td a').first().textContent() : null;
      return { ok: n === 1 && first === PURGE_QUEUE, n, first };
    });
    await page.click(`#queues-table a:text-is("${PURGE_QUEUE}")`);
    await page.locator('#queue-name', { hasText: PURGE_QUEUE }).waitFor({ timeout: 10000 });
  });

  await check('queue page shows depth, then purge drops it', page, async () => {
    const before = await waitFor('depth builds up', async () => {
      const d = await chartData(page, 'queue-depth');
      const ready = await statValue(page, 'ready').catch(() => 0);
      return { ok: d && d.nonZero[0] >= 2 && ready >= 40, ready, d };
    }, 60000);
    await page.screenshot({ path: path.join(OUT, 'queue.png'), fullPage: true });
    await page.click('#purge');
    await page.locator('#confirm-ok').click();
    await page.locator('#queue-message', { hasText: 'purged' }).waitFor({ timeout: 10000 });
    const after = await waitFor('ready drops', async () => {
      const ready = await statValue(page, 'ready');
      return { ok: ready < before.ready / 2, ready };
    });
    // The broker agrees: the API shows the drop too.
    const api = await page.evaluate(async (q) => {
      const r = await fetch(`api/queues/%2F/${q}`, { headers: { Authorization: 'Basic ' + btoa('guest:guest') } });
      return r.json();
    }, PURGE_QUEUE);
    assert(api.messages_ready < before.ready / 2, `API ready ${api.messages_ready} after purge (before ${before.ready})`);
    const depth = await waitFor('depth chart drops', async () => {
      const d = await chartData(page, 'queue-depth');
      return { ok: d && d.last[0] !== null && d.last[0] < before.ready / 2, last: d && d.last };
    });
    console.log(`     ready ${before.ready} -> ${after.ready} (chart last ${depth.last[0]})`);
  });

  await check('publish a test message and get it back with requeue', page, async () => {
    await page.goto(`${BASE}/#/queues/%2F/${LOAD_QUEUE}`);
    await page.locator('#queue-name', { hasText: LOAD_QUEUE }).waitFor({ timeout: 10000 });
    await page.goto(`${BASE}/#/queues/%2F/${PURGE_QUEUE}`);
    await page.locator('#queue-name', { hasText: PURGE_QUEUE }).waitFor({ timeout: 10000 });
    await page.fill('#publish-payload', 'hello from the UI test');
    await page.click('#publish-send');
    await page.locator('#confirm-ok').click();
    await page.locator('#queue-message', { hasText: 'routed' }).waitFor({ timeout: 10000 });
    await page.selectOption('#get-mode', 'ack_requeue_true');
    await page.fill('#get-count', '1000');
    await page.click('#get-messages');
    await page.locator('#get-result pre.msg', { hasText: 'hello from the UI test' }).first().waitFor({ timeout: 10000 });
  });

  await check('exchange page shows bindings and publishes', page, async () => {
    await page.goto(`${BASE}/#/exchanges`);
    await page.locator('#exchanges-table').waitFor({ timeout: 10000 });
    await page.click('#exchanges-table a:text-is("amq.direct")');
    await page.locator('#exchange-name', { hasText: 'amq.direct' }).waitFor({ timeout: 10000 });
    await page.fill('#xpublish-key', 'no-such-binding');
    await page.click('#xpublish-send');
    await page.locator('#confirm-ok').click();
    await page.locator('#xpublish-result', { hasText: 'no queue matched' }).waitFor({ timeout: 10000 });
  });

  await check('connections, channels and consumers lists show the load generator', page, async () => {
    for (const [nav, min] of [['connections', 2], ['channels', 2], ['consumers', 1]]) {
      await page.click(`nav a[data-nav="${nav}"]`);
      await page.locator(`#${nav}-table`).waitFor({ timeout: 10000 });
      const n = await page.locator(`#${nav}-table tbody tr`).count();
      assert(n >= min, `${nav}: ${n} rows`);
    }
  });

  await check('broker unreachable shows a banner, recovery hides it', page, async () => {
    await page.goto(`${BASE}/#/`);
    await page.locator('h1', { hasText: 'Overview' }).waitFor({ timeout: 10000 });
    await page.route('**/api/**', (r) => r.abort('connectionrefused'));
    await page.locator('#banner', { hasText: 'Cannot reach OtterMQ' }).waitFor({ timeout: 15000 });
    await page.screenshot({ path: path.join(OUT, 'broker-down.png') });
    await page.unroute('**/api/**');
    await page.locator('#banner').waitFor({ state: 'hidden', timeout: 15000 });
  });

  await check('phone width: overview and queue page fit', page, async () => {
    const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 2 });
    const p = await phone.newPage();
    await p.goto(BASE + '/');
    await p.fill('#login-user', 'guest');
    await p.fill('#login-pass', 'guest');
    await p.click('#login-submit');
    await p.locator('h1', { hasText: 'Overview' }).waitFor({ timeout: 10000 });
    await waitFor('phone chart data', async () => {
      const d = await chartData(p, 'rates');
      return { ok: d && d.nonZero[0] >= 2 };
    });
    const overflow = await p.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert(overflow <= 1, `page is ${overflow}px wider than the phone`);
    await p.screenshot({ path: path.join(OUT, 'overview-phone.png'), fullPage: true });
    await p.goto(`${BASE}/#/queues/%2F/${LOAD_QUEUE}`);
    await p.locator('#queue-name').waitFor({ timeout: 10000 });
    await waitFor('phone queue chart', async () => {
      const d = await chartData(p, 'queue-rates');
      return { ok: d && d.points >= 2 };
    });
    const overflow2 = await p.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert(overflow2 <= 1, `queue page is ${overflow2}px wider than the phone`);
    await p.screenshot({ path: path.join(OUT, 'queue-phone.png'), fullPage: true });
    await phone.close();
  });

  await check('unknown queue says so', page, async () => {
    await page.goto(`${BASE}/#/queues/%2F/does-not-exist`);
    await page.locator('#queue-message', { hasText: 'does not exist' }).waitFor({ timeout: 10000 });
  });

  await check('no uncaught page errors', page, async () => {
    assert(consoleErrors.length === 0, consoleErrors.join('\n'));
  });
} finally {
  await browser.close();
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);

// SPDX-License-Identifier: Apache-2.0
// The dashboard in headless Chromium against a real `na64daq serve`: each
// test starts its own daemon (ephemeral port, temporary directory, spills of
// 2000 particles every 0.5 s) and drives the page as the shift would.
//
// Run through ctest (label "browser"), which sets NA64DAQ_PATH, NA64_WEB_DIST,
// NA64_NODE_MODULES, NA64_CHROMIUM and NA64_BROWSER_ARTIFACTS.
import assert from 'node:assert/strict';
import { readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';

import { artifactsDir, frontFor, launchChromium, openPage } from './support/browser.mjs';
import { Daemon, kParticlesPerSpill } from './support/daemon.mjs';

const kLines = ['invisible', 'beam', 'random'];
const kPages = ['status', 'trigger', 'dqm', 'event'];
const kButtons = ['configure', 'start', 'pause', 'resume', 'stop', 'reset'];
/// How long a page may take to show what the daemon has.
const kShowMs = 5000;

let browser;
const artifacts = artifactsDir();

/// A daemon, the page's address and a fresh page; all released after the test.
async function setUp(t, name, { configure = true } = {}) {
  const daemon = new Daemon(name, artifacts);
  t.after(() => daemon.dispose());
  await daemon.start({ configure });
  const front = await frontFor(daemon, artifacts);
  t.after(() => front.close());
  const { context, page, errors } = await openPage(browser);
  t.after(() => context.close());
  return { daemon, front, page, errors };
}

async function load(page, front, hash = '') {
  await page.goto(`${front.url}${hash}`);
  try {
    await page.waitForSelector('#connection[data-state="live"]', { timeout: kShowMs });
  } catch {
    throw new Error(`the page did not connect to the daemon's WebSocket /ws within ${kShowMs} ms`);
  }
}

async function startRun(daemon) {
  const reply = await daemon.api('POST', '/api/start', { token: daemon.shiftToken, body: { comment: 'browser test' } });
  assert.equal(reply.status, 200, JSON.stringify(reply.body));
}

function showsState(page, state, timeout) {
  return page.waitForFunction((want) => document.querySelector('#run-state')?.textContent === want, state,
    { timeout });
}

/// Waits until a page shows the daemon's data; throws naming what is missing.
async function waitPopulated(page, name) {
  const conditions = {
    status: () => document.querySelector('#run-state').textContent === 'RUNNING' &&
      document.querySelector('#rates-spill').textContent !== '',
    trigger: () => document.querySelectorAll('#spill-table tbody tr').length > 0 &&
      document.querySelector('#rate-chart .uplot') !== null,
    dqm: () => document.querySelectorAll('#dqm-grid figure[data-drawn="true"]').length > 0,
    event: () => [...document.querySelectorAll('#map-ECAL1 rect.cell')].some((r) => Number(r.dataset.energy) > 0),
  };
  try {
    await page.waitForFunction(conditions[name], null, { timeout: kShowMs });
  } catch {
    throw new Error(`the ${name} page did not show the daemon's data within ${kShowMs} ms`);
  }
}

async function showPage(page, name) {
  await page.click(`nav.tabs a[data-page="${name}"]`);
  await page.waitForSelector(`#page-${name}:not([hidden])`);
}

function enabledButtons(page) {
  return page.$$eval('button[data-command], button.ack',
    (buttons) => buttons.filter((b) => !b.disabled).map((b) => b.dataset.command ?? 'ack'));
}

/// A count of a spill record, whether the line counts come as an array in
/// line order or as an object, and whether 64-bit numbers come as strings.
function lineCount(record, key, line) {
  const counts = record[key];
  return Number(Array.isArray(counts) ? counts[kLines.indexOf(line)] : counts[line]);
}

describe('Dashboard', () => {
  before(async () => {
    browser = await launchChromium();
  });
  after(async () => {
    await browser?.close();
  });

  it('PageLoadsWithoutConsoleErrors', async (t) => {
    const { daemon, front, page, errors } = await setUp(t, 'load');
    await startRun(daemon);
    await daemon.waitFor((s) => s.spill >= 2, 10000, 'spill 2');
    await load(page, front);
    for (const name of kPages) {
      await showPage(page, name);
      await waitPopulated(page, name);
    }
    assert.deepEqual(errors, [], `console errors: ${JSON.stringify(errors, null, 1)}`);
  });

  it('RunStartedFromThePageShowsRunningWithinOneSecond', async (t) => {
    const { daemon, front, page, errors } = await setUp(t, 'start', { configure: false });
    await load(page, front);
    await showsState(page, 'IDLE', kShowMs);

    // Configure with the expert's token, then start with the shift's.
    await page.fill('#token', daemon.expertToken);
    await page.selectOption('#role', 'expert');
    await page.click('button[data-command="configure"]', { timeout: 2000 });
    await showsState(page, 'CONFIGURED', 2000);
    await page.fill('#token', daemon.shiftToken);
    await page.selectOption('#role', 'shift');
    await page.fill('#run-comment-input', 'started from the dashboard');
    await page.waitForSelector('button[data-command="start"]:enabled', { timeout: 2000 });

    const t0 = Date.now();
    await page.click('button[data-command="start"]');
    await showsState(page, 'RUNNING', 1000);
    const elapsedMs = Date.now() - t0;
    assert.ok(elapsedMs <= 1000, `RUNNING shown after ${elapsedMs} ms`);

    const status = await daemon.status();
    assert.equal(status.state, 'RUNNING');
    assert.equal(await page.textContent('#run-number'), String(status.run));
    assert.equal(status.comment, 'started from the dashboard');
    assert.equal(await page.textContent('#control-message'), 'start: done');
    assert.deepEqual(errors, [], `console errors: ${JSON.stringify(errors, null, 1)}`);
  });

  it('SpillRatesAppearAsSpillsEnd', async (t) => {
    const { daemon, front, page, errors } = await setUp(t, 'spills');
    await load(page, front, '#trigger');
    await startRun(daemon);
    const first = await daemon.waitFor((s) => s.spill >= 1, 10000, 'spill 1');

    // A spill that ends while the page is watching shows up within a second.
    const target = Number(first.spill) + 2;
    await daemon.waitFor((s) => s.spill >= target, 10000, `spill ${target}`);
    await page.waitForSelector(`#spill-table tbody tr[data-spill="${target}"]`, { timeout: 1000 });

    // Every row is the daemon's record of that spill, newest first.
    const spills = await daemon.spills();
    const rows = await page.$$eval('#spill-table tbody tr', (trs) => trs.map((tr) => ({
      spill: Number(tr.dataset.spill),
      particles: tr.querySelector('.particles').textContent.replace(/\s/g, ''),
      invisible: tr.querySelector('.line-invisible').textContent.replace(/\s/g, ''),
      beam: tr.querySelector('.line-beam').textContent.replace(/\s/g, ''),
      random: tr.querySelector('.line-random').textContent.replace(/\s/g, ''),
      written: tr.querySelector('.written').textContent.replace(/\s/g, ''),
    })));
    assert.ok(rows.length >= target, `${rows.length} rows for ${target} spills`);
    assert.deepEqual(rows.map((r) => r.spill), [...rows.map((r) => r.spill)].sort((a, b) => b - a));
    for (const row of rows) {
      const record = spills.find((s) => Number(s.spill) === row.spill);
      assert.ok(record, `spill ${row.spill} is not in GET /api/spills`);
      assert.equal(row.particles, String(kParticlesPerSpill));
      for (const line of kLines) {
        assert.equal(row[line], String(lineCount(record, 'accepted', line)), `spill ${row.spill} line ${line}`);
      }
      assert.equal(row.written, String(Number(record.written)), `spill ${row.spill} written`);
    }
    assert.equal(await page.locator('#rate-chart .uplot').count(), 1);

    // The status page shows the last spill's rates.
    await showPage(page, 'status');
    const last = spills[spills.length - 1];
    await page.waitForFunction((n) => Number(document.querySelector('#rates-spill').textContent.replace(/\D/g, '')) >= n,
      Number(last.spill), { timeout: kShowMs });
    const shown = Number((await page.textContent('#rates-spill')).replace(/\D/g, ''));
    const record = (await daemon.spills()).find((s) => Number(s.spill) === shown);
    for (const line of kLines) {
      const cell = await page.textContent(`#rates-table tr[data-line="${line}"] .accepted`);
      assert.equal(cell.replace(/\s/g, ''), String(lineCount(record, 'accepted', line)), `status page, ${line}`);
    }
    assert.deepEqual(errors, [], `console errors: ${JSON.stringify(errors, null, 1)}`);
  });

  it('ReconnectsWithinFiveSecondsOfADaemonRestart', async (t) => {
    const { daemon, front, page, errors } = await setUp(t, 'restart');
    await load(page, front);
    await showsState(page, 'CONFIGURED', kShowMs);

    const killedAt = Date.now();
    await daemon.kill('SIGKILL');
    await page.waitForSelector('#connection[data-state="disconnected"]', { timeout: kShowMs });

    const restartedAt = Date.now();
    await daemon.start();
    await page.waitForSelector('#connection[data-state="live"]', { timeout: 5000 });
    const elapsedMs = Date.now() - restartedAt;
    assert.ok(elapsedMs <= 5000, `live again ${elapsedMs} ms after the restart`);
    const liveAt = Date.now();

    // Live updates flow again: a run started elsewhere shows on the page.
    await startRun(daemon);
    await showsState(page, 'RUNNING', 2000);

    // While the daemon was down the browser reports the failed WebSocket
    // connections; nothing else may fail.
    const expected = (e) => e.at >= killedAt && e.at <= liveAt &&
      (/WebSocket connection to 'ws:\/\/127\.0\.0\.1:\d+\/ws' failed/.test(e.text) ||
       /net::ERR_CONNECTION_REFUSED/.test(e.text));
    const unexpected = errors.filter((e) => !expected(e));
    assert.deepEqual(unexpected, [], `console errors: ${JSON.stringify(unexpected, null, 1)}`);
  });

  it('ViewerWithoutTokenHasNoEnabledControl', async (t) => {
    const { daemon, front, page, errors } = await setUp(t, 'viewer');
    await load(page, front);
    await showsState(page, 'CONFIGURED', kShowMs);
    assert.deepEqual(await page.$$eval('button[data-command]', (bs) => bs.map((b) => b.dataset.command)), kButtons);
    assert.deepEqual(await enabledButtons(page), []);

    await startRun(daemon);
    await showsState(page, 'RUNNING', 2000);
    assert.deepEqual(await enabledButtons(page), []);

    // The same console with a shift token: exactly the shift's commands valid
    // while running, so the viewer's disabled buttons are the token's doing.
    await page.fill('#token', daemon.shiftToken);
    await page.selectOption('#role', 'shift');
    await page.waitForSelector('button[data-command="stop"]:enabled', { timeout: 2000 });
    const enabled = (await enabledButtons(page)).filter((c) => c !== 'ack');
    assert.deepEqual(enabled, ['pause', 'stop']);
    assert.deepEqual(errors, [], `console errors: ${JSON.stringify(errors, null, 1)}`);
  });

  it('ScreenshotsOfEveryPage', async (t) => {
    const { daemon, front, page, errors } = await setUp(t, 'screenshots');
    await startRun(daemon);
    await daemon.waitFor((s) => s.spill >= 3, 10000, 'spill 3');
    await load(page, front);
    const problems = [];
    for (const name of kPages) {
      await showPage(page, name);
      try {
        await waitPopulated(page, name);
      } catch (e) {
        problems.push(e.message);
      }
      // Taken whether or not the page filled in: it shows what went wrong.
      const file = path.join(artifacts, `${name}.png`);
      await page.screenshot({ path: file, fullPage: true });
      assert.ok(statSync(file).size > 0, `${file} is empty`);
      assert.deepEqual([...readFileSync(file).subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a],
        `${file} is not a PNG`);
    }
    assert.deepEqual(problems, []);
    assert.deepEqual(errors, [], `console errors: ${JSON.stringify(errors, null, 1)}`);
  });
});

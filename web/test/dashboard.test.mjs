// The dashboard in a real browser: Debian's chromium, headless, driven by playwright-core (both installed by
// scripts/install-deps), against real processes on loopback — `meridian target`, `meridian serve` with a
// SQLite store and a lease pool, and three `meridian agent`s, one per region. Run by ctest (browser.dashboard)
// with MERIDIAN=path/to/meridian; MERIDIAN_SCREENSHOTS=DIR writes each page's screenshot there (docs/images/
// holds the ones the docs show).
//
// What it checks (issue 14): the page asks for a token once and keeps it for the tab; the live latency chart
// gains a point per second and its p99 shows a pause of the target; a region filter changes the series; a
// threshold turns ✗ while it fails; a reload rebuilds the charts from history; kill -9 and restart of the
// control plane: the page reconnects and goes on; a runs:read token cannot abort, a runs:write one can; the
// leases page shows an allocation appear and disappear; no data route answers without a token; no token is
// ever in a URL the page requests; the one-file report opens offline, makes no request and shows the JSON
// report's percentiles.

import { chromium } from 'playwright-core';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import assert from 'node:assert/strict';

const MERIDIAN = process.env.MERIDIAN;
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const SHOTS = process.env.MERIDIAN_SCREENSHOTS || '';
if (!MERIDIAN) throw new Error('MERIDIAN must name the meridian binary');

const TOKENS = {
  runs: 'dash-runs-secret-1',   // runs:read runs:write
  read: 'dash-read-secret-2',   // runs:read
  agent: 'dash-agent-secret-3', // agent
  env: 'dash-env-secret-4',     // env:admin
};
const sha256 = (s) => createHash('sha256').update(s).digest('hex');
const dir = mkdtempSync(path.join(tmpdir(), 'meridian-dashboard-'));
const processes = new Set();
let browser = null;

function log(...args) { console.log(`[${new Date().toISOString().slice(11, 23)}]`, ...args); }

// A meridian process; resolves with the URL of its first "listening on URL" line.
function start(args, name) {
  const child = spawn(MERIDIAN, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  processes.add(child);
  child.on('exit', () => processes.delete(child));
  let out = '';
  const listening = new Promise((resolve, reject) => {
    child.stdout.on('data', (d) => {
      out += d;
      const m = /listening on (https?:\/\/[^\s]+)/.exec(out);
      if (m) resolve(m[1]);
    });
    child.on('exit', (code) => reject(new Error(`${name} exited (${code}) before listening: ${out}`)));
  });
  listening.catch(() => {});  // agents print no address; a process that must listen is awaited
  child.stderr.on('data', (d) => process.stderr.write(`[${name}] ${d}`));
  return { child, listening };
}

async function stop(child, signal = 'SIGTERM') {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill(signal);
  await Promise.race([exited, sleep(5000).then(() => child.kill('SIGKILL'))]);
  await exited;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function until(what, fn, timeoutMs = 30000) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    await sleep(200);
  }
  throw new Error(`timed out waiting for ${what} (last: ${last})`);
}

async function call(base, method, p, token, body) {
  const headers = {};
  if (token) headers.Authorization = 'Bearer ' + token;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const res = await fetch(base + p, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* text */ }
  return { status: res.status, json, text };
}

// A command to its end: its standard output, or an error with its standard error.
function run(argv) {
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '', err = '';
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { err += d; });
    child.on('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`${argv.join(' ')}: exit ${code}: ${err}`))));
  });
}

// A one-file page opened from disk with the network cut: every request it makes is recorded (and aborted
// unless it is the file itself), and so is every page error.
async function openOffline(file) {
  const context = await browser.newContext({ viewport: { width: 1400, height: 900 }, offline: true });
  const asked = [];
  const errors = [];
  context.on('request', (r) => asked.push(r.url()));
  await context.route('**/*', (r) => (r.request().url().startsWith('file:') ? r.continue() : r.abort()));
  const page = await context.newPage();
  page.on('pageerror', (e) => errors.push(String(e)));
  await page.goto('file://' + file);
  return { page, asked, errors, close: () => context.close() };
}

async function shot(page, name, fullPage = false) {
  if (!SHOTS) return;
  mkdirSync(SHOTS, { recursive: true });
  await page.screenshot({ path: path.join(SHOTS, name), fullPage });
}

async function main() {
  writeFileSync(path.join(dir, 'agent.token'), TOKENS.agent + '\n');
  writeFileSync(path.join(dir, 'environments.yaml'),
    'pools:\n  ci:\n    default_duration: 10m\n' +
    'environments:\n  - { id: ci-1, pool: ci, region: eu-west-1 }\n  - { id: ci-2, pool: ci, region: us-east-1 }\n');
  writeFileSync(path.join(dir, 'server.yaml'),
    `store: sqlite:${dir}/meridian.db\nlong_poll: 500ms\nregistry: environments.yaml\ntokens:\n` +
    `  - { name: ci, scopes: [runs:read, runs:write], sha256: ${sha256(TOKENS.runs)} }\n` +
    `  - { name: viewer, scopes: [runs:read], sha256: ${sha256(TOKENS.read)} }\n` +
    `  - { name: agents, scopes: [agent], sha256: ${sha256(TOKENS.agent)} }\n` +
    `  - { name: platform, scopes: [env:admin], sha256: ${sha256(TOKENS.env)} }\n`);

  const target = start(['target', '--listen', '127.0.0.1:0'], 'target');
  const targetUrl = await target.listening;
  let serve = start(['serve', '-c', path.join(dir, 'server.yaml'), '-l', '127.0.0.1:0'], 'serve');
  const base = await serve.listening;
  const port = new URL(base).port;
  log('control plane at', base, 'target at', targetUrl);

  // No data route answers without a token; the page and its assets do (they hold no data).
  for (const p of ['/v1/runs', '/v1/runs/r-x/live', '/v1/pools', '/v1/agents', '/metrics', '/healthz']) {
    assert.equal((await call(base, 'GET', p)).status, 401, p);
  }
  for (const p of ['/', '/assets/app.js', '/assets/uPlot.iife.min.js']) {
    assert.equal((await call(base, 'GET', p)).status, 200, p);
  }
  assert.equal((await call(base, 'GET', '/v1/runs', TOKENS.env)).status, 403);

  const regions = ['us-east-1', 'eu-west-1', 'ap-south-1'];
  for (const r of regions) {
    start(['agent', '--control', base, '--region', r, '--name', 'dash-' + r, '--token-file',
           path.join(dir, 'agent.token'), '--workers', '1', '--once'], 'agent-' + r);
  }
  await until('three agents', async () =>
    (await call(base, 'GET', '/v1/agents', TOKENS.runs)).json?.agents?.length === 3);

  const plan = `name: dashboard\nvars: { base: "${targetUrl}" }\ntags: { team: checkout }\nstart_buffer: 500ms\n` +
    'heartbeat_timeout: 20s\n' +
    'regions:\n' + regions.map((r) => `  ${r}: { weight: 1 }\n`).join('') +
    'scenarios:\n  browse:\n    executor: constant-arrival-rate\n    rate: 90/s\n    duration: 60s\n' +
    '    requests:\n      - { name: home, url: "{{base}}/" }\n      - { name: users, url: "{{base}}/users?delay=2ms" }\n' +
    'steps:\n  - { name: hello, region: eu-west-1, shell: "echo step says hi", run_max_time: 5s }\n' +
    'thresholds:\n  http_req_duration: ["p(99)<150ms"]\n  http_req_failed: ["rate<0.5"]\n';
  const created = await call(base, 'POST', '/v1/runs', TOKENS.runs, { plan, file: 'dashboard.yaml' });
  assert.equal(created.status, 201, created.text);
  const runId = created.json.id;
  log('run', runId);

  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox'] });
  const urls = [];
  const watch = (page) => page.on('request', (r) => urls.push(r.url()));

  // ------------------------------------------------ the run page, live
  const context = await browser.newContext({ viewport: { width: 1400, height: 1000 } });
  const page = await context.newPage();
  watch(page);
  page.on('dialog', (d) => d.accept());
  await page.goto(`${base}/#/runs/${runId}`);
  await page.waitForSelector('#login');
  await page.fill('#token', TOKENS.runs);
  await page.click('#login button[type=submit]');
  await page.waitForSelector('#chart-latency');
  const points = async () => Number(await page.getAttribute('#chart-latency', 'data-points') || 0);
  await until('the first points', async () => (await points()) >= 3, 60000);
  const before = await points();
  await until('a point more', async () => (await points()) > before, 5000);
  log('latency chart gains points:', before, '->', await points());
  assert.equal(await page.getAttribute('#chart-region-p99', 'data-series'), regions.slice().sort().join(','));

  // A pause of the target shows in the p99 line, and the p99 threshold fails while it does.
  const paused = await fetch(`${targetUrl}/__admin/pause?for=1500ms`, { method: 'POST' });
  assert.equal(paused.status, 200);
  await until('the pause in the p99 line', async () =>
    Number(await page.getAttribute('#charts', 'data-max-p99') || 0) >= 500, 20000);
  await until('the p99 threshold failing', async () =>
    (await page.$('#thresholds tr[data-ok="false"]')) !== null, 20000);
  log('pause seen: max p99', await page.getAttribute('#charts', 'data-max-p99'), 'ms; threshold ✗');
  await until('a few seconds after the pause', async () => (await points()) >= 12, 30000);
  await shot(page, 'dashboard-run.png', true);

  // A region filter changes the series.
  await page.selectOption('#filter-region', 'eu-west-1');
  await until('one region', async () => (await page.getAttribute('#chart-region-rate', 'data-series')) === 'eu-west-1'
    && (await points()) > 0);
  await page.selectOption('#filter-region', '');
  await until('all regions again', async () =>
    (await page.getAttribute('#chart-region-rate', 'data-series')) === regions.slice().sort().join(','));

  // A reload rebuilds the charts from history, without asking for the token again.
  const seen = await points();
  await page.reload();
  await until('the charts rebuilt', async () => (await points()) >= seen, 15000);
  assert.equal(await page.$('#login'), null);
  log('after reload:', await points(), 'points (had', seen, ')');

  // kill -9 of the control plane, restart on the same port: the page reconnects and goes on.
  await stop(serve.child, 'SIGKILL');
  await until('the page noticing', async () => (await page.textContent('#status')).includes('reconnecting'), 10000);
  serve = start(['serve', '-c', path.join(dir, 'server.yaml'), '-l', `127.0.0.1:${port}`], 'serve-2');
  await serve.listening;
  const atRestart = await points();
  await until('points after the restart', async () => (await points()) > atRestart + 1, 30000);
  assert.equal(await page.textContent('#status'), 'live');
  log('after restart:', await points(), 'points');

  // A runs:read token cannot abort (the button says why); a runs:write one can.
  const viewerContext = await browser.newContext({ viewport: { width: 1400, height: 1000 } });
  const viewer = await viewerContext.newPage();
  watch(viewer);
  viewer.on('dialog', (d) => d.accept());
  await viewer.goto(`${base}/#/runs/${runId}`);
  await viewer.fill('#token', TOKENS.read);
  await viewer.click('#login button[type=submit]');
  await viewer.waitForSelector('#abort:not([hidden])');
  await viewer.click('#abort');
  await until('the refusal', async () => (await viewer.textContent('#abort-note')).includes('runs:write'));
  assert.equal((await call(base, 'GET', `/v1/runs/${runId}`, TOKENS.runs)).json.state, 'running');

  await page.click('#abort');
  await until('the run aborted', async () => (await page.getAttribute('#run-state', 'data-state')) === 'aborted', 60000);
  await until('the stream ended', async () => (await page.textContent('#status')) === 'ended', 15000);
  log('aborted from the page');

  const livePoints = await points();

  // The runs list, and the ended run's page from the store: its whole history at once.
  await page.goto(`${base}/#/runs`);
  await page.waitForSelector(`#runs tr[data-run="${runId}"]`);
  assert.match(await page.textContent(`#runs tr[data-run="${runId}"]`), /aborted/);
  // Its tags and thresholds (the p99 one failed during the pause), and a search by tag.
  assert.equal(await page.textContent(`#runs tr[data-run="${runId}"] .tag`), 'team=checkout');
  const cell = `#runs tr[data-run="${runId}"] td.thresholds`;
  assert.equal(Number(await page.getAttribute(cell, 'data-passed')) + Number(await page.getAttribute(cell, 'data-failed')), 2);
  await page.fill('#run-search', 'team=checkout');
  await until('the search', async () => (await page.$$('#runs tbody tr')).length === 1);
  await page.fill('#run-search', 'team=nobody');
  await until('nothing found', async () => (await page.$$('#runs tbody tr')).length === 0);
  await page.fill('#run-search', '');
  await shot(page, 'dashboard-runs.png');
  await page.click(`#runs tr[data-run="${runId}"] a`);
  await until('the ended run rebuilt', async () => (await points()) >= livePoints &&
    (await page.getAttribute('#run-state', 'data-state')) === 'aborted', 15000);
  assert.equal(await page.textContent('#status'), 'ended');
  assert.ok(await page.$('#abort[hidden]'));
  assert.equal((await page.$$('#agents tbody tr')).length, 3, 'the ended run lists its agents');
  // A filter on the ended run: its stored reports merged again (off the control plane's loop).
  await page.selectOption('#filter-region', 'eu-west-1');
  await until('the ended run, one region', async () =>
    (await page.getAttribute('#chart-region-rate', 'data-series')) === 'eu-west-1' && (await points()) >= livePoints - 2);
  await page.selectOption('#filter-region', '');
  await until('the ended run, every region', async () =>
    (await page.getAttribute('#chart-region-rate', 'data-series')) === regions.slice().sort().join(','));
  const mars = await call(base, 'GET', `/v1/runs/${runId}/live?region=mars`, TOKENS.runs);
  assert.equal(mars.status, 400, mars.text);
  assert.match(mars.json.error.message, /no region 'mars'/);
  log('ended run from the store:', await points(), 'points');
  // The plan as run, and a step's log tail read when asked.
  await page.click('#plan-box summary');
  await until('the plan', async () => /tags:\n +"?team"?: "?checkout"?\n/.test(await page.textContent('#plan')));
  await page.click('#steps button[data-step="hello#0"]');
  await until('the step log', async () => (await page.textContent('pre.log[data-step="hello#0"]')).includes('step says hi'));
  assert.equal(await page.textContent('#steps tr[data-step="hello#0"] td:nth-child(3)'), 'exited');
  log('plan and step log shown');

  // ------------------------------------------------ the one-file report
  // `meridian runs report --format html` writes it; opened from a file with the network cut, the page makes
  // no request (every one is recorded) and shows the percentiles `runs report --format json` gives.
  writeFileSync(path.join(dir, 'runs.token'), TOKENS.runs + '\n');
  const cli = (format) => run([MERIDIAN, 'runs', '--control', base, '--token-file', path.join(dir, 'runs.token'),
                                'report', runId, '--format', format]);
  const html = await cli('html');
  const reportPath = path.join(dir, 'report.html');
  writeFileSync(reportPath, html);
  const summary = JSON.parse(await cli('json'));
  const { page: report, asked, errors: reportErrors, close: closeReport } = await openOffline(reportPath);
  await report.waitForSelector('#requests tbody tr');
  await until('the report charts', async () => Number(await report.getAttribute('#chart-latency', 'data-points')) >= 10);
  assert.deepEqual(reportErrors, []);
  assert.equal(await report.getAttribute('#run-state', 'data-state'), 'aborted');
  assert.ok(await report.$('#abort[hidden]'));
  assert.equal((await report.$$('#agents tbody tr')).length, 3, 'the report lists the agents');
  const shown = await report.$$eval('#requests tbody tr', (rows) => rows.map((tr) =>
    [...tr.children].map((td) => td.textContent)));
  assert.equal(shown.length, summary.by_request.length);
  const msText = (v) => (Math.abs(v) < 0.005 ? 0 : v).toLocaleString('en-US',
    { maximumFractionDigits: Math.abs(v) < 10 ? 2 : 1 }) + ' ms';
  for (const r of summary.by_request) {
    const row = shown.find((cells) => cells[0] === r.name);
    assert.ok(row, `report row ${r.name}`);
    assert.deepEqual(row.slice(3), ['med', 'p90', 'p95', 'p99', 'max'].map((k) => msText(r.latency_ms[k])), r.name);
    assert.equal(row[1], r.count.toLocaleString('en-US'));
  }
  const measured = await report.$$eval('#thresholds tbody tr td:nth-child(4)', (tds) => tds.map((td) => td.textContent));
  assert.deepEqual(measured, summary.thresholds.map((t) => (t.no_data ? 'no data' : t.measured_text)));
  assert.equal(await report.getAttribute('#chart-region-p99', 'data-series'), regions.slice().sort().join(','));
  await report.selectOption('#filter-region', 'eu-west-1');
  await until('one region in the report', async () =>
    (await report.getAttribute('#chart-region-rate', 'data-series')) === 'eu-west-1');
  await report.selectOption('#filter-region', '');
  await shot(report, 'dashboard-report.png', true);
  assert.deepEqual(asked.filter((u) => u !== 'file://' + reportPath), [], 'the report made requests');
  log('report.html:', html.length, 'bytes,', shown.length, 'request names, no request made');
  await closeReport();

  // ------------------------------------------------ two runs compared
  // The compare view of the run with itself (the other runs of this test live in another state dir): the
  // table of `runs compare --format json`, both histories overlaid; then the same as one offline file.
  const compareJson = JSON.parse(await run([MERIDIAN, 'runs', '--control', base, '--token-file',
    path.join(dir, 'runs.token'), 'compare', runId, runId, '--format', 'json']));
  await page.goto(`${base}/#/compare/${runId}/${runId}`);
  await until('the comparison', async () => (await page.$$('#compare tbody tr')).length === compareJson.rows.length);
  assert.equal(await page.getAttribute('#compare-note', 'data-regressions'), '0');
  await until('both histories', async () =>
    Number(await page.getAttribute('#chart-compare-p95', 'data-points')) >= livePoints - 2);
  assert.equal(await page.getAttribute('#chart-compare-p95', 'data-series'), `A ${runId},B ${runId}`);
  const compareCells = async (p) => p.$$eval('#compare tbody tr', (rows) => rows.map((tr) =>
    [...tr.children].slice(1).map((td) => td.textContent)));
  const liveCompare = await compareCells(page);
  const p95Of = (row) => msText(row.b.p95_ms);
  assert.deepEqual(liveCompare.map((cells) => cells[11]), compareJson.rows.map(p95Of));  // p95 of B
  await shot(page, 'dashboard-compare.png', true);
  const compareHtml = await run([MERIDIAN, 'runs', '--control', base, '--token-file', path.join(dir, 'runs.token'),
    'compare', runId, runId, '--format', 'html']);
  const comparePath = path.join(dir, 'compare.html');
  writeFileSync(comparePath, compareHtml);
  const { page: cmpPage, asked: asked2, errors: cmpErrors, close: closeCompare } = await openOffline(comparePath);
  await cmpPage.waitForSelector('#compare tbody tr');
  await until('the file\'s charts', async () => Number(await cmpPage.getAttribute('#chart-compare-rate', 'data-points')) >= 10);
  assert.deepEqual(cmpErrors, []);
  assert.deepEqual(await compareCells(cmpPage), liveCompare);
  assert.deepEqual(asked2.filter((u) => u !== 'file://' + comparePath), [], 'the comparison made requests');
  await closeCompare();
  log('compare view and compare.html:', liveCompare.length, 'rows,', compareHtml.length, 'bytes, no request made');

  // ------------------------------------------------ leases
  const leases = await (await browser.newContext({ viewport: { width: 1400, height: 900 } })).newPage();
  watch(leases);
  await leases.goto(`${base}/#/leases`);
  await leases.fill('#token', TOKENS.env);
  await leases.click('#login button[type=submit]');
  await leases.waitForSelector('#pools tbody tr');
  const lease = await call(base, 'POST', '/v1/allocations', TOKENS.env, { pool: 'ci', requester: 'browser-test' });
  assert.equal(lease.status, 201, lease.text);
  await leases.waitForSelector(`#allocations tr[data-allocation="${lease.json.id}"]`, { timeout: 10000 });
  await shot(leases, 'dashboard-leases.png');
  const released = await call(base, 'DELETE', `/v1/allocations/${lease.json.id}`, TOKENS.env, { outcome: 'success' });
  assert.equal(released.status, 200, released.text);
  await leases.waitForSelector(`#allocations tr[data-allocation="${lease.json.id}"]`, { state: 'detached', timeout: 10000 });
  await until('the audit tail', async () => (await leases.textContent('#audit')).includes('deallocate'));
  log('leases page: allocation appeared and disappeared');
  // Drain and reinstate from the page (env:admin).
  leases.on('dialog', (d) => d.accept());
  const ci1 = '#environments tr[data-environment="ci-1"]';
  await until('ci-1 cleaned', async () => (await leases.$(`${ci1} button.drain`)) !== null, 20000);
  await leases.click(`${ci1} button.drain`);
  await until('ci-1 draining', async () => (await leases.textContent(ci1)).includes('draining'), 10000);
  assert.equal((await call(base, 'GET', '/v1/environments', TOKENS.env)).json.environments.find((e) => e.id === 'ci-1').draining, true);
  await leases.click(`${ci1} button.reinstate`);
  await until('ci-1 reinstated', async () => !(await leases.textContent(ci1)).includes('draining'), 10000);
  await until('the audit of both', async () => /drain[\s\S]*reinstate/.test(await leases.textContent('#audit')));
  log('leases page: drained and reinstated ci-1');

  // `meridian run --dashboard`: a one-time login link opens the page without asking for a token; the code
  // works once.
  writeFileSync(path.join(dir, 'small.yaml'), `name: small\nvars: { base: "${targetUrl}" }\nstart_buffer: 200ms\n` +
    'regions: { eu: {}, us: {} }\nscenarios:\n  s:\n    executor: constant-vus\n    vus: 1\n    duration: 2s\n' +
    '    requests:\n      - { name: home, url: "{{base}}/" }\n');
  const embedded = spawn(MERIDIAN, ['run', path.join(dir, 'small.yaml'), '--dashboard', '--dashboard-linger', '-q',
    '--state-dir', path.join(dir, 'state')], { stdio: ['ignore', 'pipe', 'pipe'] });
  processes.add(embedded);
  embedded.on('exit', () => processes.delete(embedded));
  let errText = '';
  embedded.stderr.on('data', (d) => { errText += d; });
  const first = await until('the login link', async () => /dashboard: (http:\/\/\S+#login=(\w+))/.exec(errText));
  const lingering = await until('the lingering link', async () =>
    /still serving (\S+) until Ctrl-C \(new login link: (http:\/\/\S+#login=(\w+))\)/.exec(errText), 60000);
  const own = await (await browser.newContext()).newPage();
  watch(own);
  await own.goto(first[1]);
  await own.waitForSelector('#runs tbody tr');
  assert.equal(await own.$('#login'), null);
  assert.ok(!(await own.evaluate(() => location.href)).includes('login='), 'the code left the address bar');
  const again = await call(lingering[1], 'POST', '/v1/dashboard/login', null, { code: first[2] });
  assert.equal(again.status, 403, 'a used code is refused');
  assert.equal((await call(lingering[1], 'POST', '/v1/dashboard/login', null, { code: 'nope' })).status, 403);
  const fresh = await call(lingering[1], 'POST', '/v1/dashboard/login', null, { code: lingering[3] });
  assert.equal(fresh.status, 200);
  assert.equal((await call(lingering[1], 'GET', '/v1/runs', fresh.json.token)).status, 200);
  await stop(embedded, 'SIGINT');
  assert.equal(embedded.exitCode, 0, errText);
  log('meridian run --dashboard: the one-time link logged in once');

  // No token in any URL the pages asked for.
  assert.ok(urls.length > 10, 'the pages made requests');
  for (const u of urls) {
    for (const t of Object.values(TOKENS)) assert.ok(!u.includes(t), `a token in ${u}`);
  }
  log(`${urls.length} requests, none with a token in its URL`);
}

let failed = false;
try {
  await main();
  log('PASS');
} catch (e) {
  failed = true;
  console.error(e);
} finally {
  if (browser) await browser.close().catch(() => {});
  await Promise.all([...processes].map((p) => stop(p)));
  rmSync(dir, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);

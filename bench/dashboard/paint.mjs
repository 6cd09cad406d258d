// The run page of a long run in Debian's chromium (headless, playwright-core): how long from navigation until
// the charts are drawn with the run's whole history and the tables are filled (the first meaningful paint),
// and what the page then holds in memory (the JavaScript heap after a garbage collection, and DOM nodes).
//
//   node bench/dashboard/paint.mjs URL TOKEN RUN SECONDS [REPS]
//
// Prints JSON: {paint_ms: [...], median_paint_ms, heap_used_bytes, heap_total_bytes, nodes, points}.
// The token is put in the tab's sessionStorage before the page loads, as the login form would.
import { createRequire } from 'node:module';

// playwright-core is the web/ package's (scripts/install-deps installs it there for the browser test).
const { chromium } = createRequire(new URL('../../web/package.json', import.meta.url))('playwright-core');

const [base, token, run, secondsArg, repsArg] = process.argv.slice(2);
const seconds = Number(secondsArg);
const reps = Number(repsArg || 5);
if (!base || !token || !run || !seconds) {
  console.error('usage: paint.mjs URL TOKEN RUN SECONDS [REPS]');
  process.exit(2);
}

const browser = await chromium.launch({ executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
                                        headless: true, args: ['--no-sandbox'] });
const paint = [];
let memory = null;
try {
  for (let i = 0; i < reps; ++i) {
    const context = await browser.newContext({ viewport: { width: 1400, height: 1000 } });
    await context.addInitScript((t) => sessionStorage.setItem('meridian.token', t), token);
    const page = await context.newPage();
    await page.goto(`${base}/#/runs/${run}`);
    // performance.now() counts from the navigation's start.
    const done = await page.waitForFunction((n) => {
      const chart = document.querySelector('#chart-latency');
      const rows = document.querySelectorAll('#requests tbody tr').length;
      return chart && Number(chart.dataset.points || 0) >= n && rows > 0 ? performance.now() : false;
    }, seconds - 1, { polling: 'raf', timeout: 120000 });
    paint.push(Math.round(await done.jsonValue()));
    if (i === reps - 1) {
      const cdp = await context.newCDPSession(page);
      await cdp.send('HeapProfiler.collectGarbage');
      await cdp.send('Performance.enable');
      const { metrics } = await cdp.send('Performance.getMetrics');
      const m = Object.fromEntries(metrics.map((x) => [x.name, x.value]));
      memory = { heap_used_bytes: m.JSHeapUsedSize, heap_total_bytes: m.JSHeapTotalSize, nodes: m.Nodes,
                 points: Number(await page.getAttribute('#chart-latency', 'data-points')) };
    }
    await context.close();
  }
} finally {
  await browser.close();
}
const sorted = paint.slice().sort((a, b) => a - b);
console.log(JSON.stringify({ paint_ms: paint, median_paint_ms: sorted[Math.floor((sorted.length - 1) / 2)],
                             ...memory }));

// meridian's dashboard: runs, a live run, leases. Plain JavaScript over the control plane's API; charts with
// uPlot. The token is asked for once and kept in sessionStorage (this tab only); it travels in the
// Authorization header, never in a URL. Every text from the server is set with textContent.
// The same script draws the one-file report (report.html): the run's data is then inline, in the element
// #meridian-report, and the page makes no request at all.
'use strict';
(() => {
  const TOKEN_KEY = 'meridian.token';
  const COLORS = ['#2f5bd3', '#d9480f', '#2b8a3e', '#ae3ec9', '#e67700', '#0b7285', '#c2255c', '#5c940d',
                  '#364fc7', '#862e9c'];
  const main = document.getElementById('main');
  const statusEl = document.getElementById('status');
  const reportEl = document.getElementById('meridian-report');
  const REPORT = reportEl ? JSON.parse(reportEl.textContent) : null;
  let token = REPORT ? null : sessionStorage.getItem(TOKEN_KEY);
  let teardown = [];  // what the current page stops when another opens

  // ---------------------------------------------------------------- helpers
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'class') e.className = v;
      else if (k === 'text') e.textContent = v;
      else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v === true ? '' : v);
    }
    for (const c of children.flat()) {
      if (c === null || c === undefined) continue;
      e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return e;
  }
  const fmt = (v, digits = 2) => (v === null || v === undefined || Number.isNaN(v)) ? '–'
    : Number(v).toLocaleString('en-US', { maximumFractionDigits: digits });
  const ms = (v) => v === null || v === undefined ? '–'
    : fmt(Math.abs(v) < 0.005 ? 0 : v, Math.abs(v) < 10 ? 2 : 1) + ' ms';
  const sleep = (t) => new Promise((r) => setTimeout(r, t));
  // fn at most once per frame, however often it is asked for.
  function perFrame(fn) {
    let queued = false;
    return () => {
      if (queued) return;
      queued = true;
      requestAnimationFrame(() => {
        queued = false;
        fn();
      });
    };
  }
  function badge(state) { return el('span', { class: 'badge ' + state, text: state }); }
  function setStatus(text) { statusEl.textContent = text; }

  class ApiError extends Error {
    constructor(status, body) {
      super((body && body.error && body.error.message) || ('HTTP ' + status));
      this.status = status;
    }
  }

  async function api(path, opts = {}) {
    const headers = Object.assign({ Authorization: 'Bearer ' + token }, opts.headers || {});
    const res = await fetch(path, Object.assign({}, opts, { headers, cache: 'no-store', credentials: 'omit' }));
    if (res.status === 401) {
      forget('The control plane refused the token.');
      throw new ApiError(401, null);
    }
    return res;
  }
  async function apiJson(path, opts) {
    const res = await api(path, opts);
    const body = await res.json().catch(() => null);
    if (!res.ok) throw new ApiError(res.status, body);
    return body;
  }

  // Server-Sent Events over fetch (EventSource cannot send an Authorization header). Reconnects after a
  // second with Last-Event-ID, so a dropped connection or a restarted control plane resumes where it was.
  function openStream(path, onEvent, onState) {
    const control = new AbortController();
    let last = null;
    (async () => {
      while (!control.signal.aborted) {
        try {
          const headers = { Accept: 'text/event-stream' };
          if (last !== null) headers['Last-Event-ID'] = String(last);
          const res = await api(path, { headers, signal: control.signal });
          if (!res.ok) {
            const body = await res.json().catch(() => null);
            throw new ApiError(res.status, body);
          }
          onState('live');
          const reader = res.body.getReader();
          const decoder = new TextDecoder();
          let buffer = '';
          for (;;) {
            const { value, done } = await reader.read();
            if (done) break;
            buffer += decoder.decode(value, { stream: true });
            let cut;
            while ((cut = buffer.indexOf('\n\n')) >= 0) {
              const block = buffer.slice(0, cut);
              buffer = buffer.slice(cut + 2);
              let name = 'message', data = '';
              for (const line of block.split('\n')) {
                if (line.startsWith('event: ')) name = line.slice(7);
                else if (line.startsWith('id: ')) last = Number(line.slice(4));
                else if (line.startsWith('data: ')) data += line.slice(6);
              }
              if (!data) continue;
              onEvent(name, JSON.parse(data));
              if (name === 'end') {
                onState('ended');
                return;
              }
            }
          }
        } catch (e) {
          if (control.signal.aborted || (e instanceof ApiError && e.status === 401)) return;
          if (e instanceof ApiError && e.status >= 400 && e.status < 500 && e.status !== 429) {
            onState('error: ' + e.message);
            return;
          }
        }
        onState('reconnecting…');
        await sleep(1000);
      }
    })();
    return () => control.abort();
  }

  // ---------------------------------------------------------------- token
  function forget(why) {
    token = null;
    sessionStorage.removeItem(TOKEN_KEY);
    route(why);
  }
  document.getElementById('forget').addEventListener('click', () => forget('Token forgotten.'));

  function showLogin(message) {
    document.getElementById('forget').hidden = true;
    const input = el('input', { type: 'password', id: 'token', autocomplete: 'off', placeholder: 'token',
                                'aria-label': 'token' });
    const error = el('p', { class: 'error', text: message || '' });
    const form = el('form', { class: 'login', id: 'login' },
      el('h1', { text: 'meridian' }),
      el('p', { text: 'A token with runs:read opens runs; env:allocate or env:admin opens leases. ' +
                      'It is kept for this tab only.' }),
      input, el('button', { type: 'submit', text: 'Open' }), error);
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const candidate = input.value.trim();
      if (!candidate) return;
      const res = await fetch('/v1/runs?limit=1', { headers: { Authorization: 'Bearer ' + candidate },
                                                    cache: 'no-store', credentials: 'omit' });
      if (res.status === 401) {
        error.textContent = 'The control plane does not know this token.';
        return;
      }
      token = candidate;
      sessionStorage.setItem(TOKEN_KEY, token);
      route();
    });
    main.replaceChildren(form);
    input.focus();
  }

  // A one-time login code in the fragment (never sent to a server, so never in a log): exchanged once for a
  // token (`meridian run --dashboard` prints such a link), then removed from the address bar.
  async function exchangeLoginCode() {
    if (REPORT) return;
    const m = /(?:^#|&)login=([A-Za-z0-9_-]+)/.exec(location.hash);
    if (!m) return;
    history.replaceState(null, '', location.pathname + '#/runs');
    const res = await fetch('/v1/dashboard/login', { method: 'POST', cache: 'no-store', credentials: 'omit',
      headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ code: m[1] }) });
    if (!res.ok) return;
    const body = await res.json();
    token = body.token;
    sessionStorage.setItem(TOKEN_KEY, token);
  }

  // ---------------------------------------------------------------- charts
  // opts.spanGaps: draw across seconds a series has no point for (two runs' merged buckets differ).
  function chart(container, title, seriesDefs, yLabel, opts = {}) {
    const box = el('div', { class: 'chart card' });
    const h = el('h3', { text: title });
    const area = el('div', { class: 'plot' });
    box.append(h, area);
    container.append(box);
    let plot = null;
    let labels = null;
    const make = (defs, data) => {
      if (plot) plot.destroy();
      labels = defs.map((d) => d.label).join('\u0000');
      plot = new uPlot({
        width: Math.max(300, area.clientWidth || 520), height: 220,
        scales: { x: { time: false } },
        legend: { live: true },
        series: [{ label: 's' }].concat(defs.map((d, i) => ({
          label: d.label, stroke: d.color || COLORS[i % COLORS.length], width: 1.5, spanGaps: Boolean(opts.spanGaps),
          points: { show: false } }))),
        axes: [{ label: 'seconds since start', incrs: [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600] },
               { label: yLabel, size: 60 }],
      }, data, area);
    };
    const observer = new ResizeObserver(() => { if (plot) plot.setSize({ width: Math.max(300, area.clientWidth), height: 220 }); });
    observer.observe(area);
    teardown.push(() => { observer.disconnect(); if (plot) plot.destroy(); });
    return {
      box,
      set(defs, xs, columns) {
        const data = [xs].concat(columns);
        if (!plot || labels !== defs.map((d) => d.label).join('\u0000')) make(defs, data);
        else plot.setData(data);
        box.dataset.points = String(xs.length);
        box.dataset.series = defs.map((d) => d.label).join(',');
      },
    };
  }

  // ---------------------------------------------------------------- runs list
  function showRuns() {
    const search = el('input', { type: 'search', id: 'run-search',
                                 placeholder: 'filter by id, name, state, owner, tag (team=checkout)' });
    const state = el('select', { id: 'run-state' }, el('option', { value: '', text: 'any state' }),
      ['created', 'preparing', 'ready', 'running', 'draining', 'cleaning', 'passed', 'failed', 'aborted',
       'errored'].map((s) => el('option', { value: s, text: s })));
    const body = el('tbody');
    const table = el('table', { id: 'runs' }, el('thead', {}, el('tr', {},
      ['', 'run', 'name', 'state', 'tags', 'thresholds', 'created', 'duration', 'exit', 'reason'].map(
        (t) => el('th', { text: t })))), body);
    // Two ended runs picked here open the compare view: the older is A (the baseline).
    const picked = new Set();
    const compareButton = el('button', { type: 'button', id: 'compare-picked', text: 'Compare two ended runs',
                                         disabled: true });
    compareButton.addEventListener('click', () => {
      const two = runs.filter((r) => picked.has(r.id)).sort((x, y) => x.created.localeCompare(y.created));
      if (two.length !== 2) return;  // one of them left the list meanwhile
      const [a, b] = two;
      location.hash = '#/compare/' + encodeURIComponent(a.id) + '/' + encodeURIComponent(b.id);
    });
    main.replaceChildren(el('h1', { text: 'Runs' }),
      el('div', { class: 'filters' }, search, state, compareButton), el('section', { class: 'card' }, table));
    let runs = [];
    const render = () => {
      const q = search.value.trim().toLowerCase();
      const tagText = (r) => Object.entries(r.tags || {}).map(([k, v]) => k + '=' + v);
      body.replaceChildren(...runs.filter((r) => (!state.value || r.state === state.value) &&
          (!q || [r.id, r.name, r.state, r.owner, ...tagText(r)].join(' ').toLowerCase().includes(q))).map((r) => {
        const start = r.start_at_ns ? r.start_at_ns / 1e6 : null;
        const end = r.ended ? Date.parse(r.ended) : null;
        const t = r.thresholds;
        const checks = !t || t.passed + t.failed === 0 ? el('span', { class: 'muted', text: t ? 'none' : '–' })
          : el('span', {}, el('span', { class: 'ok', text: '✓ ' + t.passed }), ' ',
            t.failed ? el('span', { class: 'bad', text: '✗ ' + t.failed }) : null);
        const pick = el('input', { type: 'checkbox', class: 'pick', 'aria-label': 'compare ' + r.id,
                                   disabled: !r.ended, checked: picked.has(r.id) });
        pick.addEventListener('change', () => {
          if (pick.checked) picked.add(r.id); else picked.delete(r.id);
          compareButton.disabled = picked.size !== 2;
        });
        return el('tr', { 'data-run': r.id }, el('td', {}, pick),
          el('td', {}, el('a', { href: '#/runs/' + encodeURIComponent(r.id), text: r.id })),
          el('td', { text: r.name }), el('td', {}, badge(r.state)),
          el('td', {}, tagText(r).map((x) => el('span', { class: 'tag', text: x }))),
          el('td', { class: 'thresholds', 'data-passed': t ? t.passed : '', 'data-failed': t ? t.failed : '' }, checks),
          el('td', { text: r.created }),
          el('td', { class: 'num', text: start && end ? fmt((end - start) / 1000, 1) + ' s' : '–' }),
          el('td', { class: 'num', text: r.ended ? String(r.exit_code) : '' }),
          el('td', { class: 'muted', text: r.reason || '' }));
      }));
    };
    search.addEventListener('input', render);
    state.addEventListener('change', render);
    let stopped = false;
    teardown.push(() => { stopped = true; });
    (async () => {
      while (!stopped) {
        try {
          runs = (await apiJson('/v1/runs?limit=200')).runs;
          render();
          setStatus('');
        } catch (e) {
          if (e.status === 401) return;
          setStatus(e.status === 403 ? 'this token may not read runs (runs:read)' : 'control plane unreachable');
        }
        await sleep(2000);
      }
    })();
  }

  // ---------------------------------------------------------------- a run
  function showRun(id) {
    const points = new Map();  // second -> {t, all, regions}
    let filter = {};
    let tables = null;
    let sortKey = 'count';
    let stopStream = null;
    let ended = false;
    let sawLive = false;

    const title = el('h1', {}, el('span', { text: id }));
    const stateBadge = el('span', { id: 'run-state' });
    title.append(stateBadge);
    const info = el('p', { class: 'muted', id: 'run-info' });
    const baselineLink = el('a', { id: 'baseline-link', hidden: true });
    const abort = el('button', { class: 'danger', id: 'abort', type: 'button', text: 'Abort run', hidden: true });
    const abortNote = el('span', { class: 'note', id: 'abort-note' });
    const selects = {};
    const filterBar = el('div', { class: 'filters card', id: 'filters' });
    for (const [key, label] of [['region', 'region'], ['scenario', 'scenario'], ['name', 'request'],
                                ['status', 'status'], ['check', 'check']]) {
      const s = el('select', { id: 'filter-' + key }, el('option', { value: '', text: 'all' }));
      if (REPORT && key !== 'region') {
        s.disabled = true;
        s.title = 'the report holds the merged and per-region series; the live dashboard filters by ' + label;
      }
      s.addEventListener('change', () => {
        filter[key] = s.value;
        restart();
      });
      selects[key] = s;
      filterBar.append(el('label', {}, label, s));
    }
    const charts = el('div', { class: 'grid', id: 'charts' });
    const c = {
      rate: chart(charts, 'Requests and errors per second', [], 'per second'),
      latency: chart(charts, 'Latency per second (merged histograms)', [], 'ms'),
      regionP99: chart(charts, 'p99 by region', [], 'ms'),
      regionRate: chart(charts, 'Requests per second by region', [], 'per second'),
      vus: chart(charts, 'Active VUs and dropped iterations', [], 'count'),
      checks: chart(charts, 'Checks passed and failed per second (check() calls)', [], 'per second'),
    };
    c.rate.box.id = 'chart-rate';
    c.latency.box.id = 'chart-latency';
    c.regionP99.box.id = 'chart-region-p99';
    c.regionRate.box.id = 'chart-region-rate';
    c.vus.box.id = 'chart-vus';
    c.checks.box.id = 'chart-checks';
    const thresholds = el('tbody');
    const requests = el('tbody');
    const requestHead = el('tr');
    const errors = el('tbody');
    const agents = el('tbody');
    const steps = el('tbody');
    const timeline = el('tbody');
    const stepsHead = el('h2', { text: 'Command steps' });
    const planText = el('pre', { id: 'plan', class: 'plan' });
    const planBox = el('details', { id: 'plan-box' }, el('summary', { text: 'The plan as run' }), planText);
    let planLoaded = false;
    planBox.addEventListener('toggle', async () => {
      if (!planBox.open || planLoaded) return;
      planLoaded = true;
      try {
        const res = await api('/v1/runs/' + encodeURIComponent(id) + '/plan');
        if (!res.ok) throw new ApiError(res.status, await res.json().catch(() => null));
        planText.textContent = await res.text();
      } catch (e) {
        planLoaded = false;
        planText.textContent = 'the plan cannot be read: ' + e.message;
      }
    });
    const logs = new Map();  // "step#N" -> the shown log tail's row, kept across redraws
    const agentsHead = el('h2', { text: 'Agents' });
    const cols = [['name', 'request'], ['count', 'requests'], ['failed', 'failed'], ['med', 'p50'],
                  ['p90', 'p90'], ['p95', 'p95'], ['p99', 'p99'], ['max', 'max']];
    for (const [key, label] of cols) {
      const th = el('th', { class: 'sortable' + (key === 'name' ? '' : ' num'), text: label, 'data-key': key });
      th.addEventListener('click', () => { sortKey = key; renderTables(); });
      requestHead.append(th);
    }
    main.replaceChildren(title, info, el('div', { class: 'filters' }, abort, abortNote, baselineLink), filterBar, charts,
      el('h2', { text: 'Thresholds' }), el('section', { class: 'card' }, el('table', { id: 'thresholds' },
        el('thead', {}, el('tr', {}, ['', 'metric', 'threshold', 'measured'].map((t) => el('th', { text: t })))),
        thresholds)),
      el('h2', { text: 'Requests' }), el('section', { class: 'card' },
        el('table', { id: 'requests' }, el('thead', {}, requestHead), requests)),
      el('h2', { text: 'Errors' }), el('section', { class: 'card' }, el('table', { id: 'errors' },
        el('thead', {}, el('tr', {}, ['kind', 'count', 'example'].map((t) => el('th', { text: t })))), errors)),
      agentsHead, el('section', { class: 'card', id: 'agents-card' }, el('table', { id: 'agents' },
        el('thead', {}, el('tr', {}, ['agent', 'region', 'state', 'requests', 'start skew', 'clock offset',
                                      'last contact'].map((t) => el('th', { text: t })))), agents)),
      stepsHead, el('section', { class: 'card', id: 'steps-card' }, el('table', { id: 'steps' },
        el('thead', {}, el('tr', {}, ['step', 'agent', 'state', 'exit', 'restarts', 'CPU s', 'peak RSS', 'log'].map(
          (t) => el('th', { text: t })))), steps)),
      // Not in the one-file report: a plan holds its vars (and what they templated: URLs, headers), which
      // may be secrets; plan.yaml lies beside the report for whoever may read it.
      ...(REPORT ? [] : [el('h2', { text: 'Plan' }), el('section', { class: 'card' }, planBox)]),
      el('h2', { text: 'State' }), el('section', { class: 'card' }, el('table', { id: 'timeline' },
        el('thead', {}, el('tr', {}, ['at', 'from', 'to', 'detail'].map((t) => el('th', { text: t })))),
        timeline)));

    abort.addEventListener('click', async () => {
      if (!confirm('Abort run ' + id + '?')) return;
      abort.disabled = true;
      try {
        const res = await api('/v1/runs/' + encodeURIComponent(id) + '/abort', { method: 'POST' });
        const body = await res.json().catch(() => null);
        if (!res.ok) throw new ApiError(res.status, body);
        abortNote.textContent = 'abort requested';
      } catch (e) {
        abortNote.textContent = e.status === 403 ? 'this token may not abort runs (runs:write)' : e.message;
        abort.disabled = false;
      }
    });

    function option(select, value) {
      if ([...select.options].some((o) => o.value === value)) return;
      select.append(el('option', { value, text: value }));
    }

    const draw = perFrame(() => {
      const ts = [...points.keys()].sort((a, b) => a - b);
      const rows = ts.map((t) => points.get(t));
      const col = (f) => rows.map((r) => f(r));
      // A report's older points each stand for w seconds (their counts, per second here).
      const per = (r, v) => v === null || v === undefined ? v : v / (r.w || 1);
      c.rate.set([{ label: 'requests/s' }, { label: 'errors/s', color: '#cf222e' }], ts,
        [col((r) => per(r, r.all.n)), col((r) => per(r, r.all.f))]);
      c.latency.set(['p50', 'p90', 'p95', 'p99', 'max'].map((label) => ({ label })), ts,
        [0, 1, 2, 3, 4].map((i) => col((r) => r.all.n ? r.all.p[i] : null)));
      const regions = [...new Set(rows.flatMap((r) => Object.keys(r.regions)))].sort();
      for (const g of regions) option(selects.region, g);  // an ended run's tables do not list them
      c.regionP99.set(regions.map((label) => ({ label })), ts,
        regions.map((g) => col((r) => r.regions[g] && r.regions[g].n ? r.regions[g].p[3] : null)));
      c.regionRate.set(regions.map((label) => ({ label })), ts,
        regions.map((g) => col((r) => r.regions[g] ? per(r, r.regions[g].n) : null)));
      c.vus.set([{ label: 'active VUs' }, { label: 'dropped/s', color: '#cf222e' }], ts,
        [col((r) => r.all.vus), col((r) => per(r, r.all.drop))]);
      c.checks.set([{ label: 'passed', color: '#1a7f37' }, { label: 'failed', color: '#cf222e' }], ts,
        [col((r) => per(r, r.all.cp)), col((r) => per(r, r.all.cf))]);
      const last = rows[rows.length - 1];
      charts.dataset.lastSecond = last ? String(last.t) : '';
      charts.dataset.lastP99 = last ? String(last.all.p[3]) : '';
      charts.dataset.maxP99 = String(Math.max(0, ...rows.map((r) => r.all.n ? r.all.p[3] : 0)));
    });

    function renderTables() {
      if (!tables) return;
      const run = tables.run || {};
      const summary = tables.summary || {};
      stateBadge.replaceChildren(badge(run.state || '?'));
      stateBadge.dataset.state = run.state || '';
      const live = !['passed', 'failed', 'aborted', 'errored'].includes(run.state);
      abort.hidden = !live || Boolean(REPORT);
      // A run whose thresholds compared with a baseline run: that comparison, once it ended.
      baselineLink.hidden = live || Boolean(REPORT) || !summary.baseline;
      if (summary.baseline) {
        baselineLink.textContent = 'compare with its baseline ' + summary.baseline;
        baselineLink.href = '#/compare/' + encodeURIComponent(summary.baseline) + '/' + encodeURIComponent(id);
      }
      info.textContent = [run.name && ('plan ' + run.name), run.start_at && ('started ' + run.start_at),
        run.elapsed_ns !== undefined && run.duration_ns && (fmt(run.elapsed_ns / 1e9, 0) + ' s of ' +
          fmt(run.duration_ns / 1e9, 0) + ' s'), run.reason].filter(Boolean).join(' · ');
      for (const r of (run.regions || [])) option(selects.region, r.name);
      for (const s of (summary.scenarios || [])) option(selects.scenario, s.name);
      for (const r of (summary.by_request || [])) option(selects.name, r.name);
      for (const code of Object.keys(summary.status || {})) option(selects.status, code);
      for (const ch of ((summary.checks && summary.checks.by_name) || [])) {
        if (!ch.name.endsWith(': status as expected')) option(selects.check, ch.name);
      }
      thresholds.replaceChildren(...(summary.thresholds || []).map((t) => el('tr', { 'data-ok': String(t.ok) },
        el('td', { class: t.ok ? 'ok' : 'bad', text: t.ok ? '✓' : '✗' }), el('td', { text: t.metric }),
        el('td', { text: t.threshold }), el('td', { text: t.no_data ? 'no data' : t.measured_text }))));
      const list = (summary.by_request || []).slice();
      const key = (r) => sortKey === 'name' ? r.name : sortKey === 'count' ? r.count : sortKey === 'failed'
        ? r.failed : r.latency_ms[sortKey];
      list.sort((a, b) => sortKey === 'name' ? String(key(a)).localeCompare(key(b)) : key(b) - key(a));
      for (const th of requestHead.children) th.classList.toggle('sorted', th.dataset.key === sortKey);
      requests.replaceChildren(...list.map((r) => el('tr', {}, el('td', { text: r.name }),
        el('td', { class: 'num', text: fmt(r.count, 0) }), el('td', { class: 'num', text: fmt(r.failed, 0) }),
        ...['med', 'p90', 'p95', 'p99', 'max'].map((k) => el('td', { class: 'num', text: ms(r.latency_ms[k]) })))));
      const examples = {};
      for (const e of (summary.error_examples || [])) (examples[e.kind] = examples[e.kind] || []).push(e.message);
      errors.replaceChildren(...Object.entries(summary.errors || {}).map(([kind, n]) => el('tr', {},
        el('td', { text: kind }), el('td', { class: 'num', text: fmt(n, 0) }),
        el('td', { class: 'muted', text: (examples[kind] || []).join(' | ') }))));
      // A live run's agents as the control plane sees them now; an ended run's from its summary.
      const agentRows = (tables.agents || []).length ? tables.agents : (summary.agents || []);
      document.getElementById('agents-card').hidden = !agentRows.length;
      agentsHead.hidden = !agentRows.length;
      agents.replaceChildren(...agentRows.map((a) => el('tr', {}, el('td', { text: a.name }),
        el('td', { text: a.region }), el('td', {}, badge(a.state)), el('td', { class: 'num', text: fmt(a.requests, 0) }),
        el('td', { class: 'num', text: ms(a.start_skew_ms) }), el('td', { class: 'num', text: ms(a.clock_offset_ms) }),
        el('td', { class: 'num', text: a.last_contact_s === undefined ? '–' : fmt(a.last_contact_s, 1) + ' s ago' }))));
      const noSteps = !(summary.steps || []).length;
      stepsHead.hidden = noSteps;
      document.getElementById('steps-card').hidden = noSteps;
      if (!Object.keys(summary.errors || {}).length) {
        errors.replaceChildren(el('tr', {}, el('td', { class: 'muted', colspan: 3, text: 'no errors' })));
      }
      steps.replaceChildren(...(summary.steps || []).flatMap((s) => {
        const r = s.result || s;  // live: the agent's result as reported; ended: the summary's flat row
        const key = s.step + '#' + s.instance;
        // The log's last lines: the one-file report holds a failed instance's tail; the live page reads the
        // instance's log (head and tail kept) when asked.
        const tail = r.log_tail || s.log_tail;
        const toggle = REPORT ? (tail ? el('button', { type: 'button', text: 'tail',
            onclick: () => showLog(key, tail) }) : null)
          : el('button', { type: 'button', text: 'tail', 'data-step': key,
            onclick: () => loadLog(s.step, s.instance, key) });
        const row = el('tr', { 'data-step': key }, el('td', { text: key }), el('td', { text: s.agent || '' }),
          el('td', { text: r.state || '' }), el('td', { class: 'num', text: r.exit_code ?? '' }),
          el('td', { class: 'num', text: r.restarts ?? '' }), el('td', { class: 'num', text: fmt(r.cpu_seconds, 2) }),
          el('td', { class: 'num', text: r.max_rss_bytes ? fmt(r.max_rss_bytes / 1048576, 1) + ' MiB' : '–' }),
          el('td', {}, toggle));
        return logs.has(key) ? [row, logs.get(key)] : [row];
      }));
    }

    function showLog(key, text) {
      const lines = text.replace(/\n$/, '').split('\n');
      const shown = lines.slice(-40).join('\n');
      logs.set(key, el('tr', { class: 'log' }, el('td', { colspan: 8 },
        el('pre', { class: 'log', 'data-step': key, text: (lines.length > 40 ? '…\n' : '') + shown }))));
      renderTables();
    }
    async function loadLog(step, instance, key) {
      if (logs.has(key)) {
        logs.delete(key);
        return renderTables();
      }
      try {
        const res = await api('/v1/runs/' + encodeURIComponent(id) + '/steps/' + encodeURIComponent(step) +
                              '/log?instance=' + instance);
        if (!res.ok) throw new ApiError(res.status, await res.json().catch(() => null));
        showLog(key, await res.text() || '(no output)');
      } catch (e) {
        showLog(key, 'the log cannot be read: ' + e.message);
      }
    }

    let lastState = null;
    async function loadTimeline() {
      try {
        const j = REPORT || await apiJson('/v1/runs/' + encodeURIComponent(id));
        timeline.replaceChildren(...(j.events || []).map((e) => el('tr', {},
          el('td', { text: new Date(e.at_ns / 1e6).toISOString() }), el('td', { text: e.from }),
          el('td', { text: e.to }), el('td', { class: 'muted', text: e.detail }))));
      } catch (e) { /* the stream says what is wrong */ }
    }

    function restart() {
      if (stopStream) stopStream();
      points.clear();
      draw();
      if (REPORT) return showReport();
      const q = new URLSearchParams(Object.entries(filter).filter(([, v]) => v)).toString();
      stopStream = openStream('/v1/runs/' + encodeURIComponent(id) + '/live' + (q ? '?' + q : ''),
        (name, data) => {
          if (name === 'seconds') {
            for (const p of data) points.set(p.t, p);
            draw();
          } else if (name === 'end' && !ended && sawLive) {
            // The run ended while we watched: its last seconds may have come with the agents' final reports
            // after the last tick; the ended run's stream is its whole history.
            ended = true;
            restart();
          } else if (name === 'run' || name === 'end') {
            if (name === 'run') sawLive = true;
            tables = data;
            if (name === 'end') ended = true;
            renderTables();
            const state = data.run && data.run.state;
            if (state !== lastState) {
              lastState = state;
              loadTimeline();
            }
          }
        },
        (s) => setStatus(ended ? 'ended' : s));
    }
    // The report: its history and tables from the page itself; a region filter picks that region's points.
    function showReport() {
      const g = filter.region;
      const none = { n: 0, f: 0, p: [0, 0, 0, 0, 0], vus: 0, it: 0, drop: 0, cp: 0, cf: 0 };
      for (const p of REPORT.seconds) {
        points.set(p.t, !g ? p : { t: p.t, w: p.w, all: p.regions[g] || none,
                                   regions: p.regions[g] ? { [g]: p.regions[g] } : {} });
      }
      draw();
      ended = true;
      tables = { run: REPORT.run, summary: REPORT.summary, agents: REPORT.agents || [] };
      renderTables();
      loadTimeline();
      setStatus('report made ' + REPORT.generated);
    }

    teardown.push(() => { if (stopStream) stopStream(); });
    restart();
  }

  // ---------------------------------------------------------------- two runs compared
  // GET /v1/runs/B/compare?baseline=A side by side, and both runs' histories overlaid on time since each
  // start (an ended run's live stream is its whole history). The one-file comparison holds both inline.
  function showCompare(aId, bId) {
    const runLink = (rid) => REPORT ? el('span', { text: rid })
      : el('a', { href: '#/runs/' + encodeURIComponent(rid), text: rid });
    const note = el('p', { class: 'muted', id: 'compare-note' });
    const charts = el('div', { class: 'grid', id: 'compare-charts' });
    const gaps = { spanGaps: true };
    const c = {
      p95: chart(charts, 'p95 latency, seconds since each start', [], 'ms', gaps),
      p99: chart(charts, 'p99 latency, seconds since each start', [], 'ms', gaps),
      rate: chart(charts, 'Requests per second', [], 'per second', gaps),
      errors: chart(charts, 'Errors per second', [], 'per second', gaps),
    };
    c.p95.box.id = 'chart-compare-p95';
    c.p99.box.id = 'chart-compare-p99';
    c.rate.box.id = 'chart-compare-rate';
    c.errors.box.id = 'chart-compare-errors';
    const body = el('tbody');
    const heads = ['', 'row', 'req/s A', 'req/s B', 'Δ', 'errors A', 'errors B', 'Δ', 'p50 A', 'p50 B', 'Δ',
                   'p95 A', 'p95 B', 'Δ', 'p99 A', 'p99 B', 'Δ'];
    main.replaceChildren(
      el('h1', {}, 'Compare ', runLink(aId), el('span', { class: 'muted', text: '(A, baseline) with' }),
        runLink(bId), el('span', { class: 'muted', text: '(B)' })),
      note, charts, el('h2', { text: 'Side by side' }), el('section', { class: 'card' },
        el('table', { id: 'compare' }, el('thead', {}, el('tr', {},
          heads.map((t, i) => el('th', { class: i > 1 ? 'num' : '', text: t })))), body)));
    const series = { a: new Map(), b: new Map() };
    const labels = [{ label: 'A ' + aId }, { label: 'B ' + bId }];
    const drawCharts = perFrame(() => {
      const ts = [...new Set([...series.a.keys(), ...series.b.keys()])].sort((x, y) => x - y);
      const col = (f) => ['a', 'b'].map((k) => ts.map((t) => {
        const p = series[k].get(t);
        return p ? f(p) : null;
      }));
      const per = (p, v) => v / (p.w || 1);
      c.p95.set(labels, ts, col((p) => (p.all.n ? p.all.p[2] : null)));
      c.p99.set(labels, ts, col((p) => (p.all.n ? p.all.p[3] : null)));
      c.rate.set(labels, ts, col((p) => per(p, p.all.n)));
      c.errors.set(labels, ts, col((p) => per(p, p.all.f)));
    });

    const pct = (v) => (v === null || v === undefined ? '' : (v > 0 ? '+' : '') + fmt(v, 1) + ' %');
    const errPct = (f) => (f === null || f === undefined ? '–' : fmt(f * 100, 2) + ' %');
    function renderTable(cmp) {
      note.textContent = (cmp.regressions ? cmp.regressions + ' row(s) regressed' : 'no regression') +
        ` (p95/p99 more than ${cmp.tolerance_pct} % and ${cmp.min_latency_ms} ms higher, throughput more than ` +
        `${cmp.tolerance_pct} % lower, error rate more than ${cmp.error_rate_pp} point(s) higher)`;
      note.dataset.regressions = String(cmp.regressions);
      body.replaceChildren(...cmp.rows.map((r) => {
        const a = r.a || {}, b = r.b || {}, d = r.change || {};
        const bad = new Set(r.regressed || []);
        const cell = (text, flag) => el('td', { class: 'num' + (flag && bad.has(flag) ? ' bad' : ''), text });
        return el('tr', { 'data-row': r.scope + ':' + r.name, 'data-regressed': String(bad.size > 0) },
          el('td', { class: bad.size ? 'bad' : 'ok', text: bad.size ? '!' : '', title: [...bad].join(', ') }),
          el('td', { text: (r.scope === 'total' ? '' : r.scope + ' ') + r.name }),
          cell(r.a ? fmt(a.rate, 1) : '–'), cell(r.b ? fmt(b.rate, 1) : '–'), cell(pct(d.rate_pct), 'rate'),
          cell(r.a ? errPct(a.error_rate) : '–'), cell(r.b ? errPct(b.error_rate) : '–'),
          cell(d.error_rate_pp === null || d.error_rate_pp === undefined ? ''
            : (d.error_rate_pp > 0 ? '+' : '') + fmt(d.error_rate_pp, 2) + ' pt', 'error_rate'),
          ...['p50', 'p95', 'p99'].flatMap((k) => [cell(r.a ? ms(a[k + '_ms']) : '–'),
            cell(r.b ? ms(b[k + '_ms']) : '–'), cell(pct(d[k + '_pct']), k)]));
      }));
    }
    if (REPORT) {
      for (const [k, side] of [['a', REPORT.a], ['b', REPORT.b]]) {
        for (const p of side.seconds) series[k].set(p.t, p);
      }
      drawCharts();
      renderTable(REPORT.compare);
      setStatus('comparison made ' + REPORT.generated);
      return;
    }
    apiJson('/v1/runs/' + encodeURIComponent(bId) + '/compare?baseline=' + encodeURIComponent(aId))
      .then(renderTable)
      .catch((e) => { if (e.status !== 401) note.textContent = e.message; });
    for (const [k, rid] of [['a', aId], ['b', bId]]) {
      const stop = openStream('/v1/runs/' + encodeURIComponent(rid) + '/live', (name, data) => {
        if (name !== 'seconds') return;
        for (const p of data) series[k].set(p.t, p);
        drawCharts();
      }, () => {});
      teardown.push(stop);
    }
  }

  // ---------------------------------------------------------------- leases
  function showLeases() {
    const pools = el('tbody');
    const envs = el('tbody');
    const allocs = el('tbody');
    const audit = el('tbody');
    const auditNote = el('p', { class: 'note' });
    const envNote = el('p', { class: 'note', id: 'env-note' });
    // Drain (no new allocations; a current lease runs on) and reinstate (dirty or drained -> available): env:admin.
    // The token travels in a header, never in a cookie, so another site cannot make the browser send it.
    const act = async (x, action) => {
      if (!confirm(action + ' ' + x.id + '?')) return;
      try {
        await apiJson('/v1/environments/' + encodeURIComponent(x.id) + '/' + action, { method: 'POST' });
        envNote.textContent = action + ' ' + x.id + ': done';
      } catch (e) {
        envNote.textContent = e.status === 403 ? action + ' needs a token with env:admin'
          : action + ' ' + x.id + ': ' + e.message;
      }
      refresh();
    };
    const table = (id, heads, body) => el('section', { class: 'card' }, el('table', { id },
      el('thead', {}, el('tr', {}, heads.map((t) => el('th', { text: t })))), body));
    main.replaceChildren(el('h1', { text: 'Leases' }),
      el('h2', { text: 'Pools' }), table('pools', ['pool', 'environments', 'available', 'allocated', 'cleaning',
        'dirty', 'draining', 'waiting'], pools),
      el('h2', { text: 'Active allocations' }), table('allocations', ['allocation', 'pool', 'requester', 'owner',
        'environments', 'expires'], allocs),
      el('h2', { text: 'Environments' }), envNote, table('environments', ['environment', 'pool', 'region', 'state',
        'holder', 'since', 'note', ''], envs),
      el('h2', { text: 'Audit (newest last)' }), auditNote, table('audit', ['#', 'at', 'action', 'allocation',
        'environment', 'who', 'outcome'], audit));
    let stopped = false;
    teardown.push(() => { stopped = true; });
    const count = (p, s) => (p.counts && p.counts[s]) || 0;
    let auditAfter = 0;
    let tail = [];
    let refreshing = null;  // one refresh at a time: the poll and an action's refresh share it
    function refresh() {
      if (!refreshing) refreshing = refreshOnce().finally(() => { refreshing = null; });
      return refreshing;
    }
    async function refreshOnce() {
      try {
        const [p, e, a] = await Promise.all([apiJson('/v1/pools'), apiJson('/v1/environments'),
          apiJson('/v1/allocations?state=active&limit=200')]);
        pools.replaceChildren(...(p.pools || []).map((x) => el('tr', {}, el('td', { text: x.name }),
          el('td', { class: 'num', text: x.environments }),
          ...['available', 'allocated', 'cleaning', 'dirty'].map((s) => el('td', { class: 'num', text: count(x, s) })),
          el('td', { class: 'num', text: count(x, 'draining') }), el('td', { class: 'num', text: x.waiting }))));
        envs.replaceChildren(...(e.environments || []).map((x) => el('tr', { 'data-environment': x.id },
          el('td', { text: x.id }),
          el('td', { text: x.pool }), el('td', { text: x.region || '' }), el('td', {}, badge(x.state)),
          el('td', { text: x.allocation || '' }), el('td', { text: x.since || '' }),
          el('td', { class: 'muted', text: (x.draining ? 'draining ' : '') + (x.note || '') }),
          el('td', {}, x.state === 'retired' ? null : x.draining || x.state === 'dirty'
            ? el('button', { type: 'button', class: 'reinstate', text: 'reinstate',
                             disabled: x.state === 'allocated' || x.state === 'cleaning', onclick: () => act(x, 'reinstate') })
            : el('button', { type: 'button', class: 'drain', text: 'drain', onclick: () => act(x, 'drain') })))));
        allocs.replaceChildren(...(a.allocations || []).map((x) => el('tr', { 'data-allocation': x.id },
          el('td', { text: x.id }), el('td', { text: x.pool }), el('td', { text: x.requester || '' }),
          el('td', { text: x.owner || '' }), el('td', { text: x.environments.map((v) => v.id).join(', ') }),
          el('td', { text: x.expires_at || '' }))));
        setStatus('');
        try {
          for (;;) {  // the audit is read forward from the last entry seen; the newest 20 are shown
            const log = await apiJson('/v1/audit?limit=1000&after=' + auditAfter);
            tail = tail.concat(log.audit).slice(-20);
            if (log.audit.length) auditAfter = log.audit[log.audit.length - 1].id;
            if (log.audit.length < 1000) break;
          }
          auditNote.textContent = '';
          audit.replaceChildren(...tail.map((x) => el('tr', {},
            el('td', { class: 'num', text: x.id }), el('td', { text: x.at }), el('td', { text: x.action }),
            el('td', { text: x.allocation || '' }), el('td', { text: x.environment || '' }),
            el('td', { text: x.principal || '' }), el('td', { text: x.outcome || '' }))));
        } catch (err) {
          if (err.status === 403) auditNote.textContent = 'the audit needs a token with env:admin';
        }
      } catch (err) {
        if (err.status === 401) return;
        setStatus(err.status === 403 ? 'this token may not see leases (env:allocate or env:admin)'
                                     : 'control plane unreachable');
      }
    }
    (async () => {
      while (!stopped) {
        await refresh();
        await sleep(1000);
      }
    })();
  }

  // ---------------------------------------------------------------- routing
  function route(message) {
    for (const f of teardown) f();
    teardown = [];
    setStatus('');
    if (REPORT) {
      document.querySelector('header nav').hidden = true;
      document.querySelector('header .brand').removeAttribute('href');
      if (REPORT.kind === 'compare') {
        document.title = 'meridian: ' + REPORT.a.run.id + ' compared with ' + REPORT.b.run.id;
        return showCompare(REPORT.a.run.id, REPORT.b.run.id);
      }
      document.title = 'meridian report ' + REPORT.run.id;
      return showRun(REPORT.run.id);
    }
    if (!token) return showLogin(typeof message === 'string' ? message : '');
    document.getElementById('forget').hidden = false;
    const h = location.hash || '#/runs';
    let id = h.slice(7);
    try { id = decodeURIComponent(id); } catch { /* shown as typed: the control plane says it is unknown */ }
    const pair = /^#\/compare\/([^/]+)\/([^/]+)$/.exec(h);
    if (pair) {
      const dec = (x) => { try { return decodeURIComponent(x); } catch { return x; } };
      return showCompare(dec(pair[1]), dec(pair[2]));
    }
    if (h.startsWith('#/runs/')) showRun(id);
    else if (h === '#/leases') showLeases();
    else showRuns();
  }
  if (!REPORT) window.addEventListener('hashchange', () => route());
  exchangeLoginCode().finally(() => route());
})();

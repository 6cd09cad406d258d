// The JavaScript half of the bindings. The natives (natives.cpp) do the I/O and the measuring; this code
// gives them the shapes users know: an axios instance, k6's check/sleep/group, console and timers.
#include "script/runtime.h"

namespace meridian::script {

const char kPreludeSource[] = R"js((function (native, global) {
'use strict';

// ---- console -------------------------------------------------------------------------------------------
function show(v) {
  if (typeof v === 'string') return v;
  if (v instanceof Error) return v.stack ? `${v}\n${v.stack}` : String(v);
  if (typeof v === 'function') return `[function ${v.name || 'anonymous'}]`;
  try {
    const s = JSON.stringify(v);
    return s === undefined ? String(v) : s;
  } catch (e) {
    return String(v);
  }
}
const format = (args) => args.map(show).join(' ');
const console = {
  debug: (...a) => native.log(0, format(a)),
  log: (...a) => native.log(1, format(a)),
  info: (...a) => native.log(1, format(a)),
  warn: (...a) => native.log(2, format(a)),
  error: (...a) => native.log(3, format(a)),
};

// ---- timers ----------------------------------------------------------------------------------------------
function timerArgs(what, fn, args) {
  if (typeof fn !== 'function') throw new TypeError(`${what}: the callback must be a function`);
  return args.length ? args : null;
}
const setTimeout = (fn, ms, ...args) => native.setTimer(fn, Number(ms) || 0, timerArgs('setTimeout', fn, args), false);
const setInterval = (fn, ms, ...args) => native.setTimer(fn, Number(ms) || 0, timerArgs('setInterval', fn, args), true);
const clearTimeout = (id) => { if (id !== undefined && id !== null) native.clearTimer(Number(id)); };

for (const [name, value] of Object.entries({ console, setTimeout, setInterval, clearTimeout,
                                             clearInterval: clearTimeout })) {
  Object.defineProperty(global, name, { value, writable: true, configurable: true, enumerable: false });
}

// ---- the HTTP client (axios-compatible) ------------------------------------------------------------------
const METHODS = ['get', 'delete', 'head', 'options', 'post', 'put', 'patch'];
const isAbsolute = (u) => /^[a-z][a-z0-9+.-]*:\/\//i.test(u);

// http.url`${base}/products/${id}` (k6): the URL, and a series name that keeps the template
// ("${}/products/${}"), so URLs with ids share one series instead of one each.
class TemplatedURL {
  constructor(url, name) {
    this.url = url;
    this.name = name;
  }
  toString() { return this.url; }
}
function urlTemplate(strings, ...values) {
  if (!strings || !Array.isArray(strings.raw)) throw new TypeError('http.url is a template tag: http.url`/items/${id}`');
  let url = strings[0];
  let name = strings[0];
  for (let i = 0; i < values.length; i++) {
    url += String(values[i]) + strings[i + 1];
    name += '${}' + strings[i + 1];
  }
  return new TemplatedURL(url, name);
}

function combine(base, url) {
  if (!base || isAbsolute(url)) return url;
  if (!url) return base;
  return base.replace(/\/+$/, '') + '/' + url.replace(/^\/+/, '');
}

function encodeParams(params) {
  const parts = [];
  const add = (k, v) => {
    if (v === undefined || v === null) return;
    if (v instanceof Date) v = v.toISOString();
    else if (typeof v === 'object') v = JSON.stringify(v);
    parts.push(encodeURIComponent(k) + '=' + encodeURIComponent(v));
  };
  for (const [k, v] of Object.entries(params)) {
    if (Array.isArray(v)) for (const item of v) add(k + '[]', item);
    else add(k, v);
  }
  return parts.join('&');
}

// Headers as a flat [name, value, ...] list; a later source replaces an earlier name case-insensitively.
function putHeaders(flat, from) {
  if (!from) return;
  for (const k in from) {
    const v = from[k];
    if (v === undefined || v === null || typeof v === 'object') continue;  // nested per-method blocks
    const lower = k.toLowerCase();
    let i = 0;
    while (i < flat.length && flat[i].toLowerCase() !== lower) i += 2;
    flat[i] = k;
    flat[i + 1] = String(v);
  }
}
function hasHeader(flat, lower) {
  for (let i = 0; i < flat.length; i += 2) if (flat[i].toLowerCase() === lower) return true;
  return false;
}
const NO_CONFIG = Object.freeze({});
// Per method, its upper-case form and the lower-case key of defaults.headers: made once, so a request does not
// allocate new strings (and atomize them for the property lookup) to change a method's case.
const UPPER = Object.create(null);
const LOWER = Object.create(null);
for (const m of METHODS) {
  UPPER[m] = UPPER[m.toUpperCase()] = m.toUpperCase();
  LOWER[m.toUpperCase()] = m;
}
const ACCEPT = 'application/json, text/plain, */*';  // axios's default, sent when no Accept header is given
const TYPES = ['auto', 'json', 'text', 'none'];
const TYPE_INDEX = Object.create(null);
TYPES.forEach((t, i) => { TYPE_INDEX[t] = i; });

// The request of `config` (with `method`, `url` and `data` given apart by the shorthand methods) on an instance
// with `defaults`. The config a response carries is put together only when a script reads it.
function requestWith(defaults, config, m, u, data, hasData) {
  if (typeof config !== 'object' || config === null) throw new TypeError('request: config must be an object');
  const given_method = m || config.method || defaults.method || 'get';
  const method = UPPER[given_method] || String(given_method).toUpperCase();
  const uu = u !== undefined ? u : config.url;
  const template = uu instanceof TemplatedURL ? uu.name : undefined;
  const given = uu === undefined ? '' : String(uu);
  const url = combine(config.baseURL !== undefined ? config.baseURL : defaults.baseURL, given);
  let full = url;
  const params = config.params !== undefined ? config.params : defaults.params;
  if (params && typeof params === 'object') {
    const q = encodeParams(params);
    if (q) full += (full.includes('?') ? '&' : '?') + q;
  }
  const flat = [];
  const dh = defaults.headers;
  if (dh) {
    putHeaders(flat, dh.common);
    putHeaders(flat, dh[LOWER[method] || method.toLowerCase()]);
    putHeaders(flat, dh);
  }
  putHeaders(flat, config.headers);
  let body = null;
  if (!hasData) data = config.data;
  if (data !== undefined && data !== null) {
    if (typeof data === 'string') {
      body = data;
    } else if (data instanceof ArrayBuffer || ArrayBuffer.isView(data)) {
      throw new TypeError('request: binary data is not supported yet; send a string or an object');
    } else {
      body = JSON.stringify(data);
      if (!hasHeader(flat, 'content-type')) flat.push('Content-Type', 'application/json');
    }
  }
  // The default Accept header is added by the native side (and by configOf), not copied through `flat`.
  const accept = !hasHeader(flat, 'accept');
  const timeout = Number(config.timeout !== undefined ? config.timeout : defaults.timeout) || 0;
  const responseType = config.responseType || defaults.responseType || 'auto';
  const type = TYPE_INDEX[responseType];
  if (type === undefined) {
    throw new Error(`request: responseType '${responseType}' is not supported (allowed: json, text, none)`);
  }
  const tags = config.tags;
  let name = config.name !== undefined ? config.name : tags ? tags.name : undefined;
  if (name === undefined && template !== undefined) name = method + ' ' + template;
  // No name: the native side names the series "METHOD url-without-query" without a string made here.
  if (name !== undefined) name = String(name);
  const source = { config, method, url: given, flat, accept, data: hasData ? data : undefined, hasData };
  return native.request(method, full, flat.length ? flat : null, body, timeout, name === undefined ? null : name,
                        type, source, accept);
}

// The config of a response or error: the request's config with its method, url, headers (and data).
function configOf(source) {
  const headers = {};
  for (let i = 0; i < source.flat.length; i += 2) headers[source.flat[i]] = source.flat[i + 1];
  if (source.accept) headers.Accept = ACCEPT;
  const extra = { method: source.method.toLowerCase(), url: source.url, headers };
  if (source.hasData) extra.data = source.data;
  return Object.assign({}, source.config, extra);
}

function createInstance(initial) {
  const defaults = Object.assign({ baseURL: native.baseURL || undefined, headers: { common: {} } }, initial || {});
  const instance = function (configOrUrl, config) {
    if (typeof configOrUrl === 'string') return requestWith(defaults, config || NO_CONFIG, undefined, configOrUrl);
    return requestWith(defaults, configOrUrl || NO_CONFIG);
  };
  instance.defaults = defaults;
  instance.request = (config) => requestWith(defaults, config || NO_CONFIG);
  for (const m of ['get', 'delete', 'head', 'options']) {
    instance[m] = (url, config) => requestWith(defaults, config || NO_CONFIG, m, url, undefined, false);
  }
  for (const m of ['post', 'put', 'patch']) {
    instance[m] = (url, data, config) => requestWith(defaults, config || NO_CONFIG, m, url, data, true);
  }
  instance.create = (more) => createInstance(Object.assign({}, defaults, more || {}));
  instance.url = urlTemplate;
  instance.interceptors = {
    request: { use() { throw new Error('axios interceptors are not supported'); } },
    response: { use() { throw new Error('axios interceptors are not supported'); } },
  };
  return instance;
}

// Responses are made by the native side with this prototype: headers and data are parsed on first use.
function parseHeaders(raw) {
  const out = {};
  const lines = raw.split(/\r?\n/);
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i];
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    const k = line.slice(0, colon).trim().toLowerCase();
    const v = line.slice(colon + 1).trim();
    if (k === 'set-cookie') (out[k] = out[k] || []).push(v);
    else out[k] = k in out ? out[k] + ', ' + v : v;
  }
  return out;
}
// Responses: made by the native side through makeResponse; headers, data and config are put together on
// first use and then kept as own properties.
class Response {
  #raw;
  constructor(status, statusText, rawHeaders, body, type, source, duration, waiting, connecting, tls) {
    this.status = status;
    this.statusText = statusText;
    this.timings = { duration, waiting, connecting, tls_handshaking: tls };
    this.#raw = [rawHeaders, body, TYPES[type], source];
  }
  get headers() {
    const value = parseHeaders(this.#raw[0]);
    Object.defineProperty(this, 'headers', { value, writable: true, enumerable: true, configurable: true });
    return value;
  }
  get data() {
    const [rawHeaders, body, type] = this.#raw;
    let value = body;
    if (type !== 'text' && body.length > 0) {
      const ct = /\ncontent-type:[^\n]*json/i.test(rawHeaders);
      if ((type === 'auto' && ct) || type === 'json') {
        try { value = JSON.parse(body); } catch (e) { value = body; }
      }
    }
    Object.defineProperty(this, 'data', { value, writable: true, enumerable: true, configurable: true });
    return value;
  }
  get config() {
    const value = configOf(this.#raw[3]);
    Object.defineProperty(this, 'config', { value, writable: true, enumerable: true, configurable: true });
    return value;
  }
  get body() { return this.#raw[1]; }
  json() { return JSON.parse(this.#raw[1]); }
  toJSON() {
    return { status: this.status, statusText: this.statusText, headers: this.headers, data: this.data,
             config: this.config, timings: this.timings };
  }
}
const makeResponse = (status, statusText, rawHeaders, body, type, source, duration, waiting, connecting, tls) =>
  new Response(status, statusText, rawHeaders, body, type, source, duration, waiting, connecting, tls);

function makeError(message, code, source, response) {
  const e = new Error(message);
  e.code = code;
  e.config = source ? configOf(source) : undefined;
  e.isAxiosError = true;
  if (response) e.response = response;
  e.toJSON = () => ({ message, code });
  return e;
}

// ---- k6-style helpers ------------------------------------------------------------------------------------
function check(value, checks, tags) {
  if (typeof checks !== 'object' || checks === null) throw new TypeError('check: give an object of named checks');
  let all = true;
  for (const [name, fn] of Object.entries(checks)) {
    let ok;
    try {
      ok = typeof fn === 'function' ? !!fn(value) : !!fn;
    } catch (e) {
      ok = false;
    }
    native.check(name, ok);
    if (!ok) all = false;
  }
  return all;
}
const sleep = (seconds) => native.sleep(Number(seconds) || 0);
async function group(name, fn) {
  if (typeof fn !== 'function') throw new TypeError('group: the second argument must be a function');
  const previous = native.groupEnter(String(name));
  const started = native.now();
  try {
    return await fn();
  } finally {
    native.groupExit(previous, started);
  }
}

function describe(e) {
  if (e instanceof Error) {
    let where = '';
    if (e.fileName) where = ` (${e.fileName}:${e.lineNumber}:${e.columnNumber})`;
    return `${e.name}: ${e.message}${where}`;
  }
  return `uncaught ${show(e)}`;
}

// What the runtime attaches to the promise of each iteration of the VU function.
const iterationDone = native.done;
const iterationFailed = (e) => native.fail(describe(e));

const http = createInstance({});
return { iterationDone, iterationFailed, createInstance, makeError, makeResponse, describe, http, check, sleep, group };
}))js";

const char kMeridianModuleSource[] = R"js(const m = globalThis[Symbol.for('meridian.internal')];
export const http = m.http;
export const check = m.check;
export const sleep = m.sleep;
export const group = m.group;
export default { http, check, sleep, group };
)js";

}  // namespace meridian::script

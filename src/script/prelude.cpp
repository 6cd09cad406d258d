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

function setHeaders(into, from) {
  if (!from) return;
  for (const [k, v] of Object.entries(from)) {
    if (v === undefined || v === null || typeof v === 'object') continue;  // nested per-method blocks
    const lower = k.toLowerCase();
    for (const existing of Object.keys(into)) {
      if (existing.toLowerCase() === lower) delete into[existing];
    }
    into[k] = String(v);
  }
}

function requestWith(defaults, config) {
  if (typeof config !== 'object' || config === null) throw new TypeError('request: config must be an object');
  const method = String(config.method || defaults.method || 'get').toUpperCase();
  const given = config.url === undefined ? '' : String(config.url);
  const url = combine(config.baseURL !== undefined ? config.baseURL : defaults.baseURL, given);
  let full = url;
  const params = config.params !== undefined ? config.params : defaults.params;
  if (params && typeof params === 'object') {
    const q = encodeParams(params);
    if (q) full += (full.includes('?') ? '&' : '?') + q;
  }
  const headers = {};
  const dh = defaults.headers || {};
  setHeaders(headers, dh.common);
  setHeaders(headers, dh[method.toLowerCase()]);
  setHeaders(headers, dh);
  setHeaders(headers, config.headers);
  let body = null;
  let data = config.data;
  if (data !== undefined && data !== null) {
    if (typeof data === 'string') {
      body = data;
    } else if (data instanceof ArrayBuffer || ArrayBuffer.isView(data)) {
      throw new TypeError('request: binary data is not supported yet; send a string or an object');
    } else {
      body = JSON.stringify(data);
      if (!Object.keys(headers).some((k) => k.toLowerCase() === 'content-type')) {
        headers['Content-Type'] = 'application/json';
      }
    }
  }
  if (!Object.keys(headers).some((k) => k.toLowerCase() === 'accept')) {
    headers['Accept'] = 'application/json, text/plain, */*';
  }
  const flat = [];
  for (const [k, v] of Object.entries(headers)) flat.push(k, v);
  const timeout = Number(config.timeout !== undefined ? config.timeout : defaults.timeout) || 0;
  const responseType = String(config.responseType || defaults.responseType || 'auto');
  const tags = config.tags || {};
  let name = config.name !== undefined ? config.name : tags.name;
  if (name === undefined) {
    const q = url.indexOf('?');
    name = method + ' ' + (q >= 0 ? url.slice(0, q) : url);
  }
  const merged = Object.assign({}, config, { method: method.toLowerCase(), url: given, headers });
  return native.request(method, full, flat, body, timeout, String(name), responseType, merged);
}

function createInstance(initial) {
  const defaults = Object.assign({ baseURL: native.baseURL || undefined, headers: { common: {} } }, initial || {});
  const instance = function (configOrUrl, config) {
    if (typeof configOrUrl === 'string') return requestWith(defaults, Object.assign({}, config, { url: configOrUrl }));
    return requestWith(defaults, configOrUrl || {});
  };
  instance.defaults = defaults;
  instance.request = (config) => requestWith(defaults, config || {});
  for (const m of ['get', 'delete', 'head', 'options']) {
    instance[m] = (url, config) => requestWith(defaults, Object.assign({}, config, { method: m, url }));
  }
  for (const m of ['post', 'put', 'patch']) {
    instance[m] = (url, data, config) => requestWith(defaults, Object.assign({}, config, { method: m, url, data }));
  }
  instance.create = (more) => createInstance(Object.assign({}, defaults, more || {}));
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
const responseProto = {};
Object.defineProperty(responseProto, 'headers', {
  get() {
    const value = parseHeaders(this.__raw[0]);
    Object.defineProperty(this, 'headers', { value, writable: true, enumerable: true, configurable: true });
    return value;
  },
  configurable: true,
});
Object.defineProperty(responseProto, 'data', {
  get() {
    const [rawHeaders, body, type] = this.__raw;
    let value = body;
    if (type !== 'text' && body.length > 0) {
      const ct = /\ncontent-type:[^\n]*json/i.test(rawHeaders);
      if ((type === 'auto' && ct) || type === 'json') {
        try { value = JSON.parse(body); } catch (e) { value = body; }
      }
    }
    Object.defineProperty(this, 'data', { value, writable: true, enumerable: true, configurable: true });
    return value;
  },
  configurable: true,
});
Object.defineProperty(responseProto, 'body', { get() { return this.__raw[1]; }, configurable: true });
responseProto.json = function () { return JSON.parse(this.__raw[1]); };

function makeError(message, code, config, response) {
  const e = new Error(message);
  e.code = code;
  e.config = config;
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

async function iterate(fn, arg) {
  try {
    await fn(arg);
    native.done();
  } catch (e) {
    native.fail(describe(e));
  }
}

const http = createInstance({});
return { iterate, createInstance, makeError, describe, http, check, sleep, group, responseProto };
}))js";

const char kMeridianModuleSource[] = R"js(const m = globalThis[Symbol.for('meridian.internal')];
export const http = m.http;
export const check = m.check;
export const sleep = m.sleep;
export const group = m.group;
export default { http, check, sleep, group };
)js";

}  // namespace meridian::script

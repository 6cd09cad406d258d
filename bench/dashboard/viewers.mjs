// VIEWERS dashboard viewers of the one active run on a control plane: each reads GET /v1/runs/{id}/live (the
// token in the Authorization header, as the page sends it) until the stream ends, counting bytes and events.
// Prints JSON: {viewers, run, seconds, bytes, bytes_per_viewer_per_s, events_per_viewer}.
//
//   node bench/dashboard/viewers.mjs URL TOKEN VIEWERS
const [url, token, count] = process.argv.slice(2);
const viewers = Number(count || 50);
const headers = { Authorization: 'Bearer ' + token };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

let run = null;
for (let i = 0; i < 1200 && !run; ++i) {
  try {
    const res = await fetch(url + '/v1/runs?active=true', { headers });
    const body = await res.json();
    run = (body.runs || []).find((r) => r.state === 'running' || r.state === 'ready')?.id || null;
  } catch { /* not up yet */ }
  if (!run) await sleep(100);
}
if (!run) throw new Error('no active run');

async function watch() {
  const res = await fetch(`${url}/v1/runs/${run}/live`, { headers: { ...headers, Accept: 'text/event-stream' } });
  if (!res.ok) throw new Error(`live: ${res.status}`);
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let bytes = 0, events = 0, tail = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    bytes += value.length;
    const text = tail + decoder.decode(value, { stream: true });
    events += text.split('\nevent: ').length - 1;  // the stream opens with a comment line
    tail = text.slice(-7);  // shorter than the pattern: a match is never counted twice
  }
  return { bytes, events };
}

const started = Date.now();
const results = await Promise.all(Array.from({ length: viewers }, () => watch()));
const seconds = (Date.now() - started) / 1000;
const bytes = results.reduce((n, r) => n + r.bytes, 0);
console.log(JSON.stringify({
  viewers, run, seconds,
  bytes,
  bytes_per_viewer_per_s: Math.round(bytes / viewers / seconds),
  events_per_viewer: Math.round(results.reduce((n, r) => n + r.events, 0) / viewers),
}));

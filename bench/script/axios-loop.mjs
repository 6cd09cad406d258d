// The peer for bench/script: what Constellation ran — Node with axios, every VU an async loop of the same
// request (and, for the memory case, a sleep between requests). Prints {requests, failed} as JSON.
//   node axios-loop.mjs URL VUS SECONDS [SLEEP_MS]
import http from 'node:http';
import axios from 'axios';

const [url, vus, seconds, sleepMs] = [process.argv[2], +process.argv[3], +process.argv[4], +(process.argv[5] || 0)];
const instance = axios.create({ httpAgent: new http.Agent({ keepAlive: true }), validateStatus: () => true });
const end = Date.now() + seconds * 1000;
let requests = 0;
let failed = 0;

async function vu() {
  while (Date.now() < end) {
    try {
      const res = await instance.get(url);
      requests++;
      if (res.status >= 400) failed++;
    } catch {
      failed++;
    }
    if (sleepMs) await new Promise((resolve) => setTimeout(resolve, sleepMs));
  }
}

await Promise.all(Array.from({ length: vus }, vu));
console.log(JSON.stringify({ requests, failed }));

// A user journey in meridian's (k6's) form: log in, browse, add to the cart; checks and groups.
//   meridian run examples/journey.yaml --vars base=http://127.0.0.1:8080      (regions, thresholds)
//   meridian run examples/journey.js --vars base=http://127.0.0.1:8080        (this file's own options)
import { http, check, group, sleep } from 'meridian';
import { pick } from './lib/pick.js';

const users = JSON.parse(open('./data/users.json'));
const base = __ENV.base;

export const options = {
  vus: 5,
  duration: '5s',
  thresholds: {
    checks: ['rate>0.99'],
    'http_req_duration{name:GET /api/products}': ['p(95)<200'],
  },
};

export default async function () {
  const user = users[(__VU + __ITER) % users.length];
  let token = '';
  await group('login', async () => {
    const res = await http.post(`${base}/api/login`, { user: user.name, password: user.password });
    check(res, {
      'logged in': (r) => r.status === 200,
      'got a token': (r) => typeof r.data.token === 'string',
    });
    token = res.data.token;
  });
  let product;
  await group('browse', async () => {
    const list = await http.get(`${base}/api/products`, { name: 'GET /api/products' });
    check(list, { 'products listed': (r) => r.status === 200 && r.data.length > 0 });
    product = pick(list.data);
    const one = await http.get(`${base}/api/products/${product.id}`, { name: 'GET /api/products/{id}' });
    check(one, { 'product found': (r) => r.data.id === product.id });
  });
  await sleep(0.1);
  await group('cart', async () => {
    const res = await http.post(`${base}/api/cart`, { product: product.id, quantity: 2 }, {
      headers: { Authorization: `Bearer ${token}` },
    });
    check(res, { 'added to cart': (r) => r.status === 201 && r.data.quantity === 2 });
  });
}

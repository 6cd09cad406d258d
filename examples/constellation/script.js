// A Constellation script, unchanged: every VU runs `script` back to back until DURATION.
// Relative URLs resolve against the instance's baseURL (`meridian run --config ... --vars base=URL`).
export const script = async (axiosInstance) => {
  const login = await axiosInstance.post('/api/login', { user: 'constellation', password: 'secret' });
  const token = login.data.token;
  const products = await axiosInstance.get('/api/products');
  const product = products.data[Math.floor(Math.random() * products.data.length)];
  await axiosInstance.get(`/api/products/${product.id}`, { name: 'GET /api/products/{id}' });
  const cart = await axiosInstance.post('/api/cart', { product: product.id, quantity: 1 }, {
    headers: { Authorization: `Bearer ${token}` },
  });
  if (cart.status !== 201) throw new Error(`cart answered ${cart.status}`);
};

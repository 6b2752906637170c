// Browser tests of how the checkout page takes the payment, against the running stack:
// - SHOP_WITH_STRIPE_KEY_URL: a web-server of the stack with a Stripe test publishable key
//   (e2e/run-with-stack.sh starts one). No internet is reachable, so Stripe.js is stubbed at the
//   network layer: https://js.stripe.com/** answers with a small fake `Stripe()` of the shape the
//   page and @stripe/react-stripe-js use (elements(), create('payment'), mount(),
//   createPaymentMethod()). Without that variable these tests are skipped.
// - SHOP_URL: the stack's own web-server without a key: the local test cards, no Stripe.js.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const SHOP_URL = (process.env.SHOP_URL || 'http://127.0.0.1:3000').replace(/\/$/, '');
const KEYED_URL = process.env.SHOP_WITH_STRIPE_KEY_URL?.replace(/\/$/, '');
const KEYED = KEYED_URL ? {} : { skip: 'needs SHOP_WITH_STRIPE_KEY_URL (a web-server with a pk_test_ key; e2e/run-with-stack.sh starts one)' };
const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const RESULTS = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'test-results');
const TEST_MS = 60_000;

/** The id the stub's createPaymentMethod answers with: of the form Stripe gives the ones it makes. */
const STUB_PM = 'pm_1E2eStubPaymentElement01';

/** A stand-in for https://js.stripe.com/<release>/stripe.js. It records what the page asked of it
 * in `window.__stripeStub` and draws a card form of its own where the Payment Element goes. */
const STRIPE_JS_STUB = `
(() => {
  const seen = (window.__stripeStub = { keys: [], elementsOptions: [], updates: [], created: [], types: [], submits: 0 });
  const form = '<div class="stub-payment-element" style="display:grid;gap:8px;padding:12px;border:1px solid #d7d2c8;border-radius:8px;background:#fff;font:14px system-ui,sans-serif">'
    + '<div style="color:#6b6457">Stripe.js stub (browser test): the Payment Element</div>'
    + '<label>Card number<div style="border:1px solid #ccc;border-radius:6px;padding:8px">4242 4242 4242 4242</div></label>'
    + '<div style="display:grid;grid-template-columns:1fr 1fr;gap:8px"><label>Expiry<div style="border:1px solid #ccc;border-radius:6px;padding:8px">12 / 34</div></label>'
    + '<label>CVC<div style="border:1px solid #ccc;border-radius:6px;padding:8px">123</div></label></div></div>';
  function Stripe(key) {
    seen.keys.push(key);
    const handlers = {};
    let node = null;
    const element = {
      mount(target) {
        node = typeof target === 'string' ? document.querySelector(target) : target;
        node.innerHTML = form;
        setTimeout(() => handlers.ready && handlers.ready({ elementType: 'payment' }), 0);
      },
      on(event, handler) { handlers[event] = handler; return element; },
      off(event) { delete handlers[event]; return element; },
      update() {},
      destroy() { if (node) node.innerHTML = ''; },
    };
    const elements = {
      create(type) { seen.types.push(type); return element; },
      update(options) { seen.updates.push(options); },
      async submit() { seen.submits += 1; return {}; },
      getElement() { return element; },
    };
    return {
      elements(options) { seen.elementsOptions.push(options); return elements; },
      async createPaymentMethod(params) {
        if (params.elements !== elements) return { error: { type: 'validation_error', message: 'unknown elements' } };
        seen.created.push(${JSON.stringify(STUB_PM)});
        return { paymentMethod: { id: ${JSON.stringify(STUB_PM)}, object: 'payment_method', type: 'card' } };
      },
      async createToken() { return { error: { message: 'not stubbed' } }; },
      async confirmCardPayment() { return { error: { message: 'not stubbed' } }; },
    };
  }
  Stripe.version = 'endive';
  window.Stripe = Stripe;
})();
`;

let browser;

before(async () => {
  await mkdir(RESULTS, { recursive: true });
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true });
});

after(async () => {
  await browser?.close();
});

/** A fresh page of `baseURL` in its own context; records the requests to js.stripe.com (answered
 * by the stub) and the checkout bodies sent. */
async function withShop(baseURL, body) {
  const context = await browser.newContext({ baseURL, viewport: { width: 1200, height: 900 } });
  context.setDefaultTimeout(15_000);
  const stripeRequests = [];
  const checkouts = [];
  await context.route('https://js.stripe.com/**', (route) => {
    stripeRequests.push(route.request().url());
    return route.fulfill({ status: 200, contentType: 'application/javascript', body: STRIPE_JS_STUB });
  });
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e));
  page.on('request', (request) => {
    if (request.method() === 'POST' && new URL(request.url()).pathname === '/api/orders') checkouts.push(request.postDataJSON());
  });
  try {
    await body({ page, context, stripeRequests, checkouts });
    assert.deepEqual(errors.map(String), [], 'no uncaught errors in the page');
  } finally {
    await context.close();
  }
}

/** Puts one unit of the product with the most stock into the session's cart; returns it. */
async function cartOfOne(page, context) {
  const { products } = await (await context.request.get('/api/products')).json();
  const product = products.filter((p) => p.stock >= 5).sort((a, b) => b.stock - a.stock)[0];
  assert.ok(product, 'a product with stock');
  await page.goto('/');
  await page.getByRole('button', { name: `Add ${product.name} to cart` }).click();
  await page.getByTestId('cart-count').filter({ hasText: /^1$/ }).waitFor();
  return product;
}

async function fillDelivery(page) {
  await page.getByLabel('Full name').fill('Ada Lovelace');
  await page.getByLabel('E-mail').fill('ada@example.com');
  await page.getByLabel('Address').fill('12 Analytical Row');
  await page.getByLabel('Postal code').fill('N1 9GU');
  await page.getByLabel('City').fill('London');
  // GB: the shop's default rates, the same in every process of the stack.
  await page.getByLabel('Country').selectOption('GB');
}

/** "€52.24" (or "52,24 €", whatever the locale) → 5224. */
function minorUnits(text) {
  return Number(text.replace(/[^0-9]/g, ''));
}

describe('payment', () => {
  test('with a publishable key the Payment Element collects the card and its PaymentMethod id is sent, never a test method', { timeout: TEST_MS, ...KEYED }, async () => {
    await withShop(KEYED_URL, async ({ page, context, stripeRequests, checkouts }) => {
      const config = await (await context.request.get('/api/config')).json();
      assert.match(config.stripe_publishable_key, /^pk_test_/);
      await cartOfOne(page, context);
      assert.deepEqual(stripeRequests, [], 'no Stripe.js before the checkout page');

      await page.goto('/checkout');
      await page.getByTestId('payment-element').locator('.stub-payment-element').waitFor();
      assert.equal(stripeRequests.length, 1, `Stripe.js loaded once: ${stripeRequests}`);
      assert.match(stripeRequests[0], /^https:\/\/js\.stripe\.com\/[a-z0-9]+\/stripe\.js/);
      assert.equal(await page.getByRole('radio').count(), 0, 'no test-method choice');
      assert.equal(await page.getByText('Payment (test cards)').count(), 0);
      await page.getByRole('group', { name: 'Payment', exact: true }).waitFor();

      await fillDelivery(page);
      const total = minorUnits(await page.getByTestId('quote-total').innerText());
      await page.waitForFunction((amount) => window.__stripeStub.updates.some((u) => u.amount === amount), total);
      const seen = await page.evaluate(() => window.__stripeStub);
      assert.deepEqual(seen.keys, [config.stripe_publishable_key]);
      assert.deepEqual(seen.types, ['payment']);
      assert.equal(seen.elementsOptions.length, 1);
      assert.deepEqual(
        { ...seen.elementsOptions[0], amount: undefined },
        { mode: 'payment', amount: undefined, currency: 'eur', paymentMethodCreation: 'manual' },
      );
      await page.screenshot({ path: path.join(RESULTS, 'checkout-payment-element.png'), fullPage: true });

      await page.getByRole('button', { name: 'Place order' }).click();
      await page.waitForURL(/\/orders\/[0-9a-f-]{36}$/);
      const orderId = page.url().split('/').pop();
      assert.equal(checkouts.length, 1);
      assert.equal(checkouts[0].payment_method, STUB_PM, 'the PaymentMethod Stripe.js created');
      assert.equal(checkouts[0].expected_total_minor, total);
      assert.deepEqual((await page.evaluate(() => window.__stripeStub)).created, [STUB_PM]);
      assert.doesNotMatch(JSON.stringify(checkouts), /pm_card_/);
      const order = await (await context.request.get(`/api/orders/${orderId}`)).json();
      assert.equal(order.order_id, orderId, 'the order was placed');
      await page.getByTestId('order-reference').waitFor();
    });
  });

  test('without a publishable key the local test cards are offered and Stripe.js is never loaded', { timeout: TEST_MS }, async () => {
    await withShop(SHOP_URL, async ({ page, context, stripeRequests }) => {
      assert.deepEqual(await (await context.request.get('/api/config')).json(), { stripe_publishable_key: null });
      await cartOfOne(page, context);
      await page.goto('/checkout');
      await page.getByRole('group', { name: 'Payment (test cards)' }).waitFor();
      assert.equal(await page.getByLabel('Visa — succeeds').getAttribute('value'), 'pm_card_visa');
      assert.equal(await page.getByLabel('Visa — declined').getAttribute('value'), 'pm_card_chargeDeclined');
      assert.equal(await page.getByTestId('payment-element').count(), 0);
      await page.screenshot({ path: path.join(RESULTS, 'checkout-test-cards.png'), fullPage: true });
      assert.deepEqual(stripeRequests, [], 'no request to js.stripe.com');
    });
  });
});

// An in-memory stand-in for the web-server's API, installed as `fetch` in component tests.
import { vi } from 'vitest';
import type { Cart, Order, Product } from '../lib/api';

export interface Call {
  method: string;
  url: string;
  body: unknown;
  headers: Record<string, string>;
}

type Answer = { status: number; body: unknown };

export const PRODUCTS: Product[] = [
  { id: 1, sku: 'MUG-ENAMEL', name: 'Enamel camp mug', description: 'A mug.', price_minor: 1450, currency: 'EUR', stock: 40, image_url: '/images/mug-enamel.svg' },
  { id: 9, sku: 'TARP-3X3', name: 'Ultralight tarp 3 × 3 m', description: 'A tarp.', price_minor: 8900, currency: 'EUR', stock: 8, image_url: '/images/tarp-3x3.svg' },
  { id: 12, sku: 'FIRST-AID', name: 'First-aid kit', description: 'A kit.', price_minor: 1990, currency: 'EUR', stock: 3, image_url: '/images/first-aid.svg' },
  { id: 13, sku: 'GONE', name: 'Sold-out thing', description: 'Gone.', price_minor: 500, currency: 'EUR', stock: 0, image_url: '/images/gone.svg' },
];

export function apiError(status: number, code: string, message: string, extra: Record<string, unknown> = {}): Answer {
  return { status, body: { error: { code, message, ...extra } } };
}

export class FakeApi {
  calls: Call[] = [];
  lines = new Map<number, number>();
  /** Answers for `POST /api/orders`, used in turn (the last one repeats). */
  checkoutAnswers: Answer[] = [{ status: 201, body: { order_id: '0190c1d2-0000-7000-8000-00000000abcd', reference: '00000-0ABCD', status: 'placed', currency: 'EUR', subtotal_minor: 0 } }];
  /** Answers for `GET /api/orders/{id}`, used in turn (the last one repeats). */
  orderAnswers: Answer[] = [];
  /** Answers for `POST /api/orders/{id}/cancel`, used in turn (the last one repeats); a `200`
   * answer also becomes what `GET /api/orders/{id}` answers from then on. */
  cancelAnswers: Answer[] = [];
  /** While set, `POST /api/orders/{id}/cancel` waits for this before answering. */
  cancelHold: Promise<void> | null = null;
  /** Set to make `GET /api/cart` fail this many times. */
  cartFailures = 0;
  /** Answers for `POST /api/sign-in/requests`, used in turn (the last one repeats). */
  signInRequestAnswers: Answer[] = [{ status: 202, body: { status: 'accepted', message: 'if this address has orders with us, we have sent it a sign-in link' } }];
  /** Answers for `POST /api/sign-in`, used in turn (the last one repeats). */
  signInAnswers: Answer[] = [{ status: 200, body: { orders: [] } }];
  /** Headers added to every answer of `POST /api/sign-in/requests` (e.g. `Retry-After`). */
  signInRequestHeaders: Record<string, string> = {};
  /** Answers for `GET /api/orders/{id}/payment/action` (3-D Secure), used in turn (the last one
   * repeats). */
  paymentActionAnswers: Answer[] = [];
  /** Answers for `POST /api/orders/{id}/payment/check`, used in turn (the last one repeats). */
  checkAnswers: Answer[] = [];
  /** What `GET /api/config` answers as the Stripe publishable key (null: the local test methods). */
  publishableKey: string | null = null;
  /** Set to make `GET /api/config` fail this many times. */
  configFailures = 0;
  fetch = vi.fn((input: RequestInfo | URL, init?: RequestInit) => this.handle(input, init));

  constructor(lines: [number, number][] = []) {
    for (const [id, q] of lines) this.lines.set(id, q);
  }

  install(): this {
    vi.stubGlobal('fetch', this.fetch);
    return this;
  }

  /** Shipping fee and tax rate (basis points) per destination, as the shop's settings would
   * have them; other countries get `DEFAULT_RATES`. */
  rates: Record<string, [number, number]> = { AT: [690, 2000], CH: [1490, 0] };
  static DEFAULT_RATES: [number, number] = [490, 1900];

  cart(country?: string): Cart {
    const items = [...this.lines].map(([id, quantity]) => {
      const p = PRODUCTS.find((x) => x.id === id)!;
      return {
        product_id: id,
        sku: p.sku,
        name: p.name,
        image_url: p.image_url,
        unit_price_minor: p.price_minor,
        quantity,
        line_total_minor: p.price_minor * quantity,
        stock: p.stock,
      };
    });
    const subtotal = items.reduce((n, i) => n + i.line_total_minor, 0);
    const [fee, bp] = (country && this.rates[country]) || FakeApi.DEFAULT_RATES;
    const shipping = items.length ? fee : 0;
    // Tax on goods and shipping, rounded half up once (libs/domain/src/invoice.rs).
    const tax = items.length ? Math.floor(((subtotal + shipping) * bp + 5000) / 10000) : 0;
    return {
      items,
      subtotal_minor: subtotal,
      country: country ?? null,
      shipping_minor: shipping,
      tax_rate_bp: bp,
      tax_minor: tax,
      total_minor: subtotal + shipping + tax,
      currency: items.length ? 'EUR' : null,
    };
  }

  /** Makes the next cancellations wait; call the returned function to let them answer. */
  holdCancel(): () => void {
    let release!: () => void;
    this.cancelHold = new Promise<void>((resolve) => {
      release = resolve;
    });
    return () => {
      this.cancelHold = null;
      release();
    };
  }

  callsTo(method: string, prefix: string): Call[] {
    return this.calls.filter((c) => c.method === method && c.url.startsWith(prefix));
  }

  private async handle(input: RequestInfo | URL, init?: RequestInit): Promise<Response> {
    const url = typeof input === 'string' ? input : input instanceof URL ? input.pathname : input.url;
    const method = (init?.method ?? 'GET').toUpperCase();
    const body = typeof init?.body === 'string' ? JSON.parse(init.body) : undefined;
    const headers = (init?.headers ?? {}) as Record<string, string>;
    this.calls.push({ method, url, body, headers });
    const path = url.split('?')[0];
    if (method === 'POST' && /^\/api\/orders\/[^/]+\/cancel$/.test(path) && this.cancelHold) await this.cancelHold;
    const query = new URLSearchParams(url.split('?')[1] ?? '');
    const answer = this.route(method, path, body, query);
    const extra = method === 'POST' && path === '/api/sign-in/requests' ? this.signInRequestHeaders : {};
    await Promise.resolve();
    return new Response(JSON.stringify(answer.body), {
      status: answer.status,
      headers: { 'Content-Type': 'application/json', ...extra },
    });
  }

  private route(method: string, url: string, body: any, query: URLSearchParams): Answer {
    if (method === 'POST' && url === '/api/sign-in/requests') {
      return this.signInRequestAnswers.length > 1 ? this.signInRequestAnswers.shift()! : this.signInRequestAnswers[0];
    }
    if (method === 'POST' && url === '/api/sign-in') {
      return this.signInAnswers.length > 1 ? this.signInAnswers.shift()! : this.signInAnswers[0];
    }
    if (method === 'GET' && url === '/api/config') {
      if (this.configFailures > 0) {
        this.configFailures -= 1;
        return apiError(503, 'service_unavailable', 'service unavailable');
      }
      return { status: 200, body: { stripe_publishable_key: this.publishableKey } };
    }
    if (method === 'GET' && url === '/api/products') return { status: 200, body: { products: PRODUCTS } };
    if (method === 'GET' && url === '/api/cart') {
      if (this.cartFailures > 0) {
        this.cartFailures -= 1;
        return apiError(503, 'service_unavailable', 'service unavailable');
      }
      return { status: 200, body: this.cart(query.get('country') ?? undefined) };
    }
    const item = url.match(/^\/api\/cart\/items\/(\d+)$/);
    if (item) {
      const id = Number(item[1]);
      if (method === 'PUT') {
        if (!(body.quantity >= 1 && body.quantity <= 100)) return apiError(422, 'invalid_quantity', 'bad quantity');
        this.lines.set(id, body.quantity);
      } else if (method === 'DELETE') {
        this.lines.delete(id);
      }
      return { status: 200, body: this.cart() };
    }
    if (method === 'POST' && url === '/api/orders') {
      const answer = this.checkoutAnswers.length > 1 ? this.checkoutAnswers.shift()! : this.checkoutAnswers[0];
      if (answer.status === 201) this.lines.clear();
      return answer;
    }
    if (method === 'POST' && /^\/api\/orders\/[^/]+\/cancel$/.test(url)) {
      if (this.cancelAnswers.length === 0) return apiError(404, 'order_not_found', 'no such order');
      const answer = this.cancelAnswers.length > 1 ? this.cancelAnswers.shift()! : this.cancelAnswers[0];
      if (answer.status === 200) this.orderAnswers = [answer];
      return answer;
    }
    if (method === 'GET' && /^\/api\/orders\/[^/]+\/payment\/action$/.test(url)) {
      if (this.paymentActionAnswers.length === 0) return apiError(409, 'payment_action_not_required', 'nothing to confirm');
      return this.paymentActionAnswers.length > 1 ? this.paymentActionAnswers.shift()! : this.paymentActionAnswers[0];
    }
    if (method === 'POST' && /^\/api\/orders\/[^/]+\/payment\/check$/.test(url)) {
      if (this.checkAnswers.length === 0) return { status: 200, body: { checked: 'not_waiting', status: 'invoiced' } };
      return this.checkAnswers.length > 1 ? this.checkAnswers.shift()! : this.checkAnswers[0];
    }
    if (method === 'GET' && url.startsWith('/api/orders/')) {
      if (this.orderAnswers.length === 0) return apiError(404, 'order_not_found', 'no such order');
      return this.orderAnswers.length > 1 ? this.orderAnswers.shift()! : this.orderAnswers[0];
    }
    if (method === 'GET' && url === '/api/orders') return { status: 200, body: { orders: [] } };
    return apiError(404, 'not_found', 'no such resource');
  }
}

export const ORDER_ID = '0190c1d2-0000-7000-8000-00000000abcd';

export function order(overrides: Partial<Order> = {}): Order {
  return {
    order_id: ORDER_ID,
    reference: 'K3M9Q-2XW7A',
    status: 'placed',
    currency: 'EUR',
    subtotal_minor: 2900,
    created_at: '2026-11-23T10:00:00Z',
    items: [{ product_id: 1, sku: 'MUG-ENAMEL', name: 'Enamel camp mug', unit_price_minor: 1450, quantity: 2, line_total_minor: 2900 }],
    timeline: [{ event_id: 'e1', event_type: 'order.placed', occurred_at: '2026-11-23T10:00:00Z', detail: {} }],
    invoice: null,
    invoice_url: null,
    payment: null,
    shipment: null,
    tracking_number: null,
    cancel_reason: null,
    cancellable: false,
    ...overrides,
  };
}

/** A stand-in for the browser's EventSource that tests drive by hand. */
export class FakeEventSource {
  static CONNECTING = 0;
  static OPEN = 1;
  static CLOSED = 2;
  static instances: FakeEventSource[] = [];
  readonly url: string;
  readyState = FakeEventSource.CONNECTING;
  onerror: ((e: Event) => void) | null = null;
  onopen: ((e: Event) => void) | null = null;
  private listeners = new Map<string, ((e: MessageEvent) => void)[]>();

  constructor(url: string) {
    this.url = url;
    FakeEventSource.instances.push(this);
  }

  addEventListener(type: string, fn: (e: MessageEvent) => void) {
    this.listeners.set(type, [...(this.listeners.get(type) ?? []), fn]);
  }

  removeEventListener() {}

  close() {
    this.readyState = FakeEventSource.CLOSED;
  }

  /** Delivers a named message, as the server's `event: order` lines would. */
  emit(type: string, data: unknown) {
    this.readyState = FakeEventSource.OPEN;
    const event = new MessageEvent(type, { data: JSON.stringify(data) });
    for (const fn of this.listeners.get(type) ?? []) fn(event);
  }

  /** A dropped connection: the browser goes on trying (CONNECTING) unless `closed`. */
  fail(closed = false) {
    this.readyState = closed ? FakeEventSource.CLOSED : FakeEventSource.CONNECTING;
    this.onerror?.(new Event('error'));
  }

  static install() {
    FakeEventSource.instances = [];
    vi.stubGlobal('EventSource', FakeEventSource);
  }

  static latest(): FakeEventSource {
    return FakeEventSource.instances[FakeEventSource.instances.length - 1];
  }
}

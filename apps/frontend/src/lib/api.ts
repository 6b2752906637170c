// A small typed client for the web-server's JSON API (see docs/API.md).

export interface Product {
  id: number;
  sku: string;
  name: string;
  description: string;
  price_minor: number;
  currency: string;
  stock: number;
  image_url: string;
}

export interface CartItem {
  product_id: number;
  sku: string;
  name: string;
  image_url: string;
  unit_price_minor: number;
  quantity: number;
  line_total_minor: number;
  stock: number;
}

/** The cart, quoted for a destination: what placing the order would charge (docs/API.md). */
export interface Cart {
  items: CartItem[];
  subtotal_minor: number;
  /** The destination the quote is for (`GET /api/cart?country=AT`); null: the shop's default rates. */
  country?: string | null;
  shipping_minor?: number;
  /** Tax rate in basis points: 1900 is 19 %. */
  tax_rate_bp?: number;
  tax_minor?: number;
  /** Subtotal + shipping + tax: the amount charged for this cart to `country`. */
  total_minor?: number;
  currency: string | null;
}

export interface Address {
  line1: string;
  city: string;
  postal_code: string;
  country: string;
}

export interface Customer {
  name: string;
  email: string;
  address: Address;
}

export interface CheckoutRequest {
  customer: Customer;
  payment_method: string;
  /** The total the page showed: the order is refused with `409 quote_changed` if it would cost another amount. */
  expected_total_minor?: number;
}

export interface PlacedOrder {
  order_id: string;
  status: string;
  currency: string;
  subtotal_minor: number;
  shipping_minor: number;
  tax_minor: number;
  total_minor: number;
}

export interface OrderSummary {
  order_id: string;
  /** The one reference shown for the order everywhere (page, e-mails, invoice), e.g. "K3M9Q-2XW7A". */
  reference: string;
  status: OrderStatus | string;
  currency: string;
  subtotal_minor: number;
  /** The quote of the order (null only for orders placed before quotes were stored and not yet invoiced). */
  shipping_minor?: number | null;
  tax_rate_bp?: number | null;
  tax_minor?: number | null;
  /** What the order costs in all: the amount charged. */
  total_minor?: number | null;
  created_at: string;
}

export type OrderStatus =
  | 'placed'
  | 'invoiced'
  | 'paid'
  | 'shipped'
  | 'delivered'
  | 'payment_failed'
  | 'cancelled'
  | 'refunded';

/** Why an order was cancelled: the shopper asked, the shop did, the payment was not completed in
 * time, or the payment could not be taken. */
export type CancelReason = 'shopper' | 'operator' | 'expired' | 'payment_unusable';

export interface OrderLine {
  product_id: number;
  sku: string;
  name: string;
  unit_price_minor: number;
  quantity: number;
  line_total_minor: number;
}

export interface TimelineEntry {
  event_id?: string;
  event_type: string;
  occurred_at: string;
  detail: Record<string, unknown> | null;
}

export interface Order extends OrderSummary {
  items: OrderLine[];
  timeline: TimelineEntry[];
  invoice: { number: string; tax_minor: number; shipping_minor: number; total_minor: number } | null;
  invoice_url: string | null;
  payment: { status: string; amount_minor: number; failure_reason: string | null } | null;
  shipment: { carrier: string; tracking_number: string; tracking_url: string | null; delivered_at: string | null } | null;
  tracking_number: string | null;
  /** Set once a cancellation was accepted; a paid order keeps `status: "paid"` until the refund is made. */
  cancel_reason: CancelReason | null;
  /** True while the shopper may still cancel (`POST /api/orders/{id}/cancel`). */
  cancellable: boolean;
  /** Set while the payment waits for the shopper to confirm it with their bank (3-D Secure). */
  payment_action?: { type: 'authenticate'; action_url: string; check_url: string } | null;
}

/** What the page needs to let the shopper confirm a payment (3-D Secure): the PaymentIntent's
 * client secret, for Stripe.js, and the page to send the shopper to without Stripe.js (the local
 * fake Stripe's test bank). */
export interface PaymentAction {
  payment_intent_id: string;
  client_secret: string;
  redirect_url: string | null;
}

/** The answer of "I have confirmed": what the check found, and the order's status now. */
export interface PaymentCheck {
  checked: 'moved' | 'already_done' | 'still_waiting' | 'not_waiting';
  status: string;
}

/** An error answer of the API (`{"error": {"code", "message", ...}}`) or a network failure. */
export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly field?: string;
  readonly productId?: number;
  /** Seconds to wait before trying again, from a `429` answer's `Retry-After`. */
  readonly retryAfterS?: number;

  constructor(
    status: number,
    code: string,
    message: string,
    extra: { field?: string; product_id?: number; retry_after_s?: number } = {},
  ) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.field = extra.field;
    this.productId = extra.product_id;
    this.retryAfterS = extra.retry_after_s;
  }
}

/** `status` 0 and this code mean the request never got an answer. */
export const NETWORK_ERROR = 'network_error';

async function request<T>(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<T> {
  const init: RequestInit = {
    method,
    credentials: 'same-origin',
    headers: { Accept: 'application/json', ...headers },
  };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    (init.headers as Record<string, string>)['Content-Type'] = 'application/json';
  }
  let response: Response;
  try {
    response = await fetch(path, init);
  } catch {
    throw new ApiError(0, NETWORK_ERROR, 'The shop could not be reached.');
  }
  let payload: unknown = null;
  const text = await response.text().catch(() => '');
  if (text) {
    try {
      payload = JSON.parse(text);
    } catch {
      payload = null;
    }
  }
  if (!response.ok) {
    const error = (payload as { error?: { code?: string; message?: string; field?: string; product_id?: number } } | null)?.error;
    const retryAfter = Number(response.headers.get('Retry-After'));
    throw new ApiError(
      response.status,
      error?.code ?? (response.status >= 500 ? 'internal' : 'http_' + response.status),
      error?.message ?? `The shop answered ${response.status}.`,
      { field: error?.field, product_id: error?.product_id, retry_after_s: retryAfter > 0 ? retryAfter : undefined },
    );
  }
  return payload as T;
}

/** `GET /api/config`: how the checkout page collects the payment (docs/API.md). */
export interface ShopConfig {
  /** Stripe's publishable key: the page collects the card with the Payment Element. `null`: the
   * local stack, where the page offers Stripe's test payment methods. */
  stripe_publishable_key: string | null;
}

export const api = {
  config: () => request<ShopConfig>('GET', '/api/config'),
  products: () => request<{ products: Product[] }>('GET', '/api/products').then((r) => r.products),
  /** The cart, quoted for parcels to `country` (the shop's default rates without one). */
  cart: (country?: string) =>
    request<Cart>('GET', country ? `/api/cart?country=${encodeURIComponent(country)}` : '/api/cart'),
  setQuantity: (productId: number, quantity: number) =>
    request<Cart>('PUT', `/api/cart/items/${productId}`, { quantity }),
  removeItem: (productId: number) => request<Cart>('DELETE', `/api/cart/items/${productId}`),
  placeOrder: (body: CheckoutRequest, idempotencyKey: string) =>
    request<PlacedOrder>('POST', '/api/orders', body, { 'Idempotency-Key': idempotencyKey }),
  orders: () => request<{ orders: OrderSummary[] }>('GET', '/api/orders').then((r) => r.orders),
  /** The order; `token` is the `t` of an e-mailed order link, passed on to the API as `?t=`. */
  order: (id: string, token?: string) => request<Order>('GET', withLink(`/api/orders/${encodeURIComponent(id)}`, token)),
  /** `200` with the order, or `404 order_not_found` / `409 order_not_cancellable` (the message says why). */
  cancelOrder: (id: string, token?: string) =>
    request<Order>('POST', withLink(`/api/orders/${encodeURIComponent(id)}/cancel`, token)),
  /** What the page needs to let the shopper confirm the payment (3-D Secure); `409
   * payment_action_not_required` once it no longer waits. */
  paymentAction: (id: string, token?: string) =>
    request<PaymentAction>('GET', withLink(`/api/orders/${encodeURIComponent(id)}/payment/action`, token)),
  /** "I have confirmed": the shop reads the payment's end from Stripe and applies it. */
  checkPayment: (id: string, token?: string) =>
    request<PaymentCheck>('POST', withLink(`/api/orders/${encodeURIComponent(id)}/payment/check`, token)),
  orderEventsUrl: (id: string, token?: string) => withLink(`/api/orders/${encodeURIComponent(id)}/events`, token),
  /** Asks for a one-time sign-in link by e-mail: `202` whatever the address (the answer never says
   * whether it has orders), `422 invalid_email`, `429 rate_limited` (`retryAfterS` says when). */
  requestSignIn: (email: string) => request<{ status: string; message: string }>('POST', '/api/sign-in/requests', { email }),
  /** Uses an e-mailed sign-in link's token: the session then sees that address's orders (answered
   * here); `410 sign_in_link_invalid` when it was used, has expired or is not valid. */
  signIn: (token: string) => request<{ orders: OrderSummary[] }>('POST', '/api/sign-in', { token }).then((r) => r.orders),
};

/** `url` with an order link's token as `?t=` (or `&t=`), unchanged without one. */
export function withLink(url: string, token?: string | null): string {
  if (!token) return url;
  return `${url}${url.includes('?') ? '&' : '?'}t=${encodeURIComponent(token)}`;
}

/** A fresh idempotency key (a UUID); falls back to getRandomValues outside secure contexts. */
export function newIdempotencyKey(): string {
  const c = globalThis.crypto;
  if (c && typeof c.randomUUID === 'function') return c.randomUUID();
  const bytes = new Uint8Array(16);
  c.getRandomValues(bytes);
  bytes[6] = (bytes[6] & 0x0f) | 0x40;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

// How the order page lets the shopper confirm a payment their bank asks about (3-D Secure).
//
// With a Stripe publishable key (`stripe_publishable_key` of `GET /api/config`), Stripe.js runs
// the bank's step in the page: `stripe.handleNextAction({clientSecret})`. Without one (the local
// stack), the shopper is sent to the page the PaymentIntent names — the fake Stripe's test bank —
// which sends them back to the order page with `redirect_status` added, as Stripe does after its
// own 3-D Secure page. Either way the page then asks the shop to check the payment
// (`POST /api/orders/{id}/payment/check`).
//
// Stripe.js is loaded from js.stripe.com by a script tag, only when it is needed (Stripe requires
// loading it from there; no package is needed for the one call made here).

import { api, withLink } from './api';

/** The part of Stripe.js used here. */
export interface StripeJs {
  handleNextAction(options: { clientSecret: string }): Promise<{ error?: { message?: string } }>;
}

declare global {
  interface Window {
    Stripe?: (publishableKey: string) => StripeJs;
  }
}

const STRIPE_JS = 'https://js.stripe.com/v3/';

/** The shop's Stripe publishable key, or null (local test methods, or a shop without the
 * config endpoint). */
export async function publishableKey(): Promise<string | null> {
  try {
    const response = await fetch('/api/config', { credentials: 'same-origin', headers: { Accept: 'application/json' } });
    if (!response.ok) return null;
    const body = (await response.json()) as { stripe_publishable_key?: unknown };
    return typeof body.stripe_publishable_key === 'string' && body.stripe_publishable_key ? body.stripe_publishable_key : null;
  } catch {
    return null;
  }
}

/** Stripe.js for `key`, loaded once. */
export async function loadStripe(key: string): Promise<StripeJs> {
  if (!window.Stripe) {
    await new Promise<void>((resolve, reject) => {
      const script = document.createElement('script');
      script.src = STRIPE_JS;
      script.async = true;
      script.onload = () => resolve();
      script.onerror = () => reject(new Error('Stripe.js could not be loaded.'));
      document.head.appendChild(script);
    });
  }
  if (!window.Stripe) throw new Error('Stripe.js could not be loaded.');
  return window.Stripe(key);
}

/** Where the test bank sends the shopper back: this order page (with its link's token). */
export function returnUrl(orderId: string, token: string | null): string {
  return `${window.location.origin}${withLink(`/orders/${encodeURIComponent(orderId)}`, token)}`;
}

/** How the page leaves for the bank's page (replaced in tests: jsdom cannot navigate). */
export const browser = {
  go(url: string): void {
    window.location.assign(url);
  },
};

/** What starting the confirmation did. */
export type Started = { kind: 'redirected' } | { kind: 'done'; error: string | null };

/**
 * Starts the bank's step for the order's payment: in the page with Stripe.js (resolves when it
 * is over, with Stripe's message if it failed), or by sending the browser to the test bank.
 */
export async function startConfirmation(
  orderId: string,
  token: string | null,
  navigate: (url: string) => void = (url) => browser.go(url),
): Promise<Started> {
  const action = await api.paymentAction(orderId, token ?? undefined);
  const key = await publishableKey();
  if (key) {
    const stripe = await loadStripe(key);
    const result = await stripe.handleNextAction({ clientSecret: action.client_secret });
    return { kind: 'done', error: result.error?.message ?? null };
  }
  if (!action.redirect_url) throw new Error('This payment cannot be confirmed here.');
  const url = new URL(action.redirect_url);
  url.searchParams.set('return_url', returnUrl(orderId, token));
  navigate(url.toString());
  return { kind: 'redirected' };
}

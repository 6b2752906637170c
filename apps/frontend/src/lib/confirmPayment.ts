// How the order page lets the shopper confirm a payment their bank asks about (3-D Secure).
//
// With a Stripe publishable key (`stripe_publishable_key` of `GET /api/config`), Stripe.js runs
// the bank's step in the page: `stripe.handleNextAction({clientSecret})`. Without one (the local
// stack), the shopper is sent to the page the PaymentIntent names — the fake Stripe's test bank —
// which sends them back to the order page with `redirect_status` added, as Stripe does after its
// own 3-D Secure page. Either way the page then asks the shop to check the payment
// (`POST /api/orders/{id}/payment/check`).
//
// Stripe.js is loaded only when it is needed, with the checkout page's loader
// (`@stripe/stripe-js/pure`: it adds js.stripe.com's script on the first call, not on import).

import { loadStripe } from '@stripe/stripe-js/pure';
import { api, withLink } from './api';

/** The shop's Stripe publishable key, or null (the local test methods, or the config could
 * not be read: the test bank's page is the way then). */
export async function publishableKey(): Promise<string | null> {
  try {
    return (await api.config()).stripe_publishable_key ?? null;
  } catch {
    return null;
  }
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
    if (!stripe) throw new Error('Stripe.js could not be loaded.');
    const result = await stripe.handleNextAction({ clientSecret: action.client_secret });
    return { kind: 'done', error: result.error?.message ?? null };
  }
  if (!action.redirect_url) throw new Error('This payment cannot be confirmed here.');
  const url = new URL(action.redirect_url);
  url.searchParams.set('return_url', returnUrl(orderId, token));
  navigate(url.toString());
  return { kind: 'redirected' };
}

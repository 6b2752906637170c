// The card form when the shop has a Stripe publishable key: Stripe's Payment Element in deferred
// intent mode. The card goes from this page straight to Stripe (in Stripe's own frames); the shop
// only ever gets the PaymentMethod id Stripe answers with, which billing then charges.
import { useCallback, useEffect, useMemo, useState } from 'react';
import { loadStripe } from '@stripe/stripe-js/pure';
import type { Stripe, StripeElementsOptions, StripePaymentElementChangeEvent } from '@stripe/stripe-js';
import { Elements, PaymentElement, useElements, useStripe } from '@stripe/react-stripe-js';

/** What the shopper entered, as a PaymentMethod id, or the sentence to show at the field. */
export type Collected = { ok: true; id: string } | { ok: false; message: string };

/** Turns the card entered into a PaymentMethod id; `details` become its billing details. */
export type Collector = (details: { name: string; email: string }) => Promise<Collected>;

export const CARD_FAILED = 'Your card details could not be checked. Please try again.';
export const FORM_NOT_LOADED = 'The card form could not be loaded. Check your connection and try again.';

interface Props {
  publishableKey: string;
  /** The amount the shopper is shown, in minor units (the quote's total once known). */
  amountMinor: number;
  currency: string;
  /** Receives the collector once Stripe is ready, `null` while it is not. */
  onCollector: (collect: Collector | null) => void;
  /** The shopper changed the card details: a PaymentMethod made before no longer stands for them. */
  onChange: () => void;
}

type Loaded = { status: 'loading' } | { status: 'ready'; stripe: Stripe } | { status: 'failed' };

/** Loads Stripe.js (only now: `@stripe/stripe-js/pure` adds no script on import) and renders the
 * Payment Element. */
export function StripePayment({ publishableKey, amountMinor, currency, onCollector, onChange }: Props) {
  const [loaded, setLoaded] = useState<Loaded>({ status: 'loading' });
  const [attempt, setAttempt] = useState(0);

  useEffect(() => {
    let current = true;
    setLoaded({ status: 'loading' });
    loadStripe(publishableKey).then(
      (stripe) => current && setLoaded(stripe ? { status: 'ready', stripe } : { status: 'failed' }),
      () => current && setLoaded({ status: 'failed' }),
    );
    return () => {
      current = false;
    };
  }, [publishableKey, attempt]);

  const options = useMemo<StripeElementsOptions>(
    () => ({
      mode: 'payment',
      amount: Math.max(1, amountMinor),
      currency: currency.toLowerCase(),
      paymentMethodCreation: 'manual',
    }),
    [amountMinor, currency],
  );

  if (loaded.status === 'failed') {
    return (
      <div className="notice notice-error" role="alert">
        <p>{FORM_NOT_LOADED}</p>
        <button type="button" className="button button-secondary" onClick={() => setAttempt((n) => n + 1)}>
          Retry
        </button>
      </div>
    );
  }
  if (loaded.status === 'loading') {
    return (
      <p className="muted" role="status">
        Loading the card form…
      </p>
    );
  }
  return (
    <Elements stripe={loaded.stripe} options={options}>
      <CardForm onCollector={onCollector} onChange={onChange} />
    </Elements>
  );
}

function CardForm({ onCollector, onChange }: Pick<Props, 'onCollector' | 'onChange'>) {
  const stripe = useStripe();
  const elements = useElements();
  const [loadError, setLoadError] = useState<string | null>(null);

  useEffect(() => {
    if (!stripe || !elements) {
      onCollector(null);
      return;
    }
    onCollector(async (details) => {
      try {
        const submitted = await elements.submit();
        if (submitted.error) return { ok: false, message: submitted.error.message ?? CARD_FAILED };
        const created = await stripe.createPaymentMethod({ elements, params: { billing_details: details } });
        if (created.error || !created.paymentMethod) return { ok: false, message: created.error?.message ?? CARD_FAILED };
        return { ok: true, id: created.paymentMethod.id };
      } catch {
        return { ok: false, message: CARD_FAILED };
      }
    });
    return () => onCollector(null);
  }, [stripe, elements, onCollector]);

  const changed = useCallback((_event: StripePaymentElementChangeEvent) => onChange(), [onChange]);

  return (
    <>
      <PaymentElement id="payment-element" onChange={changed} onLoadError={() => setLoadError(FORM_NOT_LOADED)} />
      {loadError && (
        <p className="error-text" role="alert">
          {loadError}
        </p>
      )}
    </>
  );
}

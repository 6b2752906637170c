import { useCallback, useEffect, useRef, useState, type FormEvent } from 'react';
import { Link, useNavigate } from 'react-router-dom';
import { api, newIdempotencyKey, type Cart, type ShopConfig } from '../lib/api';
import { useCart } from '../lib/cart';
import {
  COUNTRIES,
  FIELD_LABELS,
  PAYMENT_CHOICES,
  mapCheckoutError,
  validate,
  type CheckoutForm,
  type FieldErrors,
  type FieldKey,
  type MappedError,
} from '../lib/checkout';
import { formatMoney } from '../lib/format';
import { LoadError, Loading } from '../components/Status';
import { StripePayment, type Collector } from '../components/StripePayment';

/** How the page takes the payment: the local test methods or Stripe's Payment Element. */
type PaymentSetup = { status: 'loading' } | { status: 'failed'; error: unknown } | { status: 'ready'; config: ShopConfig };

/** Codes after which a PaymentMethod made for this attempt must not be sent again. */
const PAYMENT_METHOD_REFUSED = ['invalid_payment_method', 'card_data_not_accepted', 'test_payment_method_in_live_mode'];

const EMPTY_FORM: CheckoutForm = {
  name: '',
  email: '',
  line1: '',
  city: '',
  postal_code: '',
  country: '',
  payment_method: 'pm_card_visa',
};

const FIELD_ORDER: FieldKey[] = ['name', 'email', 'line1', 'city', 'postal_code', 'country', 'payment_method'];

export function CheckoutPage() {
  const { cart, loading, loadError, reload } = useCart();
  const navigate = useNavigate();
  const [form, setForm] = useState<CheckoutForm>(EMPTY_FORM);
  const [errors, setErrors] = useState<FieldErrors>({});
  const [lineErrors, setLineErrors] = useState<Record<number, string>>({});
  const [formError, setFormError] = useState<string | null>(null);
  const [submitting, setSubmitting] = useState(false);
  const [touched, setTouched] = useState<Partial<Record<FieldKey, boolean>>>({});
  // One key per checkout attempt: every click of "Place order" on this page reuses it, so a
  // double click or a retry after a lost answer can never place a second order.
  const idempotencyKey = useRef<string>(newIdempotencyKey());
  const inFlight = useRef(false);
  const fieldRefs = useRef<Partial<Record<FieldKey, HTMLElement | null>>>({});
  const summaryRef = useRef<HTMLDivElement>(null);
  // The cart quoted for the chosen country: lines, shipping, tax and total, exactly what placing
  // the order charges (the server refuses the order if its total differs from the one shown).
  const [quote, setQuote] = useState<Cart | null>(null);
  const [quoteError, setQuoteError] = useState(false);
  const quoteRequest = useRef(0);
  // With a publishable key the card is collected by Stripe's Payment Element; `collect` turns it
  // into a PaymentMethod id. The id made for this attempt is kept while the card details stay
  // the same, so that a retry after a lost answer sends the same body with the same key.
  const [setup, setSetup] = useState<PaymentSetup>({ status: 'loading' });
  const collect = useRef<Collector | null>(null);
  const createdMethod = useRef<string | null>(null);
  const publishableKey = setup.status === 'ready' ? setup.config.stripe_publishable_key : null;
  const onCollector = useCallback((next: Collector | null) => {
    collect.current = next;
  }, []);
  const onCardChange = useCallback(() => {
    createdMethod.current = null;
  }, []);

  const loadSetup = useCallback(async () => {
    setSetup({ status: 'loading' });
    try {
      setSetup({ status: 'ready', config: await api.config() });
    } catch (error) {
      setSetup({ status: 'failed', error });
    }
  }, []);

  useEffect(() => {
    void loadSetup();
  }, [loadSetup]);

  const refreshQuote = useCallback(async (country: string) => {
    const ticket = ++quoteRequest.current;
    try {
      const fresh = await api.cart(country || undefined);
      if (ticket === quoteRequest.current) {
        setQuote(fresh);
        setQuoteError(false);
      }
    } catch {
      if (ticket === quoteRequest.current) setQuoteError(true);
    }
  }, []);

  useEffect(() => {
    if (cart) void refreshQuote(form.country);
  }, [cart, form.country, refreshQuote]);

  useEffect(() => {
    document.title = 'Checkout — ChargeFlow Outdoor';
    // The cart may have changed in another tab: read it fresh.
    void reload();
  }, [reload]);

  const set = (key: FieldKey, value: string) => {
    const next = { ...form, [key]: value };
    setForm(next);
    if (touched[key] || errors[key]) {
      setErrors((prev) => ({ ...prev, [key]: validate(next)[key] }));
    }
  };
  const blur = (key: FieldKey) => {
    setTouched((t) => ({ ...t, [key]: true }));
    if (form[key].trim() !== '' || errors[key]) setErrors((prev) => ({ ...prev, [key]: validate(form)[key] }));
  };

  const focusFirst = (fieldErrors: FieldErrors) => {
    const first = FIELD_ORDER.find((k) => fieldErrors[k]);
    if (first) fieldRefs.current[first]?.focus();
    else summaryRef.current?.focus();
  };

  const showMapped = (mapped: MappedError) => {
    setErrors(mapped.fields);
    setLineErrors(mapped.lines);
    setFormError(mapped.form);
    focusFirst(mapped.fields);
  };

  /** The PaymentMethod id to send: the chosen test method, or the Payment Element's card. */
  const paymentMethod = async (): Promise<{ id: string } | { error: string }> => {
    if (!publishableKey) return { id: form.payment_method };
    if (createdMethod.current) return { id: createdMethod.current };
    if (!collect.current) return { error: 'The card form is still loading. Please wait a moment.' };
    const collected = await collect.current({ name: form.name.trim(), email: form.email.trim() });
    if (!collected.ok) return { error: collected.message };
    createdMethod.current = collected.id;
    return { id: collected.id };
  };

  const onSubmit = async (event: FormEvent) => {
    event.preventDefault();
    if (inFlight.current) return;
    if (setup.status !== 'ready') {
      showMapped({ fields: {}, lines: {}, form: 'The payment options are not loaded yet. Please wait a moment or retry.' });
      return;
    }
    const found = validate(form, { paymentElement: publishableKey !== null });
    if (Object.keys(found).length > 0) {
      setErrors(found);
      setFormError('Please fix the highlighted fields.');
      focusFirst(found);
      return;
    }
    if (!cart || cart.items.length === 0) {
      showMapped({ fields: {}, lines: {}, form: 'Your cart is empty. Add something from the shop before checking out.' });
      return;
    }
    const shown = quote && quote.country === form.country ? quote.total_minor : undefined;
    inFlight.current = true;
    setSubmitting(true);
    setErrors({});
    setLineErrors({});
    setFormError(null);
    try {
      const method = await paymentMethod();
      if ('error' in method) {
        showMapped({ fields: { payment_method: method.error }, lines: {}, form: 'Please fix the highlighted fields.' });
        return;
      }
      const placed = await api.placeOrder(
        {
          customer: {
            name: form.name.trim(),
            email: form.email.trim(),
            address: {
              line1: form.line1.trim(),
              city: form.city.trim(),
              postal_code: form.postal_code.trim(),
              country: form.country,
            },
          },
          payment_method: method.id,
          expected_total_minor: shown,
        },
        idempotencyKey.current,
      );
      void reload();
      navigate(`/orders/${placed.order_id}`, { state: { justPlaced: true } });
    } catch (e) {
      const code = (e as { code?: string }).code;
      if (code === 'idempotency_key_reused') idempotencyKey.current = newIdempotencyKey();
      if (code === 'out_of_stock' || code === 'quote_changed') void reload();
      if (code && PAYMENT_METHOD_REFUSED.includes(code)) createdMethod.current = null;
      showMapped(mapCheckoutError(e, cart.items));
    } finally {
      inFlight.current = false;
      setSubmitting(false);
    }
  };

  if (loadError && !cart) {
    return (
      <section>
        <h1>Checkout</h1>
        <LoadError what="your cart" error={loadError} onRetry={() => void reload()} />
      </section>
    );
  }
  if (!cart) {
    return (
      <section>
        <h1>Checkout</h1>
        {loading && <Loading label="Loading your cart…" />}
      </section>
    );
  }

  const currency = cart.currency ?? 'EUR';
  const field = (key: Exclude<FieldKey, 'country' | 'payment_method'>, props: { type?: string; autoComplete: string; inputMode?: 'email' | 'text' }) => {
    const id = `checkout-${key}`;
    const errorId = `${id}-error`;
    return (
      <div className={`field${errors[key] ? ' field-invalid' : ''}`}>
        <label htmlFor={id}>{FIELD_LABELS[key]}</label>
        <input
          id={id}
          name={key}
          type={props.type ?? 'text'}
          autoComplete={props.autoComplete}
          inputMode={props.inputMode}
          value={form[key]}
          maxLength={250}
          ref={(el) => {
            fieldRefs.current[key] = el;
          }}
          aria-invalid={errors[key] ? true : undefined}
          aria-describedby={errors[key] ? errorId : undefined}
          required
          onChange={(e) => set(key, e.target.value)}
          onBlur={() => blur(key)}
        />
        {errors[key] && (
          <p id={errorId} className="error-text field-error">
            {errors[key]}
          </p>
        )}
      </div>
    );
  };

  return (
    <section aria-labelledby="checkout-title" className="checkout">
      <h1 id="checkout-title">Checkout</h1>
      <div className="checkout-grid">
        <form className="card checkout-form" onSubmit={(e) => void onSubmit(e)} noValidate aria-describedby={formError ? 'checkout-form-error' : undefined}>
          <fieldset>
            <legend>Delivery</legend>
            {field('name', { autoComplete: 'name' })}
            {field('email', { type: 'email', autoComplete: 'email', inputMode: 'email' })}
            {field('line1', { autoComplete: 'address-line1' })}
            <div className="field-row">
              {field('postal_code', { autoComplete: 'postal-code' })}
              {field('city', { autoComplete: 'address-level2' })}
            </div>
            <div className={`field${errors.country ? ' field-invalid' : ''}`}>
              <label htmlFor="checkout-country">{FIELD_LABELS.country}</label>
              <select
                id="checkout-country"
                name="country"
                autoComplete="country"
                value={form.country}
                ref={(el) => {
                  fieldRefs.current.country = el;
                }}
                aria-invalid={errors.country ? true : undefined}
                aria-describedby={errors.country ? 'checkout-country-error' : undefined}
                required
                onChange={(e) => set('country', e.target.value)}
                onBlur={() => blur('country')}
              >
                <option value="">Choose a country…</option>
                {COUNTRIES.map((c) => (
                  <option key={c.code} value={c.code}>
                    {c.name}
                  </option>
                ))}
              </select>
              {errors.country && (
                <p id="checkout-country-error" className="error-text field-error">
                  {errors.country}
                </p>
              )}
            </div>
          </fieldset>
          <fieldset
            className={`payment${errors.payment_method ? ' field-invalid' : ''}`}
            aria-describedby={errors.payment_method ? 'checkout-payment-error' : undefined}
          >
            <legend>{publishableKey ? 'Payment' : 'Payment (test cards)'}</legend>
            {setup.status === 'loading' && <Loading label="Loading the payment options…" />}
            {setup.status === 'failed' && <LoadError what="the payment options" error={setup.error} onRetry={() => void loadSetup()} />}
            {setup.status === 'ready' && publishableKey && (
              <div
                className="payment-element"
                data-testid="payment-element"
                tabIndex={-1}
                ref={(el) => {
                  fieldRefs.current.payment_method = el;
                }}
              >
                <StripePayment
                  publishableKey={publishableKey}
                  amountMinor={paymentAmount(cart, quote, form.country)}
                  currency={currency}
                  onCollector={onCollector}
                  onChange={onCardChange}
                />
              </div>
            )}
            {setup.status === 'ready' &&
              !publishableKey &&
              PAYMENT_CHOICES.map((choice, i) => (
                <label key={choice.id} className="radio">
                  <input
                    type="radio"
                    name="payment_method"
                    value={choice.id}
                    checked={form.payment_method === choice.id}
                    ref={
                      i === 0
                        ? (el) => {
                            fieldRefs.current.payment_method = el;
                          }
                        : undefined
                    }
                    onChange={() => set('payment_method', choice.id)}
                  />
                  <span>
                    <span className="radio-label">{choice.label}</span>
                    <span className="radio-hint">{choice.hint}</span>
                  </span>
                </label>
              ))}
            {errors.payment_method && (
              <p id="checkout-payment-error" className="error-text field-error">
                {errors.payment_method}
              </p>
            )}
          </fieldset>
          <div ref={summaryRef} tabIndex={-1} className="form-error-slot">
            {formError && (
              <p id="checkout-form-error" className="notice notice-error" role="alert">
                {formError}
              </p>
            )}
          </div>
          <button type="submit" className="button button-wide button-primary" disabled={submitting} aria-busy={submitting}>
            {submitting ? 'Placing order…' : placeOrderLabel(quote, form.country, currency)}
          </button>
        </form>

        <aside className="card order-summary" aria-labelledby="summary-title">
          <h2 id="summary-title">Your order</h2>
          {cart.items.length === 0 ? (
            <p>
              Your cart is empty. <Link to="/">Browse the shop</Link>
            </p>
          ) : (
            <ul className="summary-lines">
              {cart.items.map((item) => (
                <li key={item.product_id} className={lineErrors[item.product_id] ? 'line-invalid' : undefined} data-product-id={item.product_id}>
                  <div className="summary-row">
                    <span>
                      {item.quantity} × {item.name}
                    </span>
                    <span>{formatMoney(item.line_total_minor, currency)}</span>
                  </div>
                  {lineErrors[item.product_id] && (
                    <p className="error-text line-error" role="alert">
                      {lineErrors[item.product_id]}
                    </p>
                  )}
                </li>
              ))}
            </ul>
          )}
          <QuoteLines cart={cart} quote={quote} country={form.country} failed={quoteError} currency={currency} />
          <Link to="/cart">Edit cart</Link>
        </aside>
      </div>
    </section>
  );
}

/** The amount the Payment Element is set up for: the quote's total once the country is known,
 * the subtotal before (only shown by wallets; the server charges the total it quotes). */
function paymentAmount(cart: Cart, quote: Cart | null, country: string): number {
  const fresh = quote && country && quote.country === country ? quote : null;
  return fresh?.total_minor ?? cart.subtotal_minor;
}

/** "Place order · €52.24" once the total for the chosen country is known. */
function placeOrderLabel(quote: Cart | null, country: string, currency: string): string {
  if (!quote || !country || quote.country !== country || quote.total_minor == null || quote.items.length === 0) return 'Place order';
  return `Place order · ${formatMoney(quote.total_minor, currency)}`;
}

/** Subtotal, shipping, tax and total of the quote for `country`: the amount the card is charged. */
function QuoteLines(props: { cart: Cart; quote: Cart | null; country: string; failed: boolean; currency: string }) {
  const { cart, quote, country, failed, currency } = props;
  const fresh = quote && country && quote.country === country ? quote : null;
  return (
    <dl className="quote" aria-live="polite" data-testid="quote">
      <div className="summary-row">
        <dt>Subtotal</dt>
        <dd data-testid="quote-subtotal">{formatMoney((fresh ?? cart).subtotal_minor, currency)}</dd>
      </div>
      {fresh && fresh.shipping_minor != null && fresh.tax_minor != null && fresh.total_minor != null ? (
        <>
          <div className="summary-row">
            <dt>Shipping</dt>
            <dd data-testid="quote-shipping">{formatMoney(fresh.shipping_minor, currency)}</dd>
          </div>
          <div className="summary-row">
            <dt>Tax ({formatRate(fresh.tax_rate_bp ?? 0)})</dt>
            <dd data-testid="quote-tax">{formatMoney(fresh.tax_minor, currency)}</dd>
          </div>
          <div className="summary-row summary-total">
            <dt>Total</dt>
            <dd>
              <strong data-testid="quote-total">{formatMoney(fresh.total_minor, currency)}</strong>
            </dd>
          </div>
          <p className="muted">This is the amount your card will be charged.</p>
        </>
      ) : (
        <p className="muted" data-testid="quote-pending">
          {failed
            ? 'The total could not be worked out just now; it will be shown as soon as the shop answers.'
            : country
              ? 'Working out shipping and tax…'
              : 'Choose the country to see shipping, tax and the total.'}
        </p>
      )}
    </dl>
  );
}

/** 1900 basis points → "19%", 750 → "7.5%". */
function formatRate(bp: number): string {
  return `${(bp / 100).toLocaleString('en', { maximumFractionDigits: 2 })}%`;
}

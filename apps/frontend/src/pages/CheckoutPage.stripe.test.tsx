// The checkout page in both payment modes: with a publishable key (Stripe's Payment Element, with
// Stripe.js replaced by a fake object of the same shape) and without (the local test cards).
import { beforeEach, describe, expect, it, vi } from 'vitest';
import { act, screen, waitFor } from '@testing-library/react';
import { loadStripe } from '@stripe/stripe-js/pure';
import { apiError, FakeApi } from '../test/fakeApi';
import { fillValid, setup } from '../test/checkout';
import { FORM_NOT_LOADED } from '../components/StripePayment';

vi.mock('@stripe/stripe-js/pure', () => ({ loadStripe: vi.fn() }));

const KEY = 'pk_test_51ChargeFlowVitest';
const CREATED = 'pm_1QbZx2ChargeFlowStub0001';

type Handler = (event: unknown) => void;

/** A stand-in for what Stripe.js's `Stripe(key)` returns, as far as the page and
 * @stripe/react-stripe-js use it. */
function fakeStripe() {
  const handlers = new Map<string, Handler>();
  const element = {
    mount: vi.fn((node: HTMLElement) => {
      node.appendChild(document.createElement('iframe')).title = 'Secure payment input frame';
    }),
    on: vi.fn((event: string, handler: Handler) => handlers.set(event, handler)),
    off: vi.fn(),
    update: vi.fn(),
    destroy: vi.fn(),
  };
  const elements = {
    create: vi.fn(() => element),
    update: vi.fn(),
    submit: vi.fn(async (): Promise<{ error?: { message: string } }> => ({})),
  };
  const stripe = {
    elements: vi.fn(() => elements),
    createToken: vi.fn(),
    confirmCardPayment: vi.fn(),
    createPaymentMethod: vi.fn(
      async (): Promise<{ paymentMethod?: { id: string }; error?: { message: string } }> => ({ paymentMethod: { id: CREATED } }),
    ),
  };
  /** The shopper edits the card details (the Payment Element's `change` event). */
  const change = () => act(() => handlers.get('change')?.({ elementType: 'payment', complete: true }));
  return { stripe, elements, element, change };
}

const placeOrder = () => screen.getByRole('button', { name: /^Place order/ });

describe('checkout with a Stripe publishable key', () => {
  let api: FakeApi;
  let fake: ReturnType<typeof fakeStripe>;
  beforeEach(() => {
    api = new FakeApi([
      [1, 2],
      [9, 1],
    ]).install();
    api.publishableKey = KEY;
    fake = fakeStripe();
    vi.mocked(loadStripe).mockReset().mockResolvedValue(fake.stripe as never);
  });
  /** The page rendered, its basket shown and the Payment Element mounted. */
  async function readyWithElement() {
    const user = setup();
    await screen.findByText('2 × Enamel camp mug');
    await waitFor(() => expect(fake.element.mount).toHaveBeenCalled());
    return user;
  }

  it('renders the Payment Element for the quoted total and offers no test cards', async () => {
    const user = setup();
    await screen.findByText('2 × Enamel camp mug');
    await waitFor(() => expect(fake.element.mount).toHaveBeenCalledTimes(1));
    expect(loadStripe).toHaveBeenCalledWith(KEY);
    expect(fake.elements.create).toHaveBeenCalledWith('payment', expect.anything());
    // Before a country is chosen the amount is the subtotal: 2 × 14.50 + 89.00.
    expect(fake.stripe.elements).toHaveBeenCalledWith({ mode: 'payment', amount: 11800, currency: 'eur', paymentMethodCreation: 'manual' });
    expect(screen.getByTestId('payment-element').querySelector('iframe')).toBeTruthy();
    expect(screen.queryAllByRole('radio')).toHaveLength(0);
    expect(screen.queryByText(/test cards/)).toBeNull();
    // The quote's total once the country is known: what the card is charged.
    await fillValid(user);
    await waitFor(() => expect(fake.elements.update).toHaveBeenLastCalledWith({ amount: 14625 }));
  });

  it('sends the PaymentMethod id Stripe.js created for the card, never a test method', async () => {
    const user = await readyWithElement();
    await fillValid(user);
    await screen.findByTestId('quote-total');
    await user.click(placeOrder());
    await waitFor(() => expect(screen.getByTestId('location').textContent).toMatch(/^\/orders\//));
    expect(fake.elements.submit).toHaveBeenCalledTimes(1);
    expect(fake.stripe.createPaymentMethod).toHaveBeenCalledWith({
      elements: fake.elements,
      params: { billing_details: { name: 'Ada Lovelace', email: 'ada@example.com' } },
    });
    const [post] = api.callsTo('POST', '/api/orders');
    expect((post.body as { payment_method: string }).payment_method).toBe(CREATED);
    expect(JSON.stringify(api.calls)).not.toMatch(/pm_card_/);
  });

  it("shows Stripe.js's errors at the payment field and sends nothing", async () => {
    fake.elements.submit.mockResolvedValueOnce({ error: { message: 'Your card number is incomplete.' } });
    fake.stripe.createPaymentMethod.mockResolvedValueOnce({ error: { message: 'Your card was declined.' } });
    const user = await readyWithElement();
    await fillValid(user);

    await user.click(placeOrder());
    const error = await screen.findByText('Your card number is incomplete.');
    expect(error.id).toBe('checkout-payment-error');
    expect(screen.getByRole('group', { name: 'Payment' }).getAttribute('aria-describedby')).toBe('checkout-payment-error');
    expect(screen.getByText('Please fix the highlighted fields.')).toBeTruthy();
    expect(document.activeElement).toBe(screen.getByTestId('payment-element'));

    await user.click(placeOrder());
    expect(await screen.findByText('Your card was declined.')).toBeTruthy();
    expect(api.callsTo('POST', '/api/orders')).toHaveLength(0);
  });

  it('checks the other fields before asking Stripe for a PaymentMethod', async () => {
    const user = await readyWithElement();
    await user.click(placeOrder());
    expect(await screen.findByText('Please enter your name.')).toBeTruthy();
    expect(document.getElementById('checkout-payment-error')).toBeNull();
    expect(fake.stripe.createPaymentMethod).not.toHaveBeenCalled();
  });

  it('a retry sends the same PaymentMethod under the same key; changed card details make a new one', async () => {
    api.checkoutAnswers = [
      apiError(503, 'service_unavailable', 'service unavailable'),
      apiError(503, 'service_unavailable', 'service unavailable'),
      api.checkoutAnswers[0],
    ];
    const user = await readyWithElement();
    await fillValid(user);
    await user.click(placeOrder());
    await screen.findByText(/Something went wrong on our side/);
    await user.click(placeOrder());
    await waitFor(() => expect(api.callsTo('POST', '/api/orders')).toHaveLength(2));
    expect(fake.stripe.createPaymentMethod).toHaveBeenCalledTimes(1);

    fake.stripe.createPaymentMethod.mockResolvedValueOnce({ paymentMethod: { id: 'pm_1QbZx2ChargeFlowStub0002' } });
    fake.change();
    await user.click(placeOrder());
    await waitFor(() => expect(screen.getByTestId('location').textContent).toMatch(/^\/orders\//));
    const sent = api.callsTo('POST', '/api/orders').map((c) => (c.body as { payment_method: string }).payment_method);
    expect(sent).toEqual([CREATED, CREATED, 'pm_1QbZx2ChargeFlowStub0002']);
    const keys = api.callsTo('POST', '/api/orders').map((c) => c.headers['Idempotency-Key']);
    expect(keys[1]).toBe(keys[0]);
  });

  it('puts the server refusing card data next to the payment field and makes a new PaymentMethod next time', async () => {
    api.checkoutAnswers = [
      apiError(422, 'card_data_not_accepted', 'looks like a card number', { field: 'payment_method' }),
      api.checkoutAnswers[0],
    ];
    const user = await readyWithElement();
    await fillValid(user);
    await user.click(placeOrder());
    expect((await screen.findByText(/Card details are never sent to the shop/)).id).toBe('checkout-payment-error');
    await user.click(placeOrder());
    await waitFor(() => expect(screen.getByTestId('location').textContent).toMatch(/^\/orders\//));
    expect(fake.stripe.createPaymentMethod).toHaveBeenCalledTimes(2);
  });

  it('says so, with a retry, when Stripe.js cannot be loaded', async () => {
    vi.mocked(loadStripe).mockRejectedValueOnce(new Error('Failed to load Stripe.js'));
    const user = setup();
    expect(await screen.findByText(FORM_NOT_LOADED)).toBeTruthy();
    await user.click(screen.getByRole('button', { name: 'Retry' }));
    await waitFor(() => expect(fake.element.mount).toHaveBeenCalled());
    expect(loadStripe).toHaveBeenCalledTimes(2);
  });
});

describe('checkout without a publishable key (the local stack)', () => {
  let api: FakeApi;
  beforeEach(() => {
    api = new FakeApi([[1, 2]]).install();
    vi.mocked(loadStripe).mockReset();
  });

  it('offers the test cards and never loads Stripe.js', async () => {
    setup();
    await screen.findByText('2 × Enamel camp mug');
    expect((await screen.findByRole('radio', { name: /Visa — succeeds/ })).getAttribute('value')).toBe('pm_card_visa');
    expect(screen.getByRole('group', { name: 'Payment (test cards)' })).toBeTruthy();
    expect(screen.queryByTestId('payment-element')).toBeNull();
    expect(loadStripe).not.toHaveBeenCalled();
  });

  it('offers a retry when the payment options cannot be read, and then the test cards', async () => {
    api.configFailures = 1;
    const user = setup();
    expect(await screen.findByText(/We could not load the payment options/)).toBeTruthy();
    await user.click(screen.getByRole('button', { name: 'Retry' }));
    expect(await screen.findByRole('radio', { name: /Visa — succeeds/ })).toBeTruthy();
    expect(loadStripe).not.toHaveBeenCalled();
  });
});

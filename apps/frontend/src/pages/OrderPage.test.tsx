import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { act, screen, waitFor } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { OrderPage } from './OrderPage';
import { apiError, FakeApi, FakeEventSource, order, ORDER_ID } from '../test/fakeApi';
import { renderAt } from '../test/render';
import { formatDateTime, formatMoney } from '../lib/format';
import { browser } from '../lib/confirmPayment';
import { loadStripe } from '@stripe/stripe-js/pure';

vi.mock('@stripe/stripe-js/pure', () => ({ loadStripe: vi.fn() }));

const invoiced = order({
  status: 'invoiced',
  timeline: [
    { event_id: 'e1', event_type: 'order.placed', occurred_at: '2026-11-23T10:00:00Z', detail: {} },
    { event_id: 'e2', event_type: 'invoice.generated', occurred_at: '2026-11-23T10:00:01Z', detail: { invoice_number: 'INV-2026-000007', total_minor: 3769 } },
  ],
  invoice: { number: 'INV-2026-000007', tax_minor: 379, shipping_minor: 490, total_minor: 3769 },
  invoice_url: `/api/orders/${ORDER_ID}/invoice.pdf`,
  payment: { status: 'pending', amount_minor: 3769, failure_reason: null },
});

const shipped = order({
  ...invoiced,
  status: 'shipped',
  timeline: [
    ...invoiced.timeline,
    { event_id: 'e3', event_type: 'payment.succeeded', occurred_at: '2026-11-23T10:00:02Z', detail: { amount_minor: 3769 } },
    { event_id: 'e4', event_type: 'shipment.created', occurred_at: '2026-11-23T10:00:03Z', detail: { carrier: 'ParcelNet', tracking_number: 'PN42' } },
  ],
  payment: { status: 'succeeded', amount_minor: 3769, failure_reason: null },
  shipment: { carrier: 'ParcelNet', tracking_number: 'PN42', tracking_url: null, delivered_at: null },
  tracking_number: 'PN42',
});

const DELIVERED_AT = '2026-11-25T14:30:00Z';

const delivered = order({
  ...shipped,
  status: 'delivered',
  timeline: [
    ...shipped.timeline,
    { event_id: 'e5', event_type: 'shipment.delivered', occurred_at: DELIVERED_AT, detail: { delivered_at: DELIVERED_AT, carrier: 'ParcelNet', tracking_number: 'PN42' } },
  ],
  shipment: { carrier: 'ParcelNet', tracking_number: 'PN42', tracking_url: null, delivered_at: DELIVERED_AT },
});

const paid = order({
  ...invoiced,
  status: 'paid',
  timeline: [...invoiced.timeline, { event_id: 'e3', event_type: 'payment.succeeded', occurred_at: '2026-11-23T10:00:02Z', detail: { amount_minor: 3769 } }],
  payment: { status: 'succeeded', amount_minor: 3769, failure_reason: null },
});

/** The order as `POST /cancel` answers for an unpaid one. */
function cancelledFrom(o: typeof invoiced, reason: 'shopper' | 'operator' | 'expired' | 'payment_unusable' = 'shopper') {
  return order({
    ...o,
    status: 'cancelled',
    cancel_reason: reason,
    cancellable: false,
    timeline: [...o.timeline, { event_id: 'e9', event_type: 'order.cancelled', occurred_at: '2026-11-23T10:05:00Z', detail: { reason } }],
  });
}

const declined = order({
  status: 'payment_failed',
  timeline: [
    ...invoiced.timeline,
    { event_id: 'e3', event_type: 'payment.failed', occurred_at: '2026-11-23T10:00:02Z', detail: { reason: 'Your card was declined.' } },
  ],
  payment: { status: 'failed', amount_minor: 3769, failure_reason: 'Your card was declined.' },
});

describe('order page', () => {
  let api: FakeApi;
  beforeEach(() => {
    api = new FakeApi().install();
    FakeEventSource.install();
  });
  afterEach(() => {
    FakeEventSource.instances = [];
  });

  it('loads the order, then follows the event stream to "Shipped" and on to "Delivered"', async () => {
    api.orderAnswers = [{ status: 200, body: order() }];
    renderAt(`/orders/${ORDER_ID}`, '/orders/:id', <OrderPage />);
    expect(await screen.findByText('Order placed')).toBeTruthy();
    expect(screen.getByTestId('order-status').textContent).toBe('Placed');
    expect(screen.getByTestId('order-reference').textContent).toBe('K3M9Q-2XW7A');
    // The title follows the answer in an effect, which may run after the text is on the page.
    await waitFor(() => expect(document.title).toBe('Order K3M9Q-2XW7A — ChargeFlow Outdoor'));
    const es = FakeEventSource.latest();
    expect(es.url).toBe(`/api/orders/${ORDER_ID}/events`);

    act(() => es.emit('order', invoiced));
    expect(await screen.findByText('Invoice issued')).toBeTruthy();
    expect(screen.getByText('Live')).toBeTruthy();
    expect(screen.getByTestId('invoice-link').getAttribute('href')).toBe(`/api/orders/${ORDER_ID}/invoice.pdf`);

    act(() => es.emit('order', shipped));
    expect(await screen.findByText('Payment received')).toBeTruthy();
    expect(screen.getByTestId('order-status').textContent).toBe('Shipped');
    expect(screen.getByText('Tracking number PN42 (ParcelNet)')).toBeTruthy();
    expect(screen.getByTestId('tracking-number').textContent).toBe('PN42');
    expect(screen.getByTestId('payment-status').textContent).toMatch(/^Paid /);
    // A shipped order is still to be delivered: the stream stays open.
    expect(es.readyState).toBe(FakeEventSource.OPEN);
    expect(screen.getByText('Live')).toBeTruthy();
    expect(screen.getByText('On its way to you…')).toBeTruthy();

    act(() => es.emit('order', delivered));
    await waitFor(() => expect(screen.getByTestId('order-status').textContent).toBe('Delivered'));
    expect(screen.getByTestId('order-status').className).toContain('badge-good');
    // A finished order needs no stream.
    expect(es.readyState).toBe(FakeEventSource.CLOSED);
    expect(screen.queryByText('Live')).toBeNull();
    expect(screen.queryByText('On its way to you…')).toBeNull();
  });

  it('keeps a newer stream message over an older answer that arrives after it', async () => {
    api.orderAnswers = [{ status: 200, body: order() }, { status: 200, body: paid }];
    renderAt(`/orders/${ORDER_ID}`, '/orders/:id', <OrderPage />);
    expect(await screen.findByText('Order placed')).toBeTruthy();
    act(() => FakeEventSource.latest().emit('order', shipped));
    await waitFor(() => expect(screen.getByTestId('order-status').textContent).toBe('Shipped'));
    // The stream goes away; the poll's answer was read before the shipment.
    act(() => FakeEventSource.latest().fail());
    await waitFor(() => expect(api.callsTo('GET', `/api/orders/${ORDER_ID}`).length).toBeGreaterThanOrEqual(2), {
      timeout: 3000,
    });
    await act(async () => {});
    expect(screen.getByTestId('order-status').textContent).toBe('Shipped');
    expect(screen.getByText('Tracking number PN42 (ParcelNet)')).toBeTruthy();
  });

  it('shows a delivered order with the delivery date, and opens no lasting stream', async () => {
    api.orderAnswers = [{ status: 200, body: delivered }];
    renderAt(`/orders/${ORDER_ID}`, '/orders/:id', <OrderPage />);
    const banner = await screen.findByTestId('order-banner');
    expect(banner.textContent).toContain('Delivered');
    expect(banner.textContent).toContain(formatDateTime(DELIVERED_AT));
    expect(banner.querySelector('time')?.getAttribute('dateTime')).toBe(DELIVERED_AT);
    expect(screen.getByTestId('tracking-number').textContent).toBe('PN42');
    expect(document.querySelector('[data-event="shipment.delivered"] .timeline-label')?.textContent).toBe('Delivered');
    expect(screen.queryByRole('button', { name: 'Cancel order' })).toBeNull();
    await waitFor(() => expect(FakeEventSource.latest().readyState).toBe(FakeEventSource.CLOSED));
  });

  it('shows "reconnecting…" and polls while the stream is away', async () => {
    api.orderAnswers = [{ status: 200, body: order() }, { status: 200, body: invoiced }];
    renderAt(`/orders/${ORDER_ID}`, '/orders/:id', <OrderPage />);
    expect(await screen.findByText('Order placed')).toBeTruthy();
    act(() => FakeEventSource.latest().fail());
    expect(await screen.findByText('Reconnecting…')).toBeTruthy();
    // Polling every second picks up the change without the stream.
    expect(await screen.findByText('Invoice issued', {}, { timeout: 3000 })).toBeTruthy();
    expect(api.callsTo('GET', `/api/orders/${ORDER_ID}`).length).toBeGreaterThanOrEqual(2);
    // The stream is back: live again.
    act(() => FakeEventSource.latest().emit('order', shipped));
    await waitFor(() => expect(screen.getByTestId('order-status').textContent).toBe('Shipped'));
    expect(screen.queryByText('Reconnecting…')).toBeNull();
  });

  it('reopens a stream that the browser gave up on', async () => {
    api.orderAnswers = [{ status: 200, body: order() }];
    renderAt(`/orders/${ORDER_ID}`, '/orders/:id', <OrderPage />);
    await screen.findByText('Order placed');
    const first = FakeEventSource.latest();
    act(() => first.fail(true));
    expect(await screen.findByText('Reconnecting…')).toBeTruthy();
    await waitFor(() => expect(FakeEventSource.instances.length).toBe(2), { timeout: 3500 });
    act(() => FakeEventSource.latest().emit('order', shipped));
    await waitFor(() => expect(screen.getByTestId('order-status').textContent).toBe('Shipped'));
  });

  it('says the payment failed, with the reason', async () => {
    api.orderAnswers = [{ status: 200, body: order() }];
    renderAt(`/orders/${ORDER_ID}`, '/orders/:id', <OrderPage />);
    await screen.findByText('Order placed');
    act(() => FakeEventSource.latest().emit('order', declined));
    expect(await screen.findByText('The payment failed.')).toBeTruthy();
    expect(screen.getByRole('alert').textContent).toContain('The bank said: Your card was declined.');
    expect(screen.getByTestId('order-status').textContent).toBe('Payment failed');
    expect(document.querySelector('[data-event="payment.failed"]')?.textContent).toContain('Reason: Your card was declined.');
    // In plain words: no money taken, the goods are back on sale.
    expect(screen.getByRole('alert').textContent).toContain('Your card was not charged');
    expect(screen.getByRole('alert').textContent).toContain('put back on sale');
  });

  it('offers "Cancel order" only while the order is cancellable', async () => {
    api.orderAnswers = [{ status: 200, body: order() }];
    renderAt(`/orders/${ORDER_ID}`, '/orders/:id', <OrderPage />);
    await screen.findByText('Order placed');
    expect(screen.queryByRole('button', { name: 'Cancel order' })).toBeNull();
    const es = FakeEventSource.latest();
    act(() => es.emit('order', { ...invoiced, cancellable: true }));
    expect(await screen.findByRole('button', { name: 'Cancel order' })).toBeTruthy();
    act(() => es.emit('order', shipped));
    await waitFor(() => expect(screen.getByTestId('order-status').textContent).toBe('Shipped'));
    expect(screen.queryByRole('button', { name: 'Cancel order' })).toBeNull();
  });

  it('cancels after an in-page confirmation: one call, buttons disabled meanwhile, then the cancelled banner', async () => {
    api.orderAnswers = [{ status: 200, body: { ...invoiced, cancellable: true } }];
    api.cancelAnswers = [{ status: 200, body: cancelledFrom(invoiced) }];
    const user = userEvent.setup();
    renderAt(`/orders/${ORDER_ID}`, '/orders/:id', <OrderPage />);
    await user.click(await screen.findByRole('button', { name: 'Cancel order' }));
    // Asked in the page, nothing sent yet.
    expect(screen.getByRole('group', { name: /Cancel this order\?/ })).toBeTruthy();
    expect(api.callsTo('POST', `/api/orders/${ORDER_ID}/cancel`)).toHaveLength(0);

    const release = api.holdCancel();
    await user.click(screen.getByRole('button', { name: 'Yes, cancel' }));
    await waitFor(() => expect((screen.getByRole('button', { name: 'Yes, cancel' }) as HTMLButtonElement).disabled).toBe(true));
    expect((screen.getByRole('button', { name: 'Keep order' }) as HTMLButtonElement).disabled).toBe(true);
    await user.click(screen.getByRole('button', { name: 'Yes, cancel' }));
    act(() => release());

    expect(await screen.findByText('This order was cancelled. Nothing was charged.')).toBeTruthy();
    const calls = api.callsTo('POST', `/api/orders/${ORDER_ID}/cancel`);
    expect(calls).toHaveLength(1);
    expect(calls[0].url).toBe(`/api/orders/${ORDER_ID}/cancel`);
    expect(calls[0].body).toBeUndefined();
    expect(screen.getByTestId('order-status').textContent).toBe('Cancelled');
    expect(document.querySelector('[data-event="order.cancelled"]')?.textContent).toContain('Cancelled at your request');
    expect(screen.queryByRole('button', { name: 'Cancel order' })).toBeNull();
    expect(screen.queryByRole('alert')).toBeNull();
    // Cancelled is final: the stream is closed.
    expect(FakeEventSource.latest().readyState).toBe(FakeEventSource.CLOSED);
  });

  it('"Keep order" sends nothing and offers the button again', async () => {
    api.orderAnswers = [{ status: 200, body: { ...invoiced, cancellable: true } }];
    api.cancelAnswers = [{ status: 200, body: cancelledFrom(invoiced) }];
    const user = userEvent.setup();
    renderAt(`/orders/${ORDER_ID}`, '/orders/:id', <OrderPage />);
    await user.click(await screen.findByRole('button', { name: 'Cancel order' }));
    await user.click(screen.getByRole('button', { name: 'Keep order' }));
    expect(screen.queryByRole('group', { name: /Cancel this order\?/ })).toBeNull();
    const again = screen.getByRole('button', { name: 'Cancel order' });
    expect(document.activeElement).toBe(again);
    expect(api.callsTo('POST', `/api/orders/${ORDER_ID}/cancel`)).toHaveLength(0);
    expect(screen.getByTestId('order-status').textContent).toBe('Invoiced');
  });

  it('shows why the shop refused to cancel (409 order_not_cancellable)', async () => {
    api.orderAnswers = [{ status: 200, body: { ...paid, cancellable: true } }];
    api.cancelAnswers = [apiError(409, 'order_not_cancellable', 'The order has already been handed to the carrier.')];
    const user = userEvent.setup();
    renderAt(`/orders/${ORDER_ID}`, '/orders/:id', <OrderPage />);
    await user.click(await screen.findByRole('button', { name: 'Cancel order' }));
    await user.click(screen.getByRole('button', { name: 'Yes, cancel' }));
    const alert = await screen.findByRole('alert');
    expect(alert.textContent).toContain('The order has already been handed to the carrier.');
    expect(api.callsTo('POST', `/api/orders/${ORDER_ID}/cancel`)).toHaveLength(1);
    expect(screen.getByTestId('order-status').textContent).toBe('Paid');
    // The order the stream sends next (shipped, not cancellable) hides the button, not the reason.
    act(() => FakeEventSource.latest().emit('order', shipped));
    await waitFor(() => expect(screen.queryByRole('button', { name: 'Cancel order' })).toBeNull());
    expect(screen.getByRole('alert').textContent).toContain('already been handed to the carrier');
  });

  it('follows a paid order through an accepted cancellation to the refund', async () => {
    api.orderAnswers = [{ status: 200, body: { ...paid, cancellable: true } }];
    api.cancelAnswers = [{ status: 200, body: { ...paid, cancel_reason: 'shopper', cancellable: false } }];
    const user = userEvent.setup();
    renderAt(`/orders/${ORDER_ID}`, '/orders/:id', <OrderPage />);
    await user.click(await screen.findByRole('button', { name: 'Cancel order' }));
    await user.click(screen.getByRole('button', { name: 'Yes, cancel' }));
    expect(await screen.findByText('Cancellation accepted: your payment is being refunded.')).toBeTruthy();
    expect(screen.getByText('Refunding your payment…')).toBeTruthy();
    expect(screen.getByTestId('payment-status').textContent).toMatch(/being refunded$/);
    // Still paid until the refund is made: keep listening.
    const es = FakeEventSource.latest();
    expect(es.readyState).not.toBe(FakeEventSource.CLOSED);

    act(() =>
      es.emit('order', {
        ...paid,
        status: 'refunded',
        cancel_reason: 'shopper',
        payment: { status: 'refunded', amount_minor: 3769, failure_reason: null },
        timeline: [
          ...paid.timeline,
          { event_id: 'e9', event_type: 'order.cancelled', occurred_at: '2026-11-23T10:05:00Z', detail: { reason: 'shopper' } },
          { event_id: 'e10', event_type: 'payment.refunded', occurred_at: '2026-11-23T10:05:01Z', detail: { amount_minor: 3769 } },
        ],
      }),
    );
    expect(await screen.findByText('This order was cancelled and your payment was refunded.')).toBeTruthy();
    expect(screen.queryByText(/We could not ship this order/)).toBeNull();
    expect(screen.getByTestId('order-status').textContent).toBe('Refunded');
    expect(es.readyState).toBe(FakeEventSource.CLOSED);
  });

  it('says an unpaid order expired because the payment was not completed in time', async () => {
    api.orderAnswers = [{ status: 200, body: cancelledFrom(invoiced, 'expired') }];
    renderAt(`/orders/${ORDER_ID}`, '/orders/:id', <OrderPage />);
    const banner = await screen.findByTestId('order-banner');
    expect(banner.textContent).toContain('expired because the payment was not completed in time');
    expect(banner.textContent).toContain('Nothing was charged.');
    expect(document.querySelector('[data-event="order.cancelled"]')?.textContent).toContain(
      'Cancelled because the payment was not completed in time',
    );
  });

  it('keeps the "could not ship" text for a refund without a cancellation', async () => {
    api.orderAnswers = [{ status: 200, body: order({ ...paid, status: 'refunded', payment: { status: 'refunded', amount_minor: 3769, failure_reason: null } }) }];
    renderAt(`/orders/${ORDER_ID}`, '/orders/:id', <OrderPage />);
    expect((await screen.findByRole('alert')).textContent).toContain('We could not ship this order, so your payment has been refunded.');
    expect(screen.queryByText('This order was cancelled and your payment was refunded.')).toBeNull();
  });

  it('shows a message and a Retry button when the order cannot be loaded', async () => {
    api.orderAnswers = [apiError(503, 'service_unavailable', 'service unavailable'), { status: 200, body: invoiced }];
    const user = userEvent.setup();
    renderAt(`/orders/${ORDER_ID}`, '/orders/:id', <OrderPage />);
    expect(await screen.findByText('We could not load this order.')).toBeTruthy();
    await user.click(screen.getByRole('button', { name: 'Retry' }));
    expect(await screen.findByText('Invoice issued')).toBeTruthy();
  });

  it('says when the order does not exist (or is not yours)', async () => {
    renderAt(`/orders/${ORDER_ID}`, '/orders/:id', <OrderPage />);
    expect(await screen.findByText(/We could not find this order/)).toBeTruthy();
    await waitFor(() => expect(FakeEventSource.latest().readyState).toBe(FakeEventSource.CLOSED));
  });

  describe('opened by an e-mailed order link', () => {
    const TOKEN = '1900000000.b5_tLZ2uNvd1kVn0PFwj3sSwJ2rZrCbiL4i7W5T0d0E';

    it('passes the token on to the order, its stream, its invoice link and its cancellation', async () => {
      api.orderAnswers = [{ status: 200, body: { ...invoiced, cancellable: true } }];
      api.cancelAnswers = [{ status: 200, body: cancelledFrom(invoiced) }];
      const user = userEvent.setup();
      renderAt(`/orders/${ORDER_ID}?t=${TOKEN}`, '/orders/:id', <OrderPage />);
      expect(await screen.findByText('Invoice issued')).toBeTruthy();

      expect(api.callsTo('GET', `/api/orders/${ORDER_ID}`).map((c) => c.url)).toContain(`/api/orders/${ORDER_ID}?t=${TOKEN}`);
      expect(FakeEventSource.latest().url).toBe(`/api/orders/${ORDER_ID}/events?t=${TOKEN}`);
      expect(screen.getByTestId('invoice-link').getAttribute('href')).toBe(`/api/orders/${ORDER_ID}/invoice.pdf?t=${TOKEN}`);
      await user.click(screen.getByRole('button', { name: 'Cancel order' }));
      await user.click(screen.getByRole('button', { name: 'Yes, cancel' }));
      await waitFor(() => expect(screen.getByTestId('order-status').textContent).toBe('Cancelled'));
      expect(api.callsTo('POST', `/api/orders/${ORDER_ID}/cancel`).map((c) => c.url)).toEqual([`/api/orders/${ORDER_ID}/cancel?t=${TOKEN}`]);
    });

    it('shows the not-found state for a link the shop refuses, with a way to find the orders by e-mail', async () => {
      renderAt(`/orders/${ORDER_ID}?t=${TOKEN}x`, '/orders/:id', <OrderPage />);
      const alert = await screen.findByRole('alert');
      expect(alert.textContent).toContain('We could not find this order.');
      expect(screen.getByRole('link', { name: 'Find my orders by e-mail' }).getAttribute('href')).toBe('/find-orders');
      expect(api.callsTo('GET', '/api/orders/').every((c) => c.url.endsWith(`?t=${TOKEN}x`))).toBe(true);
    });

    it('sends no token when the page was opened without one', async () => {
      api.orderAnswers = [{ status: 200, body: invoiced }];
      renderAt(`/orders/${ORDER_ID}`, '/orders/:id', <OrderPage />);
      expect(await screen.findByText('Invoice issued')).toBeTruthy();
      expect(api.calls.some((c) => c.url.includes('t='))).toBe(false);
      expect(FakeEventSource.latest().url).toBe(`/api/orders/${ORDER_ID}/events`);
    });
  });

  describe('a payment the bank asks the shopper to confirm (3-D Secure)', () => {
    const waiting = order({
      ...invoiced,
      timeline: [
        ...invoiced.timeline,
        { event_id: 'e3', event_type: 'payment.action_required', occurred_at: '2026-11-23T10:00:02Z', detail: { payment_intent_id: 'pi_1' } },
      ],
      payment: { status: 'requires_action', amount_minor: 3769, failure_reason: null },
      payment_action: {
        type: 'authenticate',
        action_url: `/api/orders/${ORDER_ID}/payment/action`,
        check_url: `/api/orders/${ORDER_ID}/payment/check`,
      },
    });
    const confirmed = order({ ...paid, payment_action: null });
    const failed = order({
      ...declined,
      payment: { status: 'failed', amount_minor: 3769, failure_reason: 'The provided PaymentMethod has failed authentication.' },
    });
    const ACTION = { payment_intent_id: 'pi_1', client_secret: 'pi_1_secret_abc', redirect_url: 'http://127.0.0.1:8420/_test_bank/pi_1' };

    afterEach(() => {
      vi.restoreAllMocks();
      vi.mocked(loadStripe).mockReset();
    });

    it('asks to confirm the payment, and sends the shopper to the test bank with the way back to this page', async () => {
      api.orderAnswers = [{ status: 200, body: waiting }];
      api.paymentActionAnswers = [{ status: 200, body: ACTION }];
      const go = vi.spyOn(browser, 'go').mockImplementation(() => {});
      const user = userEvent.setup();
      renderAt(`/orders/${ORDER_ID}`, '/orders/:id', <OrderPage />);

      const box = await screen.findByTestId('confirm-payment');
      expect(box.textContent).toContain('Confirm your payment');
      expect(box.textContent).toContain(formatMoney(3769, 'EUR'));
      expect(screen.getByText('Payment waiting for your confirmation')).toBeTruthy();
      expect(screen.getByTestId('payment-status').textContent).toBe(`Waiting for your confirmation (${formatMoney(3769, 'EUR')})`);
      expect(screen.getByTestId('order-status').textContent).toBe('Invoiced');
      expect(screen.getByText('Waiting for you to confirm the payment…')).toBeTruthy();
      await user.click(screen.getByRole('button', { name: 'Confirm your payment' }));

      await waitFor(() => expect(go).toHaveBeenCalledTimes(1));
      const target = new URL(go.mock.calls[0][0]);
      expect(`${target.origin}${target.pathname}`).toBe(ACTION.redirect_url);
      expect(target.searchParams.get('return_url')).toBe(`${window.location.origin}/orders/${ORDER_ID}`);
      expect(api.callsTo('GET', `/api/orders/${ORDER_ID}/payment/action`)).toHaveLength(1);
      expect(api.callsTo('POST', `/api/orders/${ORDER_ID}/payment/check`)).toHaveLength(0);
    });

    it('checks the payment when the bank sends the shopper back, and shows the order paid', async () => {
      api.orderAnswers = [
        { status: 200, body: waiting },
        { status: 200, body: confirmed },
      ];
      api.checkAnswers = [{ status: 200, body: { checked: 'moved', status: 'paid' } }];
      renderAt(`/orders/${ORDER_ID}?redirect_status=succeeded&payment_intent=pi_1`, '/orders/:id', <OrderPage />);

      await waitFor(() => expect(screen.getByTestId('order-status').textContent).toBe('Paid'));
      expect(api.callsTo('POST', `/api/orders/${ORDER_ID}/payment/check`)).toHaveLength(1);
      expect(screen.queryByTestId('confirm-payment')).toBeNull();
      expect(screen.getByTestId('payment-status').textContent).toMatch(/^Paid /);
    });

    it('shows the failed payment when the bank did not confirm it', async () => {
      api.orderAnswers = [
        { status: 200, body: waiting },
        { status: 200, body: failed },
      ];
      api.checkAnswers = [{ status: 200, body: { checked: 'moved', status: 'payment_failed' } }];
      renderAt(`/orders/${ORDER_ID}?redirect_status=failed&payment_intent=pi_1`, '/orders/:id', <OrderPage />);

      const alert = await screen.findByRole('alert');
      expect(alert.textContent).toContain('The payment failed.');
      expect(alert.textContent).toContain('failed authentication');
      expect(screen.queryByTestId('confirm-payment')).toBeNull();
    });

    it('with a publishable key, confirms in the page with Stripe.js and never leaves it', async () => {
      api.orderAnswers = [
        { status: 200, body: waiting },
        { status: 200, body: confirmed },
      ];
      api.paymentActionAnswers = [{ status: 200, body: { ...ACTION, redirect_url: null } }];
      api.publishableKey = 'pk_test_123';
      api.checkAnswers = [{ status: 200, body: { checked: 'moved', status: 'paid' } }];
      const handleNextAction = vi.fn(async () => ({}));
      vi.mocked(loadStripe).mockResolvedValue({ handleNextAction } as never);
      const go = vi.spyOn(browser, 'go').mockImplementation(() => {});
      const user = userEvent.setup();
      renderAt(`/orders/${ORDER_ID}`, '/orders/:id', <OrderPage />);

      await user.click(await screen.findByRole('button', { name: 'Confirm your payment' }));

      await waitFor(() => expect(screen.getByTestId('order-status').textContent).toBe('Paid'));
      expect(loadStripe).toHaveBeenCalledWith('pk_test_123');
      expect(handleNextAction).toHaveBeenCalledWith({ clientSecret: 'pi_1_secret_abc' });
      expect(go).not.toHaveBeenCalled();
      expect(api.callsTo('POST', `/api/orders/${ORDER_ID}/payment/check`)).toHaveLength(1);
    });

    it("says so when Stripe.js could not confirm it, and offers the confirmation again", async () => {
      api.orderAnswers = [{ status: 200, body: waiting }];
      api.paymentActionAnswers = [{ status: 200, body: ACTION }];
      api.publishableKey = 'pk_test_123';
      api.checkAnswers = [{ status: 200, body: { checked: 'still_waiting', status: 'invoiced' } }];
      vi.mocked(loadStripe).mockResolvedValue({
        handleNextAction: vi.fn(async () => ({ error: { message: 'The authentication window was closed.' } })),
      } as never);
      const user = userEvent.setup();
      renderAt(`/orders/${ORDER_ID}`, '/orders/:id', <OrderPage />);

      await user.click(await screen.findByRole('button', { name: 'Confirm your payment' }));

      const alert = await screen.findByRole('alert');
      expect(alert.textContent).toBe('Your bank did not confirm the payment: The authentication window was closed.');
      expect(screen.getByRole('button', { name: 'Confirm your payment' })).toBeTruthy();
      expect(screen.getByTestId('order-status').textContent).toBe('Invoiced');
    });

    it('offers nothing to confirm once the payment no longer waits', async () => {
      api.orderAnswers = [{ status: 200, body: confirmed }];
      renderAt(`/orders/${ORDER_ID}`, '/orders/:id', <OrderPage />);
      await waitFor(() => expect(screen.getByTestId('order-status').textContent).toBe('Paid'));
      expect(screen.queryByTestId('confirm-payment')).toBeNull();
      expect(screen.queryByRole('button', { name: 'Confirm your payment' })).toBeNull();
    });
  });
});

import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { act, screen, waitFor } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { OrderPage } from './OrderPage';
import { apiError, FakeApi, FakeEventSource, order, ORDER_ID } from '../test/fakeApi';
import { renderAt } from '../test/render';

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
  shipment: { carrier: 'ParcelNet', tracking_number: 'PN42', tracking_url: null },
  tracking_number: 'PN42',
});

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

  it('loads the order, then follows the event stream to "Shipped"', async () => {
    api.orderAnswers = [{ status: 200, body: order() }];
    renderAt(`/orders/${ORDER_ID}`, '/orders/:id', <OrderPage />);
    expect(await screen.findByText('Order placed')).toBeTruthy();
    expect(screen.getByTestId('order-status').textContent).toBe('Placed');
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
    // A finished order needs no stream.
    expect(es.readyState).toBe(FakeEventSource.CLOSED);
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
});

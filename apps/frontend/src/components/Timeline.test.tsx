import { describe, expect, it } from 'vitest';
import { render, screen } from '@testing-library/react';
import { Timeline } from './Timeline';
import type { TimelineEntry } from '../lib/api';
import { formatMoney } from '../lib/format';
import { isTerminal, statusLabel, statusTone } from '../lib/status';

const at = '2026-11-23T10:00:00Z';
const entry = (event_type: string, detail: Record<string, unknown> = {}): TimelineEntry => ({
  event_id: event_type,
  event_type,
  occurred_at: at,
  detail,
});

function item(type: string): HTMLElement {
  const el = document.querySelector(`[data-event="${type}"]`);
  expect(el, `timeline entry ${type}`).not.toBeNull();
  return el as HTMLElement;
}

describe('timeline', () => {
  it('labels the steps of a shipped order', () => {
    render(
      <Timeline
        status="shipped"
        currency="EUR"
        timeline={[
          entry('order.placed'),
          entry('invoice.generated', { invoice_number: 'INV-2026-000001', total_minor: 4379 }),
          entry('payment.succeeded', { payment_intent_id: 'pi_1', amount_minor: 4379 }),
          entry('shipment.created', { carrier: 'ParcelNet', tracking_number: 'PN123456' }),
        ]}
      />,
    );
    const labels = [...document.querySelectorAll('[data-event] .timeline-label')].map((e) => e.textContent);
    expect(labels).toEqual(['Order placed', 'Invoice issued', 'Payment received', 'Shipped']);
    expect(item('invoice.generated').textContent).toContain(`Invoice INV-2026-000001, total ${formatMoney(4379, 'EUR')}`);
    expect(item('payment.succeeded').textContent).toContain(`${formatMoney(4379, 'EUR')} charged to your card`);
    expect(item('shipment.created').textContent).toContain('Tracking number PN123456 (ParcelNet)');
    expect(item('order.placed').querySelector('time')?.getAttribute('dateTime')).toBe(at);
    // A shipped order is still on its way.
    expect(document.querySelector('.timeline-pending')?.textContent).toBe('On its way to you…');
  });

  it('shows the delivery, and nothing pending once delivered', () => {
    render(
      <Timeline
        status="delivered"
        currency="EUR"
        timeline={[
          entry('order.placed'),
          entry('shipment.created', { carrier: 'ParcelNet', tracking_number: 'PN123456' }),
          entry('shipment.delivered', { delivered_at: at, carrier: 'ParcelNet', tracking_number: 'PN123456' }),
        ]}
      />,
    );
    const delivered = item('shipment.delivered');
    expect(delivered.querySelector('.timeline-label')?.textContent).toBe('Delivered');
    expect(delivered.textContent).toContain('Tracking number PN123456 (ParcelNet)');
    expect(delivered.className).toContain('tone-good');
    expect(document.querySelector('.timeline-pending')).toBeNull();
  });

  it('says why an order was cancelled, for each reason', () => {
    const reasons = ['shopper', 'operator', 'expired', 'payment_unusable', 'gremlins'];
    render(
      <Timeline
        status="cancelled"
        currency="EUR"
        timeline={[entry('order.placed'), ...reasons.map((reason) => ({ ...entry('order.cancelled', { reason }), event_id: reason }))]}
      />,
    );
    const entries = [...document.querySelectorAll('[data-event="order.cancelled"]')];
    expect(entries.map((e) => e.querySelector('.timeline-label')?.textContent)).toEqual(Array(reasons.length).fill('Order cancelled'));
    expect(entries.map((e) => e.querySelector('.timeline-detail')?.textContent ?? null)).toEqual([
      'Cancelled at your request',
      'Cancelled by the shop',
      'Cancelled because the payment was not completed in time',
      'Cancelled because the payment could not be taken',
      null,
    ]);
    expect(entries.every((e) => e.className.includes('tone-bad'))).toBe(true);
    expect(document.querySelector('.timeline-pending')).toBeNull();
  });

  it('shows the refund as the next step of an accepted cancellation of a paid order', () => {
    render(
      <Timeline
        status="paid"
        cancelReason="shopper"
        currency="EUR"
        timeline={[entry('order.placed'), entry('payment.succeeded', { amount_minor: 1000 }), entry('order.cancelled', { reason: 'shopper' })]}
      />,
    );
    expect(document.querySelector('.timeline-pending')?.textContent).toBe('Refunding your payment…');
    expect(screen.queryByText('Handing your parcel to the carrier…')).toBeNull();
  });

  it('shows why a payment failed', () => {
    render(
      <Timeline
        status="payment_failed"
        currency="EUR"
        timeline={[entry('order.placed'), entry('invoice.generated', { invoice_number: 'INV-1' }), entry('payment.failed', { reason: 'Your card was declined.' })]}
      />,
    );
    const failed = item('payment.failed');
    expect(failed.querySelector('.timeline-label')?.textContent).toBe('Payment failed');
    expect(failed.textContent).toContain('Reason: Your card was declined.');
    expect(failed.className).toContain('tone-bad');
    expect(document.querySelector('.timeline-pending')).toBeNull();
  });

  it('shows a failed shipment and the refund', () => {
    render(
      <Timeline
        status="refunded"
        currency="EUR"
        timeline={[
          entry('order.placed'),
          entry('invoice.generated'),
          entry('payment.succeeded', { amount_minor: 1000 }),
          entry('shipment.failed', { reason: 'address rejected by the carrier' }),
          entry('payment.refunded', { refund_id: 're_1', amount_minor: 1000, reason: 'shipment failed' }),
        ]}
      />,
    );
    expect(item('shipment.failed').querySelector('.timeline-label')?.textContent).toBe('Shipment failed');
    expect(item('shipment.failed').textContent).toContain('Reason: address rejected by the carrier');
    expect(item('payment.refunded').querySelector('.timeline-label')?.textContent).toBe('Refunded');
    expect(item('payment.refunded').textContent).toContain(`${formatMoney(1000, 'EUR')} returned to your card`);
  });

  it('copes with missing details and unknown events, and shows the next step', () => {
    render(<Timeline status="invoiced" currency="EUR" timeline={[entry('order.placed'), entry('invoice.generated', {}), { ...entry('payment.failed'), detail: null }, entry('order.gift_wrapped')]} />);
    expect(item('invoice.generated').querySelector('.timeline-detail')).toBeNull();
    expect(item('payment.failed').textContent).toContain('Your card was not charged.');
    expect(item('order.gift_wrapped').querySelector('.timeline-label')?.textContent).toBe('Order gift wrapped');
    expect(screen.getByText('Taking payment…')).toBeTruthy();
  });

  it('shows the e-mails sent, by kind', () => {
    render(
      <Timeline
        status="invoiced"
        currency="EUR"
        timeline={[
          entry('order.placed'),
          entry('email.sent', { kind: 'order_confirmation' }),
          entry('email.rejected', { kind: 'invoice' }),
          { ...entry('email.sent', { kind: 'cancelled' }), event_id: 'mail-cancelled' },
          { ...entry('email.sent', { kind: 'delivered' }), event_id: 'mail-delivered' },
        ]}
      />,
    );
    expect(item('email.sent').textContent).toContain('E-mail sent');
    expect(item('email.sent').textContent).toContain('Order confirmation');
    expect(item('email.rejected').textContent).toContain('E-mail not delivered');
    const details = [...document.querySelectorAll('[data-event="email.sent"] .timeline-detail')].map((e) => e.textContent);
    expect(details).toEqual(['Order confirmation', 'Cancellation confirmation', 'Delivery confirmation']);
  });
});

describe('order statuses', () => {
  it('labels, tones and ends of the lifecycle', () => {
    const all = ['placed', 'invoiced', 'paid', 'shipped', 'delivered', 'payment_failed', 'cancelled', 'refunded'];
    expect(all.map(statusLabel)).toEqual(['Placed', 'Invoiced', 'Paid', 'Shipped', 'Delivered', 'Payment failed', 'Cancelled', 'Refunded']);
    expect(all.map(statusTone)).toEqual(['neutral', 'neutral', 'good', 'good', 'good', 'bad', 'bad', 'bad']);
    expect(all.filter(isTerminal)).toEqual(['delivered', 'payment_failed', 'cancelled', 'refunded']);
  });
});

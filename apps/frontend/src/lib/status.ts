import type { TimelineEntry } from './api';

export const STATUS_LABELS: Record<string, string> = {
  placed: 'Placed',
  invoiced: 'Invoiced',
  paid: 'Paid',
  shipped: 'Shipped',
  delivered: 'Delivered',
  payment_failed: 'Payment failed',
  cancelled: 'Cancelled',
  refunded: 'Refunded',
};

export function statusLabel(status: string): string {
  return STATUS_LABELS[status] ?? humanize(status);
}

/** The states after which nothing more happens to an order (a shipped one is still to be delivered). */
export const TERMINAL_STATUSES = new Set(['delivered', 'payment_failed', 'cancelled', 'refunded']);

export function isTerminal(status: string): boolean {
  return TERMINAL_STATUSES.has(status);
}

export function statusTone(status: string): 'good' | 'bad' | 'neutral' {
  if (status === 'paid' || status === 'shipped' || status === 'delivered') return 'good';
  if (status === 'payment_failed' || status === 'refunded' || status === 'cancelled') return 'bad';
  return 'neutral';
}

export const EVENT_LABELS: Record<string, string> = {
  'order.placed': 'Order placed',
  'invoice.generated': 'Invoice issued',
  'payment.succeeded': 'Payment received',
  'payment.failed': 'Payment failed',
  'payment.action_required': 'Payment waiting for your confirmation',
  'shipment.created': 'Shipped',
  'shipment.failed': 'Shipment failed',
  'shipment.delivered': 'Delivered',
  'order.cancelled': 'Order cancelled',
  'payment.refunded': 'Refunded',
  'email.sent': 'E-mail sent',
  'email.rejected': 'E-mail not delivered',
};

const EMAIL_KINDS: Record<string, string> = {
  order_confirmation: 'Order confirmation',
  invoice: 'Invoice with the PDF attached',
  payment_receipt: 'Payment receipt',
  payment_failed: 'Payment failed notice',
  payment_action_required: 'Request to confirm the payment',
  shipped: 'Shipping confirmation',
  refunded: 'Refund confirmation',
  cancelled: 'Cancellation confirmation',
  delivered: 'Delivery confirmation',
};

/** Why an order was cancelled (`order.cancelled`'s `reason`, the order's `cancel_reason`), in words. */
export const CANCEL_REASONS: Record<string, string> = {
  shopper: 'Cancelled at your request',
  operator: 'Cancelled by the shop',
  expired: 'Cancelled because the payment was not completed in time',
  payment_unusable: 'Cancelled because the payment could not be taken',
};

export function eventLabel(type: string): string {
  return EVENT_LABELS[type] ?? humanize(type);
}

export function eventTone(type: string): 'good' | 'bad' | 'neutral' {
  if (type === 'payment.failed' || type === 'shipment.failed' || type === 'payment.refunded' || type === 'order.cancelled') return 'bad';
  if (type === 'payment.succeeded' || type === 'shipment.created' || type === 'shipment.delivered') return 'good';
  return 'neutral';
}

function str(v: unknown): string | null {
  return typeof v === 'string' && v.trim() !== '' ? v : typeof v === 'number' ? String(v) : null;
}

/** A sentence with the facts of a timeline entry worth showing, or null. */
export function eventDetail(entry: TimelineEntry, money: (minor: number) => string): string | null {
  const d = entry.detail ?? {};
  switch (entry.event_type) {
    case 'invoice.generated': {
      const number = str(d.invoice_number);
      const total = typeof d.total_minor === 'number' ? money(d.total_minor) : null;
      if (number && total) return `Invoice ${number}, total ${total}`;
      return number ? `Invoice ${number}` : null;
    }
    case 'payment.succeeded':
      return typeof d.amount_minor === 'number' ? `${money(d.amount_minor)} charged to your card` : null;
    case 'payment.failed': {
      const reason = str(d.reason);
      return reason ? `Reason: ${reason}` : 'Your card was not charged.';
    }
    case 'shipment.created':
    case 'shipment.delivered': {
      const tracking = str(d.tracking_number);
      const carrier = str(d.carrier);
      if (tracking) return `Tracking number ${tracking}${carrier ? ` (${carrier})` : ''}`;
      return carrier ? `With ${carrier}` : null;
    }
    case 'shipment.failed': {
      const reason = str(d.reason);
      return reason ? `Reason: ${reason}. Your payment will be refunded.` : 'Your payment will be refunded.';
    }
    case 'order.cancelled': {
      const reason = str(d.reason);
      return reason ? CANCEL_REASONS[reason] ?? null : null;
    }
    case 'payment.refunded': {
      const amount = typeof d.amount_minor === 'number' ? money(d.amount_minor) : null;
      return amount ? `${amount} returned to your card` : null;
    }
    case 'email.sent':
    case 'email.rejected': {
      const kind = str(d.kind);
      return kind ? EMAIL_KINDS[kind] ?? humanize(kind) : null;
    }
    default:
      return null;
  }
}

function humanize(s: string): string {
  const t = s.replace(/[._]/g, ' ').trim();
  return t.charAt(0).toUpperCase() + t.slice(1);
}

import { useEffect, useId, useRef, useState, type ReactNode } from 'react';
import { Link, useLocation, useParams, useSearchParams } from 'react-router-dom';
import { api, withLink, type Order } from '../lib/api';
import { formatDateTime, formatMoney } from '../lib/format';
import { isTerminal, statusLabel, statusTone } from '../lib/status';
import { useOrderLive, type LiveState } from '../lib/useOrderLive';
import { Timeline } from '../components/Timeline';
import { ConfirmPayment } from '../components/ConfirmPayment';
import { describeLoadError, LoadError, Loading } from '../components/Status';

export function OrderPage() {
  const { id = '' } = useParams();
  const location = useLocation();
  const justPlaced = Boolean((location.state as { justPlaced?: boolean } | null)?.justPlaced);
  // An e-mailed order link carries `?t=<token>`: every API call of this page passes it on.
  const [search, setSearch] = useSearchParams();
  const token = search.get('t');
  // The bank's page (3-D Secure) sends the shopper back here with `redirect_status` added.
  const returned = search.has('redirect_status');
  const tookReturn = () =>
    setSearch(
      (current) => {
        const next = new URLSearchParams(current);
        next.delete('redirect_status');
        next.delete('payment_intent');
        return next;
      },
      { replace: true },
    );
  const { order, error, live, retry, replace } = useOrderLive(id, token);

  const reference = order?.reference;
  useEffect(() => {
    document.title = reference ? `Order ${reference} — ChargeFlow Outdoor` : 'Your order — ChargeFlow Outdoor';
  }, [reference]);

  if (!order) {
    return (
      <section>
        <h1>Your order</h1>
        {error?.code === 'order_not_found' ? (
          <div className="notice notice-error" role="alert">
            <p>
              We could not find this order. It may belong to another browser or session, or the link you followed has expired.
            </p>
            <p>
              <Link to="/orders">See my orders</Link> · <Link to="/find-orders">Find my orders by e-mail</Link>
            </p>
          </div>
        ) : error ? (
          <LoadError what="this order" error={error} onRetry={retry} />
        ) : (
          <Loading label="Loading your order…" />
        )}
      </section>
    );
  }
  return (
    <OrderView order={order} token={token} live={live} justPlaced={justPlaced} onChange={replace}>
      <ConfirmPayment order={order} token={token} returned={returned} onReturned={tookReturn} onChange={replace} />
    </OrderView>
  );
}

interface ViewProps {
  order: Order;
  /** The order link's token this page was opened with, if any. */
  token: string | null;
  live: LiveState;
  justPlaced: boolean;
  /** Shows a newer order, e.g. the answer of a cancellation. */
  onChange: (order: Order) => void;
  /** What the payment waits for, if anything (shown above the cancellation). */
  children?: ReactNode;
}

function OrderView({ order, token, live, justPlaced, onChange, children }: ViewProps) {
  const money = (minor: number) => formatMoney(minor, order.currency);
  const totals = orderTotals(order);
  const tone = statusTone(order.status);
  const failure = order.timeline.find((e) => e.event_type === 'payment.failed');
  const reason =
    order.payment?.failure_reason ?? (typeof failure?.detail?.reason === 'string' ? (failure.detail.reason as string) : null);
  const deliveredAt = order.status === 'delivered' ? deliveryTime(order) : null;

  return (
    <section aria-labelledby="order-title" className="order-page">
      <div className="order-head">
        <div>
          <h1 id="order-title">
            Order <span data-testid="order-reference">{order.reference}</span>
          </h1>
          <p className="muted">Placed {formatDateTime(order.created_at)}</p>
        </div>
        <div className="order-status-box">
          <span className={`badge badge-${tone}`} data-testid="order-status">
            {statusLabel(order.status)}
          </span>
          <LiveIndicator live={live} status={order.status} />
        </div>
      </div>

      {justPlaced && order.status !== 'payment_failed' && order.status !== 'cancelled' && !order.cancel_reason && (
        <p className="notice notice-good">Thank you! Your order is in. This page updates by itself as it moves along.</p>
      )}
      {order.status === 'payment_failed' && (
        <div className="notice notice-error" role="alert">
          <p>
            <strong>The payment failed.</strong> {reason ? `The bank said: ${reason.replace(/[.\s]+$/, '')}. ` : ''}Your card was not charged,
            nothing will be shipped, and the items you ordered have been put back on sale.
          </p>
          <Link to="/">Back to the shop</Link>
        </div>
      )}
      {order.status === 'cancelled' && (
        <p className="notice notice-neutral" role="status" data-testid="order-banner">
          {order.cancel_reason === 'expired' ? (
            <>This order was cancelled: it expired because the payment was not completed in time. Nothing was charged.</>
          ) : order.cancel_reason === 'payment_unusable' ? (
            <>This order was cancelled because the payment could not be taken. Nothing was charged.</>
          ) : (
            <>This order was cancelled. Nothing was charged.</>
          )}
        </p>
      )}
      {order.status === 'paid' && order.cancel_reason && (
        <p className="notice notice-neutral" role="status" data-testid="order-banner">
          Cancellation accepted: your payment is being refunded.
        </p>
      )}
      {order.status === 'refunded' &&
        (order.cancel_reason ? (
          <p className="notice notice-neutral" role="status" data-testid="order-banner">
            This order was cancelled and your payment was refunded.
          </p>
        ) : (
          <p className="notice notice-error" role="alert">
            We could not ship this order, so your payment has been refunded.
          </p>
        ))}
      {order.status === 'shipped' && order.tracking_number && (
        <p className="notice notice-good">
          Your parcel is on its way. Tracking number{' '}
          {order.shipment?.tracking_url ? (
            <a href={order.shipment.tracking_url} target="_blank" rel="noreferrer" data-testid="tracking-number">
              {order.tracking_number}
            </a>
          ) : (
            <strong data-testid="tracking-number">{order.tracking_number}</strong>
          )}
          {order.shipment?.carrier ? ` with ${order.shipment.carrier}` : ''}.
        </p>
      )}
      {order.status === 'delivered' && (
        <p className="notice notice-good" data-testid="order-banner">
          <strong>Delivered</strong>{' '}
          {deliveredAt ? (
            <>
              on <time dateTime={deliveredAt}>{formatDateTime(deliveredAt)}</time>
            </>
          ) : (
            'to your address'
          )}
          {order.tracking_number && (
            <>
              {' '}
              · tracking number <span data-testid="tracking-number">{order.tracking_number}</span>
              {order.shipment?.carrier ? ` with ${order.shipment.carrier}` : ''}
            </>
          )}
          .
        </p>
      )}

      {children}
      <CancelOrder order={order} token={token} onCancelled={onChange} />

      <div className="order-grid">
        <div className="card">
          <h2>Progress</h2>
          <Timeline timeline={order.timeline} currency={order.currency} status={order.status} cancelReason={order.cancel_reason} />
        </div>

        <div className="order-side">
          <div className="card">
            <h2>Items</h2>
            <table className="items-table">
              <thead>
                <tr>
                  <th scope="col">Item</th>
                  <th scope="col" className="num">
                    Qty
                  </th>
                  <th scope="col" className="num">
                    Total
                  </th>
                </tr>
              </thead>
              <tbody>
                {order.items.map((item) => (
                  <tr key={item.product_id}>
                    <td>
                      {item.name}
                      <span className="muted small"> · {money(item.unit_price_minor)} each</span>
                    </td>
                    <td className="num">{item.quantity}</td>
                    <td className="num">{money(item.line_total_minor)}</td>
                  </tr>
                ))}
              </tbody>
              <tfoot>
                <tr>
                  <th scope="row" colSpan={2}>
                    Subtotal
                  </th>
                  <td className="num">{money(order.subtotal_minor)}</td>
                </tr>
                {totals && (
                  <>
                    <tr>
                      <th scope="row" colSpan={2}>
                        Shipping
                      </th>
                      <td className="num" data-testid="order-shipping">
                        {money(totals.shipping_minor)}
                      </td>
                    </tr>
                    <tr>
                      <th scope="row" colSpan={2}>
                        Tax{totals.tax_rate_bp != null ? ` (${totals.tax_rate_bp / 100}%)` : ''}
                      </th>
                      <td className="num" data-testid="order-tax">
                        {money(totals.tax_minor)}
                      </td>
                    </tr>
                    <tr className="grand-total">
                      <th scope="row" colSpan={2}>
                        Total
                      </th>
                      <td className="num" data-testid="order-total">
                        {money(totals.total_minor)}
                      </td>
                    </tr>
                  </>
                )}
              </tfoot>
            </table>
          </div>

          <div className="card">
            <h2>Payment and documents</h2>
            <dl className="facts">
              <dt>Payment</dt>
              <dd data-testid="payment-status">{paymentText(order, money)}</dd>
              <dt>Invoice</dt>
              <dd>
                {order.invoice_url ? (
                  <>
                    {order.invoice && <span className="invoice-number">{order.invoice.number}</span>}
                    <a href={withLink(order.invoice_url, token)} download className="button button-secondary button-small" data-testid="invoice-link">
                      Download invoice (PDF)
                    </a>
                  </>
                ) : (
                  <span className="muted">Being prepared…</span>
                )}
              </dd>
              <dt>Shipping</dt>
              <dd>
                {order.tracking_number ? (
                  <>
                    Tracking number <strong>{order.tracking_number}</strong>
                    {order.shipment?.carrier ? ` (${order.shipment.carrier})` : ''}
                  </>
                ) : isTerminal(order.status) ? (
                  <span className="muted">Not shipped</span>
                ) : (
                  <span className="muted">Not shipped yet</span>
                )}
              </dd>
            </dl>
          </div>
        </div>
      </div>
      <p>
        <Link to="/orders">All my orders</Link>
      </p>
    </section>
  );
}

function paymentText(order: Order, money: (n: number) => string): string {
  const p = order.payment;
  if (!p) return isTerminal(order.status) ? 'No payment' : 'Waiting for the invoice…';
  switch (p.status) {
    case 'succeeded':
      return order.cancel_reason ? `Paid ${money(p.amount_minor)}, being refunded` : `Paid ${money(p.amount_minor)}`;
    case 'failed':
      return `Failed${p.failure_reason ? `: ${p.failure_reason}` : ''}`;
    case 'refunded':
      return `Refunded ${money(p.amount_minor)}`;
    case 'pending':
      return `Pending (${money(p.amount_minor)})`;
    case 'requires_action':
      return `Waiting for your confirmation (${money(p.amount_minor)})`;
    default:
      return p.status;
  }
}

/** When the parcel arrived: the shipment's `delivered_at`, else the `shipment.delivered` entry. */
function deliveryTime(order: Order): string | null {
  if (order.shipment?.delivered_at) return order.shipment.delivered_at;
  const entry = order.timeline.find((e) => e.event_type === 'shipment.delivered');
  const at = entry?.detail?.delivered_at;
  return typeof at === 'string' && at ? at : (entry?.occurred_at ?? null);
}

/**
 * "Cancel order" while the order may be cancelled: asks in the page, then sends
 * `POST /api/orders/{id}/cancel` and shows the answer; a refusal is shown in an alert.
 */
function CancelOrder({ order, token, onCancelled }: { order: Order; token: string | null; onCancelled: (order: Order) => void }) {
  const [step, setStep] = useState<'idle' | 'confirming' | 'sending'>('idle');
  const [error, setError] = useState<string | null>(null);
  const sending = useRef(false);
  const cancelButton = useRef<HTMLButtonElement>(null);
  const keepButton = useRef<HTMLButtonElement>(null);
  const focusOnIdle = useRef(false);
  const questionId = useId();

  useEffect(() => {
    if (step === 'confirming') keepButton.current?.focus();
    if (step === 'idle' && focusOnIdle.current) {
      focusOnIdle.current = false;
      cancelButton.current?.focus();
    }
  }, [step]);

  const confirm = async () => {
    if (sending.current) return;
    sending.current = true;
    setStep('sending');
    setError(null);
    try {
      onCancelled(await api.cancelOrder(order.order_id, token ?? undefined));
    } catch (e) {
      setError(describeLoadError(e));
    } finally {
      sending.current = false;
      setStep('idle');
    }
  };

  const offered = order.cancellable === true || step === 'sending';
  if (!offered && !error) return null;
  return (
    <div className="cancel-order">
      {error && (
        <div className="notice notice-error" role="alert">
          <p>
            <strong>The order could not be cancelled.</strong> {error}
          </p>
        </div>
      )}
      {offered &&
        (step === 'idle' ? (
          <button
            type="button"
            ref={cancelButton}
            className="button button-secondary button-small"
            onClick={() => {
              setError(null);
              setStep('confirming');
            }}
          >
            Cancel order
          </button>
        ) : (
          <div className="cancel-confirm" role="group" aria-labelledby={questionId}>
            <p id={questionId}>
              <strong>Cancel this order?</strong>
              {order.status === 'paid' ? ' Your payment will be refunded.' : ' Nothing will be charged.'}
            </p>
            <button type="button" className="button button-primary button-small" disabled={step === 'sending'} onClick={() => void confirm()}>
              Yes, cancel
            </button>
            <button
              type="button"
              ref={keepButton}
              className="button button-secondary button-small"
              disabled={step === 'sending'}
              onClick={() => {
                focusOnIdle.current = true;
                setStep('idle');
              }}
            >
              Keep order
            </button>
            {step === 'sending' && (
              <span className="muted" role="status">
                Cancelling…
              </span>
            )}
          </div>
        ))}
    </div>
  );
}

function LiveIndicator({ live, status }: { live: LiveState; status: string }) {
  if (isTerminal(status) || live === 'done') return null;
  if (live === 'reconnecting') {
    return (
      <span className="live live-off" role="status">
        Reconnecting…
      </span>
    );
  }
  if (live === 'live') {
    return (
      <span className="live live-on" role="status">
        Live
      </span>
    );
  }
  return (
    <span className="live" role="status">
      Connecting…
    </span>
  );
}

/** The order's quote (stored at checkout), or its invoice's amounts for an order placed before
 * quotes were stored; null while neither is known. */
function orderTotals(order: Order): { shipping_minor: number; tax_rate_bp: number | null; tax_minor: number; total_minor: number } | null {
  if (order.shipping_minor != null && order.tax_minor != null && order.total_minor != null) {
    return { shipping_minor: order.shipping_minor, tax_rate_bp: order.tax_rate_bp ?? null, tax_minor: order.tax_minor, total_minor: order.total_minor };
  }
  if (order.invoice) return { ...order.invoice, tax_rate_bp: null };
  return null;
}

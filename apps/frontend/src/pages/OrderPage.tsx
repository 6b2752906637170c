import { useEffect } from 'react';
import { Link, useLocation, useParams } from 'react-router-dom';
import type { Order } from '../lib/api';
import { formatDateTime, formatMoney, shortId } from '../lib/format';
import { isTerminal, statusLabel, statusTone } from '../lib/status';
import { useOrderLive, type LiveState } from '../lib/useOrderLive';
import { Timeline } from '../components/Timeline';
import { LoadError, Loading } from '../components/Status';

export function OrderPage() {
  const { id = '' } = useParams();
  const location = useLocation();
  const justPlaced = Boolean((location.state as { justPlaced?: boolean } | null)?.justPlaced);
  const { order, error, live, retry } = useOrderLive(id);

  useEffect(() => {
    document.title = `Order ${shortId(id)} — ChargeFlow Outdoor`;
  }, [id]);

  if (!order) {
    return (
      <section>
        <h1>Order {shortId(id)}</h1>
        {error?.code === 'order_not_found' ? (
          <div className="notice notice-error" role="alert">
            <p>We could not find this order. It may belong to another browser or session.</p>
            <Link to="/orders">See my orders</Link>
          </div>
        ) : error ? (
          <LoadError what="this order" error={error} onRetry={retry} />
        ) : (
          <Loading label="Loading your order…" />
        )}
      </section>
    );
  }
  return <OrderView order={order} live={live} justPlaced={justPlaced} />;
}

function OrderView({ order, live, justPlaced }: { order: Order; live: LiveState; justPlaced: boolean }) {
  const money = (minor: number) => formatMoney(minor, order.currency);
  const tone = statusTone(order.status);
  const failure = order.timeline.find((e) => e.event_type === 'payment.failed');
  const reason =
    order.payment?.failure_reason ?? (typeof failure?.detail?.reason === 'string' ? (failure.detail.reason as string) : null);

  return (
    <section aria-labelledby="order-title" className="order-page">
      <div className="order-head">
        <div>
          <h1 id="order-title">Order {shortId(order.order_id)}</h1>
          <p className="muted">Placed {formatDateTime(order.created_at)}</p>
        </div>
        <div className="order-status-box">
          <span className={`badge badge-${tone}`} data-testid="order-status">
            {statusLabel(order.status)}
          </span>
          <LiveIndicator live={live} status={order.status} />
        </div>
      </div>

      {justPlaced && order.status !== 'payment_failed' && (
        <p className="notice notice-good">Thank you! Your order is in. This page updates by itself as it moves along.</p>
      )}
      {order.status === 'payment_failed' && (
        <div className="notice notice-error" role="alert">
          <p>
            <strong>The payment failed.</strong> {reason ? `The bank said: ${reason.replace(/[.\s]+$/, '')}. ` : ''}Your card was not charged and
            nothing will be shipped.
          </p>
          <Link to="/">Back to the shop</Link>
        </div>
      )}
      {order.status === 'refunded' && (
        <p className="notice notice-error" role="alert">
          We could not ship this order, so your payment has been refunded.
        </p>
      )}
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

      <div className="order-grid">
        <div className="card">
          <h2>Progress</h2>
          <Timeline timeline={order.timeline} currency={order.currency} status={order.status} />
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
                {order.invoice && (
                  <>
                    <tr>
                      <th scope="row" colSpan={2}>
                        Shipping
                      </th>
                      <td className="num">{money(order.invoice.shipping_minor)}</td>
                    </tr>
                    <tr>
                      <th scope="row" colSpan={2}>
                        Tax
                      </th>
                      <td className="num">{money(order.invoice.tax_minor)}</td>
                    </tr>
                    <tr className="grand-total">
                      <th scope="row" colSpan={2}>
                        Total
                      </th>
                      <td className="num">{money(order.invoice.total_minor)}</td>
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
                    <a href={order.invoice_url} download className="button button-secondary button-small" data-testid="invoice-link">
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
      return `Paid ${money(p.amount_minor)}`;
    case 'failed':
      return `Failed${p.failure_reason ? `: ${p.failure_reason}` : ''}`;
    case 'refunded':
      return `Refunded ${money(p.amount_minor)}`;
    case 'pending':
      return `Pending (${money(p.amount_minor)})`;
    default:
      return p.status;
  }
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

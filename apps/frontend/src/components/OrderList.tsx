import { Link } from 'react-router-dom';
import type { OrderSummary } from '../lib/api';
import { formatDateTime, formatMoney } from '../lib/format';
import { statusLabel, statusTone } from '../lib/status';

/** A list of orders, newest first as the API answers them, each linking to its page. */
export function OrderList({ orders }: { orders: OrderSummary[] }) {
  return (
    <ul className="orders-list" data-testid="orders-list">
      {orders.map((o) => (
        <li key={o.order_id} className="card order-row" data-order-id={o.order_id}>
          <Link to={`/orders/${o.order_id}`} className="order-link">
            Order {o.reference}
          </Link>
          <span className="muted">{formatDateTime(o.created_at)}</span>
          <span>{formatMoney(o.total_minor ?? o.subtotal_minor, o.currency)}</span>
          <span className={`badge badge-${statusTone(o.status)}`}>{statusLabel(o.status)}</span>
        </li>
      ))}
    </ul>
  );
}

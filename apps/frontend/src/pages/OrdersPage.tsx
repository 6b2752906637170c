import { useCallback, useEffect, useState } from 'react';
import { Link } from 'react-router-dom';
import { api, type OrderSummary } from '../lib/api';
import { formatDateTime, formatMoney } from '../lib/format';
import { statusLabel, statusTone } from '../lib/status';
import { LoadError, Loading } from '../components/Status';

export function OrdersPage() {
  const [orders, setOrders] = useState<OrderSummary[] | null>(null);
  const [error, setError] = useState<unknown>(null);

  const load = useCallback(async () => {
    setError(null);
    setOrders(null);
    try {
      setOrders(await api.orders());
    } catch (e) {
      setError(e);
    }
  }, []);

  useEffect(() => {
    document.title = 'My orders — ChargeFlow Outdoor';
    void load();
  }, [load]);

  return (
    <section aria-labelledby="orders-title">
      <h1 id="orders-title">My orders</h1>
      {error ? (
        <LoadError what="your orders" error={error} onRetry={() => void load()} />
      ) : !orders ? (
        <Loading label="Loading your orders…" />
      ) : orders.length === 0 ? (
        <div className="empty">
          <p>You have not ordered anything yet.</p>
          <Link className="button" to="/">
            Browse the shop
          </Link>
        </div>
      ) : (
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
      )}
    </section>
  );
}

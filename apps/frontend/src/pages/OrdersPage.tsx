import { useCallback, useEffect, useState } from 'react';
import { Link } from 'react-router-dom';
import { api, type OrderSummary } from '../lib/api';
import { LoadError, Loading } from '../components/Status';
import { OrderList } from '../components/OrderList';

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
          <p>You have not ordered anything yet in this browser.</p>
          <Link className="button" to="/">
            Browse the shop
          </Link>
        </div>
      ) : (
        <OrderList orders={orders} />
      )}
      <p className="muted find-orders-hint">
        Ordered on another device or in another browser? <Link to="/find-orders">Find my orders</Link> with the e-mail address you
        ordered with.
      </p>
    </section>
  );
}

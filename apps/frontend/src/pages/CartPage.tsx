import { useEffect, useState } from 'react';
import { Link, useNavigate } from 'react-router-dom';
import type { CartItem } from '../lib/api';
import { useCart } from '../lib/cart';
import { formatMoney } from '../lib/format';
import { LoadError, Loading } from '../components/Status';

export function CartPage() {
  const { cart, loading, loadError, reload, saving, settled } = useCart();
  const navigate = useNavigate();
  const [leaving, setLeaving] = useState(false);

  useEffect(() => {
    document.title = 'Cart — ChargeFlow Outdoor';
  }, []);

  const toCheckout = async () => {
    setLeaving(true);
    // Let pending quantity changes reach the server before the checkout reads the cart.
    await settled();
    setLeaving(false);
    navigate('/checkout');
  };

  let body;
  if (loadError && !cart) {
    body = <LoadError what="your cart" error={loadError} onRetry={() => void reload()} />;
  } else if (!cart) {
    body = loading ? <Loading label="Loading your cart…" /> : null;
  } else if (cart.items.length === 0) {
    body = (
      <div className="empty">
        <p>Your cart is empty.</p>
        <Link className="button" to="/">
          Browse the shop
        </Link>
      </div>
    );
  } else {
    const currency = cart.currency ?? 'EUR';
    const overStock = cart.items.some((i) => i.quantity > i.stock);
    body = (
      <>
        <ul className="cart-lines">
          {cart.items.map((item) => (
            <CartLine key={item.product_id} item={item} currency={currency} />
          ))}
        </ul>
        <div className="cart-summary card">
          <p className="summary-row">
            <span>Subtotal</span>
            <strong data-testid="subtotal">{formatMoney(cart.subtotal_minor, currency)}</strong>
          </p>
          <p className="muted">Shipping and tax for your country are shown at checkout, before you place the order.</p>
          {overStock && (
            <p className="warning-text">Some quantities are more than we have in stock; the checkout will refuse them.</p>
          )}
          <button type="button" className="button button-wide" onClick={() => void toCheckout()} disabled={leaving}>
            {leaving || saving > 0 ? 'Saving…' : 'Go to checkout'}
          </button>
          <Link to="/" className="link-quiet">
            Continue shopping
          </Link>
        </div>
      </>
    );
  }

  return (
    <section aria-labelledby="cart-title">
      <h1 id="cart-title">Your cart</h1>
      {body}
    </section>
  );
}

function CartLine({ item, currency }: { item: CartItem; currency: string }) {
  const { setQuantity, remove } = useCart();
  const [draft, setDraft] = useState(String(item.quantity));
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const inputId = `qty-${item.product_id}`;
  const errorId = `qty-${item.product_id}-error`;

  // Follow the server's answer when it changes the quantity. This is done while rendering, not in
  // an effect: an effect from the first render may run after the shopper's first keystroke and
  // put the old quantity back into the field.
  const [shown, setShown] = useState(item.quantity);
  if (shown !== item.quantity) {
    setShown(item.quantity);
    setDraft(String(item.quantity));
  }

  const commit = async (value: string) => {
    const n = Number(value);
    if (!/^\d+$/.test(value.trim()) || n < 1 || n > 100) {
      setError('Enter a quantity from 1 to 100, or remove the item.');
      return;
    }
    setError(null);
    if (n === item.quantity) return;
    try {
      await setQuantity(item.product_id, n);
    } catch {
      setError('Could not change the quantity. Please try again.');
    }
  };

  const onRemove = async () => {
    setBusy(true);
    try {
      await remove(item.product_id);
    } catch {
      setError('Could not remove the item. Please try again.');
      setBusy(false);
    }
  };

  const step = (delta: number) => {
    const n = Math.min(100, Math.max(1, (Number(draft) || item.quantity) + delta));
    setDraft(String(n));
    void commit(String(n));
  };

  return (
    <li className="cart-line card" data-product-id={item.product_id}>
      <img className="cart-image" src={item.image_url} alt="" width="96" height="72" />
      <div className="cart-info">
        <h2 className="cart-name">{item.name}</h2>
        <p className="muted">{formatMoney(item.unit_price_minor, currency)} each</p>
        {item.quantity > item.stock && (
          <p className="warning-text">{item.stock === 0 ? 'Sold out.' : `Only ${item.stock} in stock.`}</p>
        )}
      </div>
      <div className="cart-qty">
        <label htmlFor={inputId}>
          Quantity<span className="visually-hidden"> of {item.name}</span>
        </label>
        <div className="stepper">
          <button type="button" className="button button-icon" onClick={() => step(-1)} aria-label={`One less ${item.name}`} disabled={Number(draft) <= 1}>
            −
          </button>
          <input
            id={inputId}
            type="number"
            inputMode="numeric"
            min={1}
            max={100}
            value={draft}
            aria-invalid={error ? true : undefined}
            aria-describedby={error ? errorId : undefined}
            onChange={(e) => setDraft(e.target.value)}
            onBlur={(e) => void commit(e.target.value)}
            onKeyDown={(e) => {
              if (e.key === 'Enter') void commit((e.target as HTMLInputElement).value);
            }}
          />
          <button type="button" className="button button-icon" onClick={() => step(1)} aria-label={`One more ${item.name}`} disabled={Number(draft) >= 100}>
            +
          </button>
        </div>
      </div>
      <p className="cart-total">
        <span className="visually-hidden">Line total </span>
        <strong data-testid={`line-total-${item.product_id}`}>{formatMoney(item.line_total_minor, currency)}</strong>
      </p>
      <button
        type="button"
        className="button button-link cart-remove"
        onClick={() => void onRemove()}
        disabled={busy}
        aria-label={`Remove ${item.name}`}
      >
        Remove
      </button>
      {error && (
        <p id={errorId} className="error-text cart-error" role="alert">
          {error}
        </p>
      )}
    </li>
  );
}

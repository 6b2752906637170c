import { useCallback, useEffect, useState } from 'react';
import { Link } from 'react-router-dom';
import { api, type Product } from '../lib/api';
import { useCart } from '../lib/cart';
import { formatMoney } from '../lib/format';
import { LoadError, Loading } from '../components/Status';

export function CataloguePage() {
  const [products, setProducts] = useState<Product[] | null>(null);
  const [error, setError] = useState<unknown>(null);

  const load = useCallback(async () => {
    setError(null);
    setProducts(null);
    try {
      setProducts(await api.products());
    } catch (e) {
      setError(e);
    }
  }, []);

  useEffect(() => {
    document.title = 'Shop — ChargeFlow Outdoor';
    void load();
  }, [load]);

  return (
    <section aria-labelledby="catalogue-title">
      <div className="hero">
        <h1 id="catalogue-title">Gear for the trail</h1>
        <p>Small, sturdy things for long days outside. Shipped from our little warehouse.</p>
      </div>
      {error ? (
        <LoadError what="the catalogue" error={error} onRetry={() => void load()} />
      ) : !products ? (
        <Loading label="Loading the catalogue…" />
      ) : products.length === 0 ? (
        <p className="empty">The shelves are empty right now. Please come back soon.</p>
      ) : (
        <ul className="product-grid">
          {products.map((p) => (
            <li key={p.id}>
              <ProductCard product={p} />
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}

function ProductCard({ product }: { product: Product }) {
  const { cart, add } = useCart();
  const [state, setState] = useState<'idle' | 'adding' | 'added' | 'error'>('idle');
  const inCart = cart?.items.find((i) => i.product_id === product.id)?.quantity ?? 0;
  const soldOut = product.stock <= 0;
  const allInCart = !soldOut && inCart >= product.stock;
  const titleId = `product-${product.id}-name`;

  const onAdd = async () => {
    setState('adding');
    try {
      await add(product.id);
      setState('added');
    } catch {
      setState('error');
    }
  };

  return (
    <article className="card product-card" aria-labelledby={titleId} data-sku={product.sku}>
      <img className="product-image" src={product.image_url} alt="" width="320" height="240" loading="lazy" />
      <div className="product-body">
        <h2 id={titleId} className="product-name">
          {product.name}
        </h2>
        <p className="product-description">{product.description}</p>
        <div className="product-meta">
          <span className="price">{formatMoney(product.price_minor, product.currency)}</span>
          {soldOut ? (
            <span className="stock stock-out">Sold out</span>
          ) : product.stock <= 3 ? (
            <span className="stock stock-low">Only {product.stock} left</span>
          ) : (
            <span className="stock">In stock</span>
          )}
        </div>
        <div className="product-actions">
          <button
            type="button"
            className="button"
            onClick={() => void onAdd()}
            disabled={soldOut || allInCart || state === 'adding'}
            aria-label={soldOut ? `${product.name} is sold out` : `Add ${product.name} to cart`}
          >
            {soldOut ? 'Sold out' : state === 'adding' ? 'Adding…' : 'Add to cart'}
          </button>
          <span className="product-feedback" aria-live="polite">
            {state === 'error' ? (
              <span className="error-text">Could not add it. Please try again.</span>
            ) : allInCart ? (
              <>All in your cart</>
            ) : inCart > 0 ? (
              <Link to="/cart">{inCart} in cart</Link>
            ) : null}
          </span>
        </div>
      </div>
    </article>
  );
}

import { useEffect, useRef } from 'react';
import { Link, NavLink, Route, Routes, useLocation } from 'react-router-dom';
import { CartProvider, useCart } from './lib/cart';
import { CataloguePage } from './pages/CataloguePage';
import { CartPage } from './pages/CartPage';
import { CheckoutPage } from './pages/CheckoutPage';
import { OrderPage } from './pages/OrderPage';
import { OrdersPage } from './pages/OrdersPage';
import { FindOrdersPage } from './pages/FindOrdersPage';
import { SignInPage } from './pages/SignInPage';

export function App() {
  return (
    <CartProvider>
      <Shell />
    </CartProvider>
  );
}

function Shell() {
  const mainRef = useRef<HTMLElement>(null);
  const { pathname } = useLocation();
  const first = useRef(true);

  // Move focus to the page after client-side navigation, as a full page load would.
  useEffect(() => {
    if (first.current) {
      first.current = false;
      return;
    }
    mainRef.current?.focus({ preventScroll: true });
    window.scrollTo?.(0, 0);
  }, [pathname]);

  return (
    <>
      <a className="skip-link" href="#main">
        Skip to content
      </a>
      <header className="site-header">
        <div className="container header-inner">
          <Link to="/" className="brand" aria-label="ChargeFlow Outdoor, home">
            <svg viewBox="0 0 32 32" width="28" height="28" aria-hidden="true">
              <path d="M2 27 L12 9 L18 19 L22 13 L30 27 Z" fill="#e9c46a" />
              <path d="M12 9 L15.5 15 L13 14 L10.5 16 Z" fill="#fff" />
            </svg>
            <span>ChargeFlow Outdoor</span>
          </Link>
          <nav aria-label="Main">
            <ul className="nav">
              <li>
                <NavLink to="/" end>
                  Shop
                </NavLink>
              </li>
              <li>
                <NavLink to="/orders">My orders</NavLink>
              </li>
              <li>
                <CartLink />
              </li>
            </ul>
          </nav>
        </div>
      </header>
      <main id="main" ref={mainRef} tabIndex={-1} className="container">
        <Routes>
          <Route path="/" element={<CataloguePage />} />
          <Route path="/cart" element={<CartPage />} />
          <Route path="/checkout" element={<CheckoutPage />} />
          <Route path="/orders" element={<OrdersPage />} />
          <Route path="/orders/:id" element={<OrderPage />} />
          <Route path="/find-orders" element={<FindOrdersPage />} />
          <Route path="/sign-in" element={<SignInPage />} />
          <Route path="*" element={<NotFound />} />
        </Routes>
      </main>
      <footer className="site-footer">
        <div className="container">
          <p>ChargeFlow Outdoor · a demo shop.</p>
        </div>
      </footer>
    </>
  );
}

function CartLink() {
  const { itemCount } = useCart();
  return (
    <NavLink to="/cart" className="cart-link">
      Cart{' '}
      <span className="cart-count" aria-label={`${itemCount} ${itemCount === 1 ? 'item' : 'items'}`} data-testid="cart-count">
        {itemCount}
      </span>
    </NavLink>
  );
}

function NotFound() {
  return (
    <section>
      <h1>Page not found</h1>
      <p>
        This trail leads nowhere. <Link to="/">Back to the shop</Link>
      </p>
    </section>
  );
}

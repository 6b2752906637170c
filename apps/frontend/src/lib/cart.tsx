import { createContext, useCallback, useContext, useEffect, useMemo, useRef, useState, type ReactNode } from 'react';
import { api, ApiError, type Cart } from './api';

interface CartState {
  cart: Cart | null;
  loading: boolean;
  /** Loading the cart failed (shown with a Retry button). */
  loadError: ApiError | null;
  /** Number of changes sent but not yet answered. */
  saving: number;
  reload: () => Promise<void>;
  setQuantity: (productId: number, quantity: number) => Promise<Cart>;
  add: (productId: number) => Promise<Cart>;
  remove: (productId: number) => Promise<Cart>;
  /** Resolves once every change sent so far has been answered. */
  settled: () => Promise<void>;
  /** Replaces the cart, e.g. after a checkout emptied it on the server. */
  replace: (cart: Cart | null) => void;
  itemCount: number;
}

const CartContext = createContext<CartState | null>(null);

export function CartProvider({ children }: { children: ReactNode }) {
  const [cart, setCart] = useState<Cart | null>(null);
  const [loading, setLoading] = useState(true);
  const [loadError, setLoadError] = useState<ApiError | null>(null);
  const [saving, setSaving] = useState(0);
  // Changes are sent one after another so that answers never arrive out of order.
  const chain = useRef<Promise<unknown>>(Promise.resolve());
  // The newest cart the server answered, readable inside queued changes.
  const latest = useRef<Cart | null>(null);

  const reload = useCallback(async () => {
    setLoading(true);
    setLoadError(null);
    try {
      const fresh = await api.cart();
      latest.current = fresh;
      setCart(fresh);
    } catch (e) {
      setLoadError(e instanceof ApiError ? e : new ApiError(0, 'network_error', String(e)));
    } finally {
      setLoading(false);
    }
  }, []);

  useEffect(() => {
    // Changes wait for the first load: it is what gives a new visitor their session cookie,
    // and a change sent without one would start a second session.
    chain.current = reload();
  }, [reload]);

  const enqueue = useCallback((op: () => Promise<Cart>): Promise<Cart> => {
    setSaving((n) => n + 1);
    const run = chain.current.then(op, op);
    chain.current = run.catch(() => undefined);
    return run.then(
      (fresh) => {
        latest.current = fresh;
        setCart(fresh);
        setLoadError(null);
        setSaving((n) => n - 1);
        return fresh;
      },
      (e: unknown) => {
        setSaving((n) => n - 1);
        throw e;
      },
    );
  }, []);

  const setQuantity = useCallback(
    (productId: number, quantity: number) => enqueue(() => api.setQuantity(productId, quantity)),
    [enqueue],
  );
  const add = useCallback(
    (productId: number) =>
      enqueue(async () => {
        // Read the quantity when the change is sent, after earlier changes were answered.
        const current = latest.current?.items.find((i) => i.product_id === productId)?.quantity ?? 0;
        return api.setQuantity(productId, current + 1);
      }),
    [enqueue],
  );
  const remove = useCallback((productId: number) => enqueue(() => api.removeItem(productId)), [enqueue]);
  const settled = useCallback(async () => {
    await chain.current;
  }, []);
  const replace = useCallback((next: Cart | null) => {
    latest.current = next;
    setCart(next);
  }, []);

  const itemCount = cart?.items.reduce((n, i) => n + i.quantity, 0) ?? 0;
  const value = useMemo(
    () => ({ cart, loading, loadError, saving, reload, setQuantity, add, remove, settled, replace, itemCount }),
    [cart, loading, loadError, saving, reload, setQuantity, add, remove, settled, replace, itemCount],
  );
  return <CartContext.Provider value={value}>{children}</CartContext.Provider>;
}

export function useCart(): CartState {
  const ctx = useContext(CartContext);
  if (!ctx) throw new Error('useCart outside CartProvider');
  return ctx;
}

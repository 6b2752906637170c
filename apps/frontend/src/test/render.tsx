import { render } from '@testing-library/react';
import { MemoryRouter, Route, Routes, useLocation } from 'react-router-dom';
import type { ReactElement } from 'react';
import { CartProvider } from '../lib/cart';

function Where() {
  const { pathname } = useLocation();
  return <p data-testid="location">{pathname}</p>;
}

/** Renders `element` at `path` inside the app's providers, with a probe showing the location. */
export function renderAt(path: string, routePattern: string, element: ReactElement) {
  return render(
    <MemoryRouter initialEntries={[path]}>
      <CartProvider>
        <Routes>
          <Route path={routePattern} element={element} />
          <Route path="*" element={<p>elsewhere</p>} />
        </Routes>
        <Where />
      </CartProvider>
    </MemoryRouter>,
  );
}

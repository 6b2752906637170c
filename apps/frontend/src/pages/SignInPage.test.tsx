import { StrictMode } from 'react';
import { describe, expect, it, beforeEach } from 'vitest';
import { render, screen, waitFor } from '@testing-library/react';
import { MemoryRouter, Route, Routes, useLocation } from 'react-router-dom';
import { SignInPage } from './SignInPage';
import { apiError, FakeApi, ORDER_ID } from '../test/fakeApi';
import { renderAt } from '../test/render';
import type { OrderSummary } from '../lib/api';

const SUMMARY: OrderSummary = {
  order_id: ORDER_ID,
  reference: 'K3M9Q-2XW7A',
  status: 'shipped',
  currency: 'EUR',
  subtotal_minor: 2900,
  created_at: '2026-11-23T10:00:00Z',
};

function Where() {
  const location = useLocation();
  return <p data-testid="where">{location.pathname + location.search}</p>;
}

describe('sign-in page', () => {
  let api: FakeApi;
  beforeEach(() => {
    api = new FakeApi().install();
  });

  it('uses the token once, even in strict mode, shows the orders and drops the token from the address', async () => {
    api.signInAnswers = [{ status: 200, body: { orders: [SUMMARY] } }];
    render(
      <StrictMode>
        <MemoryRouter initialEntries={['/sign-in?token=tok-once']}>
          <Routes>
            <Route path="/sign-in" element={<SignInPage />} />
          </Routes>
          <Where />
        </MemoryRouter>
      </StrictMode>,
    );
    expect(await screen.findByTestId('signed-in')).toBeTruthy();
    expect(screen.getByRole('link', { name: 'Order K3M9Q-2XW7A' }).getAttribute('href')).toBe(`/orders/${ORDER_ID}`);
    expect(api.callsTo('POST', '/api/sign-in').map((c) => c.body)).toEqual([{ token: 'tok-once' }]);
    await waitFor(() => expect(screen.getByTestId('where').textContent).toBe('/sign-in'));
    expect(screen.getByTestId('signed-in')).toBeTruthy();
  });

  it('says a used or expired link has expired or was already used, and offers a new one', async () => {
    api.signInAnswers = [apiError(410, 'sign_in_link_invalid', 'this sign-in link has expired or was already used')];
    renderAt('/sign-in?token=tok-used', '/sign-in', <SignInPage />);
    const invalid = await screen.findByTestId('sign-in-invalid');
    expect(invalid.textContent).toContain('This sign-in link has expired or was already used.');
    expect(screen.getByRole('link', { name: 'Send me a new link' }).getAttribute('href')).toBe('/find-orders');
  });

  it('says when the shop could not be reached, without calling the link used', async () => {
    api.signInAnswers = [apiError(503, 'service_unavailable', 'service unavailable')];
    renderAt('/sign-in?token=tok-down', '/sign-in', <SignInPage />);
    expect((await screen.findByRole('alert')).textContent).toContain('We could not sign you in.');
    expect(screen.queryByTestId('sign-in-invalid')).toBeNull();
  });

  it('sends a visit without a token to my orders', async () => {
    renderAt('/sign-in', '/sign-in', <SignInPage />);
    expect((await screen.findByTestId('location')).textContent).toBe('/orders');
    expect(api.callsTo('POST', '/api/sign-in')).toHaveLength(0);
  });
});

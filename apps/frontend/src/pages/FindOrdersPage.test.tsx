import { beforeEach, describe, expect, it } from 'vitest';
import { screen, waitFor } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { FindOrdersPage } from './FindOrdersPage';
import { apiError, FakeApi } from '../test/fakeApi';
import { renderAt } from '../test/render';

describe('find my orders page', () => {
  let api: FakeApi;
  beforeEach(() => {
    api = new FakeApi().install();
  });

  async function ask(email: string) {
    const user = userEvent.setup();
    renderAt('/find-orders', '/find-orders', <FindOrdersPage />);
    await user.type(screen.getByLabelText('E-mail'), email);
    await user.click(screen.getByRole('button', { name: 'E-mail me a sign-in link' }));
    return user;
  }

  it('sends the address and shows the same confirmation whatever the address', async () => {
    await ask('ada@example.com');
    const sent = await screen.findByTestId('find-orders-sent');
    expect(sent.textContent).toContain('If ada@example.com has orders with us, we have just sent it a sign-in link.');
    expect(api.callsTo('POST', '/api/sign-in/requests').map((c) => c.body)).toEqual([{ email: 'ada@example.com' }]);
    expect(document.title).toBe('Find my orders — ChargeFlow Outdoor');
  });

  it('offers to try another address after the confirmation', async () => {
    const user = await ask('ada@example.com');
    await screen.findByTestId('find-orders-sent');
    await user.click(screen.getByRole('button', { name: 'Try another address' }));
    expect(screen.getByRole('button', { name: 'E-mail me a sign-in link' })).toBeTruthy();
  });

  it('refuses a malformed address before sending', async () => {
    await ask('ada@example');
    expect(await screen.findByText(/such as name@example\.com/)).toBeTruthy();
    expect(screen.getByLabelText('E-mail').getAttribute('aria-invalid')).toBe('true');
    expect(api.callsTo('POST', '/api/sign-in/requests')).toHaveLength(0);
  });

  it("puts the server's invalid_email next to the field", async () => {
    api.signInRequestAnswers = [apiError(422, 'invalid_email', 'enter an e-mail address', { field: 'email' })];
    await ask('ada@exa_mple.com');
    expect(await screen.findByText(/such as name@example\.com/)).toBeTruthy();
    expect(screen.queryByTestId('find-orders-sent')).toBeNull();
  });

  it('says when to try again after too many requests (429)', async () => {
    api.signInRequestAnswers = [apiError(429, 'rate_limited', 'too many sign-in links were asked for')];
    api.signInRequestHeaders = { 'Retry-After': '600' };
    await ask('ada@example.com');
    expect((await screen.findByRole('alert')).textContent).toBe(
      'Too many sign-in links were asked for. Please try again in 10 minutes.',
    );
    expect(screen.queryByTestId('find-orders-sent')).toBeNull();
  });

  it('sends one request for a double click', async () => {
    const user = userEvent.setup();
    renderAt('/find-orders', '/find-orders', <FindOrdersPage />);
    await user.type(screen.getByLabelText('E-mail'), 'ada@example.com');
    await user.dblClick(screen.getByRole('button', { name: 'E-mail me a sign-in link' }));
    await screen.findByTestId('find-orders-sent');
    await waitFor(() => expect(api.callsTo('POST', '/api/sign-in/requests')).toHaveLength(1));
  });
});

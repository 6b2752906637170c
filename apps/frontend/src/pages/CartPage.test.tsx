import { describe, expect, it, beforeEach } from 'vitest';
import { fireEvent, screen, waitFor, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { CartPage } from './CartPage';
import { FakeApi } from '../test/fakeApi';
import { renderAt } from '../test/render';
import { formatMoney } from '../lib/format';

const eur = (minor: number) => formatMoney(minor, 'EUR');

/** Types `value` into a quantity field and presses Enter. (user-event's clear-then-type on a
 * number input is timing-sensitive on a loaded machine: the old value sometimes survives.) */
function enterQuantity(input: HTMLElement, value: string) {
  fireEvent.change(input, { target: { value } });
  fireEvent.keyDown(input, { key: 'Enter' });
}

function line(name: string): HTMLElement {
  return screen.getByRole('heading', { name }).closest('li') as HTMLElement;
}

describe('cart page', () => {
  let api: FakeApi;
  beforeEach(() => {
    api = new FakeApi([
      [1, 2],
      [9, 1],
    ]).install();
  });

  it('shows each line with its total and the subtotal', async () => {
    renderAt('/cart', '/cart', <CartPage />);
    await screen.findByRole('heading', { name: 'Enamel camp mug' });
    expect(within(line('Enamel camp mug')).getByTestId('line-total-1').textContent).toBe(eur(2900));
    expect(within(line('Ultralight tarp 3 × 3 m')).getByTestId('line-total-9').textContent).toBe(eur(8900));
    expect(screen.getByTestId('subtotal').textContent).toBe(eur(2900 + 8900));
    expect((screen.getByLabelText('Quantity of Enamel camp mug') as HTMLInputElement).value).toBe('2');
  });

  it('changes a quantity typed into the field and updates the totals', async () => {
    renderAt('/cart', '/cart', <CartPage />);
    const input = await screen.findByLabelText('Quantity of Enamel camp mug');
    enterQuantity(input, '5');
    await waitFor(() => expect(screen.getByTestId('line-total-1').textContent).toBe(eur(5 * 1450)));
    expect(screen.getByTestId('subtotal').textContent).toBe(eur(5 * 1450 + 8900));
    const puts = api.callsTo('PUT', '/api/cart/items/1');
    expect(puts).toHaveLength(1);
    expect(puts[0].body).toEqual({ quantity: 5 });
  });

  it('steps a quantity with the + and − buttons', async () => {
    const user = userEvent.setup();
    renderAt('/cart', '/cart', <CartPage />);
    await user.click(await screen.findByRole('button', { name: 'One more Ultralight tarp 3 × 3 m' }));
    await waitFor(() => expect(screen.getByTestId('line-total-9').textContent).toBe(eur(2 * 8900)));
    await user.click(screen.getByRole('button', { name: 'One less Enamel camp mug' }));
    await waitFor(() => expect(screen.getByTestId('line-total-1').textContent).toBe(eur(1450)));
    expect(screen.getByTestId('subtotal').textContent).toBe(eur(1450 + 2 * 8900));
  });

  it('refuses a quantity outside 1..100 without asking the server', async () => {
    renderAt('/cart', '/cart', <CartPage />);
    const input = await screen.findByLabelText('Quantity of Enamel camp mug');
    enterQuantity(input, '0');
    expect(await screen.findByText('Enter a quantity from 1 to 100, or remove the item.')).toBeTruthy();
    expect(input.getAttribute('aria-invalid')).toBe('true');
    expect(api.callsTo('PUT', '/api/cart/items')).toHaveLength(0);
  });

  it('warns when a quantity is more than the stock', async () => {
    renderAt('/cart', '/cart', <CartPage />);
    const input = await screen.findByLabelText('Quantity of Ultralight tarp 3 × 3 m');
    enterQuantity(input, '9');
    expect(await screen.findByText('Only 8 in stock.')).toBeTruthy();
  });

  it('removes a line', async () => {
    const user = userEvent.setup();
    renderAt('/cart', '/cart', <CartPage />);
    await user.click(await screen.findByRole('button', { name: 'Remove Enamel camp mug' }));
    await waitFor(() => expect(screen.queryByRole('heading', { name: 'Enamel camp mug' })).toBeNull());
    expect(screen.getByTestId('subtotal').textContent).toBe(eur(8900));
    expect(api.callsTo('DELETE', '/api/cart/items/1')).toHaveLength(1);
    await user.click(screen.getByRole('button', { name: 'Remove Ultralight tarp 3 × 3 m' }));
    expect(await screen.findByText('Your cart is empty.')).toBeTruthy();
  });

  it('shows a message and a Retry button when the cart cannot be loaded', async () => {
    api.cartFailures = 1;
    const user = userEvent.setup();
    renderAt('/cart', '/cart', <CartPage />);
    expect(await screen.findByText('We could not load your cart.')).toBeTruthy();
    await user.click(screen.getByRole('button', { name: 'Retry' }));
    expect(await screen.findByRole('heading', { name: 'Enamel camp mug' })).toBeTruthy();
  });

  it('saves a typed quantity before going to the checkout', async () => {
    const user = userEvent.setup();
    renderAt('/cart', '/cart', <CartPage />);
    const input = await screen.findByLabelText('Quantity of Enamel camp mug');
    input.focus();
    fireEvent.change(input, { target: { value: '3' } });
    await user.click(screen.getByRole('button', { name: 'Go to checkout' }));
    await waitFor(() => expect(screen.getByTestId('location').textContent).toBe('/checkout'));
    expect(api.callsTo('PUT', '/api/cart/items/1')[0].body).toEqual({ quantity: 3 });
  });
});

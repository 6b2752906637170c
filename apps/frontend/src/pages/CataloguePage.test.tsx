import { beforeEach, describe, expect, it } from 'vitest';
import { screen, waitFor, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { CataloguePage } from './CataloguePage';
import { FakeApi } from '../test/fakeApi';
import { renderAt } from '../test/render';
import { formatMoney } from '../lib/format';

function card(name: string): HTMLElement {
  return screen.getByRole('article', { name });
}

describe('catalogue', () => {
  let api: FakeApi;
  beforeEach(() => {
    api = new FakeApi().install();
  });

  it('shows price, picture and stock, and disables sold-out products', async () => {
    renderAt('/', '/', <CataloguePage />);
    await screen.findByRole('heading', { name: 'Enamel camp mug' });
    expect(within(card('Enamel camp mug')).getByText(formatMoney(1450, 'EUR'))).toBeTruthy();
    expect(card('Enamel camp mug').querySelector('img')?.getAttribute('src')).toBe('/images/mug-enamel.svg');
    expect(within(card('First-aid kit')).getByText('Only 3 left')).toBeTruthy();
    expect(within(card('Ultralight tarp 3 × 3 m')).queryByText(/Only/)).toBeNull();
    const soldOut = within(card('Sold-out thing')).getByRole('button', { name: 'Sold-out thing is sold out' }) as HTMLButtonElement;
    expect(soldOut.disabled).toBe(true);
    expect(soldOut.textContent).toBe('Sold out');
  });

  it('adds to the cart one at a time', async () => {
    const user = userEvent.setup();
    renderAt('/', '/', <CataloguePage />);
    const add = await screen.findByRole('button', { name: 'Add Enamel camp mug to cart' });
    await user.click(add);
    await within(card('Enamel camp mug')).findByText('1 in cart');
    await user.click(add);
    await within(card('Enamel camp mug')).findByText('2 in cart');
    expect(api.callsTo('PUT', '/api/cart/items/1').map((c) => c.body)).toEqual([{ quantity: 1 }, { quantity: 2 }]);
  });

  it('shows a message and a Retry button when the catalogue cannot be loaded', async () => {
    const original = api.fetch.getMockImplementation()!;
    let fail = true;
    api.fetch.mockImplementation(async (input, init) => {
      if (String(input) === '/api/products' && fail) {
        fail = false;
        throw new TypeError('Failed to fetch');
      }
      return original(input, init);
    });
    const user = userEvent.setup();
    renderAt('/', '/', <CataloguePage />);
    expect(await screen.findByText('We could not load the catalogue.')).toBeTruthy();
    await user.click(screen.getByRole('button', { name: 'Retry' }));
    await waitFor(() => expect(screen.getByRole('heading', { name: 'Enamel camp mug' })).toBeTruthy());
  });
});

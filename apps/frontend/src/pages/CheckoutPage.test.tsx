import { beforeEach, describe, expect, it } from 'vitest';
import { fireEvent, screen, waitFor } from '@testing-library/react';
import { apiError, FakeApi } from '../test/fakeApi';
import { fillValid, setup } from '../test/checkout';
import { BAD_COUNTRY, BAD_EMAIL, EMPTY_ORDER, GENERIC, SERVER } from '../lib/checkout';
import { formatMoney } from '../lib/format';

/** The error shown for a field: the element its aria-describedby points at. */
function errorFor(label: string): string | null {
  const field = screen.getByLabelText(label);
  const id = field.getAttribute('aria-describedby');
  if (!id) return null;
  expect(field.getAttribute('aria-invalid')).toBe('true');
  return document.getElementById(id)?.textContent ?? null;
}

describe('checkout form', () => {
  let api: FakeApi;
  beforeEach(() => {
    api = new FakeApi([
      [1, 2],
      [9, 1],
    ]).install();
  });

  it('labels every field and offers both test cards', async () => {
    setup();
    await screen.findByText('2 × Enamel camp mug');
    for (const label of ['Full name', 'E-mail', 'Address', 'Postal code', 'City', 'Country']) {
      expect(screen.getByLabelText(label)).toBeTruthy();
    }
    const ok = screen.getByRole('radio', { name: /Visa — succeeds/ }) as HTMLInputElement;
    const declined = screen.getByRole('radio', { name: /Visa — declined/ }) as HTMLInputElement;
    expect(ok.value).toBe('pm_card_visa');
    expect(declined.value).toBe('pm_card_chargeDeclined');
    expect((screen.getByRole('option', { name: 'Germany' }) as HTMLOptionElement).value).toBe('DE');
  });

  it('shows an error next to each empty field and sends nothing', async () => {
    const user = setup();
    await screen.findByText('2 × Enamel camp mug');
    await user.click(screen.getByRole('button', { name: /^Place order/ }));
    expect(errorFor('Full name')).toBe('Please enter your name.');
    expect(errorFor('E-mail')).toBe('Please enter your e-mail address.');
    expect(errorFor('Address')).toBe('Please enter your street address.');
    expect(errorFor('Postal code')).toBe('Please enter your postal code.');
    expect(errorFor('City')).toBe('Please enter your city.');
    expect(errorFor('Country')).toBe('Please choose your country.');
    expect(document.activeElement).toBe(screen.getByLabelText('Full name'));
    expect(api.callsTo('POST', '/api/orders')).toHaveLength(0);
  });

  it('refuses a bad e-mail address before sending', async () => {
    const user = setup();
    await screen.findByText('2 × Enamel camp mug');
    await fillValid(user);
    await user.clear(screen.getByLabelText('E-mail'));
    await user.type(screen.getByLabelText('E-mail'), 'ada@example');
    await user.click(screen.getByRole('button', { name: /^Place order/ }));
    expect(errorFor('E-mail')).toBe(BAD_EMAIL);
    expect(errorFor('Full name')).toBeNull();
    expect(errorFor('City')).toBeNull();
    expect(api.callsTo('POST', '/api/orders')).toHaveLength(0);
    // Fixing it clears the message as the user types.
    await user.type(screen.getByLabelText('E-mail'), '.com');
    expect(errorFor('E-mail')).toBeNull();
  });

  it('places the order from the cart with an Idempotency-Key and opens the order page', async () => {
    const user = setup();
    await screen.findByText('2 × Enamel camp mug');
    await fillValid(user);
    await user.click(screen.getByRole('radio', { name: /Visa — declined/ }));
    await screen.findByTestId('quote-total');
    await user.click(screen.getByRole('button', { name: /^Place order/ }));
    await waitFor(() => expect(screen.getByTestId('location').textContent).toBe('/orders/0190c1d2-0000-7000-8000-00000000abcd'));
    const [post] = api.callsTo('POST', '/api/orders');
    expect(post.body).toEqual({
      customer: {
        name: 'Ada Lovelace',
        email: 'ada@example.com',
        address: { line1: '12 Analytical Row', city: 'London', postal_code: 'N1 9GU', country: 'GB' },
      },
      payment_method: 'pm_card_chargeDeclined',
      expected_total_minor: 14625,
    });
    expect(post.headers['Idempotency-Key']).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('shows shipping, tax and the total for the chosen country before "Place order", and sends that total', async () => {
    const user = setup();
    await screen.findByText('2 × Enamel camp mug');
    expect(screen.getByTestId('quote-pending').textContent).toBe('Choose the country to see shipping, tax and the total.');
    await fillValid(user);
    // 2 × 14.50 + 89.00 = 118.00; GB has the default rates: + 4.90 shipping, 19 % of 122.90 = 23.35.
    await waitFor(() => expect(screen.getByTestId('quote-total').textContent).toBe(formatMoney(14625, 'EUR')));
    expect(screen.getByTestId('quote-shipping').textContent).toBe(formatMoney(490, 'EUR'));
    expect(screen.getByTestId('quote-tax').textContent).toBe(formatMoney(2335, 'EUR'));
    expect(screen.getByText('Tax (19%)')).toBeTruthy();
    // Austria has its own: + 6.90 shipping, 20 % of 124.90 = 24.98.
    await user.selectOptions(screen.getByLabelText('Country'), 'AT');
    await waitFor(() => expect(screen.getByTestId('quote-total').textContent).toBe(formatMoney(14988, 'EUR')));
    expect(screen.getByTestId('quote-shipping').textContent).toBe(formatMoney(690, 'EUR'));
    const button = screen.getByRole('button', { name: `Place order · ${formatMoney(14988, 'EUR')}` });
    await user.click(button);
    await waitFor(() => expect(screen.getByTestId('location').textContent).toMatch(/^\/orders\//));
    const [post] = api.callsTo('POST', '/api/orders');
    expect((post.body as { expected_total_minor: number }).expected_total_minor).toBe(14988);
  });

  it('says so and orders nothing when the total changed since it was shown (quote_changed)', async () => {
    api.checkoutAnswers = [apiError(409, 'quote_changed', 'the total is now 150.00 EUR, not 146.25 EUR as shown')];
    const user = setup();
    await screen.findByText('2 × Enamel camp mug');
    await fillValid(user);
    await waitFor(() => expect(screen.getByTestId('quote-total')).toBeTruthy());
    const quotesBefore = api.callsTo('GET', '/api/cart').length;
    await user.click(screen.getByRole('button', { name: /^Place order/ }));
    expect(await screen.findByText(/The total changed while you were on this page/)).toBeTruthy();
    expect(screen.getByTestId('location').textContent).toBe('/checkout');
    // The cart and its quote are read again, so the total shown is the new one.
    await waitFor(() => expect(api.callsTo('GET', '/api/cart').length).toBeGreaterThan(quotesBefore));
  });

  it('sends one request for a double click, and reuses the key when retried', async () => {
    api.checkoutAnswers = [apiError(503, 'service_unavailable', 'service unavailable'), api.checkoutAnswers[0]];
    const user = setup();
    await screen.findByText('2 × Enamel camp mug');
    await fillValid(user);
    const button = screen.getByRole('button', { name: /^Place order/ });
    fireEvent.click(button);
    fireEvent.click(button);
    expect(await screen.findByText(SERVER)).toBeTruthy();
    expect(api.callsTo('POST', '/api/orders')).toHaveLength(1);
    await user.click(screen.getByRole('button', { name: /^Place order/ }));
    await waitFor(() => expect(screen.getByTestId('location').textContent).toMatch(/^\/orders\//));
    const posts = api.callsTo('POST', '/api/orders');
    expect(posts).toHaveLength(2);
    expect(posts[1].headers['Idempotency-Key']).toBe(posts[0].headers['Idempotency-Key']);
  });

  it('disables "Place order" while the order is being placed', async () => {
    let release: () => void = () => {};
    const gate = new Promise<void>((r) => (release = r));
    const original = api.fetch.getMockImplementation()!;
    api.fetch.mockImplementation(async (input, init) => {
      if (init?.method === 'POST') await gate;
      return original(input, init);
    });
    const user = setup();
    await screen.findByText('2 × Enamel camp mug');
    await fillValid(user);
    await user.click(screen.getByRole('button', { name: /^Place order/ }));
    const busy = await screen.findByRole('button', { name: 'Placing order…' });
    expect((busy as HTMLButtonElement).disabled).toBe(true);
    await user.dblClick(busy);
    release();
    await waitFor(() => expect(screen.getByTestId('location').textContent).toMatch(/^\/orders\//));
    expect(api.callsTo('POST', '/api/orders')).toHaveLength(1);
  });

  const serverCases: [string, ReturnType<typeof apiError>, string, string][] = [
    ['missing_field (city)', apiError(422, 'missing_field', 'customer.address.city is required', { field: 'customer.address.city' }), 'City', 'Please enter your city.'],
    ['missing_field (name)', apiError(422, 'missing_field', 'customer.name is required', { field: 'customer.name' }), 'Full name', 'Please enter your name.'],
    ['invalid_email', apiError(422, 'invalid_email', 'not an e-mail address', { field: 'customer.email' }), 'E-mail', BAD_EMAIL],
    ['invalid_country', apiError(422, 'invalid_country', 'not a country', { field: 'customer.address.country' }), 'Country', BAD_COUNTRY],
    ['field_too_long', apiError(422, 'field_too_long', 'too long', { field: 'customer.address.line1' }), 'Address', 'This is too long: 200 characters at most.'],
  ];
  for (const [name, answer, label, sentence] of serverCases) {
    it(`puts the server's ${name} next to the ${label} field`, async () => {
      api.checkoutAnswers = [answer];
      const user = setup();
      await screen.findByText('2 × Enamel camp mug');
      await fillValid(user);
      await user.click(screen.getByRole('button', { name: /^Place order/ }));
      await waitFor(() => expect(errorFor(label)).toBe(sentence));
      expect(document.activeElement).toBe(screen.getByLabelText(label));
      expect(screen.getByTestId('location').textContent).toBe('/checkout');
    });
  }

  it('puts out_of_stock next to the cart line it concerns', async () => {
    api.checkoutAnswers = [apiError(409, 'out_of_stock', 'only 8 of Ultralight tarp 3 × 3 m left', { product_id: 9 })];
    const user = setup();
    await screen.findByText('1 × Ultralight tarp 3 × 3 m');
    await fillValid(user);
    await user.click(screen.getByRole('button', { name: /^Place order/ }));
    const line = (await screen.findByText('1 × Ultralight tarp 3 × 3 m')).closest('li')!;
    await waitFor(() =>
      expect(line.querySelector('.line-error')?.textContent).toBe(
        'Sorry, we only have 8 of Ultralight tarp 3 × 3 m left. Please lower the quantity in your cart.',
      ),
    );
    const other = screen.getByText('2 × Enamel camp mug').closest('li')!;
    expect(other.querySelector('.line-error')).toBeNull();
    expect(screen.getByText(/Nothing was ordered\./)).toBeTruthy();
  });

  it('says the cart is empty for empty_order', async () => {
    api.checkoutAnswers = [apiError(422, 'empty_order', 'no items', { field: 'items' })];
    const user = setup();
    await screen.findByText('2 × Enamel camp mug');
    await fillValid(user);
    await user.click(screen.getByRole('button', { name: /^Place order/ }));
    expect(await screen.findByText(EMPTY_ORDER)).toBeTruthy();
  });

  it('uses a generic sentence for other errors and for a lost connection', async () => {
    api.checkoutAnswers = [apiError(422, 'something_new', 'a new rule')];
    const user = setup();
    await screen.findByText('2 × Enamel camp mug');
    await fillValid(user);
    await user.click(screen.getByRole('button', { name: /^Place order/ }));
    expect(await screen.findByText(GENERIC)).toBeTruthy();

    const original = api.fetch.getMockImplementation()!;
    api.fetch.mockImplementation(async (input, init) => {
      if (init?.method === 'POST') throw new TypeError('Failed to fetch');
      return original(input, init);
    });
    await user.click(screen.getByRole('button', { name: /^Place order/ }));
    expect(await screen.findByText('We could not reach the shop. Check your connection and try again.')).toBeTruthy();
  });
});

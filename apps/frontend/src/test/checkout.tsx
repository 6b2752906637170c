// The checkout page's shared test steps: render it at /checkout, fill the form validly.
import { screen } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { CheckoutPage } from '../pages/CheckoutPage';
import { renderAt } from './render';

/** A user typing into the checkout form: every field valid, shipping to Great Britain. */
export async function fillValid(user: ReturnType<typeof userEvent.setup>) {
  await user.type(screen.getByLabelText('Full name'), 'Ada Lovelace');
  await user.type(screen.getByLabelText('E-mail'), 'ada@example.com');
  await user.type(screen.getByLabelText('Address'), '12 Analytical Row');
  await user.type(screen.getByLabelText('Postal code'), 'N1 9GU');
  await user.type(screen.getByLabelText('City'), 'London');
  await user.selectOptions(screen.getByLabelText('Country'), 'GB');
}

/** Renders the checkout page at /checkout; returns the user who drives it. */
export function setup() {
  const user = userEvent.setup();
  renderAt('/checkout', '/checkout', <CheckoutPage />);
  return user;
}

import { describe, expect, it } from 'vitest';
import { PAYMENT_CHOICES } from './checkout';

describe('local payment choices', () => {
  it("include Stripe's 3-D Secure test card, whose bank asks the shopper to confirm", () => {
    const card = PAYMENT_CHOICES.find((c) => c.id === 'pm_card_authenticationRequired');
    expect(card?.label).toBe('Visa — 3-D Secure');
    expect(card?.hint).toContain('4000 0027 6000 3184');
  });
});

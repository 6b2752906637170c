import { useEffect, useRef, useState } from 'react';
import { api, ApiError, type Order } from '../lib/api';
import { formatMoney } from '../lib/format';
import { startConfirmation } from '../lib/confirmPayment';
import { describeLoadError } from './Status';

interface Props {
  order: Order;
  /** The order link's token this page was opened with, if any. */
  token: string | null;
  /** The page was opened by the bank's redirect back (`redirect_status` in its address). */
  returned: boolean;
  /** Called once the return was taken in (to drop the bank's parameters from the address). */
  onReturned: () => void;
  /** Shows the order as it is after the check. */
  onChange: (order: Order) => void;
  /** Sends the browser to the bank's page (tests replace it). */
  navigate?: (url: string) => void;
}

/**
 * "Confirm your payment" while the order's payment waits for the shopper's bank (3-D Secure,
 * `payment_action` of the order): starts the bank's step (lib/confirmPayment.ts), then — when
 * Stripe.js is done, or when the bank's page sent the shopper back — asks the shop to check the
 * payment ("I have confirmed") and shows the order as it is then.
 */
export function ConfirmPayment({ order, token, returned, onReturned, onChange, navigate }: Props) {
  const [step, setStep] = useState<'idle' | 'starting' | 'checking'>(returned ? 'checking' : 'idle');
  const [error, setError] = useState<string | null>(null);
  const tookReturn = useRef(false);
  const orderId = order.order_id;

  const check = async (failure: string | null) => {
    setStep('checking');
    try {
      const result = await api.checkPayment(orderId, token ?? undefined);
      if (result.checked === 'still_waiting') {
        setError(failure ? `Your bank did not confirm the payment: ${failure}` : 'Your bank has not confirmed the payment yet.');
      }
      onChange(await api.order(orderId, token ?? undefined));
    } catch (e) {
      setError(describeLoadError(e));
    } finally {
      setStep('idle');
    }
  };

  useEffect(() => {
    if (!returned || tookReturn.current) return;
    tookReturn.current = true;
    onReturned();
    void check(null);
    // Once per return; `check` reads the props of this render.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [returned]);

  const confirm = async () => {
    setStep('starting');
    setError(null);
    try {
      const started = await startConfirmation(orderId, token, navigate);
      if (started.kind === 'done') await check(started.error);
    } catch (e) {
      if (e instanceof ApiError && e.code === 'payment_action_not_required') {
        await check(null);
        return;
      }
      setError(e instanceof ApiError ? describeLoadError(e) : e instanceof Error ? e.message : describeLoadError(e));
      setStep('idle');
    }
  };

  if (step === 'checking') {
    return (
      <p className="notice notice-neutral" role="status" data-testid="payment-checking">
        Checking your payment with your bank…
      </p>
    );
  }
  const waiting = order.status === 'invoiced' && order.payment_action?.type === 'authenticate';
  if (!waiting) {
    return error ? (
      <p className="notice notice-error" role="alert">
        {error}
      </p>
    ) : null;
  }
  const amount = order.payment ? formatMoney(order.payment.amount_minor, order.currency) : null;
  return (
    <div className="notice notice-neutral confirm-payment" data-testid="confirm-payment" aria-labelledby="confirm-payment-title">
      <h2 id="confirm-payment-title">Confirm your payment</h2>
      <p>
        Your bank asks you to confirm the payment{amount ? ` of ${amount}` : ''} (3-D Secure). We are holding your items until then;
        nothing has been charged yet.
      </p>
      {error && (
        <p className="confirm-payment-error" role="alert">
          {error}
        </p>
      )}
      <p>
        <button type="button" className="button button-primary" disabled={step === 'starting'} onClick={() => void confirm()}>
          Confirm your payment
        </button>{' '}
        {step === 'starting' && (
          <span className="muted" role="status">
            Opening your bank's confirmation…
          </span>
        )}
      </p>
    </div>
  );
}

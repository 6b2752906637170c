import { useEffect, useId, useRef, useState, type FormEvent } from 'react';
import { Link } from 'react-router-dom';
import { api, ApiError } from '../lib/api';
import { describeLoadError } from '../components/Status';

type Step = { kind: 'form' } | { kind: 'sending' } | { kind: 'sent'; email: string };

/**
 * "Find my orders": the shopper enters the address they ordered with, and the shop e-mails a
 * one-time sign-in link to it. The confirmation is the same whatever the shop answers for a
 * well-formed address, as the API's own answer is: it never tells whether the address has orders.
 */
export function FindOrdersPage() {
  const [email, setEmail] = useState('');
  const [step, setStep] = useState<Step>({ kind: 'form' });
  const [fieldError, setFieldError] = useState<string | null>(null);
  const [formError, setFormError] = useState<string | null>(null);
  const sending = useRef(false);
  const input = useRef<HTMLInputElement>(null);
  const errorId = useId();

  useEffect(() => {
    document.title = 'Find my orders — ChargeFlow Outdoor';
  }, []);

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    if (sending.current) return;
    const address = email.trim();
    if (!/^[^\s@]+@[^\s@]+\.[^\s@]+$/.test(address)) {
      setFieldError('Enter the e-mail address you ordered with, such as name@example.com.');
      input.current?.focus();
      return;
    }
    sending.current = true;
    setFieldError(null);
    setFormError(null);
    setStep({ kind: 'sending' });
    try {
      await api.requestSignIn(address);
      setStep({ kind: 'sent', email: address });
    } catch (err) {
      setStep({ kind: 'form' });
      if (err instanceof ApiError && err.code === 'invalid_email') {
        setFieldError('Enter the e-mail address you ordered with, such as name@example.com.');
        input.current?.focus();
      } else if (err instanceof ApiError && err.code === 'rate_limited') {
        const minutes = Math.max(1, Math.ceil((err.retryAfterS ?? 900) / 60));
        setFormError(`Too many sign-in links were asked for. Please try again in ${minutes} ${minutes === 1 ? 'minute' : 'minutes'}.`);
      } else {
        setFormError(describeLoadError(err));
      }
    } finally {
      sending.current = false;
    }
  };

  if (step.kind === 'sent') {
    return (
      <section aria-labelledby="find-title" className="find-orders">
        <h1 id="find-title">Check your e-mail</h1>
        <div className="notice notice-good" role="status" data-testid="find-orders-sent">
          <p>
            If <strong>{step.email}</strong> has orders with us, we have just sent it a sign-in link. Open it on this device to see
            your orders. It works once, and only for a short while (the e-mail says how long).
          </p>
        </div>
        <p className="muted">
          Nothing arrived? Check your spam folder, or make sure it is the address you ordered with.{' '}
          <button type="button" className="link-button" onClick={() => setStep({ kind: 'form' })}>
            Try another address
          </button>
        </p>
      </section>
    );
  }

  return (
    <section aria-labelledby="find-title" className="find-orders">
      <h1 id="find-title">Find my orders</h1>
      <p>Ordered on another device or in another browser? Enter the e-mail address you ordered with, and we will send you a link that shows your orders here. No password needed.</p>
      <form className="card find-orders-form" onSubmit={(e) => void submit(e)} noValidate>
        {formError && (
          <div className="notice notice-error" role="alert">
            <p>{formError}</p>
          </div>
        )}
        <div className={`field${fieldError ? ' field-invalid' : ''}`}>
          <label htmlFor="find-orders-email">E-mail</label>
          <input
            id="find-orders-email"
            ref={input}
            name="email"
            type="email"
            inputMode="email"
            autoComplete="email"
            maxLength={254}
            value={email}
            aria-invalid={fieldError ? true : undefined}
            aria-describedby={fieldError ? errorId : undefined}
            required
            onChange={(e) => setEmail(e.target.value)}
          />
          {fieldError && (
            <p id={errorId} className="error-text field-error">
              {fieldError}
            </p>
          )}
        </div>
        <button type="submit" className="button button-primary" disabled={step.kind === 'sending'}>
          {step.kind === 'sending' ? 'Sending…' : 'E-mail me a sign-in link'}
        </button>
      </form>
      <p>
        <Link to="/orders">Back to my orders</Link>
      </p>
    </section>
  );
}

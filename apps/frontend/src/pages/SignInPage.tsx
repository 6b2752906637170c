import { useEffect, useState } from 'react';
import { Link, Navigate, useNavigate, useSearchParams } from 'react-router-dom';
import { api, ApiError, type OrderSummary } from '../lib/api';
import { describeLoadError, Loading } from '../components/Status';
import { OrderList } from '../components/OrderList';

type State =
  | { kind: 'signing' }
  | { kind: 'done'; orders: OrderSummary[] }
  | { kind: 'invalid' }
  | { kind: 'error'; error: unknown };

/** One `POST /api/sign-in` per token and page load, whoever asks (React's strict mode mounts
 * twice in development; a second POST of the same token would find it used). */
const attempts = new Map<string, Promise<OrderSummary[]>>();

function signInOnce(token: string): Promise<OrderSummary[]> {
  let attempt = attempts.get(token);
  if (!attempt) {
    attempt = api.signIn(token);
    attempts.set(token, attempt);
    // A failure that may pass (network, 5xx) may be tried again; a refused link may not.
    attempt.catch((error: unknown) => {
      if (!(error instanceof ApiError && error.code === 'sign_in_link_invalid')) attempts.delete(token);
    });
  }
  return attempt;
}

/**
 * Where an e-mailed sign-in link lands (`/sign-in?token=…`): uses the token once, with a POST
 * (opening the link is not enough, so a mail scanner that follows it does not use it up), then
 * shows the orders the session now sees and takes the token out of the address bar. A used,
 * expired or invalid link says so and offers a new one.
 */
export function SignInPage() {
  const [search] = useSearchParams();
  const navigate = useNavigate();
  const token = search.get('token');
  const [state, setState] = useState<State>({ kind: 'signing' });

  useEffect(() => {
    document.title = 'Sign in — ChargeFlow Outdoor';
    if (!token) return;
    let current = true;
    setState({ kind: 'signing' });
    signInOnce(token).then(
      (orders) => {
        if (!current) return;
        setState({ kind: 'done', orders });
        // The token is used up: keep it out of the address bar and the history.
        navigate('/sign-in', { replace: true });
      },
      (error) => {
        if (!current) return;
        const invalid = error instanceof ApiError && error.code === 'sign_in_link_invalid';
        setState(invalid ? { kind: 'invalid' } : { kind: 'error', error });
      },
    );
    return () => {
      current = false;
    };
  }, [token, navigate]);

  if (!token && state.kind === 'signing') return <Navigate to="/orders" replace />;

  return (
    <section aria-labelledby="sign-in-title">
      <h1 id="sign-in-title">{state.kind === 'done' ? 'Your orders' : state.kind === 'signing' ? 'Signing you in' : 'Sign-in link'}</h1>
      {state.kind === 'signing' && <Loading label="Signing you in…" />}
      {state.kind === 'done' && (
        <>
          <p className="notice notice-good" role="status" data-testid="signed-in">
            You are signed in on this device: your orders are listed here and under My orders.
          </p>
          {state.orders.length > 0 ? (
            <OrderList orders={state.orders} />
          ) : (
            <div className="empty">
              <p>There are no orders to show.</p>
            </div>
          )}
        </>
      )}
      {state.kind === 'invalid' && (
        <div className="notice notice-error" role="alert" data-testid="sign-in-invalid">
          <p>
            <strong>This sign-in link has expired or was already used.</strong> Each link works once, for a short time.
          </p>
          <p>
            <Link to="/find-orders">Send me a new link</Link>
          </p>
        </div>
      )}
      {state.kind === 'error' && (
        <div className="notice notice-error" role="alert">
          <p>
            <strong>We could not sign you in.</strong> {describeLoadError(state.error)} Open the link from your e-mail again in a
            moment.
          </p>
        </div>
      )}
    </section>
  );
}

import { ApiError, NETWORK_ERROR } from '../lib/api';

export function Loading({ label = 'Loading…' }: { label?: string }) {
  return (
    <div className="loading" role="status" aria-live="polite">
      <span className="spinner" aria-hidden="true" />
      {label}
    </div>
  );
}

export function describeLoadError(error: unknown): string {
  if (error instanceof ApiError) {
    if (error.code === NETWORK_ERROR) return 'We could not reach the shop. Check your connection and try again.';
    if (error.status >= 500) return 'The shop is having trouble right now. Please try again in a moment.';
    return error.message || 'Something went wrong.';
  }
  return 'Something went wrong.';
}

export function LoadError({ what, error, onRetry }: { what: string; error: unknown; onRetry: () => void }) {
  return (
    <div className="notice notice-error" role="alert">
      <p>
        <strong>We could not load {what}.</strong> {describeLoadError(error)}
      </p>
      <button type="button" className="button button-secondary" onClick={onRetry}>
        Retry
      </button>
    </div>
  );
}

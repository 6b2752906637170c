import { useCallback, useEffect, useRef, useState } from 'react';
import { api, ApiError, type Order } from './api';
import { isTerminal } from './status';

/** How the page hears about changes: an open event stream, or polling while it is away. */
export type LiveState = 'connecting' | 'live' | 'reconnecting' | 'done';

export const POLL_EVERY_MS = 1000;
const REOPEN_MIN_MS = 2000;
const REOPEN_MAX_MS = 30000;

export interface OrderLive {
  order: Order | null;
  error: ApiError | null;
  live: LiveState;
  retry: () => void;
  /** Shows `order` (e.g. the answer of a cancellation) as if the stream had sent it. */
  replace: (order: Order) => void;
}

/**
 * The order, kept up to date: `GET /api/orders/{id}` at once, then the `order` messages of
 * `/api/orders/{id}/events`. While the stream is away (an error, a server without the stream, the
 * API briefly down) the order is polled every second; EventSource reconnects by itself, and a
 * stream that gave up is reopened with a growing pause. Everything stops at a terminal status
 * (a shipped order is followed until it is delivered). `token`, the `t` of an e-mailed order link,
 * goes with every request (`?t=`), so the page works on a device the order was not placed on.
 */
export function useOrderLive(id: string, token?: string | null): OrderLive {
  const [order, setOrder] = useState<Order | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  const [live, setLive] = useState<LiveState>('connecting');
  const [attempt, setAttempt] = useState(0);
  const haveOrder = useRef(false);
  /** Timeline entries of the order shown: a snapshot with fewer is older than it. */
  const shownEntries = useRef(0);
  const applyRef = useRef<((next: Order) => void) | null>(null);

  useEffect(() => {
    let stopped = false;
    let source: EventSource | null = null;
    let poll: ReturnType<typeof setInterval> | null = null;
    let reopen: ReturnType<typeof setTimeout> | null = null;
    let reopenDelay = REOPEN_MIN_MS;
    let inFlight = false;
    haveOrder.current = false;
    shownEntries.current = 0;
    setOrder(null);
    setError(null);
    setLive('connecting');

    const stopPolling = () => {
      if (poll) clearInterval(poll);
      poll = null;
    };
    const stopAll = () => {
      stopped = true;
      stopPolling();
      if (reopen) clearTimeout(reopen);
      reopen = null;
      source?.close();
      source = null;
    };
    const apply = (next: Order) => {
      if (stopped) return;
      // An HTTP answer read before a stream message that came first (the check after a 3-D
      // Secure return, a poll) would put the page back: the timeline only grows, so a snapshot
      // with fewer entries than the one shown is older, and dropped.
      if (next.timeline.length < shownEntries.current) return;
      shownEntries.current = next.timeline.length;
      haveOrder.current = true;
      setOrder(next);
      setError(null);
      if (isTerminal(next.status)) {
        stopAll();
        setLive('done');
      }
    };
    const fetchOnce = async () => {
      if (inFlight || stopped) return;
      inFlight = true;
      try {
        apply(await api.order(id, token ?? undefined));
      } catch (e) {
        if (stopped) return;
        const err = e instanceof ApiError ? e : new ApiError(0, 'network_error', String(e));
        if (err.code === 'order_not_found') {
          stopAll();
          setError(err);
        } else if (!haveOrder.current) {
          setError(err);
        }
      } finally {
        inFlight = false;
      }
    };
    const startPolling = () => {
      if (!poll && !stopped) poll = setInterval(() => void fetchOnce(), POLL_EVERY_MS);
    };
    const open = () => {
      if (stopped || typeof EventSource === 'undefined') {
        startPolling();
        return;
      }
      const es = new EventSource(api.orderEventsUrl(id, token ?? undefined));
      source = es;
      es.addEventListener('order', (event) => {
        let next: Order;
        try {
          next = JSON.parse((event as MessageEvent<string>).data) as Order;
        } catch {
          return;
        }
        reopenDelay = REOPEN_MIN_MS;
        stopPolling();
        if (!stopped) setLive('live');
        apply(next);
      });
      es.onerror = () => {
        if (stopped || source !== es) return;
        setLive('reconnecting');
        startPolling();
        if (es.readyState === EventSource.CLOSED) {
          // The browser gave up (e.g. the stream answered 404 or not as an event stream).
          es.close();
          source = null;
          reopen = setTimeout(() => {
            reopen = null;
            open();
          }, reopenDelay);
          reopenDelay = Math.min(reopenDelay * 2, REOPEN_MAX_MS);
        }
      };
    };

    applyRef.current = apply;
    void fetchOnce();
    open();
    return () => {
      if (applyRef.current === apply) applyRef.current = null;
      stopAll();
    };
  }, [id, token, attempt]);

  const retry = useCallback(() => setAttempt((n) => n + 1), []);
  const replace = useCallback((next: Order) => applyRef.current?.(next), []);
  return { order, error, live, retry, replace };
}

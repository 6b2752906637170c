import type { TimelineEntry } from '../lib/api';
import { formatDateTime, formatMoney } from '../lib/format';
import { eventDetail, eventLabel, eventTone, isTerminal } from '../lib/status';

const NEXT_STEP: Record<string, string> = {
  placed: 'Preparing your invoice…',
  invoiced: 'Taking payment…',
  paid: 'Handing your parcel to the carrier…',
  shipped: 'On its way to you…',
};

interface Props {
  timeline: TimelineEntry[];
  currency: string;
  status: string;
  /** The order's `cancel_reason`: a cancellation accepted but not finished changes the next step. */
  cancelReason?: string | null;
}

/** What happened to an order, oldest first, with the next step while it is under way. */
export function Timeline({ timeline, currency, status, cancelReason = null }: Props) {
  const money = (minor: number) => formatMoney(minor, currency);
  // A payment the bank asks the shopper to confirm (3-D Secure) waits for them, not for the shop.
  const waitsForShopper = status === 'invoiced' && timeline.some((e) => e.event_type === 'payment.action_required');
  const next = isTerminal(status)
    ? null
    : cancelReason
      ? status === 'paid'
        ? 'Refunding your payment…'
        : 'Cancelling your order…'
      : waitsForShopper
        ? 'Waiting for you to confirm the payment…'
        : NEXT_STEP[status];
  return (
    <ol className="timeline" aria-label="Order timeline">
      {timeline.map((entry, i) => {
        const detail = eventDetail(entry, money);
        return (
          <li key={entry.event_id ?? `${entry.event_type}-${i}`} className={`timeline-entry tone-${eventTone(entry.event_type)}`} data-event={entry.event_type}>
            <span className="timeline-dot" aria-hidden="true" />
            <div>
              <p className="timeline-label">{eventLabel(entry.event_type)}</p>
              {detail && <p className="timeline-detail">{detail}</p>}
              <p className="timeline-time">
                <time dateTime={entry.occurred_at}>{formatDateTime(entry.occurred_at)}</time>
              </p>
            </div>
          </li>
        );
      })}
      {next && (
        <li className="timeline-entry timeline-pending">
          <span className="timeline-dot" aria-hidden="true" />
          <div>
            <p className="timeline-label">{next}</p>
          </div>
        </li>
      )}
    </ol>
  );
}

import { useCallback, useEffect, useState } from 'preact/hooks';
import { ApiError, api } from './api.ts';
import { useConversationEvents } from './events.ts';
import { useReloadTickets } from './reload-tickets.ts';
import type { AgentStatus, ConversationSummary, Me } from './types.ts';

const LABELS: Record<AgentStatus, string> = {
  available: 'Available',
  away: 'Away',
  offline: 'Offline',
};

/** The agent's own status, and their open conversations against their capacity. */
export function StatusSwitch(props: { me: Me; onChanged: () => void }) {
  const [busy, setBusy] = useState(false);
  /** Why the last change of status did not happen. */
  const [error, setError] = useState<string>();
  const [open, setOpen] = useState<number>();
  const ticket = useReloadTickets();
  const countOpen = useCallback(async () => {
    const fresh = ticket();
    const mine = await api<{ conversations: ConversationSummary[] }>(
      'GET',
      '/api/agent/conversations?state=mine&limit=100',
    );
    if (fresh()) setOpen(mine.conversations.length);
  }, [ticket]);
  useEffect(() => {
    void countOpen();
  }, [countOpen]);
  useConversationEvents(() => void countOpen());

  const change = async (status: AgentStatus) => {
    setBusy(true);
    setError(undefined);
    try {
      await api('PUT', '/api/agent/status', { status });
      props.onChanged();
    } catch (err) {
      // Said, not only snapped back: an agent who chose Away and walked off would still be handed
      // conversations.
      const reason = err instanceof ApiError ? err.message : 'the hub cannot be reached';
      setError(`Your status is still ${LABELS[props.me.status]}: ${reason}.`);
    } finally {
      setBusy(false);
    }
  };
  return (
    <div class="status">
      <select
        aria-label="Your status"
        class={`status-${props.me.status}`}
        value={props.me.status}
        disabled={busy}
        onChange={(e) => change(e.currentTarget.value as AgentStatus)}
      >
        {(Object.keys(LABELS) as AgentStatus[]).map((s) => (
          <option value={s}>{LABELS[s]}</option>
        ))}
      </select>
      <span class="load" title="Open conversations against your capacity">
        {open ?? '–'}/{props.me.capacity}
      </span>
      {error && (
        <span class="error" role="alert">
          {error}
        </span>
      )}
    </div>
  );
}

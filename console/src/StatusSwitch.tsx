import { useState } from 'preact/hooks';
import { api } from './api.ts';
import type { AgentStatus, Me } from './types.ts';

const LABELS: Record<AgentStatus, string> = {
  available: 'Available',
  away: 'Away',
  offline: 'Offline',
};

/** The agent's own status, and their open conversations against their capacity. */
export function StatusSwitch(props: { me: Me; onChanged: () => void }) {
  const [busy, setBusy] = useState(false);
  const change = async (status: AgentStatus) => {
    setBusy(true);
    try {
      await api('PUT', '/api/agent/status', { status });
      props.onChanged();
    } finally {
      setBusy(false);
    }
  };
  return (
    <div class="status">
      <label>
        <span class="visually-hidden">Your status</span>
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
      </label>
      <span class="load" title="Open conversations against your capacity">
        {props.me.open_conversations}/{props.me.capacity}
      </span>
    </div>
  );
}

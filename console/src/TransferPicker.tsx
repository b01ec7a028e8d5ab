import { useCallback, useEffect, useId, useState } from 'preact/hooks';
import { ApiError, api } from './api.ts';
import { useReloadTickets } from './reload-tickets.ts';
import type { AgentStatus, TransferTarget } from './types.ts';

const STATUS_LABELS: Record<AgentStatus, string> = {
  available: 'available',
  away: 'away',
  offline: 'offline',
};

/** Whether the bot would hand this colleague a conversation now: available and with room. */
const free = (t: TransferTarget) => t.status === 'available' && t.open_conversations < t.capacity;

/**
 * The option's text: the name first, so that typing a name in the closed select finds it, then
 * the status and the load, and why the colleague may not take it (away, offline, full).
 */
function optionText(t: TransferTarget): string {
  const full = t.open_conversations >= t.capacity ? ', full' : '';
  return `${t.name} (${STATUS_LABELS[t.status]}, ${t.open_conversations}/${t.capacity}${full})`;
}

/**
 * *Transfer*: a colleague picked by name (`GET …/transfer-targets`, the agents serving the
 * conversation's bot), then `POST …/transfer`. A refusal is said here, beside the control.
 */
export function TransferPicker(props: {
  sessionId: string;
  /** Who holds the conversation now: not listed, so the list is read again when it changes. */
  holder: string | null | undefined;
  onTransferred: () => Promise<void> | void;
}) {
  const base = `/api/agent/conversations/${encodeURIComponent(props.sessionId)}`;
  const [targets, setTargets] = useState<TransferTarget[]>();
  const [chosen, setChosen] = useState('');
  const [busy, setBusy] = useState(false);
  /** Why the list could not be read, or the last transfer was refused. */
  const [error, setError] = useState<string>();
  const selectId = useId();
  const errorId = useId();
  const ticket = useReloadTickets();

  const loadTargets = useCallback(async () => {
    const fresh = ticket();
    try {
      const read = await api<{ agents: TransferTarget[] }>('GET', `${base}/transfer-targets`);
      if (!fresh()) return;
      setTargets(read.agents);
      // A colleague no longer listed (removed, no longer serving the bot) is not chosen any more.
      setChosen((now) => (read.agents.some((t) => t.agent_id === now) ? now : ''));
    } catch (err) {
      if (fresh()) setError(err instanceof ApiError ? err.message : 'The hub cannot be reached.');
    }
  }, [base, ticket]);

  // A new holder is a reason to read again: the list leaves the holder out.
  useEffect(() => {
    void loadTargets();
  }, [loadTargets, props.holder]);

  const transfer = async () => {
    if (!chosen || busy) return;
    setBusy(true);
    try {
      await api('POST', `${base}/transfer`, { agent_id: chosen });
      setError(undefined);
      setChosen('');
      await props.onTransferred();
    } catch (err) {
      setError(`Not transferred: ${err instanceof ApiError ? err.message : 'the hub cannot be reached'}.`);
      // Statuses and loads may have changed meanwhile.
      void loadTargets();
    } finally {
      setBusy(false);
    }
  };

  const ready = targets?.filter(free) ?? [];
  const others = targets?.filter((t) => !free(t)) ?? [];
  return (
    <form
      class="transfer"
      onSubmit={(e) => {
        e.preventDefault();
        void transfer();
      }}
    >
      <label for={selectId}>Transfer to</label>
      <select
        id={selectId}
        value={chosen}
        disabled={busy}
        aria-describedby={error ? errorId : undefined}
        aria-invalid={error ? true : undefined}
        // Statuses change while the conversation is open: read again when the agent comes to choose.
        onFocus={() => void loadTargets()}
        onChange={(e) => {
          setChosen(e.currentTarget.value);
          setError(undefined);
        }}
      >
        <option value="">
          {targets === undefined
            ? 'Loading colleagues…'
            : targets.length === 0
              ? 'No colleague serves this bot'
              : 'Choose a colleague…'}
        </option>
        {ready.length > 0 && (
          <optgroup label="Available">
            {ready.map((t) => (
              <option value={t.agent_id}>{optionText(t)}</option>
            ))}
          </optgroup>
        )}
        {others.length > 0 && (
          <optgroup label="Away, offline or full">
            {others.map((t) => (
              <option value={t.agent_id}>{optionText(t)}</option>
            ))}
          </optgroup>
        )}
      </select>
      <button type="submit" disabled={!chosen || busy}>
        Transfer
      </button>
      {error && (
        <p id={errorId} class="error transfer-error" role="alert">
          {error}
        </p>
      )}
    </form>
  );
}

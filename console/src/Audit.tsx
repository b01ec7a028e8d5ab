import { useEffect, useState } from 'preact/hooks';
import { ApiError, api } from './api.ts';
import { useReloadTickets } from './reload-tickets.ts';

interface Entry {
  id: number;
  at: string;
  actor: 'agent' | 'operator';
  agent_id: string | null;
  agent_name: string | null;
  action: string;
  session_id: string | null;
  via: string | null;
  ip: string | null;
  detail: Record<string, unknown>;
  erased: boolean;
}

/** `/console/audit`: who read, exported, searched or inspected which transcript, when and from where. */
export function Audit() {
  const [sessionId, setSessionId] = useState('');
  const [entries, setEntries] = useState<Entry[]>();
  const [error, setError] = useState<string>();

  const ticket = useReloadTickets();

  const load = async (session: string) => {
    const fresh = ticket();
    const p = new URLSearchParams();
    if (session.trim()) p.set('session_id', session.trim());
    try {
      const read = await api<{ entries: Entry[] }>('GET', `/api/admin/audit?${p}`);
      if (!fresh()) return;
      setEntries(read.entries);
      setError(undefined);
    } catch (err) {
      if (fresh()) setError(err instanceof ApiError ? err.message : 'The hub cannot be reached.');
    }
  };
  useEffect(() => {
    void load('');
  }, []);

  return (
    <main class="page audit">
      <form
        class="filters"
        aria-label="Audit filters"
        onSubmit={(e) => {
          e.preventDefault();
          void load(sessionId);
        }}
      >
        <label>
          Session id{' '}
          <input size={38} value={sessionId} onInput={(e) => setSessionId(e.currentTarget.value)} />
        </label>
        <button type="submit">Show</button>
      </form>
      {error && (
        <p role="alert" class="error">
          {error}
        </p>
      )}
      {entries && (
        <table class="audit-log">
          <caption class="visually-hidden">Audit log</caption>
          <thead>
            <tr>
              <th scope="col">When</th>
              <th scope="col">Who</th>
              <th scope="col">What</th>
              <th scope="col">Session</th>
              <th scope="col">Through</th>
              <th scope="col">From</th>
            </tr>
          </thead>
          <tbody>
            {entries.map((e) => (
              <tr>
                <td>{new Date(e.at).toLocaleString()}</td>
                <td>{e.actor === 'operator' ? 'operator (ADMIN_TOKEN)' : (e.agent_name ?? e.agent_id)}</td>
                <td>
                  {e.action}
                  {typeof e.detail.format === 'string' ? ` (${e.detail.format})` : ''}
                </td>
                <td>{e.erased ? <i>erased</i> : (e.session_id ?? '–')}</td>
                <td>{e.via}</td>
                <td>{e.ip}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </main>
  );
}

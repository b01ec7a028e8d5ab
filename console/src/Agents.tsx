import { useCallback, useEffect, useState } from 'preact/hooks';
import { ApiError, api } from './api.ts';
import type { AgentRecord, Role } from './types.ts';

const ROLES: Role[] = ['agent', 'supervisor', 'admin'];
const list = (s: string) =>
  s
    .split(',')
    .map((x) => x.trim())
    .filter(Boolean);

function AgentRow(props: { agent: AgentRecord; onChanged: () => void; onError: (m: string) => void }) {
  const { agent } = props;
  const [role, setRole] = useState(agent.role);
  const [bots, setBots] = useState(agent.bots.join(', '));
  const [capacity, setCapacity] = useState(String(agent.capacity));
  const [token, setToken] = useState<string>();
  const path = `/api/admin/agents/${encodeURIComponent(agent.agent_id)}`;
  const run = async (f: () => Promise<void>) => {
    try {
      await f();
      props.onChanged();
    } catch (err) {
      props.onError(err instanceof ApiError ? err.message : 'The hub cannot be reached.');
    }
  };
  return (
    <tr>
      <th scope="row">
        {agent.name}
        <div class="muted">{agent.email}</div>
      </th>
      <td>
        <select
          aria-label={`Role of ${agent.name}`}
          value={role}
          onChange={(e) => setRole(e.currentTarget.value as Role)}
        >
          {ROLES.map((r) => (
            <option value={r}>{r}</option>
          ))}
        </select>
      </td>
      <td>
        <input
          aria-label={`Bots of ${agent.name}`}
          value={bots}
          onInput={(e) => setBots(e.currentTarget.value)}
        />
      </td>
      <td>
        <input
          aria-label={`Capacity of ${agent.name}`}
          type="number"
          min={1}
          value={capacity}
          onInput={(e) => setCapacity(e.currentTarget.value)}
        />
      </td>
      <td>{agent.status}</td>
      <td class="row-actions">
        <button
          type="button"
          onClick={() =>
            run(() => api('PATCH', path, { role, bots: list(bots), capacity: Number(capacity) }))
          }
        >
          Save
        </button>
        <button
          type="button"
          onClick={() =>
            run(async () => setToken((await api<{ token: string }>('POST', `${path}/token`)).token))
          }
        >
          Reset token
        </button>
        <button
          type="button"
          class="danger"
          onClick={() => {
            if (confirm(`Remove ${agent.name}?`)) void run(() => api('DELETE', path));
          }}
        >
          Remove
        </button>
        {token && (
          <output class="token" aria-label={`New token of ${agent.name}`}>
            New token (shown once): <code>{token}</code>
          </output>
        )}
      </td>
    </tr>
  );
}

export function Agents() {
  const [agents, setAgents] = useState<AgentRecord[]>();
  const [error, setError] = useState<string>();
  const [created, setCreated] = useState<string>();
  const [form, setForm] = useState({
    name: '',
    email: '',
    password: '',
    role: 'agent' as Role,
    bots: 'default',
    capacity: '5',
  });

  const load = useCallback(async () => {
    try {
      setAgents((await api<{ agents: AgentRecord[] }>('GET', '/api/admin/agents')).agents);
    } catch (err) {
      setError(err instanceof ApiError ? err.message : 'The hub cannot be reached.');
    }
  }, []);
  useEffect(() => {
    void load();
  }, [load]);

  const add = async (event: Event) => {
    event.preventDefault();
    try {
      const answer = await api<{ agent_id: string; token: string }>('POST', '/api/admin/agents', {
        ...form,
        bots: list(form.bots),
        capacity: Number(form.capacity),
      });
      setCreated(`${form.name} added. Their API token (shown once): ${answer.token}`);
      setForm({ ...form, name: '', email: '', password: '' });
      setError(undefined);
      await load();
    } catch (err) {
      setError(err instanceof ApiError ? err.message : 'The hub cannot be reached.');
    }
  };
  const field = (key: keyof typeof form) => (e: Event) =>
    setForm({ ...form, [key]: (e.currentTarget as HTMLInputElement).value });

  return (
    <main class="agents">
      <h2>Agents</h2>
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      {created && (
        <p class="notice" role="status">
          {created}
        </p>
      )}
      <div class="table-wrap">
        <table>
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Role</th>
              <th scope="col">Bots</th>
              <th scope="col">Capacity</th>
              <th scope="col">Status</th>
              <th scope="col">Actions</th>
            </tr>
          </thead>
          <tbody>
            {(agents ?? []).map((a) => (
              <AgentRow key={a.agent_id} agent={a} onChanged={load} onError={setError} />
            ))}
          </tbody>
        </table>
      </div>
      <form class="add-agent" onSubmit={add} aria-labelledby="add-agent-title">
        <h3 id="add-agent-title">Add an agent</h3>
        <label>
          Name <input required value={form.name} onInput={field('name')} />
        </label>
        <label>
          Email <input type="email" required value={form.email} onInput={field('email')} />
        </label>
        <label>
          Password{' '}
          <input
            type="password"
            required
            minLength={12}
            autocomplete="new-password"
            value={form.password}
            onInput={field('password')}
          />
        </label>
        <label>
          Role
          <select value={form.role} onChange={field('role')}>
            {ROLES.map((r) => (
              <option value={r}>{r}</option>
            ))}
          </select>
        </label>
        <label>
          Bots <input value={form.bots} onInput={field('bots')} />
        </label>
        <label>
          Capacity <input type="number" min={1} value={form.capacity} onInput={field('capacity')} />
        </label>
        <button type="submit">Add agent</button>
      </form>
    </main>
  );
}

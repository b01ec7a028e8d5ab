import { useCallback, useEffect, useState } from 'preact/hooks';
import { Agents } from './Agents.tsx';
import { ApiError, api } from './api.ts';
import { Conversation } from './Conversation.tsx';
import { events } from './events.ts';
import { Inbox } from './Inbox.tsx';
import { Login } from './Login.tsx';
import { navigate, useRoute } from './route.ts';
import { StatusSwitch } from './StatusSwitch.tsx';
import type { Me } from './types.ts';

export function App() {
  const [me, setMe] = useState<Me | null>();
  const route = useRoute();

  const loadMe = useCallback(async () => {
    try {
      setMe(await api<Me>('GET', '/api/agent/me'));
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) setMe(null);
      else throw err;
    }
  }, []);

  useEffect(() => {
    void loadMe();
  }, [loadMe]);

  const signOut = async () => {
    await api('POST', '/api/agent/logout').catch(() => undefined);
    events.close();
    setMe(null);
    navigate({ page: 'inbox' });
  };

  if (me === undefined) return <p class="loading">Loading…</p>;
  if (me === null) return <Login onSignedIn={loadMe} />;

  const manages = me.role === 'admin' || me.role === 'supervisor';
  return (
    <div class="shell">
      <header class="topbar">
        <a
          class="brand"
          href="/console"
          onClick={(e) => {
            e.preventDefault();
            navigate({ page: 'inbox' });
          }}
        >
          Switchboard
        </a>
        <nav aria-label="Console">
          <a
            href="/console"
            aria-current={route.page === 'inbox' ? 'page' : undefined}
            onClick={(e) => {
              e.preventDefault();
              navigate({ page: 'inbox' });
            }}
          >
            Inbox
          </a>
          {me.role === 'admin' && (
            <a
              href="/console/agents"
              aria-current={route.page === 'agents' ? 'page' : undefined}
              onClick={(e) => {
                e.preventDefault();
                navigate({ page: 'agents' });
              }}
            >
              Agents
            </a>
          )}
        </nav>
        <StatusSwitch me={me} onChanged={loadMe} />
        <span class="who" title={me.email}>
          {me.name}
        </span>
        <button type="button" class="link" onClick={signOut}>
          Sign out
        </button>
      </header>
      {route.page === 'agents' && me.role === 'admin' ? (
        <Agents />
      ) : route.page === 'conversation' ? (
        <Conversation me={me} sessionId={route.sessionId} onChanged={loadMe} />
      ) : (
        <Inbox me={me} manages={manages} />
      )}
    </div>
  );
}

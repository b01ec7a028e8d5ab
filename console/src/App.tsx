import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { Agents } from './Agents.tsx';
import { Audit } from './Audit.tsx';
import { ApiError, api, whenSignedOut } from './api.ts';
import { Conversation } from './Conversation.tsx';
import { Dashboard } from './Dashboard.tsx';
import { forgetDrafts } from './drafts.ts';
import { events, useConnectionLost } from './events.ts';
import { Inbox } from './Inbox.tsx';
import { Login } from './Login.tsx';
import { navigate, useRoute } from './route.ts';
import { StatusSwitch } from './StatusSwitch.tsx';
import { Transcript, Transcripts } from './Transcripts.tsx';
import type { Me } from './types.ts';

export function App() {
  const [me, setMe] = useState<Me | null>();
  /** Why the sign-in form shows, when it is not the first visit. */
  const [notice, setNotice] = useState<string>();
  /** Why the last sign-out did not end the sign-in. */
  const [signOutError, setSignOutError] = useState<string>();
  const signedIn = useRef(false);
  const route = useRoute();
  const connectionLost = useConnectionLost();

  const loadMe = useCallback(async () => {
    try {
      const found = await api<Me>('GET', '/api/agent/me');
      signedIn.current = true;
      setNotice(undefined);
      setMe(found);
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) setMe(null);
      else throw err;
    }
  }, []);

  useEffect(() => {
    // The sign-in ended while the console was open: back to the form, on the same page.
    whenSignedOut(() => {
      if (!signedIn.current) return;
      signedIn.current = false;
      events.close();
      setNotice('Your sign-in has ended. Sign in again to go on where you were.');
      setMe(null);
    });
    void loadMe();
  }, [loadMe]);

  const signOut = async () => {
    setSignOutError(undefined);
    try {
      await api('POST', '/api/agent/logout');
    } catch (err) {
      // The sign-in holds until the hub has ended it: showing the sign-in form anyway would tell
      // the agent they are out while the next person at this computer is still signed in as them.
      const reason = err instanceof ApiError ? err.message : 'the hub cannot be reached';
      setSignOutError(`You are still signed in: the sign-out did not reach the hub (${reason}). Try again.`);
      return;
    }
    signedIn.current = false;
    events.close();
    forgetDrafts();
    setMe(null);
    navigate({ page: 'inbox' });
  };

  if (me === undefined) return <p class="loading">Loading…</p>;
  if (me === null) return <Login onSignedIn={loadMe} notice={notice} />;

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
          {manages &&
            (
              [
                ['dashboard', 'Dashboard'],
                ['transcripts', 'Transcripts'],
                ['audit', 'Audit log'],
              ] as const
            ).map(([page, label]) => (
              <a
                href={`/console/${page}`}
                aria-current={
                  route.page === page || (page === 'transcripts' && route.page === 'transcript')
                    ? 'page'
                    : undefined
                }
                onClick={(e) => {
                  e.preventDefault();
                  navigate({ page });
                }}
              >
                {label}
              </a>
            ))}
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
      {connectionLost && (
        <p role="status" class="connection-lost">
          The connection to the hub is lost. Reconnecting… Messages that come meanwhile will show once it is
          back.
        </p>
      )}
      {signOutError && (
        <p role="alert" class="error sign-out-error">
          {signOutError}
        </p>
      )}
      {route.page === 'agents' && me.role === 'admin' ? (
        <Agents />
      ) : route.page === 'dashboard' ? (
        manages ? (
          <Dashboard />
        ) : (
          <Refused />
        )
      ) : route.page === 'transcripts' ? (
        manages ? (
          <Transcripts />
        ) : (
          <Refused />
        )
      ) : route.page === 'transcript' ? (
        manages ? (
          <Transcript key={route.sessionId} sessionId={route.sessionId} />
        ) : (
          <Refused />
        )
      ) : route.page === 'audit' ? (
        manages ? (
          <Audit />
        ) : (
          <Refused />
        )
      ) : route.page === 'conversation' ? (
        // One per conversation: nothing of one (its draft, its errors) shows in the next.
        <Conversation key={route.sessionId} me={me} sessionId={route.sessionId} onChanged={loadMe} />
      ) : (
        <Inbox me={me} manages={manages} />
      )}
    </div>
  );
}

/** A page for supervisors and admins, opened by an agent without the role. */
function Refused() {
  return (
    <main class="page">
      <p role="alert" class="error">
        This page is for supervisors and admins.
      </p>
    </main>
  );
}

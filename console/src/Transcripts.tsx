import { useEffect, useState } from 'preact/hooks';
import { ApiError, api } from './api.ts';
import { useReloadTickets } from './reload-tickets.ts';
import { navigate } from './route.ts';

interface Hit {
  session_id: string;
  seq: number;
  role: string;
  bot: string;
  channel: string;
  created_at: string;
  snippet: string;
}

const when = (iso: string) => new Date(iso).toLocaleString();

/** A snippet with the matching words (between « and ») marked. */
function Snippet(props: { text: string }) {
  const parts = props.text.split(/«|»/);
  return (
    <span class="snippet" dir="auto">
      {parts.map((p, i) => (i % 2 === 1 ? <mark>{p}</mark> : p))}
    </span>
  );
}

function openTranscript(e: Event, sessionId: string) {
  e.preventDefault();
  navigate({ page: 'transcript', sessionId });
}

/** `/console/transcripts`: full-text search across every conversation. */
export function Transcripts() {
  const [q, setQ] = useState('');
  const [bot, setBot] = useState('');
  const [channel, setChannel] = useState('');
  const [from, setFrom] = useState('');
  const [to, setTo] = useState('');
  const [hits, setHits] = useState<Hit[]>();
  const [error, setError] = useState<string>();

  const ticket = useReloadTickets();

  const search = async (e: Event) => {
    e.preventDefault();
    // A search asked again before the last one answered: the earlier answer, if late, is dropped.
    const fresh = ticket();
    const p = new URLSearchParams({ q });
    if (bot) p.set('bot', bot);
    if (channel) p.set('channel', channel);
    if (from) p.set('from', `${from}T00:00:00Z`);
    if (to) p.set('to', `${to}T23:59:59Z`);
    try {
      const found = await api<{ results: Hit[] }>('GET', `/api/admin/transcripts/search?${p}`);
      if (!fresh()) return;
      setHits(found.results);
      setError(undefined);
    } catch (err) {
      if (fresh()) setError(err instanceof ApiError ? err.message : 'The hub cannot be reached.');
    }
  };

  return (
    <main class="page transcripts">
      <form class="filters" aria-label="Search transcripts" onSubmit={search}>
        <label>
          Words <input type="search" required value={q} onInput={(e) => setQ(e.currentTarget.value)} />
        </label>
        <label>
          Bot <input size={10} value={bot} onInput={(e) => setBot(e.currentTarget.value)} />
        </label>
        <label>
          Channel <input size={10} value={channel} onInput={(e) => setChannel(e.currentTarget.value)} />
        </label>
        <label>
          From <input type="date" value={from} onInput={(e) => setFrom(e.currentTarget.value)} />
        </label>
        <label>
          To <input type="date" value={to} onInput={(e) => setTo(e.currentTarget.value)} />
        </label>
        <button type="submit">Search</button>
      </form>
      {error && (
        <p role="alert" class="error">
          {error}
        </p>
      )}
      {hits && hits.length === 0 && <p class="empty">No message has those words.</p>}
      {hits && hits.length > 0 && (
        <ul class="hits" aria-label="Search results">
          {hits.map((h) => (
            <li>
              <a
                href={`/console/transcripts/${h.session_id}`}
                onClick={(e) => openTranscript(e, h.session_id)}
              >
                <span class={`channel channel-${h.channel}`}>{h.channel}</span>{' '}
                <span class="bot">{h.bot}</span>{' '}
                <span class="muted">
                  {h.role} · {when(h.created_at)}
                </span>
                <Snippet text={h.snippet} />
              </a>
            </li>
          ))}
        </ul>
      )}
    </main>
  );
}

interface TranscriptData {
  session_id: string;
  bot: string;
  channel: string;
  user_id: string | null;
  created_at: string;
  ended_at: string | null;
  messages: { seq: number; role: string; text: string; created_at: string }[];
  identities: { channel: string; native_id: string; name: string | null }[];
  person_sessions: {
    session_id: string;
    bot: string;
    channel: string;
    created_at: string;
    message_count: number;
  }[];
}

interface Inspection {
  variables: Record<string, unknown>;
  context: Record<string, string>;
  kbs: string[];
  tools: string[];
  suggestions: { text: string }[];
  handoff: unknown;
  dialog: {
    frames: { script: string; unit: string; line: number | null; statement: string }[];
    hear: { variable: string; type: string | null; choices: string[] | null; tries: number };
  } | null;
  debug: { id: number; topic: unknown; snapshot: unknown; created_at: string }[];
  events: { type: string; data: unknown; created_at: string }[];
}

const json = (v: unknown) => JSON.stringify(v, null, 2);

function InspectionView(props: { data: Inspection }) {
  const { data } = props;
  const top = data.dialog?.frames.at(-1);
  return (
    <section class="inspection" aria-label="Inspection">
      <h3>Dialog</h3>
      {data.dialog && top ? (
        <p class="dialog-position">
          Waiting at <b>{top.script}</b>
          {top.line !== null && <> line {top.line}</>}
          {top.unit && <> in {top.unit}</>}: HEAR <b>{data.dialog.hear.variable}</b>
          {data.dialog.hear.type && <> AS {data.dialog.hear.type}</>}
          {data.dialog.hear.choices && <> ({data.dialog.hear.choices.join(', ')})</>}
          {data.dialog.hear.tries > 0 && <>, {data.dialog.hear.tries} invalid answers so far</>}
          {data.dialog.frames.length > 1 && (
            <span class="muted">
              {' '}
              (called from{' '}
              {data.dialog.frames
                .slice(0, -1)
                .map((f) => `${f.script}${f.line ? `:${f.line}` : ''}`)
                .join(' ← ')}
              )
            </span>
          )}
        </p>
      ) : (
        <p class="muted">No script waits for an answer.</p>
      )}
      <h3>Variables</h3>
      <pre>{json(data.variables)}</pre>
      <h3>Context</h3>
      <pre>{json(data.context)}</pre>
      <p>
        Knowledge bases: {data.kbs.join(', ') || 'none'} · Tools: {data.tools.join(', ') || 'none'} ·
        Suggestions: {data.suggestions.map((s) => s.text).join(', ') || 'none'}
      </p>
      <h3>DEBUG SHOW snapshots</h3>
      {data.debug.length === 0 ? (
        <p class="muted">None.</p>
      ) : (
        data.debug.map((d) => (
          <details>
            <summary>
              {String(d.topic ?? '')} · {when(d.created_at)}
            </summary>
            <pre>{json(d.snapshot)}</pre>
          </details>
        ))
      )}
      <h3>Recent events</h3>
      <ul class="events">
        {data.events.map((e) => (
          <li>
            <b>{e.type}</b> <span class="muted">{when(e.created_at)}</span>{' '}
            <code>{JSON.stringify(e.data)}</code>
          </li>
        ))}
      </ul>
    </section>
  );
}

/** `/console/transcripts/{id}`: one conversation, its person's other sessions, export, inspection. */
export function Transcript(props: { sessionId: string }) {
  const [data, setData] = useState<TranscriptData>();
  const [inspection, setInspection] = useState<Inspection>();
  const [error, setError] = useState<string>();
  const base = `/api/admin/transcripts/${encodeURIComponent(props.sessionId)}`;

  useEffect(() => {
    setData(undefined);
    setInspection(undefined);
    api<TranscriptData>('GET', base)
      .then(setData)
      .catch((err) => setError(err instanceof ApiError ? err.message : 'The hub cannot be reached.'));
  }, [base]);

  const inspect = async () => {
    try {
      setInspection(await api<Inspection>('GET', `${base}/inspect`));
    } catch (err) {
      setError(err instanceof ApiError ? err.message : 'The hub cannot be reached.');
    }
  };

  if (error)
    return (
      <main class="page">
        <p role="alert" class="error">
          {error}
        </p>
      </main>
    );
  if (!data) return <p class="loading">Loading…</p>;
  return (
    <main class="page transcript-page">
      <header class="thread-head">
        <h2>
          <span class={`channel channel-${data.channel}`}>{data.channel}</span> {data.bot} ·{' '}
          {when(data.created_at)}
          {data.ended_at ? ` – ${when(data.ended_at)}` : ' (open)'}
        </h2>
        <div class="actions">
          <a href={`${base}/export?format=text`} download>
            Export text
          </a>
          <a href={`${base}/export?format=json`} download>
            Export JSON
          </a>
          <button type="button" onClick={inspect}>
            Inspect
          </button>
        </div>
      </header>
      <ol class="transcript" aria-label="Transcript">
        {data.messages
          .filter((m) => m.role !== 'tool')
          .map((m) => (
            <li class={`msg msg-${m.role}`}>
              <div class="meta">
                <span class="who">{m.role}</span> {when(m.created_at)}
              </div>
              <div class="text" dir="auto">
                {m.text}
              </div>
            </li>
          ))}
      </ol>
      {data.person_sessions.length > 1 && (
        <section aria-label="This person's sessions">
          <h3>This person's sessions</h3>
          <p class="muted">
            {data.identities.map((i) => `${i.channel}: ${i.name ?? i.native_id}`).join(' · ')}
          </p>
          <ul class="hits">
            {data.person_sessions.map((s) => (
              <li>
                {s.session_id === data.session_id ? (
                  <b>
                    {s.channel} · {s.bot} · {when(s.created_at)} (this one)
                  </b>
                ) : (
                  <a
                    href={`/console/transcripts/${s.session_id}`}
                    onClick={(e) => openTranscript(e, s.session_id)}
                  >
                    {s.channel} · {s.bot} · {when(s.created_at)} · {s.message_count} messages
                  </a>
                )}
              </li>
            ))}
          </ul>
        </section>
      )}
      {inspection && <InspectionView data={inspection} />}
    </main>
  );
}

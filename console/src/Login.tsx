import { useState } from 'preact/hooks';
import { ApiError, api, LOGIN_PATH } from './api.ts';

/** Why a sign-in failed, in words for a person. */
function describe(err: unknown): string {
  if (err instanceof ApiError) {
    if (err.status === 429) return `Too many failed attempts. Try again in ${err.retryAfter ?? 60} seconds.`;
    if (err.status === 401) return 'Wrong email or password.';
    return err.message;
  }
  return 'The hub cannot be reached. Check your connection and try again.';
}

export function Login(props: { onSignedIn: () => void; notice?: string }) {
  const [email, setEmail] = useState('');
  const [password, setPassword] = useState('');
  const [error, setError] = useState<string>();
  const [busy, setBusy] = useState(false);

  const submit = async (event: Event) => {
    event.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      await api('POST', LOGIN_PATH, { email, password });
      props.onSignedIn();
    } catch (err) {
      setError(describe(err));
    } finally {
      setBusy(false);
    }
  };

  return (
    <main class="login">
      <form onSubmit={submit} aria-labelledby="login-title">
        <h1 id="login-title">Switchboard console</h1>
        {props.notice && (
          <p class="ended" role="status">
            {props.notice}
          </p>
        )}
        <label>
          Email
          <input
            type="email"
            name="email"
            autocomplete="username"
            required
            value={email}
            onInput={(e) => setEmail(e.currentTarget.value)}
          />
        </label>
        <label>
          Password
          <input
            type="password"
            name="password"
            autocomplete="current-password"
            required
            value={password}
            onInput={(e) => setPassword(e.currentTarget.value)}
          />
        </label>
        {error && (
          <p class="error" role="alert">
            {error}
          </p>
        )}
        <button type="submit" disabled={busy}>
          {busy ? 'Signing in…' : 'Sign in'}
        </button>
      </form>
    </main>
  );
}

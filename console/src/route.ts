import { useEffect, useState } from 'preact/hooks';

/** The console's pages, all under `/console` so a reload or a shared link lands on the same page. */
export type Route =
  | { page: 'inbox' }
  | { page: 'conversation'; sessionId: string }
  | { page: 'agents' }
  | { page: 'dashboard' }
  | { page: 'transcripts' }
  | { page: 'transcript'; sessionId: string }
  | { page: 'audit' };

export function parseRoute(pathname: string): Route {
  const conversation = /^\/console\/conversations\/([^/]+)$/.exec(pathname);
  if (conversation) return { page: 'conversation', sessionId: decodeURIComponent(conversation[1]!) };
  const transcript = /^\/console\/transcripts\/([^/]+)$/.exec(pathname);
  if (transcript) return { page: 'transcript', sessionId: decodeURIComponent(transcript[1]!) };
  if (pathname === '/console/agents') return { page: 'agents' };
  if (pathname === '/console/dashboard') return { page: 'dashboard' };
  if (pathname === '/console/transcripts') return { page: 'transcripts' };
  if (pathname === '/console/audit') return { page: 'audit' };
  return { page: 'inbox' };
}

export function hrefOf(route: Route): string {
  switch (route.page) {
    case 'conversation':
      return `/console/conversations/${encodeURIComponent(route.sessionId)}`;
    case 'transcript':
      return `/console/transcripts/${encodeURIComponent(route.sessionId)}`;
    case 'agents':
    case 'dashboard':
    case 'transcripts':
    case 'audit':
      return `/console/${route.page}`;
    default:
      return '/console';
  }
}

const NAVIGATED = 'console:navigate';

export function navigate(route: Route): void {
  const href = hrefOf(route);
  if (location.pathname + location.search !== href) history.pushState(null, '', href);
  window.dispatchEvent(new Event(NAVIGATED));
}

export function useRoute(): Route {
  const [route, setRoute] = useState(() => parseRoute(location.pathname));
  useEffect(() => {
    const update = () => setRoute(parseRoute(location.pathname));
    window.addEventListener('popstate', update);
    window.addEventListener(NAVIGATED, update);
    return () => {
      window.removeEventListener('popstate', update);
      window.removeEventListener(NAVIGATED, update);
    };
  }, []);
  return route;
}

import { useEffect, useState } from 'preact/hooks';

/** The console's pages, all under `/console` so a reload or a shared link lands on the same page. */
export type Route = { page: 'inbox' } | { page: 'conversation'; sessionId: string } | { page: 'agents' };

export function parseRoute(pathname: string): Route {
  const conversation = /^\/console\/conversations\/([^/]+)$/.exec(pathname);
  if (conversation) return { page: 'conversation', sessionId: decodeURIComponent(conversation[1]!) };
  if (pathname === '/console/agents') return { page: 'agents' };
  return { page: 'inbox' };
}

export function hrefOf(route: Route): string {
  switch (route.page) {
    case 'conversation':
      return `/console/conversations/${encodeURIComponent(route.sessionId)}`;
    case 'agents':
      return '/console/agents';
    default:
      return '/console';
  }
}

const NAVIGATED = 'console:navigate';

export function navigate(route: Route): void {
  const href = hrefOf(route);
  if (location.pathname !== href) history.pushState(null, '', href);
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

import { useRef } from 'preact/hooks';

/** Answers whether the reload that holds it is still the newest one started. */
export type Ticket = () => boolean;

/**
 * Orders a view's reloads. Events that arrive close together start reloads that overlap, and
 * the older one's answer can come back last: applied, it would put stale rows back on screen
 * until the next event. Each reload takes a ticket and applies what it read only while its
 * ticket is the newest.
 */
export function reloadTickets(): () => Ticket {
  let newest = 0;
  return () => {
    const ticket = ++newest;
    return () => ticket === newest;
  };
}

/** `reloadTickets` kept for the component's life. */
export function useReloadTickets(): () => Ticket {
  return useRef(reloadTickets()).current;
}

import { useRef } from 'preact/hooks';

/**
 * Asked by a reload when its answer has come: may it be applied? Yes unless a reload started
 * after it has already been applied; a yes makes this reload's answer the one on screen.
 */
export type Ticket = () => boolean;

/**
 * Orders a view's reloads. Events that arrive close together start reloads that overlap, and
 * the older one's answer can come back last: applied, it would put stale rows back on screen
 * until the next event. Each reload takes a ticket when it starts, and an answer older than the
 * one on screen is dropped. Answers are never dropped for being overtaken by a reload still
 * running: while events come faster than answers, the view still moves on with each answer.
 */
export function reloadTickets(): () => Ticket {
  let started = 0;
  let shown = 0;
  return () => {
    const ticket = ++started;
    return () => {
      if (ticket < shown) return false;
      shown = ticket;
      return true;
    };
  };
}

/** `reloadTickets` kept for the component's life. */
export function useReloadTickets(): () => Ticket {
  return useRef(reloadTickets()).current;
}

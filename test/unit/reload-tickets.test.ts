import { describe, expect, it } from 'vitest';
import { reloadTickets } from '../../console/src/reload-tickets.ts';

describe('console reload tickets', () => {
  it('holds only the newest reload current, whatever order the answers come back in', () => {
    const ticket = reloadTickets();
    const first = ticket();
    expect(first()).toBe(true);
    const second = ticket();
    // The second reload started: the first one's answer, arriving now or later, is stale.
    expect(first()).toBe(false);
    expect(second()).toBe(true);
    expect(second()).toBe(true);
  });

  it('keeps each view its own count', () => {
    const inbox = reloadTickets();
    const conversation = reloadTickets();
    const fromInbox = inbox();
    conversation();
    expect(fromInbox()).toBe(true);
  });
});

import { describe, expect, it } from 'vitest';
import { reloadTickets } from '../../console/src/reload-tickets.ts';

describe('console reload tickets', () => {
  it('drops an answer that comes back after a newer one was applied', () => {
    const ticket = reloadTickets();
    const first = ticket();
    const second = ticket();
    expect(second()).toBe(true);
    expect(first()).toBe(false);
    // The reload that was applied may apply the rest of its answer.
    expect(second()).toBe(true);
  });

  it('applies answers that come back in the order their reloads started', () => {
    const ticket = reloadTickets();
    const first = ticket();
    const second = ticket();
    expect(first()).toBe(true);
    expect(second()).toBe(true);
  });

  it('never starves: with reloads always overlapping, each answer newer than the shown one is applied', () => {
    const ticket = reloadTickets();
    let running = ticket();
    let applied = 0;
    for (let i = 0; i < 10; i += 1) {
      // The next reload starts before the running one's answer comes back.
      const next = ticket();
      if (running()) applied += 1;
      running = next;
    }
    expect(applied).toBe(10);
  });

  it('keeps each view its own count', () => {
    const inbox = reloadTickets();
    const conversation = reloadTickets();
    const fromInbox = inbox();
    conversation()();
    expect(fromInbox()).toBe(true);
  });
});

import type { ImapFlow, SearchObject } from 'imapflow';
import type { FirstScanPolicy } from './config.ts';

const HOUR_MS = 3_600_000;
/**
 * IMAP SEARCH SINCE compares dates only, in the server's own time zone (RFC 3501 §6.4.4): asked
 * from one day before the cut-off, it finds every mail that may be recent enough, and each one's
 * INTERNALDATE then decides to the second.
 */
const SINCE_MARGIN_MS = 24 * HOUR_MS;

export interface FirstScan {
  /** The UIDs to handle, ascending. */
  answer: number[];
  /** How many unprocessed mails the policy leaves alone (untouched on the server). */
  skipped: number;
  /** With `recent`: mail that arrived before this is left alone. */
  cutoff?: Date;
}

/**
 * The mail a folder's first scan handles (no stored state, or a new UIDVALIDITY): of the
 * unprocessed mail with UIDs up to `scanUpTo` (`unprocessed` says which: unread, or all when
 * processed mail is moved away), what `policy` lets through, and how many it leaves alone.
 */
export async function firstScan(
  client: ImapFlow,
  o: { scanUpTo: number; unprocessed: SearchObject; policy: FirstScanPolicy; now: number },
): Promise<FirstScan> {
  if (o.scanUpTo <= 0) return { answer: [], skipped: 0 };
  const range = { ...o.unprocessed, uid: `1:${o.scanUpTo}` };
  const all = (await client.search(range, { uid: true })) || [];
  const { policy } = o;
  if (policy.mode === 'unread') return { answer: ascending(all), skipped: 0 };
  if (policy.mode === 'none') return { answer: [], skipped: all.length };

  const cutoff = new Date(o.now - policy.hours * HOUR_MS);
  const maybe =
    all.length === 0
      ? []
      : (await client.search(
          { ...range, since: new Date(cutoff.getTime() - SINCE_MARGIN_MS) },
          { uid: true },
        )) || [];
  const recent = new Set<number>();
  if (maybe.length > 0) {
    for (const m of await client.fetchAll(packUids(maybe), { internalDate: true }, { uid: true })) {
      const at = m.internalDate === undefined ? Number.NaN : new Date(m.internalDate).getTime();
      // A server that gives no INTERNALDATE leaves SINCE's answer standing.
      if (Number.isNaN(at) || at >= cutoff.getTime()) recent.add(m.uid);
    }
  }
  const answer = ascending(all.filter((uid) => recent.has(uid)));
  return { answer, skipped: all.length - answer.length, cutoff };
}

const ascending = (uids: number[]) => [...uids].sort((a, b) => a - b);

/** `1:4,7,9:10`: a UID set as short as it goes, so a long backlog fits in one command line. */
export function packUids(uids: number[]): string {
  const sorted = ascending([...new Set(uids)]);
  const parts: string[] = [];
  for (let i = 0; i < sorted.length; ) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1] === sorted[j]! + 1) j++;
    parts.push(i === j ? String(sorted[i]) : `${sorted[i]}:${sorted[j]}`);
    i = j + 1;
  }
  return parts.join(',');
}

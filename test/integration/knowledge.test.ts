import fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KnowledgeIndexer, type KnowledgeSource } from '../../src/kb/indexer.ts';
import { searchChunks } from '../../src/kb/store.ts';
import { createMetrics } from '../../src/metrics.ts';
import type { Db } from '../../src/store/db.ts';
import { migrate } from '../../src/store/migrate.ts';
import { openPostgres } from '../../src/store/postgres.ts';
import { type Backend, createTestDatabase, openTestDb, silentLogger, tempDir } from '../helpers/database.ts';
import { capturingLogger } from '../helpers/logs.ts';
import { makePdf } from '../helpers/pdf.ts';

const SHIPPING = `# Shipping

We ship every parcel within two working days. Delivery to Canada takes about ten days by courier.

## Costs

Standard shipping is free above 50 EUR; express shipping costs 12 EUR.`;

const REFUNDS = `Refunds

You can return any unused kettle within 30 days for a full refund of the purchase price.`;

const HOURS = `<html><head><title>Hours</title><style>body{}</style></head><body>
<h1>Opening hours</h1><p>The showroom in <a href="https://example.com/lisbon">Lisbon</a> opens Monday to Friday, 9 to 18.</p>
</body></html>`;

async function writeKb(dir: string, kb: string, files: Record<string, string | Buffer>): Promise<void> {
  for (const [name, content] of Object.entries(files)) {
    const file = path.join(dir, 'kb', kb, name);
    await fs.mkdir(path.dirname(file), { recursive: true });
    await fs.writeFile(file, content);
  }
}

/** Rewrites a file so that its stamp changes for certain (coarse clocks, same size). */
async function rewrite(file: string, content: string): Promise<void> {
  await fs.writeFile(file, content);
  const later = new Date(Date.now() + 10_000 + Math.floor(Math.random() * 1000));
  await fs.utimes(file, later, later);
}

describe.each<Backend>(['postgres', 'pglite'])('knowledge bases on %s', (backend) => {
  let db: Db;
  let cleanup: () => Promise<void>;
  let dir: string;
  let source: KnowledgeSource;

  beforeAll(async () => {
    ({ db, cleanup } = await openTestDb(backend));
    dir = await tempDir('sbt-kb-');
    source = { bot: 'shop', dir, language: 'english', chunkTokens: 120 };
    await writeKb(dir, 'faq', {
      'shipping.md': SHIPPING,
      'refunds.txt': REFUNDS,
      'pages/hours.html': HOURS,
      'manuals/warranty.pdf': makePdf([
        ['Warranty', 'Every kettle carries a two year warranty covering parts and labour.'],
        ['Descaling', 'Descale the heating element once a month with citric acid.'],
      ]),
      'notes.docx': 'not read',
      '.hidden.md': 'not read either',
    });
    await writeKb(dir, 'staff', { 'payroll.md': 'Salaries are paid on the 25th of each month.' });
  });
  afterAll(async () => {
    await cleanup?.();
    await fs.rm(dir, { recursive: true, force: true });
  });

  const search = (text: string, kbs = ['faq'], limit = 3) =>
    searchChunks(db, { bot: 'shop', kbs, text, language: 'english', limit });

  it('indexes Markdown, text, HTML and PDF documents, and finds the chunk a question is about', async () => {
    const indexer = new KnowledgeIndexer({ db, logger: silentLogger, sources: [source] });
    const report = await indexer.sync();
    expect(report.indexed.sort()).toEqual([
      'faq/manuals/warranty.pdf',
      'faq/pages/hours.html',
      'faq/refunds.txt',
      'faq/shipping.md',
      'staff/payroll.md',
    ]);
    expect(report.failed).toEqual([]);

    const shipping = await search('How long does shipping to Canada take?');
    expect(shipping[0]).toMatchObject({ kb: 'faq', path: 'shipping.md' });
    expect(shipping[0]!.content).toContain('Canada');
    expect(shipping.map((m) => m.path)).not.toContain('refunds.txt');

    expect((await search('Can I get a refund for my kettle?'))[0]!.path).toBe('refunds.txt');
    const pdf = await search('what does the warranty cover?');
    expect(pdf[0]).toMatchObject({ path: 'manuals/warranty.pdf' });
    expect(pdf[0]!.content).toContain('two year warranty');
    const html = await search('When is the showroom open?');
    expect(html[0]!.path).toBe('pages/hours.html');
    expect(html[0]!.content).toContain('Opening hours');
    expect(html[0]!.content).not.toContain('example.com');
    // Only the knowledge bases asked for.
    expect(await search('When are salaries paid?')).toEqual([]);
    expect((await search('When are salaries paid?', ['faq', 'staff']))[0]!.path).toBe('payroll.md');
    expect(await search('?!')).toEqual([]);
  });

  it('indexes again only what changed, and forgets what was deleted', async () => {
    const indexer = new KnowledgeIndexer({ db, logger: silentLogger, sources: [source] });
    const first = await indexer.sync();
    // A process that starts later reads every file once, and finds every hash already stored.
    expect(first.indexed).toEqual([]);
    expect(first.unchanged).toBe(5);

    await rewrite(
      path.join(dir, 'kb/faq/refunds.txt'),
      `${REFUNDS}\n\nRefunds reach your card within a week.`,
    );
    await rewrite(path.join(dir, 'kb/faq/shipping.md'), SHIPPING); // touched, same content
    await fs.rm(path.join(dir, 'kb/staff/payroll.md'));
    const second = await indexer.sync();
    expect(second.indexed).toEqual(['faq/refunds.txt']);
    expect(second.removed).toEqual(['staff/payroll.md']);
    expect(second.unchanged).toBe(3);
    expect((await search('how soon does the refund reach my card'))[0]!.content).toContain('within a week');
    expect(await search('When are salaries paid?', ['staff'])).toEqual([]);

    const third = await indexer.sync();
    expect(third).toEqual({ indexed: [], removed: [], unchanged: 4, failed: [], deferred: [] });
  });

  it('logs a document it cannot read and goes on with the others', async () => {
    await writeKb(dir, 'faq', { 'broken.pdf': 'this is not a pdf' });
    const indexer = new KnowledgeIndexer({ db, logger: silentLogger, sources: [source] });
    const report = await indexer.sync();
    expect(report.failed).toEqual(['faq/broken.pdf']);
    expect(report.unchanged).toBe(4);
    await fs.rm(path.join(dir, 'kb/faq/broken.pdf'));
  });

  it('tries a document that failed again only after a backoff that doubles up to its cap, or at once when its file changes', async () => {
    const file = path.join(dir, 'kb/faq/broken.pdf');
    await writeKb(dir, 'faq', { 'broken.pdf': 'this is not a pdf either' });
    const logs = capturingLogger('info');
    const metrics = createMetrics({ defaultMetrics: false });
    let now = Date.parse('2024-05-01T12:00:00Z');
    const indexer = new KnowledgeIndexer({
      db,
      logger: logs.logger,
      metrics,
      sources: [source],
      retryBaseMs: 1_000,
      retryCapMs: 4_000,
      now: () => now,
    });
    const failedLines = () => logs.lines.filter((l) => l.event === 'kb.document_failed');
    const failing = async () =>
      (await metrics.kbDocumentsFailing.get()).values.find((v) => v.labels.bot === 'shop')?.value;

    expect((await indexer.sync()).failed).toEqual(['faq/broken.pdf']);
    expect(failedLines().at(-1)).toMatchObject({ path: 'broken.pdf', attempts: 1, retryInMs: 1_000 });
    expect(await failing()).toBe(1);
    expect(indexer.failing()).toEqual([
      {
        bot: 'shop',
        kb: 'faq',
        path: 'broken.pdf',
        attempts: 1,
        error: expect.stringContaining('not a readable PDF'),
        retryAt: new Date(now + 1_000).toISOString(),
      },
    ]);

    // Scans before the retry is due neither read it nor log it again.
    for (let i = 0; i < 3; i++) {
      const report = await indexer.sync();
      expect(report.failed).toEqual([]);
      expect(report.deferred).toEqual(['faq/broken.pdf']);
    }
    expect(failedLines()).toHaveLength(1);

    // Then once per step, each step twice the one before, up to the cap.
    const steps: number[] = [];
    for (const wait of [1_000, 2_000, 4_000, 4_000]) {
      now += wait - 1;
      expect((await indexer.sync()).deferred).toEqual(['faq/broken.pdf']);
      now += 1;
      expect((await indexer.sync()).failed).toEqual(['faq/broken.pdf']);
      steps.push(failedLines().at(-1)!.retryInMs as number);
    }
    expect(steps).toEqual([2_000, 4_000, 4_000, 4_000]);
    expect(failedLines().map((l) => l.attempts)).toEqual([1, 2, 3, 4, 5]);

    // A changed file is tried at the next scan; once it indexes, it is no longer failing.
    await fs.writeFile(file, makePdf([['Broken no more', 'The spare lids are sold separately.']]));
    const later = new Date(now + 60_000);
    await fs.utimes(file, later, later);
    const fixed = await indexer.sync();
    expect(fixed.indexed).toEqual(['faq/broken.pdf']);
    expect(fixed.deferred).toEqual([]);
    expect(indexer.failing()).toEqual([]);
    expect(await failing()).toBe(0);
    expect(logs.lines.filter((l) => l.event === 'kb.document_recovered')).toMatchObject([
      { path: 'broken.pdf', after: 5 },
    ]);
    expect((await search('are spare lids sold separately'))[0]!.path).toBe('broken.pdf');
    await fs.rm(file);
    expect((await indexer.sync()).removed).toEqual(['faq/broken.pdf']);
  });

  it('indexes a document whose text holds a NUL: the character is replaced, the rest is found', async () => {
    await writeKb(dir, 'faq', { 'lids.txt': 'Spare\u0000kettle lids come in red and blue.' });
    const indexer = new KnowledgeIndexer({ db, logger: silentLogger, sources: [source] });
    const report = await indexer.sync();
    expect(report.failed).toEqual([]);
    expect(report.indexed).toEqual(['faq/lids.txt']);
    const [hit] = await search('which colours do kettle lids come in');
    expect(hit).toMatchObject({ path: 'lids.txt', content: 'Spare\uFFFDkettle lids come in red and blue.' });
    await fs.rm(path.join(dir, 'kb/faq/lids.txt'));
    expect((await indexer.sync()).removed).toEqual(['faq/lids.txt']);
  });
});

describe('knowledge bases: several processes starting at once (PostgreSQL)', () => {
  it('index each document once, without errors, whichever process gets there first', async () => {
    const test = await createTestDatabase();
    const dbs = Array.from({ length: 3 }, () =>
      openPostgres({ url: test.url, poolSize: 4, logger: silentLogger }),
    );
    const dir = await tempDir('sbt-kb-race-');
    try {
      await migrate(dbs[0]!);
      const docs: Record<string, string> = {};
      for (let i = 0; i < 12; i++)
        docs[`topic-${i}.md`] = `# Topic ${i}\n\nThe secret word of topic ${i} is word${i}x.`;
      await writeKb(dir, 'faq', docs);
      const source = { bot: 'race', dir, language: 'english', chunkTokens: 100 };
      const reports = await Promise.all(
        dbs.map((db) => new KnowledgeIndexer({ db, logger: silentLogger, sources: [source] }).sync()),
      );
      expect(reports.flatMap((r) => r.failed)).toEqual([]);
      expect(reports.flatMap((r) => r.indexed).sort()).toEqual(
        Object.keys(docs)
          .map((d) => `faq/${d}`)
          .sort(),
      );
      const { rows } = await dbs[0]!.query<{ n: number }>(
        "SELECT count(*)::int AS n FROM kb_chunks WHERE bot = 'race'",
      );
      expect(rows[0]!.n).toBe(12);
      const hit = await searchChunks(dbs[1]!, {
        bot: 'race',
        kbs: ['faq'],
        text: 'word7x',
        language: 'english',
        limit: 2,
      });
      expect(hit.map((h) => h.path)).toEqual(['topic-7.md']);
    } finally {
      await Promise.all(dbs.map((db) => db.close()));
      await test.drop();
      await fs.rm(dir, { recursive: true, force: true });
    }
  });
});

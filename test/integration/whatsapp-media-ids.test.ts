import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GraphClient, GraphMediaClient } from '../../adapters/whatsapp/cloud/graph.ts';
import { CloudSender, MEDIA_ID_REUSE_MS } from '../../adapters/whatsapp/cloud/sender.ts';
import { RecipientPacer } from '../../adapters/whatsapp/pacing.ts';
import type { CloudReplyTo } from '../../adapters/whatsapp/reply-to.ts';
import { SendError } from '../../src/delivery/sender.ts';
import { FileStore, type StoredFile } from '../../src/files/store.ts';
import { DEFAULT_ALLOWED_FILE_TYPES } from '../../src/files/types.ts';
import type { SessionRecord } from '../../src/store/records.ts';
import { openTestDb } from '../helpers/database.ts';
import { PNG_1X1 } from '../helpers/files.ts';
import { type GraphApi, graphError, startGraphApi } from '../helpers/graph-api.ts';
import { capturingLogger } from '../helpers/logs.ts';

const TOKEN = 'test-graph-token';
const NUMBER = '106540352242922';
const DAY_MS = 24 * 3_600_000;

/**
 * Files of the store go out on the Cloud API by media id, uploaded once and reused; Meta drops an
 * uploaded medium after 30 days. Against the local Graph API, with a clock the test moves.
 */
describe('WhatsApp Cloud: uploaded media ids age and are replaced', () => {
  let graph: GraphApi;
  let files: FileStore;
  let cleanup: () => Promise<void>;
  let kettle: StoredFile;
  let person = 0;

  beforeAll(async () => {
    graph = await startGraphApi(TOKEN);
    const test = await openTestDb('postgres');
    cleanup = test.cleanup;
    files = await new FileStore(test.db).init();
    kettle = await files.put([PNG_1X1], {
      name: 'kettle.png',
      bot: 'default',
      origin: 'bot',
      maxBytes: 1024 * 1024,
      allowedTypes: DEFAULT_ALLOWED_FILE_TYPES,
    });
  });

  afterAll(async () => {
    await graph?.close();
    await cleanup?.();
  });

  /** A sender on the local Graph API whose clock reads `clock.now`. */
  function sender() {
    const clock = { now: Date.parse('2025-03-04T10:00:00Z') };
    const options = { baseUrl: graph.url, version: 'v21.0', accessToken: TOKEN, timeoutMs: 5_000 };
    const logs = capturingLogger('info');
    const cloud = new CloudSender(
      new GraphClient(options),
      new RecipientPacer(0),
      logs.logger,
      { client: new GraphMediaClient(options), files },
      () => clock.now,
    );
    const waId = `3161234${String(++person).padStart(4, '0')}`;
    const to: CloudReplyTo = {
      transport: 'cloud',
      phoneNumberId: NUMBER,
      waId,
      at: new Date().toISOString(),
    };
    let seq = 0;
    /** SHOW IMAGE: the kettle, with a caption. */
    const showKettle = () =>
      cloud.send(
        {
          session: { id: `session-${waId}`, channel: 'whatsapp' } as SessionRecord,
          inReplyTo: `whatsapp:wamid.in.${seq}`,
          replies: [
            {
              seq: ++seq,
              text: 'Here is the kettle.',
              payload: { attachments: [{ type: 'image/png', name: 'kettle.png', fileId: kettle.id }] },
            },
          ],
        },
        to,
      );
    /** A text, then the kettle: two replies of one turn. */
    const textThenKettle = () =>
      cloud.send(
        {
          session: { id: `session-${waId}`, channel: 'whatsapp' } as SessionRecord,
          inReplyTo: `whatsapp:wamid.in.${seq}`,
          replies: [
            { seq: ++seq, text: 'One moment, here it comes.', payload: {} },
            {
              seq: ++seq,
              text: '',
              payload: { attachments: [{ type: 'image/png', name: 'kettle.png', fileId: kettle.id }] },
            },
          ],
        },
        to,
      );
    /** The media ids of the images sent to this person, in order. */
    const imageIds = () => graph.to(waId).map((r) => (r.body.image as { id: string }).id);
    return { clock, showKettle, textThenKettle, imageIds, logs, waId };
  }

  const uploadsOfKettle = () => graph.uploads.filter((u) => u.bytes.equals(PNG_1X1)).map((u) => u.id);

  it(`uses an uploaded id for ${MEDIA_ID_REUSE_MS / DAY_MS} days, then uploads the file again before Meta's 30 days are up`, async () => {
    const { clock, showKettle, imageIds } = sender();
    const before = uploadsOfKettle().length;
    await showKettle();
    const [first] = uploadsOfKettle().slice(before);
    expect(first).toBeDefined();
    clock.now += MEDIA_ID_REUSE_MS - 1;
    await showKettle();
    expect(uploadsOfKettle().slice(before)).toEqual([first]);
    clock.now += 1;
    await showKettle();
    const uploaded = uploadsOfKettle().slice(before);
    expect(uploaded).toHaveLength(2);
    expect(imageIds()).toEqual([first, first, uploaded[1]]);
  });

  it('an id the platform no longer takes (131053) is uploaded again and the message sent once more', async () => {
    const { clock, showKettle, imageIds, logs } = sender();
    const before = uploadsOfKettle().length;
    await showKettle();
    const [first] = uploadsOfKettle().slice(before);
    // Gone sooner than its 30 days (deleted, or Meta's clock and ours disagree).
    graph.expireMedia(first!);
    clock.now += 3 * DAY_MS;
    const outcomes = await showKettle();
    const [, second] = uploadsOfKettle().slice(before);
    expect(second).toBeDefined();
    expect(outcomes).toEqual([
      expect.objectContaining({ status: 'sent', channelMessageId: expect.any(String) }),
    ]);
    // Refused with the old id, accepted with the new one.
    expect(imageIds()).toEqual([first, first, second]);
    expect(logs.lines.filter((l) => l.event === 'whatsapp.media_uploaded_again')).toEqual([
      expect.objectContaining({ files: 1 }),
    ]);
  });

  it('an invalid-parameter error (100) that names the id is taken the same way', async () => {
    const { showKettle, imageIds } = sender();
    const before = uploadsOfKettle().length;
    await showKettle();
    const [first] = uploadsOfKettle().slice(before);
    graph.script(
      (r) => JSON.stringify(r.body).includes(`"${first}"`),
      graphError(400, 100, '(#100) Invalid parameter', `Param image['id'] is not a valid media id: ${first}`),
    );
    await showKettle();
    const [, second] = uploadsOfKettle().slice(before);
    expect(imageIds()).toEqual([first, first, second]);
  });

  it('tries once: a file just uploaded and refused, or refused again, fails the reply for good', async () => {
    const { showKettle, imageIds } = sender();
    const before = uploadsOfKettle().length;
    // Refused on its first upload: uploading it again would not help.
    graph.script(
      (r) => r.body.type === 'image',
      graphError(
        400,
        131053,
        '(#131053) Media upload error',
        'Unable to upload the media used in the message.',
      ),
    );
    await expect(showKettle()).rejects.toSatisfy((e) => e instanceof SendError && !e.retryable);
    expect(uploadsOfKettle().slice(before)).toHaveLength(1);
    expect(imageIds()).toHaveLength(1);

    // An earlier id refused, and the new one refused too: one new upload, then the error.
    const [first] = uploadsOfKettle().slice(before);
    for (let i = 0; i < 2; i++)
      graph.script(
        (r) => r.body.type === 'image',
        graphError(
          400,
          131053,
          '(#131053) Media upload error',
          'Unable to upload the media used in the message.',
        ),
      );
    await expect(showKettle()).rejects.toSatisfy((e) => e instanceof SendError && !e.retryable);
    const uploaded = uploadsOfKettle().slice(before);
    expect(uploaded).toHaveLength(2);
    expect(imageIds()).toEqual([first, first, uploaded[1]]);
  });

  it('an upload that fails after an earlier reply of the turn went out reports that reply as sent', async () => {
    const { textThenKettle, waId } = sender();
    graph.failUploads(1);
    const failed = await textThenKettle().catch((e: unknown) => e);
    expect(failed).toBeInstanceOf(SendError);
    expect(failed).toMatchObject({
      retryable: true,
      sent: [expect.objectContaining({ seq: 1, status: 'sent' })],
    });
    expect(graph.to(waId).map((r) => r.body.type)).toEqual(['text']);
  });
});

import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as doc from '../fixtures/teams/activities.ts';
import { REPO_ROOT } from '../helpers/hub.ts';
import { startTeamsAppCluster, type TeamsAppCluster } from '../helpers/teams-app.ts';
import { until } from '../helpers/until.ts';

const APP_ID = '3a4b5c6d-7777-2222-3333-444455556666';
const PASSWORD = 'file-token-e2e-client-secret';
const KETTLE = readFileSync(path.join(REPO_ROOT, 'test/fixtures/files/bots/gallery/media/kettle.png'));

/**
 * A picture a person pastes into a Teams chat is hosted by the Bot Connector, which hands it
 * over only with the bot's token. A gateway and a worker with TEAMS_APP_ID: the gateway answers
 * the activity at once, the worker downloads the attachment before the turn with the bearer
 * token it got from the (local) Microsoft login — the same credentials that sign its replies.
 */
describe("Teams: a Teams-hosted attachment is downloaded with the bot's token", () => {
  let app: TeamsAppCluster;

  beforeAll(async () => {
    app = await startTeamsAppCluster({
      appId: APP_ID,
      password: PASSWORD,
      env: { TEAMS_BOT: 'gallery', CONFIG_DIR: path.join(REPO_ROOT, 'test/fixtures/files') },
    });
  }, 120_000);
  afterAll(async () => {
    await app?.stop();
  });

  it('the contentUrl on the connector is fetched with Authorization: Bearer <bot token>, and the bot gets the file', async () => {
    const { login, connector, cluster, post } = app;
    const issuedToken = (authorization: string | undefined) =>
      login.issued().some((t) => authorization === `Bearer ${t}`);
    connector.addFile('att-pasted', KETTLE, 'image/png', { authorize: issuedToken });
    const activity = doc.variant(doc.personalMessage, {
      suffix: `token-${Date.now()}`,
      serviceUrl: connector.url,
      text: 'look',
    });
    activity.attachments = [
      {
        contentType: 'image/*',
        contentUrl: new URL('v3/attachments/att-pasted/views/original', connector.url).href,
      },
    ];
    const res = await post(activity);
    expect(res.status).toBe(200);
    await until(
      () => connector.delivered(activity.conversation.id),
      (r) => r.some((x) => x.body.text === `Got photo (image/png, ${KETTLE.length} bytes)`),
    );
    expect(connector.fileRequests).toEqual([
      { id: 'att-pasted', authorization: expect.stringMatching(/^Bearer tok-\d+$/), status: 200 },
    ]);
    expect(issuedToken(connector.fileRequests[0]!.authorization)).toBe(true);
    expect(cluster.crashes()).toEqual([]);
  });
});

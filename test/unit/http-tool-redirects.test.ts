import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { callHttpTool, redirectRefusal } from '../../src/llm/http-tool.ts';
import { ToolDeclarationSchema } from '../../src/llm/settings.ts';

/** A tool's service on loopback that redirects wherever `?to=` says, and answers anything else. */
describe('where an HTTP tool is redirected', () => {
  let server: Server;
  let base: string;
  let reached: string[];
  beforeAll(async () => {
    reached = [];
    server = createServer((req, res) => {
      const to = new URL(req.url ?? '/', 'http://h').searchParams.get('to');
      if (to) {
        res.writeHead(302, { location: to });
        return void res.end();
      }
      reached.push(req.url ?? '/');
      res.end('fine');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise((resolve) => server.close(resolve)));

  const tool = (url: string) =>
    ToolDeclarationSchema.parse({
      name: 't',
      description: 'd',
      http: { url, method: 'GET', timeoutMs: 3000 },
    }).http!;
  const redirectTo = (target: string) => `${base}/hop?to=${encodeURIComponent(target)}`;

  it.each([
    ['the cloud metadata endpoint', 'http://169.254.169.254/latest/meta-data/iam/', '169.254.169.254'],
    ['an IPv6 link-local address', 'http://[fe80::1]/', 'fe80::1'],
    ['an IPv4-mapped link-local address', 'http://[::ffff:169.254.169.254]/', '::ffff:a9fe:a9fe'],
  ])('is never sent to %s by its service', async (_what, target, address) => {
    await expect(callHttpTool(tool(redirectTo(target)), {}, {})).rejects.toThrow(
      `is not followed: ${address} is a link-local address`,
    );
  });

  it('follows a redirect within the network of a tool that is itself in it', async () => {
    const other = createServer((_req, res) => res.end('elsewhere'));
    await new Promise<void>((resolve) => other.listen(0, '127.0.0.1', resolve));
    try {
      const elsewhere = `http://localhost:${(other.address() as AddressInfo).port}/x`;
      expect(await callHttpTool(tool(redirectTo(elsewhere)), {}, {})).toBe('elsewhere');
      expect(await callHttpTool(tool(redirectTo('/same-host')), {}, {})).toBe('fine');
    } finally {
      await new Promise((resolve) => other.close(resolve));
    }
  });

  it('a service at a public address may not send the hub into a private network', () => {
    const publicService = ['93.184.215.14', '2606:2800:21f:cb07:6820:80da:af6b:8b2c'];
    for (const inside of ['127.0.0.1', '10.1.2.3', '192.168.1.1', '172.20.0.5', '::1', 'fd00:ec2::254'])
      expect(redirectRefusal(publicService, [inside])).toBe(`${inside} is a private address`);
    expect(redirectRefusal(publicService, ['169.254.169.254'])).toBe(
      '169.254.169.254 is a link-local address',
    );
    expect(redirectRefusal(publicService, ['203.0.113.9', '151.101.1.69'])).toBeUndefined();
    // An internal tool may redirect within the network, not to the metadata endpoint.
    expect(redirectRefusal(['10.0.0.7'], ['10.0.0.8', '127.0.0.1'])).toBeUndefined();
    expect(redirectRefusal(['10.0.0.7'], ['169.254.169.254'])).toBe(
      '169.254.169.254 is a link-local address',
    );
    expect(redirectRefusal(['169.254.1.1'], ['169.254.169.254'])).toBeUndefined();
  });
});

/**
 * Stand-in region nodes for edge tests that must control exactly what a region answers (5xx,
 * slow answers); the behavioural edge tests run against real region nodes.
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface FakeRegion {
  id: string;
  url: string;
  /** Requests received on /v1, in order. */
  hits: { method: string; path: string; headers: IncomingMessage['headers']; body: string }[];
  /** Answer /v1 with this status from now on (undefined: 200). */
  failWith: number | undefined;
  healthStatus: number;
  close(): Promise<void>;
}

export async function startFakeRegion(id: string, host = '127.0.0.1', port = 0): Promise<FakeRegion> {
  const fake: FakeRegion = {
    id,
    url: '',
    hits: [],
    failWith: undefined,
    healthStatus: 200,
    close: async () => undefined,
  };
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (req.url === '/healthz') {
        res.writeHead(fake.healthStatus, { 'content-type': 'application/json', 'meridian-region': id });
        res.end(JSON.stringify({ region: id, status: fake.healthStatus === 200 ? 'ok' : 'failed' }));
        return;
      }
      fake.hits.push({
        method: req.method ?? '',
        path: req.url ?? '',
        headers: req.headers,
        body: Buffer.concat(chunks).toString(),
      });
      const status = fake.failWith ?? 200;
      res.writeHead(status, { 'content-type': 'application/json', 'meridian-region': id });
      res.end(JSON.stringify({ region: id }));
    });
  });
  await new Promise<void>((r) => server.listen(port, host, r));
  const addr = server.address() as AddressInfo;
  fake.url = `http://${host}:${addr.port}`;
  fake.close = () =>
    new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  return fake;
}

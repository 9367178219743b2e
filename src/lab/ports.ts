/** Checks that the lab's fixed addresses are free before it starts, so a second lab refuses clearly. */
import { createSocket } from 'node:dgram';
import { createServer } from 'node:net';

export interface Endpoint {
  what: string;
  host: string;
  port: number;
  udp?: boolean;
}

function tcpFree(host: string, port: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
    s.listen({ host, port, exclusive: true }, () => s.close(() => resolve(undefined)));
  });
}

function udpFree(host: string, port: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    const s = createSocket('udp4');
    s.once('error', (e: NodeJS.ErrnoException) => {
      s.close();
      resolve(e.code ?? e.message);
    });
    s.bind({ address: host, port, exclusive: true }, () => s.close(() => resolve(undefined)));
  });
}

/** The endpoints that are not free, each with the reason (EADDRINUSE, ...). */
export async function busyEndpoints(
  endpoints: readonly Endpoint[],
): Promise<{ ep: Endpoint; reason: string }[]> {
  const out: { ep: Endpoint; reason: string }[] = [];
  for (const ep of endpoints) {
    const reason = ep.udp ? await udpFree(ep.host, ep.port) : await tcpFree(ep.host, ep.port);
    if (reason) out.push({ ep, reason });
  }
  return out;
}

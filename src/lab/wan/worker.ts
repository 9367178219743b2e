/**
 * The WAN emulator on its own thread. The lab's process also runs the supervisor, stats, lag
 * probes, the lab API, the traffic generator and experiments; on the main thread any pause of
 * theirs (a major GC, a burst of work) held every byte of every link at once, and every edge saw
 * all its paths fall silent together. Here only the links run on this event loop and heap.
 * Started by src/lab/wan-glue.ts, which speaks the messages below.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { WanEmulator } from './emulator.js';

export interface WanWorkerLink {
  from: string;
  to: string;
  listenHost: string;
  listenPort: number;
  targetHost: string;
  targetPort: number;
  oneWayMs: number;
}

export type WanWorkerRequest =
  | { op: 'cut'; from: string; to: string; cut: boolean }
  | { op: 'delay'; from: string; to: string; oneWayMs: number }
  | { op: 'close' };

export type WanWorkerReply =
  | { op: 'ready' }
  | { op: 'failed'; message: string }
  | { op: 'error'; message: string }
  | { op: 'closed' };

async function main(port: NonNullable<typeof parentPort>, links: readonly WanWorkerLink[]): Promise<void> {
  const send = (m: WanWorkerReply): void => port.postMessage(m);
  const wan = new WanEmulator();
  try {
    for (const l of links) wan.setPath(l.from, l.to, { delayMs: l.oneWayMs });
    for (const l of links) {
      await wan.addLink({
        from: l.from,
        to: l.to,
        listen: { host: l.listenHost, port: l.listenPort },
        target: { host: l.targetHost, port: l.targetPort },
      });
    }
  } catch (e) {
    await wan.close();
    send({ op: 'failed', message: (e as Error).message });
    port.close();
    return;
  }
  port.on('message', (m: WanWorkerRequest) => {
    try {
      if (m.op === 'cut') {
        if (m.cut) wan.cut(m.from, m.to, 'partition');
        else wan.heal(m.from, m.to);
      } else if (m.op === 'delay') {
        wan.setDelay(m.from, m.to, m.oneWayMs);
      } else if (m.op === 'close') {
        void wan.close().then(() => {
          send({ op: 'closed' });
          port.close();
        });
      }
    } catch (e) {
      // One bad request (an unknown link) is reported; the links keep running.
      send({ op: 'error', message: (e as Error).message });
    }
  });
  send({ op: 'ready' });
}

if (parentPort) void main(parentPort, (workerData as { links: WanWorkerLink[] }).links);

/**
 * Starts the WAN emulator (src/lab/wan/) for the lab plan: one delayed TCP proxy per directed
 * link, listening where the plan says (127.0.k.1:7100+j for k -> j). Partitions are black holes
 * (a real partition looks like timeouts to TCP, not resets). The emulator runs on a worker thread
 * (src/lab/wan/worker.ts) so that nothing else the lab's process does can stall the links; this
 * side keeps the links' state, which only it changes, so `links()` needs no round trip.
 */
import { extname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { LabPlan } from './plan.js';
import type { WanWorkerLink, WanWorkerReply, WanWorkerRequest } from './wan/worker.js';
import type { WanControl, WanLinkState } from './wan-control.js';

// The worker runs the same build as this file: .js when built, .ts from the sources, where it
// registers tsx itself (node 20 does not run the parent's `--import tsx` in a worker).
const ext = extname(fileURLToPath(import.meta.url));
const workerUrl = new URL(`./wan/worker${ext}`, import.meta.url).href;
const bootstrap =
  ext === '.ts'
    ? `import(${JSON.stringify(import.meta.resolve('tsx/esm/api'))}).then((m) => { m.register(); return import(${JSON.stringify(workerUrl)}); })`
    : `import(${JSON.stringify(workerUrl)})`;

/** @example const wan = await startWan(labPlan(['us-east-1', 'eu-west-1'])); wan.setCut('us-east-1', 'eu-west-1', true); */
export async function startWan(plan: LabPlan): Promise<WanControl> {
  const links: WanWorkerLink[] = plan.links.map((l) => ({
    from: l.from,
    to: l.to,
    listenHost: l.listenHost,
    listenPort: l.listenPort,
    targetHost: l.targetHost,
    targetPort: l.targetPort,
    oneWayMs: l.oneWayMs,
  }));
  const state = new Map<string, WanLinkState>(
    links.map((l) => [`${l.from}>${l.to}`, { from: l.from, to: l.to, oneWayMs: l.oneWayMs, cut: false }]),
  );
  const worker = new Worker(bootstrap, { eval: true, workerData: { links } });
  let failure: Error | undefined;
  let closed: (() => void) | undefined;
  await new Promise<void>((resolve, reject) => {
    const early = (e: Error): void => reject(e);
    worker.once('error', early);
    worker.once('exit', (code) =>
      reject(new Error(`the WAN emulator's thread exited (${code}) while starting`)),
    );
    worker.on('message', (m: WanWorkerReply) => {
      if (m.op === 'ready') {
        worker.off('error', early);
        worker.removeAllListeners('exit');
        resolve();
      } else if (m.op === 'failed') reject(new Error(`WAN emulator: ${m.message}`));
      else if (m.op === 'error') process.emitWarning(`WAN emulator: ${m.message}`);
      else if (m.op === 'closed') closed?.();
    });
  }).catch(async (e: unknown) => {
    await worker.terminate();
    throw e;
  });
  worker.on('error', (e) => {
    failure = e;
  });
  worker.on('exit', (code) => {
    failure ??= new Error(`the WAN emulator's thread exited (${code})`);
    closed?.();
  });
  const link = (from: string, to: string): WanLinkState => {
    if (failure) throw failure;
    const l = state.get(`${from}>${to}`);
    if (!l) throw new Error(`no link ${from} -> ${to}`);
    return l;
  };
  const send = (m: WanWorkerRequest): void => worker.postMessage(m);
  return {
    setCut: (from, to, cut) => {
      link(from, to).cut = cut;
      send({ op: 'cut', from, to, cut });
    },
    setDelay: (from, to, ms) => {
      if (!(ms >= 0) || !Number.isFinite(ms))
        throw new Error(`invalid one-way delay for ${from} -> ${to}: ${ms}`);
      link(from, to).oneWayMs = ms;
      send({ op: 'delay', from, to, oneWayMs: ms });
    },
    links: () => [...state.values()].map((l) => ({ ...l })),
    close: async () => {
      if (failure) return;
      const done = new Promise<void>((resolve) => {
        closed = resolve;
      });
      send({ op: 'close' });
      await done;
      await worker.terminate();
    },
  };
}

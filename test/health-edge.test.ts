/**
 * Health checks that do not lie (issue 18), over real region nodes: an edge whose way to one
 * region is a 330 ms WAN path (São Paulo to Singapore) keeps it up while idle and while CPU hogs
 * load the machine, with the settings that used to eject it (a 400 ms timeout, fall 2); a crashed
 * region is still ejected on evidence (refused or reset, confirmed at once) and comes back after
 * its restart.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { WanEmulator } from '../src/lab/wan/index.js';
import type { Edge, EdgeEvent } from '../src/servers/edge/index.js';
import { edgeOver, recordEvents } from './edge-support.js';
import { type Cluster, eventually, startCluster } from './support/cluster.js';

const FAR = 'ap-northeast-1';
/** The old lab's probe settings: a fixed 400 ms deadline against a 330 ms path failed every probe. */
const HEALTH = { intervalMs: 250, timeoutMs: 400, fall: 2, rise: 2 };

const ejections = (events: readonly EdgeEvent[]): string[] =>
  events.flatMap((e) =>
    e.kind === 'transition' && e.transition.to === 'down'
      ? [`${e.transition.region}: ${e.transition.reason}`]
      : [],
  );

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Processes that spin on a core each: the busy neighbours of the shared machine. */
function cpuHogs(n: number): ChildProcess[] {
  return Array.from({ length: n }, () =>
    spawn(process.execPath, ['-e', 'const end = Date.now() + 60000; while (Date.now() < end) {}'], {
      stdio: 'ignore',
    }),
  );
}

describe('edge health over a far WAN path and a busy machine', () => {
  let cluster: Cluster;
  const wan = new WanEmulator({ handshake: false });
  let edge: Edge | undefined;
  let hogs: ChildProcess[] = [];

  before(async () => {
    cluster = await startCluster({ store: 'memory' });
    const routes: Record<string, string> = {};
    for (const id of cluster.regions) {
      const u = new URL(cluster.url(id));
      const via = await wan.addLink({
        from: 'edge',
        to: id,
        target: { host: u.hostname, port: Number(u.port) },
      });
      routes[id] = `http://${via.host}:${via.port}`;
    }
    wan.setRtt('edge', FAR, 330);
    wan.setPath('edge', FAR, { jitterMs: 10 });
    wan.setPath(FAR, 'edge', { jitterMs: 10 });
    edge = await edgeOver(
      cluster.cfg,
      { policy: 'latency', health: HEALTH },
      { edgeId: 'us-east-1', routes },
    );
  });

  after(async () => {
    for (const h of hogs) h.kill('SIGKILL');
    await edge?.close();
    await cluster?.stop();
    await wan.close();
  });

  it('keeps a live region 330 ms away up while idle, its deadline following the path', async () => {
    const seen = recordEvents(edge!);
    await sleep(4000);
    assert.deepEqual(ejections(seen.events), []);
    const far = edge!.status().regions.find((r) => r.region === FAR)!;
    assert.equal(far.status, 'up');
    assert.ok(far.probesOk > 5, `probes answered: ${far.probesOk}`);
    assert.ok(
      far.probeTimeoutMs > (far.srttMs ?? 0),
      `deadline ${far.probeTimeoutMs} over srtt ${far.srttMs}`,
    );
  });

  it('keeps every live region up while CPU hogs load the machine', async () => {
    const seen = recordEvents(edge!);
    hogs = cpuHogs(3);
    await sleep(5000);
    for (const h of hogs) h.kill('SIGKILL');
    hogs = [];
    assert.deepEqual(ejections(seen.events), []);
    assert.ok(edge!.status().regions.every((r) => r.status === 'up'));
  });

  it('ejects a crashed region on evidence and brings it back after its restart', async () => {
    const seen = recordEvents(edge!);
    const killedAt = performance.now();
    await cluster.kill('eu-west-1');
    await eventually('eu-west-1 ejected', async () => !edge!.table.isUp('eu-west-1'), 5000);
    const detectedMs = performance.now() - killedAt;
    const [reason] = ejections(seen.events);
    assert.match(
      reason ?? '',
      /eu-west-1: .*(ECONNREFUSED|ECONNRESET|UND_ERR_SOCKET|other side closed|socket)/i,
    );
    // Only the dead region: the others keep answering.
    assert.deepEqual(
      ejections(seen.events).map((e) => e.split(':')[0]),
      ['eu-west-1'],
    );
    console.log(`# crash detected in ${Math.round(detectedMs)} ms (includes the kill's own wait)`);
    await cluster.restart('eu-west-1');
    await eventually('eu-west-1 back', async () => edge!.table.isUp('eu-west-1'), 10_000);
  });
});

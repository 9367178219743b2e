/**
 * Starts the WAN emulator (src/lab/wan/) for the lab plan: one delayed TCP proxy per directed
 * link, listening where the plan says (127.0.k.1:7100+j for k -> j). Partitions are black holes
 * (a real partition looks like timeouts to TCP, not resets).
 */
import type { LabPlan } from './plan.js';
import { WanEmulator } from './wan/index.js';
import type { WanControl } from './wan-control.js';

/** @example const wan = await startWan(labPlan(['us-east-1', 'eu-west-1'])); wan.setCut('us-east-1', 'eu-west-1', true); */
export async function startWan(plan: LabPlan): Promise<WanControl> {
  const wan = new WanEmulator();
  try {
    for (const l of plan.links) wan.setPath(l.from, l.to, { delayMs: l.oneWayMs });
    for (const l of plan.links) {
      await wan.addLink({
        from: l.from,
        to: l.to,
        listen: { host: l.listenHost, port: l.listenPort },
        target: { host: l.targetHost, port: l.targetPort },
      });
    }
  } catch (e) {
    await wan.close();
    throw e;
  }
  return {
    setCut: (from, to, cut) => (cut ? wan.cut(from, to, 'partition') : wan.heal(from, to)),
    setDelay: (from, to, ms) => wan.setDelay(from, to, ms),
    links: () =>
      wan.stats().map((s) => ({ from: s.from, to: s.to, oneWayMs: s.delayMs, cut: s.state !== 'up' })),
    close: () => wan.close(),
  };
}

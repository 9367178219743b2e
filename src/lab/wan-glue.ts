/**
 * Starts the WAN emulator for the lab plan: one delayed TCP proxy per directed link.
 *
 * Until the shared emulator (src/lab/wan/) is available this uses a minimal built-in proxy with the
 * same behaviour: every chunk is held for the link's one-way delay (order kept), and a cut link is
 * a black hole (bytes dropped, new connections held open and never forwarded), as a real partition
 * looks to TCP: timeouts, not resets.
 */
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import type { LabLink, LabPlan } from './plan.js';
import type { WanControl, WanLinkState } from './wan-control.js';

interface Pipe {
  client: Socket;
  upstream: Socket | undefined;
}

class DelayLink {
  readonly state: WanLinkState;
  private server: Server | undefined;
  private readonly pipes = new Set<Pipe>();

  constructor(private readonly link: LabLink) {
    this.state = { from: link.from, to: link.to, oneWayMs: link.oneWayMs, cut: false };
  }

  async listen(): Promise<void> {
    this.server = createServer((client) => this.accept(client));
    await new Promise<void>((resolve, reject) => {
      this.server?.once('error', reject);
      this.server?.listen({ host: this.link.listenHost, port: this.link.listenPort, exclusive: true }, () =>
        resolve(),
      );
    });
  }

  private forward(from: Socket, to: () => Socket | undefined): void {
    let releaseAtMs = 0;
    from.on('data', (chunk) => {
      if (this.state.cut) return;
      const at = Math.max(releaseAtMs, Date.now() + this.state.oneWayMs);
      releaseAtMs = at;
      setTimeout(() => {
        const dst = to();
        if (!this.state.cut && dst && !dst.destroyed) dst.write(chunk);
      }, at - Date.now());
    });
    from.on('end', () => {
      const at = Math.max(releaseAtMs, Date.now() + this.state.oneWayMs);
      setTimeout(() => to()?.end(), at - Date.now());
    });
  }

  private accept(client: Socket): void {
    const pipe: Pipe = { client, upstream: undefined };
    this.pipes.add(pipe);
    client.setNoDelay(true);
    const close = () => {
      client.destroy();
      pipe.upstream?.destroy();
      this.pipes.delete(pipe);
    };
    client.on('error', close);
    client.on('close', close);
    if (this.state.cut) return; // held open, never forwarded: the caller times out
    // The SYN crosses the WAN too: connect after the one-way delay.
    setTimeout(() => {
      if (client.destroyed || this.state.cut) return;
      const up = createConnection({ host: this.link.targetHost, port: this.link.targetPort });
      up.setNoDelay(true);
      pipe.upstream = up;
      up.on('error', close);
      up.on('close', () => setTimeout(close, this.state.oneWayMs));
      this.forward(up, () => client);
    }, this.state.oneWayMs);
    this.forward(client, () => pipe.upstream);
  }

  setCut(cut: boolean): void {
    this.state.cut = cut;
    // A healed link starts clean: connections from the partition are gone, as after a real one.
    if (!cut) return;
    for (const p of this.pipes) {
      p.upstream?.destroy();
      p.upstream = undefined;
    }
  }

  async close(): Promise<void> {
    for (const p of this.pipes) {
      p.client.destroy();
      p.upstream?.destroy();
    }
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }
}

/** @example const wan = await startWan(labPlan(['us-east-1', 'eu-west-1'])); wan.setCut('us-east-1', 'eu-west-1', true); */
export async function startWan(plan: LabPlan): Promise<WanControl> {
  const links = plan.links.map((l) => new DelayLink(l));
  try {
    await Promise.all(links.map((l) => l.listen()));
  } catch (e) {
    await Promise.allSettled(links.map((l) => l.close()));
    throw e;
  }
  const find = (from: string, to: string): DelayLink => {
    const l = links.find((x) => x.state.from === from && x.state.to === to);
    if (!l) throw new Error(`no WAN link ${from} -> ${to}`);
    return l;
  };
  return {
    setCut: (from, to, cut) => find(from, to).setCut(cut),
    setDelay: (from, to, ms) => {
      find(from, to).state.oneWayMs = ms;
    },
    links: () => links.map((l) => ({ ...l.state })),
    close: async () => {
      await Promise.allSettled(links.map((l) => l.close()));
    },
  };
}

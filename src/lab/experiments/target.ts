/**
 * The lab an experiment runs against: the one already running (found through its API and the
 * config under .meridian/), or, when none is, a fresh one started in this process without
 * background traffic and stopped at the end.
 */
import { request } from 'undici';
import { loadConfig } from '../../adapters/config.js';
import type { ChaosAction } from '../chaos.js';
import { Lab } from '../lab.js';
import { labPaths, readAdminToken } from '../lab-config.js';
import { LAB_HOST, LAB_PORT, type LabPlan, labPlan } from '../plan.js';

export interface LabTarget {
  plan: LabPlan;
  /** True when this experiment started the lab itself. */
  own: boolean;
  chaos(a: ChaosAction): Promise<void>;
  /** Pauses/resumes the lab's background traffic (so it does not blur the measurement). */
  traffic(on: boolean): Promise<void>;
  close(): Promise<void>;
}

const labUrl = `http://${LAB_HOST}:${LAB_PORT}`;

async function running(): Promise<boolean> {
  try {
    const res = await request(`${labUrl}/healthz`, { headersTimeout: 1000, bodyTimeout: 1000 });
    await res.body.text();
    return res.statusCode === 200;
  } catch {
    return false;
  }
}

/** @example const t = await openLab('.meridian', ['us-east-1', 'eu-west-1', 'ap-northeast-1'], console.log); */
/** The traffic generator's rate in a lab the experiment starts itself (as `meridian up`'s default). */
const OWN_LAB_TRAFFIC_PER_S = 8;

export async function openLab(
  dir: string,
  regions: string[],
  log: (s: string) => void,
  /** For a lab started here: run the traffic generator (an attached lab keeps its own setting). */
  options: { traffic?: boolean } = {},
): Promise<LabTarget> {
  if (await running()) {
    const cfg = loadConfig(labPaths(dir).config);
    const plan = labPlan(cfg.regions.map((r) => r.id));
    const token = readAdminToken(dir);
    let wasOn: boolean | undefined;
    const post = async (path: string, body: unknown) => {
      const res = await request(`${labUrl}${path}`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify(body),
        headersTimeout: 20_000,
        bodyTimeout: 20_000,
      });
      const text = await res.body.text();
      if (res.statusCode !== 200) throw new Error(`lab API ${path}: ${res.statusCode} ${text}`);
      return JSON.parse(text) as { traffic?: { on: boolean; ratePerS: number } };
    };
    log(`using the running lab at ${labUrl} (${plan.regions.map((r) => r.id).join(', ')})`);
    return {
      plan,
      own: false,
      chaos: async (a) => {
        await post('/api/chaos', a);
      },
      traffic: async (on) => {
        if (!on) {
          const st = (await (
            await request(`${labUrl}/api/state`, { headers: { authorization: `Bearer ${token}` } })
          ).body.json()) as {
            traffic: { on: boolean; ratePerS: number };
          };
          wasOn = st.traffic.on;
          if (wasOn) await post('/api/traffic', { on: false });
        } else if (wasOn) {
          await post('/api/traffic', { on: true });
        }
      },
      close: async () => {},
    };
  }
  const withTraffic = options.traffic === true;
  log(
    `no lab running: starting one in ${dir} (${regions.join(', ')}), ${withTraffic ? `traffic at ${OWN_LAB_TRAFFIC_PER_S} req/s` : 'without background traffic'}`,
  );
  const lab = await Lab.start({
    dir,
    regions,
    store: 'sqlite',
    traffic: withTraffic,
    ratePerS: withTraffic ? OWN_LAB_TRAFFIC_PER_S : 0,
    api: true,
    log: (s) => log(`  ${s}`),
  });
  let ownOn = withTraffic;
  let ownWasOn = withTraffic;
  return {
    plan: lab.plan,
    own: true,
    chaos: async (a) => {
      await lab.chaos(a);
    },
    // Pause and resume, as for an attached lab: resumed only if it was running when paused.
    traffic: async (on) => {
      if (!on) {
        ownWasOn = ownOn;
        ownOn = false;
        lab.setTraffic(false);
      } else if (ownWasOn && !ownOn) {
        ownOn = true;
        lab.setTraffic(true, OWN_LAB_TRAFFIC_PER_S);
      }
    },
    close: async () => {
      const left = await lab.stop();
      if (left.length > 0) log(`warning: processes left: ${left.join(', ')}`);
    },
  };
}

/**
 * The lab end to end, as a user runs it: `npm start` on the real address plan, every endpoint of
 * the plan, a write through one region's edge read through another's with the token, the dashboard
 * in headless Chromium killing a region and showing its traffic move, `meridian chaos kill
 * --with-edge` with failover and GeoDNS dropping the edge, then Ctrl-C and no process left.
 * Only one lab can hold the fixed addresses, so this refuses to run when they are taken.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it, type TestContext } from 'node:test';
import { request } from 'undici';
import { queryA } from '../src/lab/dns-query.js';
import { labPlan } from '../src/lab/plan.js';
import { busyEndpoints, type Endpoint } from '../src/lab/ports.js';
import { inCI, needTool, reachable } from './support/services.js';

const plan = labPlan(['us-east-1', 'eu-west-1', 'ap-northeast-1']);
const labDir = mkdtempSync(join(tmpdir(), 'meridian-lab-e2e-'));
const env = { ...process.env, MERIDIAN_LAB_DIR: labDir };
/**
 * `npm start` as the README says; MERIDIAN_LAB_TEST_FROM_SOURCE=1 runs the same CLI through tsx
 * instead (no build step, for working on the lab while another part of the tree does not compile).
 */
const fromSource = process.env.MERIDIAN_LAB_TEST_FROM_SOURCE === '1';
const startCmd: [string, string[]] = fromSource
  ? [process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'up']]
  : ['npm', ['start']];
const cliArgs = fromSource ? ['--import', 'tsx', 'src/cli/main.ts'] : ['dist/src/cli/main.js'];

async function waitFor<T>(what: string, timeoutMs: number, f: () => Promise<T | undefined>): Promise<T> {
  const end = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < end) {
    try {
      const v = await f();
      if (v !== undefined && v !== false) return v;
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(
    `timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`,
  );
}

async function http(
  url: string,
  init: { method?: string; body?: unknown; headers?: Record<string, string> } = {},
) {
  const res = await request(url, {
    method: (init.method ?? 'GET') as 'GET',
    headers: { 'content-type': 'application/json', ...init.headers },
    body: init.body === undefined ? undefined : JSON.stringify(init.body),
    headersTimeout: 5000,
    bodyTimeout: 5000,
  });
  const text = await res.body.text();
  return {
    status: res.statusCode,
    headers: res.headers,
    text,
    json: () => JSON.parse(text) as Record<string, unknown>,
  };
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function allEndpoints(): Endpoint[] {
  const eps: Endpoint[] = [
    { what: 'dashboard', host: '127.0.0.1', port: 8080 },
    { what: 'GeoDNS', host: '127.0.0.1', port: 5353, udp: true },
  ];
  for (const r of plan.regions)
    eps.push(
      { what: `${r.id} node`, host: r.host, port: 7070 },
      { what: `${r.id} edge`, host: r.host, port: 8080 },
    );
  return eps;
}

let lab: ChildProcess | undefined;
let output = '';
let refused: string | undefined;

function adminToken(): string {
  return readFileSync(join(labDir, 'admin-token'), 'utf8').trim();
}

function bearer(): Record<string, string> {
  return { authorization: `Bearer ${adminToken()}` };
}

/** The dashboard URL with its one-time login token, as `npm start` printed it. */
function dashboardUrl(): string {
  const m = /dashboard on (http:\/\/127\.0\.0\.1:8080\/\?token=[A-Za-z0-9_-]+)/.exec(output);
  assert.ok(m?.[1], `no dashboard URL in:\n${output}`);
  return m[1];
}

function labJson(): { labPid: number; pids: number[] } {
  return JSON.parse(readFileSync(join(labDir, 'lab.json'), 'utf8')) as { labPid: number; pids: number[] };
}

async function refuseIfBusy(t: TestContext): Promise<boolean> {
  if (!refused) return false;
  if (inCI) throw new Error(refused);
  t.skip(refused);
  return true;
}

describe('the lab (npm start)', { timeout: 240_000 }, () => {
  before(async () => {
    const busy = await busyEndpoints(allEndpoints());
    if (busy.length > 0) {
      refused = `the lab's fixed addresses are taken (${busy.map((b) => `${b.ep.host}:${b.ep.port}`).join(', ')}): stop the running lab (Ctrl-C) before this test`;
      return;
    }
    // The command of the README's quick start, in its own process group so Ctrl-C reaches it all.
    lab = spawn(startCmd[0], startCmd[1], { env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    lab.stdout?.on('data', (d: Buffer) => {
      output += d.toString();
    });
    lab.stderr?.on('data', (d: Buffer) => {
      output += d.toString();
    });
    const end = Date.now() + 150_000;
    while (!output.includes('The lab is up')) {
      if (lab.exitCode !== null || lab.signalCode !== null)
        throw new Error(`${startCmd.join(' ')} exited early:\n${output}`);
      if (Date.now() > end) throw new Error(`the lab did not come up in 150 s:\n${output}`);
      await new Promise((r) => setTimeout(r, 250));
    }
  });

  after(async () => {
    if (lab?.pid && lab.exitCode === null) {
      try {
        process.kill(-lab.pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
    if (existsSync(join(labDir, 'lab.json'))) {
      for (const pid of labJson().pids) if (alive(pid)) process.kill(pid, 'SIGKILL');
    }
    rmSync(labDir, { recursive: true, force: true });
  });

  it('comes up healthy within 15 s and prints the endpoint table', async (t) => {
    if (await refuseIfBusy(t)) return;
    const m = /healthy after ([\d.]+) s/.exec(output);
    assert.ok(m, `no "healthy after" line in:\n${output}`);
    assert.ok(Number(m[1]) < 15, `took ${m[1]} s to become healthy`);
    for (const r of plan.regions) {
      assert.match(output, new RegExp(`${r.id} edge\\s+${r.edgeUrl.replace(/\./g, '\\.')}`));
      assert.match(output, new RegExp(`${r.id} node\\s+${r.nodeUrl.replace(/\./g, '\\.')}`));
    }
  });

  it('answers on every address of the plan', async (t) => {
    if (await refuseIfBusy(t)) return;
    const dash = await http('http://127.0.0.1:8080/');
    assert.equal(dash.status, 401, 'the page needs the printed login link');
    assert.ok(!dash.text.includes(adminToken()), 'no token is served to an unauthenticated GET');
    assert.equal((await http('http://127.0.0.1:8080/api/state')).status, 401);
    const state = (await http('http://127.0.0.1:8080/api/state', { headers: bearer() })).json() as {
      regions: { id: string; node: string; edge: string }[];
    };
    assert.deepEqual(
      state.regions.map((r) => [r.id, r.node, r.edge]),
      plan.regions.map((r) => [r.id, 'up', 'up']),
    );
    for (const r of plan.regions) {
      const node = await http(`${r.nodeUrl}/healthz`);
      assert.equal(node.status, 200, `${r.nodeUrl}/healthz`);
      assert.equal(node.json().region, r.id);
      const edge = await http(`${r.edgeUrl}/healthz`);
      assert.equal(edge.status, 200, `${r.edgeUrl}/healthz`);
      assert.equal((await http(`${r.edgeUrl}/edge/status`)).status, 200);
    }
    for (const l of plan.links)
      assert.ok(await reachable(l.listenHost, l.listenPort), `WAN proxy ${l.from}->${l.to}`);
    const dns = await queryA('127.0.0.1', 5353, 'app.meridian.test');
    assert.equal(dns.rcode, 'NOERROR');
    assert.ok(
      dns.addresses.length > 0 && dns.addresses.every((a) => plan.regions.some((r) => r.host === a)),
      `DNS answered ${dns.addresses}`,
    );
    assert.ok(await reachable('127.0.0.1', 5353), 'GeoDNS over TCP');
    const denied = await http('http://127.0.0.1:8080/api/chaos', {
      method: 'POST',
      body: { action: 'heal' },
    });
    assert.equal(denied.status, 401, 'chaos without the admin token is refused');
  });

  it('reads a write made through one edge through another edge, with the token', async (t) => {
    if (await refuseIfBusy(t)) return;
    const [a, , c] = plan.regions;
    const key = `e2e-${Date.now()}`;
    const w = await http(`${a?.edgeUrl}/v1/settings/${key}`, { method: 'PUT', body: { colour: 'teal' } });
    assert.equal(w.status, 200, w.text);
    const token = w.headers['meridian-version'];
    assert.equal(typeof token, 'string');
    const r = await http(`${c?.edgeUrl}/v1/settings/${key}`, {
      headers: { 'meridian-min-version': token as string },
    });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json().value, { colour: 'teal' });
    // The edge may wait for its own region to catch up or send the read where the version already is.
    assert.ok(
      plan.regions.some((x) => x.id === r.headers['meridian-region']),
      'served by one of the regions',
    );
  });

  it('kills a region from the dashboard and the page shows its traffic moving away', async (t) => {
    if (await refuseIfBusy(t)) return;
    if (!needTool(t, 'chromium', 'chromium')) return;
    const { chromium } = await import('playwright-core');
    const profile = mkdtempSync(join(tmpdir(), 'meridian-chromium-'));
    const browser = await chromium.launchPersistentContext(profile, {
      executablePath: '/usr/bin/chromium',
      headless: true,
      viewport: { width: 1500, height: 1000 },
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
    try {
      const page = await browser.newPage();
      // The URL npm start printed, as a user opens it: it signs the browser in and lands on /.
      await page.goto(dashboardUrl());
      assert.equal(page.url(), 'http://127.0.0.1:8080/');
      assert.equal((await http(dashboardUrl())).status, 401, 'the login link works once');
      const victim = 'eu-west-1';
      const card = page.locator(`.region[data-region="${victim}"]`);
      const attr = async (name: string) => (await card.getAttribute(name)) ?? '';
      // Traffic reaches the victim first.
      await waitFor('traffic served by the victim on the page', 30_000, async () =>
        Number(await attr('data-served-rps')) > 0 ? true : undefined,
      );
      // Let the page gather a little history first (lag on every link, a few seconds of charts), so
      // the screenshot tells the story.
      await waitFor('replication lag on every link', 30_000, async () => {
        const cells = await page.locator('#links tbody tr td:nth-child(3)').allTextContents();
        return cells.length === plan.links.length && cells.every((c) => /\d/.test(c)) ? true : undefined;
      });
      await page.waitForTimeout(6000);
      await page.getByTestId(`kill-${victim}`).click();
      await waitFor('the page to show the node down', 15_000, async () =>
        (await attr('data-node')) === 'down' ? true : undefined,
      );
      // Its edge stays up and its users' requests are now served by other regions, on the map too.
      await waitFor('the page to show the traffic moved away', 30_000, async () => {
        const flows = await page
          .locator('[data-flow]')
          .evaluateAll((els) => els.map((e) => e.getAttribute('data-flow') ?? ''));
        const moved = flows.some((f) => f.startsWith(`${victim}>`) && f !== `${victim}>${victim}`);
        return Number(await attr('data-served-rps')) === 0 && moved ? true : undefined;
      });
      assert.equal(await card.getAttribute('data-edge'), 'up');
      await page.waitForTimeout(1500); // let the flow animation and charts draw a frame for the picture
      await page.screenshot({ path: 'docs/img/dashboard.png' });
      const timeline = await page.locator('#events').textContent();
      assert.match(timeline ?? '', new RegExp(`kill ${victim}`));
      await page.getByTestId(`restart-${victim}`).click();
      await waitFor('the page to show the node up again', 30_000, async () =>
        (await attr('data-node')) === 'up' ? true : undefined,
      );
    } finally {
      await browser.close();
      rmSync(profile, { recursive: true, force: true });
    }
  });

  it('meridian chaos kill --with-edge: the others serve, GeoDNS stops answering with that edge', async (t) => {
    if (await refuseIfBusy(t)) return;
    const victim = plan.regions[2]!;
    const [a, b] = plan.regions;
    const key = `e2e-failover-${Date.now()}`;
    const w = await http(`${a?.edgeUrl}/v1/settings/${key}`, { method: 'PUT', body: { n: 1 } });
    assert.equal(w.status, 200);
    const res = spawnSync(process.execPath, [...cliArgs, 'chaos', 'kill', victim.id, '--with-edge'], {
      env,
      encoding: 'utf8',
    });
    assert.equal(res.status, 0, res.stderr);
    assert.match(res.stdout, new RegExp(`kill ${victim.id}`));
    await assert.rejects(http(`${victim.edgeUrl}/healthz`), 'the edge is gone too');
    // GeoDNS drops the dead edge, also for clients nearest to it (a Japanese client subnet).
    await waitFor('GeoDNS to stop answering with the dead edge', 20_000, async () => {
      const plain = await queryA('127.0.0.1', 5353, 'app.meridian.test');
      const tokyo = await queryA('127.0.0.1', 5353, 'app.meridian.test', { clientSubnet: '133.11.0.0/24' });
      const all = [...plain.addresses, ...tokyo.addresses];
      return all.length > 0 && !all.includes(victim.host) ? true : undefined;
    });
    // The surviving regions keep serving reads and writes.
    const r = await http(`${b?.edgeUrl}/v1/settings/${key}`, {
      headers: { 'meridian-min-version': w.headers['meridian-version'] as string },
    });
    assert.equal(r.status, 200);
    const w2 = await http(`${b?.edgeUrl}/v1/likes/e2e-${Date.now()}/increment`, {
      method: 'POST',
      body: { by: 2 },
    });
    assert.equal(w2.status, 200, w2.text);
    const state = (await http('http://127.0.0.1:8080/api/state', { headers: bearer() })).json() as {
      regions: { id: string; node: string; edge: string }[];
    };
    const v = state.regions.find((x) => x.id === victim.id);
    await waitFor('the lab to see the region down', 10_000, async () => {
      const s = (await http('http://127.0.0.1:8080/api/state', { headers: bearer() })).json() as {
        regions: { id: string; node: string; edge: string }[];
      };
      const x = s.regions.find((y) => y.id === victim.id);
      return x?.node === 'down' && x.edge === 'down' ? true : undefined;
    });
    assert.ok(v);
  });

  it('stops on Ctrl-C and leaves no process behind', async (t) => {
    if (await refuseIfBusy(t)) return;
    const { labPid, pids } = labJson();
    assert.ok(pids.length >= 7, `expected nodes, edges and dns in ${JSON.stringify(pids)}`);
    const exited = new Promise<number | null>((resolve) => lab?.once('exit', (code) => resolve(code)));
    process.kill(-(lab?.pid as number), 'SIGINT'); // what Ctrl-C in the terminal sends to the foreground group
    const code = await Promise.race([
      exited,
      new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 30_000)),
    ]);
    assert.notEqual(code, 'timeout', `npm start did not exit after SIGINT:\n${output.slice(-2000)}`);
    assert.match(output, /no process left behind/);
    await waitFor('every lab process to be gone', 5000, async () =>
      [labPid, ...pids].every((p) => !alive(p)) ? true : undefined,
    );
    const ps = spawnSync('ps', ['-eo', 'pid,args'], { encoding: 'utf8' }).stdout;
    assert.ok(
      !ps.includes(labDir),
      `processes still mention the lab folder:\n${ps
        .split('\n')
        .filter((l) => l.includes(labDir))
        .join('\n')}`,
    );
    for (const ep of allEndpoints()) {
      if (!ep.udp) assert.equal(await reachable(ep.host, ep.port, 300), false, `${ep.what} still answers`);
    }
  });
});

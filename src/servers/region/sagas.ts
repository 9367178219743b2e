/**
 * Sagas on the region node: POST /v1/sagas/{type} (Idempotency-Key required) and GET /v1/sagas/{id},
 * a summary for the lab dashboard (GET /v1/sagas), and the region-to-region account steps of the
 * transfer saga, which a coordinator calls in the account's home region.
 */
import type { FastifyInstance, FastifyReply } from 'fastify';
import { request } from 'undici';
import { nodeUrlFrom } from '../../adapters/config.js';
import { systemClock, systemRandom, systemTimers } from '../../adapters/system.js';
import type { Change } from '../../core/change.js';
import { validateKey } from '../../core/collection.js';
import { MeridianError } from '../../core/errors.js';
import type { FenceResult } from '../../core/idempotency.js';
import {
  ACCOUNTS_COLLECTION,
  ACCOUNTS_INDEX_NS,
  type AccountOps,
  Accounts,
  applyFingerprint,
  resultOf,
} from '../../core/saga/accounts.js';
import { SagaEngine, sagaView } from '../../core/saga/engine.js';
import type { RetryPolicy } from '../../core/saga/retry.js';
import { AccountRouter } from '../../core/saga/router.js';
import { startSaga } from '../../core/saga/start.js';
import { transferSaga } from '../../core/saga/transfer.js';
import type { SagaMode, SagaRecord } from '../../core/saga/types.js';
import type { Json, RegionId } from '../../core/types.js';
import type { RegionNodeContext, RegionRouteModule } from './context.js';
import { H } from './headers.js';
import {
  callerOf,
  fingerprintOf,
  IDEMPOTENCY_KEY_HEADER,
  idempotencyKeys,
  replayHeaders,
  requestKey,
} from './idempotency.js';
import { hasClusterSecret } from './internal.js';

export interface RegionSagas {
  engine: SagaEngine;
  accounts: Accounts;
  summary(): Promise<SagaSummary>;
}

export interface SagaSummary {
  region: RegionId;
  sagas: Record<SagaRecord['status'], number>;
  /** balances: the accounts as this region sees them; inFlight: debited and not yet credited or refunded. */
  money: { total: number; balances: number; inFlight: number; accounts: number };
}

/** Retry policy of the node's sagas (tests shorten it). */
export const sagaRetry: Partial<RetryPolicy> = {};

const perNode = new WeakMap<RegionNodeContext, RegionSagas>();

export function regionSagas(node: RegionNodeContext): RegionSagas | undefined {
  return perNode.get(node);
}

/**
 * The accounts of another region over HTTP (through the configured route, the WAN emulator in the
 * lab). Only moves the call: the core's AccountRouter decides where each call goes, as in the
 * simulator. A 421 becomes 'misdirected' naming the home from Meridian-Replay.
 */
class HttpAccountOps implements AccountOps {
  constructor(
    private readonly node: RegionNodeContext,
    private readonly region: RegionId,
    private readonly timeoutMs: number,
  ) {}

  async apply(account: string, delta: number, idempotencyKey: string): Promise<Json> {
    return resultOf(await this.post(account, idempotencyKey, 'apply', { delta }));
  }

  async fence(account: string, idempotencyKey: string): Promise<FenceResult> {
    const a = await this.post(account, idempotencyKey, 'fence', {});
    resultOf(a);
    return a.body as unknown as FenceResult;
  }

  private async post(
    account: string,
    idempotencyKey: string,
    op: 'apply' | 'fence',
    body: Json,
  ): Promise<{ status: number; body: Json }> {
    const { node, region } = this;
    const url = `${nodeUrlFrom(node.cfg, node.region, region)}/internal/accounts/${encodeURIComponent(account)}/${op}`;
    const res = await request(url, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${node.cfg.secrets.clusterSecret}`,
        'content-type': 'application/json',
        [IDEMPOTENCY_KEY_HEADER]: idempotencyKey,
      },
      body: JSON.stringify(body),
      headersTimeout: this.timeoutMs,
      bodyTimeout: this.timeoutMs,
    });
    const text = await res.body.text();
    if (res.statusCode === 421) {
      const replay = String(res.headers[H.replay] ?? '');
      const home = /region=([a-z0-9-]+)/.exec(replay)?.[1];
      if (!home || home === region)
        throw new MeridianError('unavailable', `${region} answered 421 without a home`);
      throw new MeridianError('misdirected', `account '${account}' is homed in ${home}`, {
        replayRegion: home,
      });
    }
    // 5xx and 429 may succeed later; a 409 is told apart by its code (in progress, insufficient funds, fenced).
    if (res.statusCode >= 500 || res.statusCode === 429) {
      throw new MeridianError('unavailable', `${region} answered ${res.statusCode}`);
    }
    try {
      return { status: res.statusCode, body: JSON.parse(text) as Json };
    } catch {
      throw new MeridianError(
        'unavailable',
        `${region} answered ${res.statusCode} with a body that is not JSON`,
      );
    }
  }
}

function sendAnswer(reply: FastifyReply, status: number, body: Json, replayed: boolean): FastifyReply {
  reply.code(status);
  if (replayed) for (const [k, v] of Object.entries(replayHeaders(body))) reply.header(k, v);
  return reply.send(body);
}

function requireSecret(node: RegionNodeContext, req: Parameters<typeof hasClusterSecret>[0]): void {
  if (!hasClusterSecret(req, node.cfg.secrets.clusterSecret)) {
    throw new MeridianError(
      'unauthorized',
      'region-to-region route: send Authorization: Bearer <cluster secret>',
    );
  }
}

function parseMode(raw: unknown): SagaMode | undefined {
  if (raw === undefined) return undefined;
  if (raw === 'orchestration' || raw === 'choreography') return raw;
  throw new MeridianError('bad_request', '?mode= must be orchestration or choreography');
}

function registerRoutes(app: FastifyInstance, node: RegionNodeContext, s: RegionSagas): void {
  const keys = idempotencyKeys(node);

  app.post<{ Params: { type: string }; Querystring: { mode?: string } }>(
    '/v1/sagas/:type',
    async (req, reply) => {
      const key = requestKey(req);
      if (key === undefined) {
        throw new MeridianError(
          'bad_request',
          `POST /v1/sagas/${req.params.type} requires an Idempotency-Key header`,
          {
            header: 'Idempotency-Key',
          },
        );
      }
      const mode = parseMode(req.query.mode);
      const a = await startSaga(keys, s.engine, {
        type: req.params.type,
        input: (req.body ?? null) as Json,
        idempotencyKey: key,
        fp: fingerprintOf(req),
        caller: callerOf(req),
        ...(mode ? { mode } : {}),
      });
      if (a.status === 202 && typeof a.body === 'object' && a.body !== null && !Array.isArray(a.body)) {
        reply.header('location', `/v1/sagas/${String(a.body.id)}`);
      }
      return sendAnswer(reply, a.status, a.body, a.replayed);
    },
  );

  app.get<{ Params: { id: string } }>('/v1/sagas/:id', async (req) => {
    const saga = await s.engine.get(req.params.id);
    if (!saga) throw new MeridianError('not_found', `no saga '${req.params.id}' in ${node.region}`);
    return sagaView(saga);
  });

  app.get('/v1/sagas', async () => s.summary());

  // `accounts` is read-only to /v1 clients (money moves only through sagas): this is how a client
  // gets an account, homed in the region that answers, with the configured opening balance. Opens
  // of one key run one at a time, so a second open finds the first and never resets a balance.
  const opening = new Map<string, Promise<unknown>>();
  app.post<{ Params: { key: string } }>('/v1/accounts/:key/open', async (req) => {
    const account = req.params.key;
    validateKey(account);
    const open = async (): Promise<Json> => {
      const home = await node.core.homeOf(ACCOUNTS_COLLECTION, account);
      if (home !== undefined && home !== node.region) {
        throw new MeridianError('misdirected', `account '${account}' is homed in ${home}`, {
          replayRegion: home,
        });
      }
      const balance = await s.accounts.balance(account);
      if (balance !== undefined) return { key: account, balance, opened: false };
      const opened = await s.accounts.open(account, node.cfg.node.accountOpeningBalance);
      return { ...(opened as { key: string; balance: number }), opened: true };
    };
    const prev = opening.get(account) ?? Promise.resolve();
    const run = prev.then(open, open);
    opening.set(account, run);
    try {
      return await run;
    } finally {
      if (opening.get(account) === run) opening.delete(account);
    }
  });

  app.post<{ Params: { key: string }; Body: { delta?: unknown } }>(
    '/internal/accounts/:key/apply',
    async (req, reply) => {
      requireSecret(node, req);
      const key = requestKey(req);
      if (key === undefined)
        throw new MeridianError('bad_request', 'an account step requires an Idempotency-Key header');
      const delta = req.body?.delta;
      if (typeof delta !== 'number')
        throw new MeridianError('bad_request', '"delta" must be a non-zero integer');
      const a = await s.accounts.applyAnswer(
        req.params.key,
        delta,
        key,
        applyFingerprint(req.params.key, delta),
      );
      return sendAnswer(reply, a.status, a.body, a.replayed);
    },
  );

  app.post<{ Params: { key: string } }>('/internal/accounts/:key/fence', async (req) => {
    requireSecret(node, req);
    const key = requestKey(req);
    if (key === undefined) throw new MeridianError('bad_request', 'name the key to fence in Idempotency-Key');
    return (await s.accounts.fence(req.params.key, key)) as unknown as Json;
  });

  app.post<{ Params: { key: string }; Body: { balance?: unknown } }>(
    '/internal/accounts/:key/open',
    async (req) => {
      requireSecret(node, req);
      const balance = req.body?.balance;
      if (typeof balance !== 'number')
        throw new MeridianError('bad_request', '"balance" must be a non-negative integer');
      return s.accounts.open(req.params.key, balance);
    },
  );
}

/** Sums what the dashboard shows: sagas by status, and the money in accounts plus the money in flight. */
async function summarize(node: RegionNodeContext, s: Omit<RegionSagas, 'summary'>): Promise<SagaSummary> {
  const sagas: SagaSummary['sagas'] = { running: 0, completed: 0, compensating: 0, compensated: 0, stuck: 0 };
  let inFlight = 0;
  for (const saga of await s.engine.list()) {
    sagas[saga.status]++;
    if (saga.type !== 'transfer') continue;
    const [debit, credit] = saga.steps;
    const debited = debit?.status === 'done' || debit?.status === 'compensating';
    const credited =
      credit?.status === 'done' || credit?.status === 'compensating' || credit?.status === 'compensated';
    const input = saga.input as { amount?: unknown };
    if (debited && !credited && typeof input?.amount === 'number') inFlight += input.amount;
  }
  let balances = 0;
  const index = await node.core.listKv(ACCOUNTS_INDEX_NS);
  for (const r of index) balances += (await s.accounts.balance(r.key)) ?? 0;
  return {
    region: node.region,
    sagas,
    money: { total: balances + inFlight, balances, inFlight, accounts: index.length },
  };
}

/** Indexes every account this region is home to, however it was written (a collection need not be saga-only). */
function trackAccounts(node: RegionNodeContext): (changes: readonly Change[]) => void {
  const known = new Set<string>();
  return (changes) => {
    for (const c of changes) {
      if (
        c.origin !== node.region ||
        c.payload.kind !== 'doc' ||
        c.payload.collection !== ACCOUNTS_COLLECTION
      )
        continue;
      const key = c.payload.key;
      if (known.has(key)) continue;
      known.add(key);
      void node.core
        .writeKv(async (read) =>
          (await read(ACCOUNTS_INDEX_NS, key))
            ? []
            : [{ ns: ACCOUNTS_INDEX_NS, key, value: node.region, collection: ACCOUNTS_COLLECTION }],
        )
        .catch(() => known.delete(key));
    }
  };
}

/**
 * Registers the saga engine of this region: runs the sagas it coordinates, resumes them after a
 * restart, and takes its turn in choreographed ones.
 */
export const sagasModule: RegionRouteModule = {
  name: 'sagas',
  register(app, node) {
    const keys = idempotencyKeys(node);
    const accounts = new Accounts(node.core, keys);
    const engine = new SagaEngine({
      region: node.region,
      kv: node.core,
      clock: systemClock,
      timers: systemTimers,
      random: systemRandom,
      retry: sagaRetry,
    });
    const remote = new AccountRouter({
      region: node.region,
      local: accounts,
      remote: (region) => new HttpAccountOps(node, region, engine.retry.stepTimeoutMs),
    });
    engine.register(transferSaga((mode) => (mode === 'choreography' ? accounts : remote)));
    const base = { engine, accounts };
    const s: RegionSagas = { ...base, summary: () => summarize(node, base) };
    perNode.set(node, s);
    registerRoutes(app, node, s);
    const track = trackAccounts(node);
    const unsubscribe = node.core.subscribe((changes) => {
      track(changes);
      engine.onCommitted(changes);
    });
    app.addHook('onReady', async () => {
      const n = await engine.resume();
      if (n > 0) node.log.info({ resumed: n }, 'resumed unfinished sagas');
    });
    app.addHook('onClose', async () => {
      unsubscribe();
      engine.stop();
    });
  },
};

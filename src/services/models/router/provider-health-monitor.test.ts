import assert from 'node:assert/strict';
import { createServer, type Server, type Socket } from 'node:net';
import { describe, it } from 'node:test';
import { chatOf, startRouterRig, waitUntil } from '../../../../test/support/model-router-rig.ts';
import { silentLogger } from '../../../../test/support/silent-logger.ts';
import { MockLlmServer } from '../mock/mock-llm-server.ts';
import type { ModelProviderV1 } from '../provider/model-provider.ts';
import { OpenAiCompatibleProvider } from '../providers/openai-compatible-provider.ts';
import { CircuitBreaker } from './circuit-breaker.ts';
import { ManualScheduler } from './manual-scheduler.ts';
import { ProviderHealthMonitor } from './provider-health-monitor.ts';

const logger = silentLogger();

function provider(id: string, baseUrl: string): ModelProviderV1 {
  return new OpenAiCompatibleProvider({
    providerId: id,
    baseUrl,
    timeoutMs: 30_000,
    maxResponseBytes: 1_048_576,
  });
}

/** The real provider, with the signal of every health check it was asked for recorded. */
function observed(inner: ModelProviderV1): { provider: ModelProviderV1; checks: AbortSignal[] } {
  const checks: AbortSignal[] = [];
  return {
    checks,
    provider: {
      specificationVersion: 'v1',
      id: inner.id,
      kind: inner.kind,
      capabilities: inner.capabilities,
      doChat: (request, options) => inner.doChat(request, options),
      doStream: (request, options) => inner.doStream(request, options),
      doEmbed: (request, options) => inner.doEmbed(request, options),
      doHealthCheck: (options) => {
        checks.push(options.signal);
        return inner.doHealthCheck(options);
      },
    },
  };
}

async function listen(server: Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  assert.ok(address !== null && typeof address === 'object');
  return address.port;
}

/** A loopback port with nothing listening on it. */
async function closedPort(): Promise<number> {
  const server = createServer();
  const port = await listen(server);
  await new Promise<void>((resolve, reject) =>
    server.close((error) => (error ? reject(error) : resolve())),
  );
  return port;
}

function breakersFor(ids: readonly string[], failureThreshold: number) {
  const scheduler = new ManualScheduler();
  return new Map(
    ids.map((id) => [id, new CircuitBreaker({ failureThreshold, cooldownMs: 30_000, scheduler })]),
  );
}

describe('ProviderHealthMonitor', () => {
  it('marks a provider that answers its health check as ok', async (t) => {
    const mock = await MockLlmServer.start();
    t.after(() => mock.close());
    const providers = new Map([['alpha', provider('alpha', mock.openAiBaseUrl)]]);
    const monitor = new ProviderHealthMonitor(providers, breakersFor(['alpha'], 3), {
      intervalMs: 60_000,
      logger,
    });
    t.after(() => monitor.close());

    assert.deepEqual(monitor.status(), [
      { provider: 'alpha', ok: undefined, checkedAt: undefined, error: undefined },
    ]);
    const [health] = await monitor.checkAll();

    assert.equal(health?.ok, true);
    assert.equal(health?.error, undefined);
    assert.equal(typeof health?.checkedAt, 'number');
  });

  it('records failing checks and opens the breaker after failureThreshold of them', async (t) => {
    const mock = await MockLlmServer.start();
    t.after(() => mock.close());
    const providers = new Map([
      ['alpha', provider('alpha', mock.openAiBaseUrl)],
      ['down', provider('down', `http://127.0.0.1:${await closedPort()}/v1`)],
    ]);
    const breakers = breakersFor(['alpha', 'down'], 3);
    const monitor = new ProviderHealthMonitor(providers, breakers, { intervalMs: 60_000, logger });
    t.after(() => monitor.close());

    await monitor.checkAll();
    await monitor.checkAll();
    assert.equal(breakers.get('down')?.state, 'closed');
    const status = await monitor.checkAll();

    assert.equal(breakers.get('down')?.state, 'open');
    assert.equal(breakers.get('alpha')?.state, 'closed');
    const down = status.find((health) => health.provider === 'down');
    assert.equal(down?.ok, false);
    assert.match(down?.error ?? '', /could not be reached/);
    assert.equal(status.find((health) => health.provider === 'alpha')?.ok, true);
  });

  it('lets an open breaker probe early when its check passes', async (t) => {
    const rig = await startRouterRig({
      logger,
      breaker: { failureThreshold: 2, cooldownMs: 30_000 },
    });
    t.after(() => rig.close());
    rig.mock('alpha').injectFault({ fault: { type: 'unavailable' }, times: 2 });
    await rig.router.chat('smart', chatOf('one'), { signal: new AbortController().signal });
    await rig.router.chat('smart', chatOf('two'), { signal: new AbortController().signal });
    const breaker = rig.router.breakers().get('alpha');
    assert.equal(breaker?.state, 'open');
    const monitor = new ProviderHealthMonitor(rig.providers, rig.router.breakers(), {
      intervalMs: 60_000,
      logger,
    });
    t.after(() => monitor.close());

    await monitor.checkAll();
    assert.equal(breaker?.state, 'half-open');
    const answer = await rig.router.chat('smart', chatOf('three'), {
      signal: new AbortController().signal,
    });

    // Well inside the cooldown (the scheduler never moved), the probe went to alpha and closed it.
    assert.equal(rig.scheduler.now(), 0);
    assert.deepEqual(answer.attempts, [{ provider: 'alpha', model: 'mock-small', outcome: 'ok' }]);
    assert.equal(breaker?.state, 'closed');
  });

  it('checks periodically once started and stops on close()', async (t) => {
    const mock = await MockLlmServer.start();
    t.after(() => mock.close());
    const { provider: alpha, checks } = observed(provider('alpha', mock.openAiBaseUrl));
    const monitor = new ProviderHealthMonitor(
      new Map([['alpha', alpha]]),
      breakersFor(['alpha'], 3),
      {
        intervalMs: 10,
        logger,
      },
    );

    monitor.start();
    await waitUntil(() => checks.length >= 2, 'the monitor has checked twice');
    await monitor.close();
    const seen = checks.length;
    await new Promise((resolve) => setTimeout(resolve, 100));
    monitor.start();
    await new Promise((resolve) => setTimeout(resolve, 50));

    assert.equal(checks.length, seen);
    assert.equal(monitor.status()[0]?.ok, true);
  });

  it('aborts a check in flight on close() and records nothing for it', async (t) => {
    // Accepts connections and never answers, so a health check hangs until aborted.
    const sockets = new Set<Socket>();
    const silent = createServer((socket) => sockets.add(socket));
    const port = await listen(silent);
    t.after(async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => silent.close(() => resolve()));
    });
    const { provider: hanging, checks } = observed(
      provider('hanging', `http://127.0.0.1:${port}/v1`),
    );
    const breakers = breakersFor(['hanging'], 1);
    const monitor = new ProviderHealthMonitor(new Map([['hanging', hanging]]), breakers, {
      intervalMs: 10,
      logger,
    });

    monitor.start();
    await waitUntil(() => sockets.size === 1, 'a check is in flight');
    await monitor.close();

    assert.equal(checks.length, 1);
    const [check] = checks;
    assert.ok(check?.aborted);
    // Aborted by close(), not by the check's own timeout.
    assert.equal((check.reason as Error).name, 'AbortError');
    assert.deepEqual(monitor.status(), [
      { provider: 'hanging', ok: undefined, checkedAt: undefined, error: undefined },
    ]);
    assert.equal(breakers.get('hanging')?.state, 'closed');
  });
});

import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type Server } from 'node:net';
import { describe, it } from 'node:test';
import { rejectsWithCode } from '../../../test/support/assertions.ts';
import { DEFAULT_LOCAL_SERVICES, probeTcpService, probeTcpServices } from './probe-tcp-service.ts';

async function listeningServer(): Promise<{ server: Server; port: number }> {
  const server = createServer((socket) => socket.destroy());
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  assert.ok(address !== null && typeof address === 'object');
  return { server, port: address.port };
}

async function closedPort(): Promise<number> {
  const { server, port } = await listeningServer();
  server.close();
  await once(server, 'close');
  return port;
}

describe('probeTcpService', () => {
  it('reports a listening service as reachable with a latency', async () => {
    const { server, port } = await listeningServer();
    try {
      const probe = await probeTcpService({ name: 'test', host: '127.0.0.1', port });
      assert.equal(probe.reachable, true);
      assert.equal(typeof probe.latencyMs, 'number');
      assert.ok((probe.latencyMs ?? -1) >= 0);
      assert.match(probe.detail, /^connected in /);
      assert.deepEqual(
        { name: probe.name, host: probe.host, port: probe.port },
        { name: 'test', host: '127.0.0.1', port },
      );
    } finally {
      server.close();
    }
  });

  it('reports a port nobody listens on as refused, without throwing', async () => {
    const port = await closedPort();
    const probe = await probeTcpService({ name: 'gone', host: '127.0.0.1', port });
    assert.equal(probe.reachable, false);
    assert.equal(probe.latencyMs, null);
    assert.equal(probe.detail, 'connection refused');
  });

  it('rejects a port outside 1–65535 or not an integer as an invalid argument', async () => {
    for (const port of [0, 65536, -1, 80.5, Number.NaN]) {
      const error = await rejectsWithCode(
        probeTcpService({ name: 'bad', host: '127.0.0.1', port }),
        'KEEL_INVALID_ARGUMENT',
      );
      assert.equal(error.details.field, 'port');
    }
  });

  it('rejects an empty host as an invalid argument', async () => {
    const error = await rejectsWithCode(
      probeTcpService({ name: 'bad', host: ' ', port: 5432 }),
      'KEEL_INVALID_ARGUMENT',
    );
    assert.equal(error.details.field, 'host');
  });

  it('rejects a timeout that is not positive as an invalid argument', async () => {
    await rejectsWithCode(
      probeTcpService({ name: 'bad', host: '127.0.0.1', port: 5432 }, { timeoutMs: 0 }),
      'KEEL_INVALID_ARGUMENT',
    );
  });

  it('rejects with KEEL_ABORTED when the signal is already aborted', async () => {
    const { server, port } = await listeningServer();
    try {
      await rejectsWithCode(
        probeTcpService({ name: 'test', host: '127.0.0.1', port }, { signal: AbortSignal.abort() }),
        'KEEL_ABORTED',
      );
    } finally {
      server.close();
    }
  });
});

describe('probeTcpServices', () => {
  it('probes every target and keeps their order', async () => {
    const { server, port } = await listeningServer();
    const refusedPort = await closedPort();
    try {
      const probes = await probeTcpServices([
        { name: 'down', host: '127.0.0.1', port: refusedPort },
        { name: 'up', host: '127.0.0.1', port },
      ]);
      assert.deepEqual(
        probes.map((probe) => [probe.name, probe.reachable]),
        [
          ['down', false],
          ['up', true],
        ],
      );
    } finally {
      server.close();
    }
  });

  it('rejects the whole batch when one target is invalid', async () => {
    await rejectsWithCode(
      probeTcpServices([
        { name: 'fine', host: '127.0.0.1', port: 1 },
        { name: 'bad', host: '127.0.0.1', port: 70000 },
      ]),
      'KEEL_INVALID_ARGUMENT',
    );
  });
});

describe('DEFAULT_LOCAL_SERVICES', () => {
  it('lists postgres, redis, nats and mqtt on their usual loopback ports', () => {
    assert.deepEqual(
      DEFAULT_LOCAL_SERVICES.map(({ name, host, port }) => `${name}@${host}:${port}`),
      [
        'postgres@127.0.0.1:5432',
        'redis@127.0.0.1:6379',
        'nats@127.0.0.1:4222',
        'mqtt@127.0.0.1:1883',
      ],
    );
    assert.ok(Object.isFrozen(DEFAULT_LOCAL_SERVICES));
  });
});

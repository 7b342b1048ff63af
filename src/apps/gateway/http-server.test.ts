import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { rejectsWithCode } from '../../../test/support/assertions.ts';
import { silentLogger } from '../../../test/support/silent-logger.ts';
import { ERROR_CATALOGUE, type ErrorCode } from '../../platform/errors/error-catalogue.ts';
import { KeelError } from '../../platform/errors/keel-error.ts';
import { SecretRedactor } from '../../platform/observability/secret-redactor.ts';
import { TraceContext } from '../../platform/observability/trace-context.ts';
import type { NodeHealth } from '../../runtime/node.ts';
import { httpError, isLoopback, startHttpServer } from './http-server.ts';

const silent = silentLogger();

function server(health: () => NodeHealth, host = '127.0.0.1') {
  return startHttpServer({
    host,
    port: 0,
    tls: null,
    maxBodyBytes: 1024,
    health,
    logger: silent,
    redactor: new SecretRedactor(['super-secret-value']),
    traces: new TraceContext(),
  });
}

describe('http errors', () => {
  it('answer every catalogue code with its status and a JSON body', () => {
    const redactor = new SecretRedactor([]);
    for (const code of Object.keys(ERROR_CATALOGUE) as ErrorCode[]) {
      const { status, body } = httpError(new KeelError(code), redactor);
      assert.equal(status, ERROR_CATALOGUE[code].status, code);
      const parsed = JSON.parse(body) as {
        error: { code: string; retryable: boolean; status: number };
      };
      assert.deepEqual(
        [parsed.error.code, parsed.error.retryable, parsed.error.status],
        [code, ERROR_CATALOGUE[code].retryable, ERROR_CATALOGUE[code].status],
      );
    }
  });

  it('never carry a secret', () => {
    const { body } = httpError(
      new KeelError('KEEL_INTERNAL', 'upstream said super-secret-value', {
        details: { echo: 'super-secret-value' },
      }),
      new SecretRedactor(['super-secret-value']),
    );
    assert.ok(!body.includes('super-secret-value'));
  });
});

describe('http server', () => {
  it('is live at once and ready only when every component is', async () => {
    let health: NodeHealth = {
      ready: false,
      components: [{ name: 'storage', ready: false, detail: 'opening' }],
    };
    await using http = await server(() => health);
    assert.equal((await fetch(`${http.url}/health/live`)).status, 200);
    const notReady = await fetch(`${http.url}/health/ready`);
    assert.equal(notReady.status, 503);
    assert.deepEqual(await notReady.json(), { status: 'not-ready', components: health.components });
    health = { ready: true, components: [{ name: 'storage', ready: true, detail: 'open' }] };
    assert.equal((await fetch(`${http.url}/health/ready`)).status, 200);
  });

  it('continues the caller’s trace and answers unknown routes with a typed 404', async () => {
    await using http = await server(() => ({ ready: true, components: [] }));
    const response = await fetch(`${http.url}/nowhere?x=1`, {
      headers: { traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01' },
    });
    assert.equal(response.status, 404);
    assert.match(
      response.headers.get('traceparent') ?? '',
      /^00-4bf92f3577b34da6a3ce929d0e0e4736-[0-9a-f]{16}-01$/,
    );
    assert.equal(response.headers.get('x-content-type-options'), 'nosniff');
    const body = (await response.json()) as { error: { code: string; message: string } };
    assert.deepEqual(
      [body.error.code, body.error.message],
      ['KEEL_NOT_FOUND', 'no route GET /nowhere'],
    );
  });

  it('refuses plain HTTP off loopback before listening', async () => {
    await rejectsWithCode(
      server(() => ({ ready: true, components: [] }), '0.0.0.0'),
      'KEEL_TLS_REQUIRED',
    );
    assert.equal(isLoopback('127.0.0.2'), true);
    assert.equal(isLoopback('::1'), true);
    assert.equal(isLoopback('localhost'), true);
    assert.equal(isLoopback('10.0.0.1'), false);
  });

  it('says a port is in use', async () => {
    await using first = await server(() => ({ ready: true, components: [] }));
    const port = first.port;
    const error = await rejectsWithCode(
      startHttpServer({
        host: '127.0.0.1',
        port,
        tls: null,
        maxBodyBytes: 1024,
        health: () => ({ ready: true, components: [] }),
        logger: silent,
        redactor: new SecretRedactor([]),
        traces: new TraceContext(),
      }),
      'KEEL_PORT_IN_USE',
    );
    assert.match(error.message, new RegExp(`port ${port} on 127\\.0\\.0\\.1 is already in use`));
  });
});

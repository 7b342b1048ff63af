import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import {
  createServer as createHttpServer,
  type IncomingMessage,
  type ServerResponse,
} from 'node:http';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { text } from 'node:stream/consumers';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { rejectsWithCode } from '../../../../test/support/assertions.ts';
import { childEnvironment } from '../../../../test/support/keel-process.ts';
import { selfSignedCertificate } from '../../../../test/support/self-signed-certificate.ts';
import { temporaryDirectory } from '../../../../test/support/temporary-directory.ts';
import { KeelError } from '../../../platform/errors/keel-error.ts';
import { ProviderHttp } from './provider-http.ts';

const PROVIDER_HTTP = join(import.meta.dirname, 'provider-http.ts');

/** Calls `json('/chat/completions')` from a fresh node, which trusts `caFile` when given. */
async function callFromChild(baseUrl: string, caFile?: string): Promise<Record<string, unknown>> {
  const script = `
import { ProviderHttp } from ${JSON.stringify(PROVIDER_HTTP)};
const http = new ProviderHttp({ providerId: 'tls', baseUrl: ${JSON.stringify(baseUrl)}, timeoutMs: 10000, maxResponseBytes: 65536, headers: { authorization: 'Bearer test' } });
try {
  const value = await http.json('/chat/completions', { ping: true }, new AbortController().signal);
  process.stdout.write(JSON.stringify({ ok: true, value }));
} catch (error) {
  process.stdout.write(JSON.stringify({ ok: false, code: error.code, message: error.message }));
}
`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
    env: childEnvironment(caFile === undefined ? {} : { NODE_EXTRA_CA_CERTS: caFile }),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const [output, errors] = await Promise.all([text(child.stdout), text(child.stderr)]);
  await once(child, 'close');
  assert.notEqual(output, '', errors);
  return JSON.parse(output) as Record<string, unknown>;
}

describe('ProviderHttp over https', () => {
  it('verifies the provider certificate, and calls it once it is trusted', async () => {
    await using directory = await temporaryDirectory('keel-provider-tls-');
    const { keyFile, certFile } = await selfSignedCertificate(directory.path);
    const seen: { path?: string; authorization?: string; body?: string }[] = [];
    const server = createServer(
      { key: await readFile(keyFile), cert: await readFile(certFile), minVersion: 'TLSv1.2' },
      (request, response) => {
        const body: Buffer[] = [];
        request.on('data', (chunk: Buffer) => body.push(chunk));
        request.on('end', () => {
          seen.push({
            ...(request.url === undefined ? {} : { path: request.url }),
            ...(request.headers.authorization === undefined
              ? {}
              : { authorization: request.headers.authorization }),
            body: Buffer.concat(body).toString('utf8'),
          });
          response.writeHead(200, { 'content-type': 'application/json' });
          response.end(JSON.stringify({ pong: true }));
        });
      },
    );
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    try {
      const baseUrl = `https://127.0.0.1:${(server.address() as AddressInfo).port}/v1`;
      const untrusted = await callFromChild(baseUrl);
      assert.equal(untrusted.ok, false);
      assert.equal(untrusted.code, 'KEEL_PROVIDER_UNAVAILABLE');
      assert.match(String(untrusted.message), /could not be reached \(.*(CERT|SIGNED|ISSUER)/);
      assert.equal(seen.length, 0, 'nothing was sent to a server that failed verification');
      const trusted = await callFromChild(baseUrl, certFile);
      assert.deepEqual(trusted, { ok: true, value: { pong: true } });
      assert.deepEqual(seen, [
        { path: '/v1/chat/completions', authorization: 'Bearer test', body: '{"ping":true}' },
      ]);
    } finally {
      server.close();
      server.closeAllConnections();
    }
  });
});

describe('ProviderHttp.json', () => {
  async function withServer(
    handler: (request: IncomingMessage, response: ServerResponse) => void,
    test: (baseUrl: string) => Promise<void>,
  ): Promise<void> {
    const server = createHttpServer(handler);
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    try {
      await test(`http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`);
    } finally {
      server.close();
      server.closeAllConnections();
    }
  }

  const options = (baseUrl: string) => ({
    providerId: 'local',
    baseUrl,
    timeoutMs: 5_000,
    maxResponseBytes: 65_536,
    headers: {},
  });

  it('refuses at once a call whose signal is already aborted, and nothing escapes', async () => {
    let requests = 0;
    await withServer(
      (_request, response) => {
        requests += 1;
        response.end('{}');
      },
      async (baseUrl) => {
        const http = new ProviderHttp(options(baseUrl));
        const controller = new AbortController();
        controller.abort(new KeelError('KEEL_RUN_CANCELLED', 'the run was cancelled'));
        await rejectsWithCode(
          http.json('/chat/completions', {}, controller.signal),
          'KEEL_RUN_CANCELLED',
        );
        // An 'error' event with no listener would have been thrown by now, failing this file.
        await sleep(50);
        assert.equal(requests, 0);
      },
    );
  });

  it('says that a redirect is not followed and what to configure instead', async () => {
    await withServer(
      (_request, response) => {
        response.writeHead(302, { location: 'http://127.0.0.1:1/elsewhere' });
        response.end();
      },
      async (baseUrl) => {
        const http = new ProviderHttp(options(baseUrl));
        const error = await rejectsWithCode(
          http.json('/models', undefined, new AbortController().signal, 'GET'),
          'KEEL_PROVIDER_REJECTED',
        );
        assert.match(error.message, /redirect \(302\), which Keel does not follow: set base_url/);
      },
    );
  });
});

import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { text } from 'node:stream/consumers';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';
import { childEnvironment } from '../../../../test/support/keel-process.ts';
import { temporaryDirectory } from '../../../../test/support/temporary-directory.ts';

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
    const keyFile = join(directory.path, 'tls.key');
    const certFile = join(directory.path, 'tls.crt');
    await promisify(execFile)('openssl', [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-days',
      '1',
      '-subj',
      '/CN=127.0.0.1',
      '-addext',
      'subjectAltName=IP:127.0.0.1',
      '-keyout',
      keyFile,
      '-out',
      certFile,
    ]);
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

import assert from 'node:assert/strict';
import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import {
  createServer,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { after, describe, it } from 'node:test';
import { createSecureContext } from 'node:tls';
import { selfSignedCertificate } from '../../../../test/support/self-signed-certificate.ts';
import { temporaryDirectory } from '../../../../test/support/temporary-directory.ts';
import { isKeelError } from '../../../platform/errors/keel-error.ts';
import { type PinnedFetchRequest, pinnedFetch, type ResolvedAddress } from './pinned-http-fetch.ts';

/** Only loopback traffic: every server listens on 127.0.0.1, and only 127.0.0.1 is opened. */
const LOOPBACK = ['127.0.0.1/32'];

interface TestServer {
  readonly port: number;
  readonly origin: string;
  /** Request heads the server received, in order. */
  readonly requests: readonly { method: string; url: string; headers: IncomingHttpHeaders }[];
  /** Connections the server accepted (a refused fetch must leave this at zero). */
  readonly connections: number;
  close(): Promise<void>;
}

const servers: TestServer[] = [];

after(async () => {
  await Promise.all(servers.map((server) => server.close()));
});

async function startServer(
  handler: (request: IncomingMessage, response: ServerResponse) => void,
): Promise<TestServer> {
  const server: Server = createServer();
  const sockets = new Set<Socket>();
  const requests: { method: string; url: string; headers: IncomingHttpHeaders }[] = [];
  let connections = 0;
  server.on('connection', (socket: Socket) => {
    connections += 1;
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  server.on('request', (request: IncomingMessage, response: ServerResponse) => {
    requests.push({
      method: request.method ?? '',
      url: request.url ?? '',
      headers: request.headers,
    });
    handler(request, response);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  const started: TestServer = {
    port,
    origin: `http://127.0.0.1:${port}`,
    requests,
    get connections() {
      return connections;
    },
    async close() {
      for (const socket of sockets) socket.destroy();
      if (!server.listening) return;
      server.close();
      await once(server, 'close');
    },
  };
  servers.push(started);
  return started;
}

function fetchOptions(url: string, extra: Partial<PinnedFetchRequest> = {}): PinnedFetchRequest {
  return { url, maxBytes: 1_000_000, timeoutMs: 5_000, maxRedirects: 3, ...extra };
}

async function rejectsWith(
  promise: Promise<unknown>,
  code: string,
  rule?: string,
): Promise<Error & { details: Readonly<Record<string, unknown>> }> {
  let caught: unknown;
  await assert.rejects(promise, (error: unknown) => {
    caught = error;
    return true;
  });
  assert.ok(isKeelError(caught), `a KeelError, got ${String(caught)}`);
  assert.equal(caught.code, code, caught.message);
  if (rule !== undefined) assert.equal(caught.details.rule, rule, caught.message);
  return caught;
}

function resolverTo(...addresses: string[]) {
  const calls: string[] = [];
  const resolve = async (host: string): Promise<ResolvedAddress[]> => {
    calls.push(host);
    return addresses.map((address) => ({ address, family: address.includes(':') ? 6 : 4 }));
  };
  return { calls, resolve };
}

describe('pinnedFetch', () => {
  it('fetches a body from a loopback address an operator opened', async () => {
    const target = await startServer((_request, response) => {
      response.setHeader('content-type', 'text/plain; charset=utf-8');
      response.setHeader('set-cookie', 'session=secret');
      response.setHeader('x-internal', 'yes');
      response.end('hello, pinned world');
    });
    const response = await pinnedFetch(
      fetchOptions(`${target.origin}/greeting?lang=en`, { allowedAddresses: LOOPBACK }),
    );
    assert.equal(response.status, 200);
    assert.equal(response.body, 'hello, pinned world');
    assert.equal(response.truncated, false);
    assert.equal(response.address, '127.0.0.1');
    assert.equal(response.finalUrl, `${target.origin}/greeting?lang=en`);
    assert.deepEqual(response.redirects, []);
    assert.equal(response.headers['content-type'], 'text/plain; charset=utf-8');
    assert.equal(response.headers['set-cookie'], undefined);
    assert.equal(response.headers['x-internal'], undefined);
    assert.equal(target.requests[0]?.url, '/greeting?lang=en');
    assert.equal(target.requests[0]?.headers['accept-encoding'], 'identity');
    assert.equal(target.requests[0]?.headers.cookie, undefined);
  });

  it('connects a resolved name to the pinned address and sends the name as Host', async () => {
    const target = await startServer((_request, response) => response.end('by name'));
    const resolver = resolverTo('127.0.0.1');
    // pinned.test resolves nowhere in real DNS: reaching the server proves the pinned lookup.
    const response = await pinnedFetch(
      fetchOptions(`http://pinned.test:${target.port}/`, {
        allowedAddresses: LOOPBACK,
        resolve: resolver.resolve,
      }),
    );
    assert.equal(response.body, 'by name');
    assert.equal(response.address, '127.0.0.1');
    assert.deepEqual(resolver.calls, ['pinned.test']);
    assert.equal(target.requests.length, 1);
    assert.equal(target.requests[0]?.headers.host, `pinned.test:${target.port}`);
  });

  it('resolves once per hop so a rebinding answer is never used for the connection', async () => {
    const target = await startServer((_request, response) => response.end('first answer'));
    // The first answer is the opened address (standing in for a public one: tests stay on
    // loopback); every later answer is the rebinding target 127.0.0.2.
    let calls = 0;
    const rebinding = async (): Promise<ResolvedAddress[]> => {
      calls += 1;
      return [{ address: calls === 1 ? '127.0.0.1' : '127.0.0.2', family: 4 }];
    };
    const response = await pinnedFetch(
      fetchOptions(`http://rebind.test:${target.port}/`, {
        allowedAddresses: LOOPBACK,
        resolve: rebinding,
      }),
    );
    assert.equal(response.body, 'first answer');
    assert.equal(response.address, '127.0.0.1');
    assert.equal(calls, 1);
  });

  it('checks the rebinding answer again on a redirect hop and refuses it', async () => {
    const target = await startServer((request, response) => {
      response.writeHead(302, { location: `/next${request.url ?? ''}` }).end();
    });
    let calls = 0;
    const rebinding = async (): Promise<ResolvedAddress[]> => {
      calls += 1;
      return [{ address: calls === 1 ? '127.0.0.1' : '127.0.0.2', family: 4 }];
    };
    const error = await rejectsWith(
      pinnedFetch(
        fetchOptions(`http://rebind.test:${target.port}/`, {
          allowedAddresses: LOOPBACK,
          resolve: rebinding,
        }),
      ),
      'KEEL_POLICY_VIOLATION',
      'address-blocked',
    );
    assert.equal(error.details.address, '127.0.0.2');
    assert.equal(error.details.host, 'rebind.test');
    assert.equal(calls, 2);
    assert.equal(target.requests.length, 1);
  });

  it('refuses a loopback target before connecting when no address is opened', async () => {
    const target = await startServer((_request, response) => response.end('must not be seen'));
    await rejectsWith(
      pinnedFetch(fetchOptions(target.origin)),
      'KEEL_POLICY_VIOLATION',
      'address-blocked',
    );
    const resolver = resolverTo('127.0.0.1');
    await rejectsWith(
      pinnedFetch(
        fetchOptions(`http://pinned.test:${target.port}/`, { resolve: resolver.resolve }),
      ),
      'KEEL_POLICY_VIOLATION',
      'address-blocked',
    );
    await rejectsWith(
      pinnedFetch(fetchOptions(`http://localhost:${target.port}/`)),
      'KEEL_POLICY_VIOLATION',
      'host-reserved-name',
    );
    assert.equal(target.connections, 0);
  });

  it('refuses a name when one of its addresses is refused, without connecting', async () => {
    const target = await startServer((_request, response) => response.end('must not be seen'));
    const resolver = resolverTo('127.0.0.1', '10.0.0.7');
    const error = await rejectsWith(
      pinnedFetch(
        fetchOptions(`http://mixed.test:${target.port}/`, {
          allowedAddresses: LOOPBACK,
          resolve: resolver.resolve,
        }),
      ),
      'KEEL_POLICY_VIOLATION',
      'address-blocked',
    );
    assert.equal(error.details.address, '10.0.0.7');
    assert.equal(target.connections, 0);
  });

  for (const [label, location] of [
    ['another loopback address', (port: number) => `http://127.0.0.2:${port}/`],
    ['the cloud metadata address', () => 'http://169.254.169.254/latest/meta-data/'],
    ['the metadata address in hex', () => 'http://0xa9fea9fe/'],
    ['localhost by name', (port: number) => `http://localhost:${port}/`],
    ['a file URL', () => 'file:///etc/passwd'],
    ['a URL with credentials', (port: number) => `http://user:pw@127.0.0.1:${port}/`],
  ] as const) {
    it(`refuses a redirect to ${label}`, async () => {
      const target = await startServer((_request, response) => {
        response.writeHead(301, { location: location(target.port) }).end();
      });
      await rejectsWith(
        pinnedFetch(fetchOptions(target.origin, { allowedAddresses: LOOPBACK })),
        'KEEL_POLICY_VIOLATION',
      );
      assert.equal(target.requests.length, 1);
    });
  }

  it('follows redirects up to maxRedirects and fails beyond', async () => {
    const target = await startServer((request, response) => {
      const remaining = Number((request.url ?? '').split('/')[2] ?? 0);
      if (remaining === 0) {
        response.end('landed');
        return;
      }
      response.writeHead(307, { location: `/hop/${remaining - 1}` }).end();
    });
    const options = { allowedAddresses: LOOPBACK, maxRedirects: 2 };
    const response = await pinnedFetch(fetchOptions(`${target.origin}/hop/2`, options));
    assert.equal(response.body, 'landed');
    assert.deepEqual(response.redirects, [`${target.origin}/hop/1`, `${target.origin}/hop/0`]);
    assert.equal(response.finalUrl, `${target.origin}/hop/0`);
    await rejectsWith(
      pinnedFetch(fetchOptions(`${target.origin}/hop/3`, options)),
      'KEEL_POLICY_VIOLATION',
      'redirect-limit',
    );
    await rejectsWith(
      pinnedFetch(fetchOptions(`${target.origin}/hop/1`, { ...options, maxRedirects: 0 })),
      'KEEL_POLICY_VIOLATION',
      'redirect-limit',
    );
  });

  it('turns a POST into a GET on 303 and keeps it on 307', async () => {
    const bodies: string[] = [];
    const target = await startServer((request, response) => {
      let body = '';
      request.setEncoding('utf8');
      request.on('data', (chunk: string) => {
        body += chunk;
      });
      request.on('end', () => {
        bodies.push(`${request.method} ${request.url} ${body}`);
        if (request.url === '/see-other') response.writeHead(303, { location: '/done' }).end();
        else if (request.url === '/temporary') response.writeHead(307, { location: '/done' }).end();
        else response.end('ok');
      });
    });
    const post = { allowedAddresses: LOOPBACK, method: 'POST', body: 'payload' } as const;
    await pinnedFetch(fetchOptions(`${target.origin}/see-other`, post));
    await pinnedFetch(fetchOptions(`${target.origin}/temporary`, post));
    assert.deepEqual(bodies, [
      'POST /see-other payload',
      'GET /done ',
      'POST /temporary payload',
      'POST /done payload',
    ]);
  });

  it('does not carry Authorization to another origin on a redirect', async () => {
    const second = await startServer((_request, response) => response.end('second'));
    const first = await startServer((_request, response) => {
      response.writeHead(302, { location: `${second.origin}/` }).end();
    });
    await pinnedFetch(
      fetchOptions(first.origin, {
        allowedAddresses: LOOPBACK,
        headers: { Authorization: 'Bearer secret', 'X-Trace': 'abc' },
      }),
    );
    assert.equal(first.requests[0]?.headers.authorization, 'Bearer secret');
    assert.equal(second.requests[0]?.headers.authorization, undefined);
    assert.equal(second.requests[0]?.headers['x-trace'], 'abc');
  });

  it('truncates a body over maxBytes and closes the connection', async () => {
    let serverSawClose: (() => void) | undefined;
    const closed = new Promise<void>((resolve) => {
      serverSawClose = resolve;
    });
    const target = await startServer((_request, response) => {
      // An endless body: only the client closing the connection stops it.
      const timer = setInterval(() => response.write('x'.repeat(1024)), 5);
      response.socket?.once('close', () => {
        clearInterval(timer);
        serverSawClose?.();
      });
    });
    const response = await pinnedFetch(
      fetchOptions(target.origin, { allowedAddresses: LOOPBACK, maxBytes: 3000 }),
    );
    assert.equal(response.truncated, true);
    assert.equal(response.body, 'x'.repeat(3000));
    await closed;
  });

  it('cuts a truncated body on a character boundary and keeps an exact fit whole', async () => {
    const target = await startServer((request, response) => {
      response.end(request.url === '/exact' ? 'abc' : 'ééé');
    });
    const options = { allowedAddresses: LOOPBACK, maxBytes: 3 };
    const cut = await pinnedFetch(fetchOptions(`${target.origin}/accents`, options));
    assert.deepEqual([cut.body, cut.truncated], ['é', true]);
    const exact = await pinnedFetch(fetchOptions(`${target.origin}/exact`, options));
    assert.deepEqual([exact.body, exact.truncated], ['abc', false]);
  });

  it('times out a server that never answers with KEEL_TIMEOUT', async () => {
    const target = await startServer(() => {
      // Never answers.
    });
    const error = await rejectsWith(
      pinnedFetch(fetchOptions(target.origin, { allowedAddresses: LOOPBACK, timeoutMs: 200 })),
      'KEEL_TIMEOUT',
    );
    assert.equal(error.details.timeoutMs, 200);
    assert.equal(target.requests.length, 1);
  });

  it('times out a resolver that never answers', async () => {
    await rejectsWith(
      pinnedFetch(
        fetchOptions('http://slow.test/', {
          timeoutMs: 100,
          resolve: () =>
            new Promise(() => {
              // Never settles.
            }),
        }),
      ),
      'KEEL_TIMEOUT',
    );
  });

  it('honours the abort signal with KEEL_ABORTED', async () => {
    const controller = new AbortController();
    const target = await startServer(() => controller.abort());
    await rejectsWith(
      pinnedFetch(
        fetchOptions(target.origin, { allowedAddresses: LOOPBACK, signal: controller.signal }),
      ),
      'KEEL_ABORTED',
    );
    const before = target.connections;
    await rejectsWith(
      pinnedFetch(
        fetchOptions(target.origin, { allowedAddresses: LOOPBACK, signal: AbortSignal.abort() }),
      ),
      'KEEL_ABORTED',
    );
    assert.equal(target.connections, before);
  });

  it('refuses request headers that could smuggle, proxy or inject', async () => {
    const target = await startServer((_request, response) => response.end('must not be seen'));
    for (const headers of [
      { 'X-Note': 'a\r\nHost: evil.example' },
      { 'X-Note': 'a\nb' },
      { Host: 'evil.example' },
      { connection: 'upgrade' },
      { 'Transfer-Encoding': 'chunked' },
      { 'Proxy-Authorization': 'Basic abc' },
      { Cookie: 'session=1' },
      { 'Bad Name': 'x' },
    ]) {
      await rejectsWith(
        pinnedFetch(fetchOptions(target.origin, { allowedAddresses: LOOPBACK, headers })),
        'KEEL_POLICY_VIOLATION',
        'request-header',
      );
    }
    assert.equal(target.connections, 0);
  });

  it('reports a refused connection as KEEL_EXECUTOR_FAILED', async () => {
    const target = await startServer(() => {
      // Closed before use: the port then refuses connections.
    });
    await target.close();
    const error = await rejectsWith(
      pinnedFetch(fetchOptions(target.origin, { allowedAddresses: LOOPBACK })),
      'KEEL_EXECUTOR_FAILED',
    );
    assert.equal(error.details.reason, 'ECONNREFUSED');
    assert.equal(error.details.address, '127.0.0.1');
  });

  it('sends the host name as TLS SNI and verifies the certificate', async () => {
    await using directory = await temporaryDirectory();
    const { keyFile, certFile } = await selfSignedCertificate(directory.path);
    const key = await readFile(keyFile);
    const cert = await readFile(certFile);
    const serverNames: string[] = [];
    const server = createHttpsServer({
      key,
      cert,
      SNICallback: (name, callback) => {
        serverNames.push(name);
        callback(null, createSecureContext({ key, cert }));
      },
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    try {
      const { port } = server.address() as AddressInfo;
      const resolver = resolverTo('127.0.0.1');
      const error = await rejectsWith(
        pinnedFetch(
          fetchOptions(`https://pinned.test:${port}/`, {
            allowedAddresses: LOOPBACK,
            resolve: resolver.resolve,
          }),
        ),
        'KEEL_EXECUTOR_FAILED',
      );
      // The self-signed certificate is not trusted: no silent acceptance.
      assert.match(String(error.details.reason), /SELF_SIGNED|CERT/);
      assert.deepEqual(serverNames, ['pinned.test']);
    } finally {
      server.closeAllConnections();
      server.close();
      await once(server, 'close');
    }
  });

  it('rejects limits and bodies that make no sense', async () => {
    const url = 'http://93.184.216.34/';
    await rejectsWith(pinnedFetch({ ...fetchOptions(url), maxBytes: -1 }), 'KEEL_INVALID_ARGUMENT');
    await rejectsWith(pinnedFetch({ ...fetchOptions(url), timeoutMs: 0 }), 'KEEL_INVALID_ARGUMENT');
    await rejectsWith(
      pinnedFetch({ ...fetchOptions(url), maxRedirects: 1.5 }),
      'KEEL_INVALID_ARGUMENT',
    );
    await rejectsWith(
      pinnedFetch({ ...fetchOptions(url), method: 'GET', body: 'x' }),
      'KEEL_INVALID_ARGUMENT',
    );
  });
});

import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { isKeelError } from '../../../platform/errors/keel-error.ts';
import { boundedChunks, readBoundedText } from './bounded-body.ts';

const encoder = new TextEncoder();

interface ObservedStream {
  readonly body: ReadableStream<Uint8Array>;
  readonly cancelReasons: unknown[];
}

/** A body that serves the given chunks, then (when `endless`) repeats the last one forever. */
function observedStream(chunks: readonly (string | Uint8Array)[], endless = false): ObservedStream {
  const cancelReasons: unknown[] = [];
  const queue = chunks.map((chunk) => (typeof chunk === 'string' ? encoder.encode(chunk) : chunk));
  let index = 0;
  const body = new ReadableStream<Uint8Array>({
    pull(controller) {
      const chunk = queue[Math.min(index, queue.length - 1)];
      index += 1;
      if (chunk === undefined || (index > queue.length && !endless)) controller.close();
      else controller.enqueue(chunk);
    },
    cancel(reason) {
      cancelReasons.push(reason);
    },
  });
  return { body, cancelReasons };
}

function isTooLarge(limit: number) {
  return (error: unknown): boolean => {
    assert.ok(isKeelError(error));
    assert.equal(error.code, 'KEEL_PROVIDER_RESPONSE_TOO_LARGE');
    assert.deepEqual(error.details, { limit });
    return true;
  };
}

describe('readBoundedText', () => {
  it('reads the whole body as UTF-8, also across split characters', async () => {
    const bytes = encoder.encode('{"text":"é€😀"}');
    const { body } = observedStream([
      bytes.subarray(0, 11),
      bytes.subarray(11, 14),
      bytes.subarray(14),
    ]);
    assert.equal(await readBoundedText(body, 1024), '{"text":"é€😀"}');
  });

  it('reads a null body as an empty string', async () => {
    assert.equal(await readBoundedText(null, 1024), '');
  });

  it('accepts a body of exactly the byte limit', async () => {
    const { body } = observedStream(['12345', '67890']);
    assert.equal(await readBoundedText(body, 10), '1234567890');
  });

  it('cancels the stream and fails when the body passes the limit', async () => {
    const stream = observedStream(['x'.repeat(600)], true);
    await assert.rejects(readBoundedText(stream.body, 1000), isTooLarge(1000));
    assert.equal(stream.cancelReasons.length, 1);
    assert.ok(isKeelError(stream.cancelReasons[0]));
  });

  it('refuses a limit that is not a whole number', async () => {
    await assert.rejects(
      readBoundedText(null, -1),
      (error: unknown) => isKeelError(error) && error.code === 'KEEL_INVALID_ARGUMENT',
    );
  });
});

describe('boundedChunks', () => {
  it('yields the chunks of the body in order', async () => {
    const { body, cancelReasons } = observedStream(['a', 'bc', 'def']);
    const received: string[] = [];
    for await (const chunk of boundedChunks(body, 6))
      received.push(new TextDecoder().decode(chunk));
    assert.deepEqual(received, ['a', 'bc', 'def']);
    assert.deepEqual(cancelReasons, []);
  });

  it('yields nothing for a null body', async () => {
    for await (const chunk of boundedChunks(null, 10)) assert.fail(`unexpected ${chunk.length}`);
  });

  it('cancels the stream when the consumer stops early', async () => {
    const stream = observedStream(['tick'], true);
    for await (const chunk of boundedChunks(stream.body, 1_000_000)) {
      assert.equal(chunk.length, 4);
      break;
    }
    assert.equal(stream.cancelReasons.length, 1);
  });

  it('cancels the stream when the consumer calls return()', async () => {
    const stream = observedStream(['tick'], true);
    const chunks = boundedChunks(stream.body, 1_000_000);
    await chunks.next();
    assert.deepEqual(await chunks.return(undefined), { done: true, value: undefined });
    assert.equal(stream.cancelReasons.length, 1);
  });

  it('yields the chunks within the limit, then cancels and fails', async () => {
    const stream = observedStream(['1234', '5678', '9'], true);
    const received: number[] = [];
    await assert.rejects(
      (async () => {
        for await (const chunk of boundedChunks(stream.body, 10)) received.push(chunk.length);
      })(),
      isTooLarge(10),
    );
    assert.deepEqual(received, [4, 4, 1, 1]);
    assert.equal(stream.cancelReasons.length, 1);
  });

  it('turns a failing read into KEEL_PROVIDER_STREAM_INTERRUPTED without cancelling', async () => {
    let cancelled = false;
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(encoder.encode('partial'));
        controller.error(new TypeError('terminated'));
      },
      cancel() {
        cancelled = true;
      },
    });
    await assert.rejects(readBoundedText(body, 1024), (error: unknown) => {
      assert.ok(isKeelError(error));
      assert.equal(error.code, 'KEEL_PROVIDER_STREAM_INTERRUPTED');
      assert.ok(error.cause instanceof TypeError);
      return true;
    });
    assert.equal(cancelled, false);
  });

  it('surfaces a cancellation that fails, keeping the original code', async () => {
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        controller.enqueue(encoder.encode('x'.repeat(100)));
      },
      cancel() {
        throw new Error('cannot cancel');
      },
    });
    await assert.rejects(readBoundedText(body, 10), (error: unknown) => {
      assert.ok(isKeelError(error));
      assert.equal(error.code, 'KEEL_PROVIDER_RESPONSE_TOO_LARGE');
      assert.ok(error.cause instanceof Error);
      return true;
    });
  });
});

describe('bounded bodies over real HTTP', () => {
  let server: Server;
  let baseUrl: string;
  const closedResponses: string[] = [];

  before(async () => {
    server = createServer((request, response) => {
      response.writeHead(200, { 'content-type': 'text/plain' });
      response.on('close', () => closedResponses.push(request.url ?? ''));
      // Streams forever until the client goes away.
      const timer = setInterval(() => response.write('x'.repeat(4096)), 1);
      response.on('close', () => clearInterval(timer));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  after(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve, reject) =>
      server.close((error) => (error === undefined ? resolve() : reject(error))),
    );
  });

  async function waitForClose(path: string): Promise<void> {
    while (!closedResponses.includes(path)) await new Promise((resolve) => setImmediate(resolve));
  }

  it('releases the connection when an endless body passes the limit', {
    timeout: 10_000,
  }, async () => {
    const response = await fetch(`${baseUrl}/too-large`);
    await assert.rejects(readBoundedText(response.body, 100_000), isTooLarge(100_000));
    await waitForClose('/too-large');
  });

  it('releases the connection when the consumer stops early', { timeout: 10_000 }, async () => {
    const response = await fetch(`${baseUrl}/early-stop`);
    for await (const chunk of boundedChunks(response.body, 1_000_000)) {
      assert.ok(chunk.length > 0);
      break;
    }
    await waitForClose('/early-stop');
  });

  it('turns an aborted request into KEEL_ABORTED', { timeout: 10_000 }, async () => {
    const controller = new AbortController();
    const response = await fetch(`${baseUrl}/aborted`, { signal: controller.signal });
    const chunks = boundedChunks(response.body, 1_000_000_000);
    await chunks.next();
    controller.abort();
    await assert.rejects(
      (async () => {
        for await (const chunk of chunks) assert.ok(chunk.length > 0);
      })(),
      (error: unknown) => isKeelError(error) && error.code === 'KEEL_ABORTED',
    );
    await waitForClose('/aborted');
  });
});

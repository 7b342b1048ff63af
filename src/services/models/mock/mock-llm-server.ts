import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';
import { KeelError } from '../../../platform/errors/keel-error.ts';
import { mockAnthropicWire } from './mock-anthropic-wire.ts';
import { countMockTokens, MockConversationPlayer } from './mock-conversation.ts';
import { mockEmbedding } from './mock-embedding.ts';
import {
  MockFaultQueue,
  type MockFaultRule,
  type MockRoute,
  statusOf,
  withCutCall,
} from './mock-faults.ts';
import { mockOllamaWire } from './mock-ollama-wire.ts';
import { mockOpenAiWire } from './mock-openai-wire.ts';
import { type MockFault, MockFaultSchema, type MockScript } from './mock-script.ts';
import { asRecord, type MockWireFormat } from './mock-wire-format.ts';

export interface MockLlmServerOptions {
  readonly script?: MockScript;
  /** 0 (default) picks a free port. */
  readonly port?: number;
  /** Loopback only: `127.0.0.1` (default) or `::1`. */
  readonly host?: '127.0.0.1' | '::1';
  /** Models listed by `/v1/models` and `/api/tags`. */
  readonly models?: readonly string[];
  /** Length of the vectors `/v1/embeddings` and `/api/embed` return (default 8). */
  readonly embeddingDimensions?: number;
  readonly maxRequestBytes?: number;
}

/** What the mock server saw, for assertions. */
export interface MockRequestRecord {
  readonly format: MockWireFormat['name'];
  readonly route: MockRoute;
  readonly model: string;
  readonly stream: boolean;
  readonly fault: MockFault['type'] | null;
  readonly status: number;
}

const MAX_RECORDS = 1_000;

/**
 * A real HTTP server that speaks the OpenAI-compatible, Anthropic and Ollama wire formats,
 * plays scripted conversations and injects faults on demand. For tests, demos and
 * benchmarks; it listens on loopback only.
 *
 * Faults come from the script (a turn's `fault`, once), from {@link MockLlmServer.injectFault},
 * or over HTTP: `POST /mock/faults {"fault":{"type":"rate-limit"},"times":2}`,
 * `DELETE /mock/faults`; `GET /mock/requests` lists what was received.
 *
 * @example
 * ```ts
 * const mock = await MockLlmServer.start({ script });
 * const provider = new OpenAiCompatibleProvider({ providerId: 'mock', baseUrl: mock.openAiBaseUrl, … });
 * mock.injectFault({ fault: { type: 'rate-limit', retryAfterSeconds: 1 } });
 * await mock.close();
 * ```
 */
export class MockLlmServer implements AsyncDisposable {
  readonly #server: Server;
  readonly #player: MockConversationPlayer;
  readonly #options: MockLlmServerOptions;
  readonly #sockets = new Set<Socket>();
  readonly #faults = new MockFaultQueue();
  readonly #records: MockRequestRecord[] = [];
  #requestCount = 0;
  #url = '';

  private constructor(options: MockLlmServerOptions) {
    this.#options = options;
    this.#player = new MockConversationPlayer(options.script);
    this.#server = createServer((request, response) => {
      this.#handle(request, response).catch((error: unknown) => {
        // A failure while answering (the client went away mid-write) ends that exchange only.
        if (!response.headersSent) {
          this.#json(response, 500, { error: { message: String(error) } });
        } else {
          response.destroy(error instanceof Error ? error : new Error(String(error)));
        }
      });
    });
    this.#server.keepAliveTimeout = 5_000;
    this.#server.on('connection', (socket) => {
      this.#sockets.add(socket);
      socket.on('close', () => this.#sockets.delete(socket));
    });
  }

  /** Starts a server and resolves when it listens. */
  static async start(options: MockLlmServerOptions = {}): Promise<MockLlmServer> {
    const server = new MockLlmServer(options);
    const host = options.host ?? '127.0.0.1';
    await new Promise<void>((resolve, reject) => {
      server.#server.once('error', reject);
      server.#server.listen(options.port ?? 0, host, () => {
        server.#server.off('error', reject);
        resolve();
      });
    });
    const address = server.#server.address();
    if (address === null || typeof address === 'string') {
      throw new KeelError('KEEL_INTERNAL', 'the mock server has no TCP address');
    }
    server.#url = `http://${host.includes(':') ? `[${host}]` : host}:${address.port}`;
    return server;
  }

  /** `http://127.0.0.1:<port>`: the base URL of the Anthropic and Ollama formats. */
  get url(): string {
    return this.#url;
  }

  /** The base URL of the OpenAI-compatible format (`…/v1`). */
  get openAiBaseUrl(): string {
    return `${this.#url}/v1`;
  }

  /** Injects a fault into the next matching requests (once unless `times` says more). */
  injectFault(rule: MockFaultRule): void {
    this.#faults.inject(rule);
  }

  clearFaults(): void {
    this.#faults.clear();
  }

  /** The latest requests received (up to 1000), oldest first. */
  requests(): readonly MockRequestRecord[] {
    return [...this.#records];
  }

  /** Closes the server, cutting any connection still open (a held `timeout` fault). */
  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    for (const socket of this.#sockets) socket.destroy();
    await closed;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  async #handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const path = (request.url ?? '/').split('?')[0] ?? '/';
    const method = request.method ?? 'GET';
    // A page in a local browser could reach a loopback port through DNS rebinding; its
    // requests carry a foreign Host, so only loopback names are answered.
    if (!LOOPBACK_HOST.test(request.headers.host ?? '')) {
      this.#json(response, 421, {
        error: { message: 'the mock answers loopback host names only' },
      });
      return;
    }
    if (method === 'GET' && (path === '/v1/models' || path === '/api/tags')) {
      const models = this.#options.models ?? ['mock-small', 'mock-large', 'mock-embed'];
      this.#json(
        response,
        200,
        path === '/api/tags'
          ? { models: models.map((name) => ({ name, model: name })) }
          : {
              object: 'list',
              data: models.map((id) => ({ id, object: 'model', type: 'model', display_name: id })),
              has_more: false,
            },
      );
      return;
    }
    if (path === '/mock/requests' && method === 'GET') {
      this.#json(response, 200, { count: this.#requestCount, requests: this.#records });
      return;
    }
    if (path === '/mock/faults') {
      await this.#controlFaults(request, response, method);
      return;
    }
    const route = ROUTES.get(`${method} ${path}`);
    if (route === undefined) {
      this.#json(response, 404, { error: { message: `the mock has no ${method} ${path}` } });
      return;
    }
    const body = await this.#readBody(request, response, route.format);
    if (body === undefined) return;
    if (route.route === 'embed') {
      await this.#embed(response, route.format, body);
      return;
    }
    await this.#chat(response, route.format, body);
  }

  async #chat(response: ServerResponse, format: MockWireFormat, body: unknown): Promise<void> {
    const parsed = format.parseChat(body);
    if (!parsed.ok) {
      this.#record(format, 'chat', '', false, null, 400);
      this.#json(response, 400, format.errorBody(400, parsed.message));
      return;
    }
    const { request, stream, includeUsage } = parsed;
    const decision = this.#player.decide(request);
    if (decision.kind === 'mismatch') {
      this.#record(format, 'chat', request.model, stream, null, 400);
      this.#json(response, 400, format.errorBody(400, decision.message));
      return;
    }
    const answer = decision.answer;
    const fault = this.#faults.take('chat', format) ?? answer.fault;
    this.#record(format, 'chat', request.model, stream, fault?.type ?? null, statusOf(fault));
    if (await this.#failFast(response, format, fault)) return;
    this.#requestCount += 1;
    const id = `mock-${this.#requestCount}`;
    const pause = fault?.type === 'slow-stream' ? fault.delayMs : 0;
    if (!stream) {
      if (pause > 0) await delay(pause);
      const rendered = format.renderChat(withCutCall(answer, fault), request.model, id);
      if (fault?.type === 'malformed-json') {
        this.#raw(response, 200, 'application/json', '{"choices": [{"message": {"content": "tru');
        return;
      }
      if (fault?.type === 'cut-mid-tool-call') {
        const text = JSON.stringify(rendered);
        response.writeHead(200, {
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(text),
        });
        response.write(text.slice(0, Math.floor(text.length / 2)), () => response.destroy());
        return;
      }
      this.#json(response, 200, rendered);
      return;
    }
    const frames = format.streamChat(withCutCall(answer, fault), request.model, id, includeUsage);
    response.writeHead(200, {
      'content-type': format.streamContentType,
      'cache-control': 'no-cache',
    });
    for (const [index, frame] of frames.entries()) {
      if (pause > 0) await delay(pause);
      if (response.destroyed) return;
      // The second frame breaks, or the only one: a one-frame stream must break too.
      if (fault?.type === 'malformed-json' && index === Math.min(1, frames.length - 1)) {
        response.end(format.malformedFrame());
        return;
      }
      if (fault?.type === 'cut-mid-tool-call' && frame.insideToolCall === true) {
        response.write(frame.text, () => response.destroy());
        return;
      }
      response.write(frame.text);
    }
    response.end();
  }

  async #embed(response: ServerResponse, format: MockWireFormat, body: unknown): Promise<void> {
    const record = asRecord(body);
    const input = record?.input;
    const inputs = typeof input === 'string' ? [input] : Array.isArray(input) ? input : undefined;
    if (
      record === undefined ||
      typeof record.model !== 'string' ||
      inputs === undefined ||
      !inputs.every((item) => typeof item === 'string')
    ) {
      this.#record(format, 'embed', '', false, null, 400);
      this.#json(
        response,
        400,
        format.errorBody(400, 'an embedding request needs model and input (string or strings)'),
      );
      return;
    }
    const fault = this.#faults.take('embed', format);
    this.#record(format, 'embed', record.model, false, fault?.type ?? null, statusOf(fault));
    if (await this.#failFast(response, format, fault)) return;
    const requested = typeof record.dimensions === 'number' ? record.dimensions : undefined;
    const dimensions = Math.max(
      1,
      Math.min(4_096, requested ?? this.#options.embeddingDimensions ?? 8),
    );
    const embeddings = (inputs as string[]).map((text) => mockEmbedding(text, dimensions));
    const tokens = (inputs as string[]).reduce((sum, text) => sum + countMockTokens(text), 0);
    this.#json(
      response,
      200,
      format.name === 'ollama'
        ? { model: record.model, embeddings, prompt_eval_count: tokens }
        : {
            object: 'list',
            model: record.model,
            data: embeddings.map((vector, index) => ({
              object: 'embedding',
              index,
              embedding: vector,
            })),
            usage: { prompt_tokens: tokens, total_tokens: tokens },
          },
    );
  }

  /** Answers a fault that replaces the whole response; true when it did. */
  async #failFast(
    response: ServerResponse,
    format: MockWireFormat,
    fault: MockFault | undefined,
  ): Promise<boolean> {
    switch (fault?.type) {
      case 'rate-limit':
        response.setHeader('retry-after', String(fault.retryAfterSeconds));
        this.#json(response, 429, format.errorBody(429, 'mock: rate limit reached, retry later'));
        return true;
      case 'server-error':
        this.#json(response, 500, format.errorBody(500, 'mock: internal server error'));
        return true;
      case 'unavailable':
        this.#json(response, 503, format.errorBody(503, 'mock: service unavailable'));
        return true;
      case 'overloaded':
        this.#json(response, 529, format.errorBody(529, 'mock: overloaded'));
        return true;
      case 'reset':
        response.socket?.destroy();
        return true;
      case 'timeout':
        // Never answer; the connection is cut when the client gives up or the server closes.
        return true;
      default:
        return false;
    }
  }

  async #controlFaults(
    request: IncomingMessage,
    response: ServerResponse,
    method: string,
  ): Promise<void> {
    if (method === 'DELETE') {
      this.clearFaults();
      this.#json(response, 200, { faults: 0 });
      return;
    }
    if (method !== 'POST') {
      this.#json(response, 405, { error: { message: 'use POST or DELETE' } });
      return;
    }
    const parsed = await this.#readBody(request, response, mockOpenAiWire);
    if (parsed === undefined) return;
    // JSON that is not an object (`[]`, `null`) is refused below like a missing fault.
    const body = asRecord(parsed) ?? {};
    const fault = MockFaultSchema.safeParse(body.fault);
    const times = body.times ?? 1;
    const route = body.route;
    if (
      !fault.success ||
      typeof times !== 'number' ||
      !Number.isInteger(times) ||
      times < 1 ||
      (route !== undefined && route !== 'chat' && route !== 'embed')
    ) {
      this.#json(response, 400, {
        error: {
          message: 'expected {"fault": {"type": …}, "times"?: n, "route"?: "chat"|"embed"}',
        },
      });
      return;
    }
    this.injectFault({ fault: fault.data, times, ...(route === undefined ? {} : { route }) });
    this.#json(response, 200, { faults: this.#faults.size });
  }

  async #readBody(
    request: IncomingMessage,
    response: ServerResponse,
    format: MockWireFormat,
  ): Promise<unknown> {
    const limit = this.#options.maxRequestBytes ?? 8_388_608;
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of request) {
      size += (chunk as Buffer).length;
      if (size > limit) {
        this.#json(
          response,
          413,
          format.errorBody(413, `mock: the request is larger than ${limit} bytes`),
        );
        request.destroy();
        return undefined;
      }
      chunks.push(chunk as Buffer);
    }
    try {
      return JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown;
    } catch {
      this.#json(response, 400, format.errorBody(400, 'mock: the request body is not JSON'));
      return undefined;
    }
  }

  #record(
    format: MockWireFormat,
    route: MockRoute,
    model: string,
    stream: boolean,
    fault: MockFault['type'] | null,
    status: number,
  ): void {
    this.#records.push({ format: format.name, route, model, stream, fault, status });
    if (this.#records.length > MAX_RECORDS) this.#records.shift();
  }

  #json(response: ServerResponse, status: number, value: unknown): void {
    this.#raw(response, status, 'application/json', JSON.stringify(value));
  }

  #raw(response: ServerResponse, status: number, contentType: string, text: string): void {
    response.writeHead(status, {
      'content-type': contentType,
      'content-length': Buffer.byteLength(text),
    });
    response.end(text);
  }
}

/** `127.0.0.1`, `localhost` or `[::1]`, with an optional port. */
const LOOPBACK_HOST = /^(127\.0\.0\.1|localhost|\[::1\])(:\d{1,5})?$/i;

const ROUTES = new Map<string, { format: MockWireFormat; route: MockRoute }>([
  ['POST /v1/chat/completions', { format: mockOpenAiWire, route: 'chat' }],
  ['POST /v1/embeddings', { format: mockOpenAiWire, route: 'embed' }],
  ['POST /v1/messages', { format: mockAnthropicWire, route: 'chat' }],
  ['POST /api/chat', { format: mockOllamaWire, route: 'chat' }],
  ['POST /api/embed', { format: mockOllamaWire, route: 'embed' }],
]);

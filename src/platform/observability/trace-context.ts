import { AsyncLocalStorage } from 'node:async_hooks';
import { randomBytes } from 'node:crypto';

/** W3C trace identifiers of the current unit of work. */
export interface TraceIds {
  readonly traceId: string;
  readonly spanId: string;
}

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}$/;

/**
 * Carries trace ids through async calls so that log lines can name them. One instance per
 * node, created by the composition root.
 *
 * @example
 * ```ts
 * traces.run(traces.fromTraceparent(request.headers.traceparent), () => handle(request));
 * ```
 */
export class TraceContext {
  readonly #storage = new AsyncLocalStorage<TraceIds>();

  current(): TraceIds | undefined {
    return this.#storage.getStore();
  }

  run<T>(ids: TraceIds, action: () => T): T {
    return this.#storage.run(ids, action);
  }

  /** Makes `ids` current for the rest of this asynchronous execution (a request handler). */
  enter(ids: TraceIds): void {
    this.#storage.enterWith(ids);
  }

  /** Continues a W3C `traceparent` with a new span, or starts a new trace if absent/invalid. */
  fromTraceparent(header: string | undefined): TraceIds {
    const match = header === undefined ? null : TRACEPARENT.exec(header.trim().toLowerCase());
    const traceId = match?.[1];
    return {
      traceId:
        traceId !== undefined && !/^0+$/.test(traceId) ? traceId : randomBytes(16).toString('hex'),
      spanId: randomBytes(8).toString('hex'),
    };
  }

  /** The `traceparent` header value for the current span, to pass downstream. */
  toTraceparent(ids: TraceIds): string {
    return `00-${ids.traceId}-${ids.spanId}-01`;
  }
}

import { toKeelError } from '../../../platform/errors/keel-error.ts';
import type { Logger } from '../../../platform/observability/logger.ts';
import type { ModelProviderV1 } from '../provider/model-provider.ts';
import type { CircuitBreaker } from './circuit-breaker.ts';

export interface ProviderHealth {
  readonly provider: string;
  readonly ok: boolean | undefined;
  readonly checkedAt: number | undefined;
  readonly error: string | undefined;
}

/**
 * Checks every provider periodically and feeds the result to its circuit breaker: failing
 * checks open a closed breaker, a passing one lets an open breaker probe early. Checks never
 * overlap, each has a timeout, and `close()` stops the timer and aborts a check in flight.
 *
 * @example
 * ```ts
 * const monitor = new ProviderHealthMonitor(providers, router.breakers(), { intervalMs: 60_000, logger });
 * monitor.start();
 * await monitor.close();
 * ```
 */
export class ProviderHealthMonitor {
  readonly #providers: ReadonlyMap<string, ModelProviderV1>;
  readonly #breakers: ReadonlyMap<string, CircuitBreaker>;
  readonly #intervalMs: number;
  readonly #logger: Logger;
  readonly #health = new Map<string, ProviderHealth>();
  readonly #stop = new AbortController();
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<unknown> | undefined;

  constructor(
    providers: ReadonlyMap<string, ModelProviderV1>,
    breakers: ReadonlyMap<string, CircuitBreaker>,
    options: { readonly intervalMs: number; readonly logger: Logger },
  ) {
    this.#providers = providers;
    this.#breakers = breakers;
    this.#intervalMs = options.intervalMs;
    this.#logger = options.logger;
  }

  start(): void {
    if (this.#intervalMs <= 0 || this.#timer !== undefined || this.#stop.signal.aborted) return;
    this.#timer = setInterval(() => {
      this.#running ??= this.checkAll().finally(() => {
        this.#running = undefined;
      });
    }, this.#intervalMs);
    this.#timer.unref();
  }

  /** Checks every provider once, now. */
  async checkAll(): Promise<readonly ProviderHealth[]> {
    const timeoutMs = Math.max(1_000, Math.min(10_000, this.#intervalMs || 10_000));
    await Promise.all(
      [...this.#providers.values()].map(async (provider) => {
        const signal = AbortSignal.any([this.#stop.signal, AbortSignal.timeout(timeoutMs)]);
        let error: string | undefined;
        try {
          await provider.doHealthCheck({ signal });
        } catch (failure) {
          error = toKeelError(failure).message;
        }
        if (this.#stop.signal.aborted) return;
        this.#breakers.get(provider.id)?.recordHealthCheck(error === undefined);
        const previous = this.#health.get(provider.id);
        if (previous?.ok !== (error === undefined)) {
          this.#logger[error === undefined ? 'info' : 'warn'](
            { provider: provider.id, error },
            error === undefined
              ? `provider ${provider.id} is healthy`
              : `provider ${provider.id} failed its health check`,
          );
        }
        this.#health.set(provider.id, {
          provider: provider.id,
          ok: error === undefined,
          checkedAt: Date.now(),
          error,
        });
      }),
    );
    return this.status();
  }

  status(): readonly ProviderHealth[] {
    return [...this.#providers.keys()].map(
      (provider) =>
        this.#health.get(provider) ?? {
          provider,
          ok: undefined,
          checkedAt: undefined,
          error: undefined,
        },
    );
  }

  async close(): Promise<void> {
    this.#stop.abort();
    clearInterval(this.#timer);
    await this.#running;
  }
}

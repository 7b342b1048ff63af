import { KeelError } from '../../../platform/errors/keel-error.ts';
import type { Scheduler } from './scheduler.ts';

/** `closed` admits calls, `open` refuses them, `half-open` admits one probe at a time. */
export type CircuitState = 'closed' | 'open' | 'half-open';

/**
 * How a call ended, as far as the provider's health goes. `neutral` says nothing about it (the
 * caller aborted, the request was invalid): it neither counts as a failure nor resets the count,
 * and a neutral probe frees the probe slot without closing or re-opening the breaker.
 */
export type CallOutcome = 'success' | 'failure' | 'neutral';

export interface CircuitBreakerOptions {
  /** Consecutive failures (calls and health checks together) that open the breaker; default 5. */
  readonly failureThreshold?: number;
  /** How long the breaker stays open before it admits a probe; default 30 000 ms. */
  readonly cooldownMs?: number;
  readonly scheduler: Scheduler;
  /**
   * Receives what a transition listener threw. Without it the error is rethrown from a
   * microtask, where the process's uncaught-exception handling sees it.
   */
  readonly onListenerError?: (error: unknown) => void;
}

export interface CircuitSnapshot {
  readonly state: CircuitState;
  readonly consecutiveFailures: number;
  /** When the breaker last opened (scheduler time); undefined while closed. */
  readonly openedAt: number | undefined;
  /** When an open breaker admits its next probe; undefined unless open. */
  readonly nextProbeAt: number | undefined;
  readonly probeInFlight: boolean;
}

/**
 * The right to make one call; release it exactly once, in a `finally`, with how the call went.
 * Disposing an unreleased permit releases it as `neutral`.
 */
export interface CircuitPermit extends Disposable {
  /** Whether this is the half-open probe whose outcome decides the breaker's state. */
  readonly probe: boolean;
  /** Reports the outcome; releasing again is a no-op. */
  release(outcome: CallOutcome): void;
}

export type CircuitAdmission =
  | { readonly permitted: true; readonly permit: CircuitPermit }
  | {
      readonly permitted: false;
      readonly state: 'open' | 'half-open';
      /** When to ask again: the rest of the cooldown, or a short poll while a probe runs. */
      readonly retryAfterMs: number;
    };

export type TransitionListener = (
  from: CircuitState,
  to: CircuitState,
  snapshot: CircuitSnapshot,
) => void;

// While a probe is in flight its end is unknown; callers are told to ask again after this long
// (or after the cooldown, when that is shorter).
const PROBE_IN_FLIGHT_RETRY_AFTER_MS = 1_000;

/**
 * A per-provider circuit breaker: `closed → open` after `failureThreshold` consecutive
 * failures, `open → half-open` once `cooldownMs` have passed (checked when the breaker is next
 * consulted; it keeps no timers), then one probe at a time: its success closes the breaker, its
 * failure re-opens it with a new cooldown.
 *
 * Outcomes of permits granted before the breaker last changed state are stale and ignored: a
 * slow call that started while closed does not re-open or close a breaker that has moved on.
 *
 * @example
 * ```ts
 * const breaker = new CircuitBreaker({ scheduler: systemScheduler });
 * const admission = breaker.tryAcquire();
 * if (!admission.permitted) throw unavailable(admission.retryAfterMs);
 * let outcome: CallOutcome = 'neutral';
 * try {
 *   const response = await provider.doChat(request, { signal });
 *   outcome = 'success';
 *   return response;
 * } catch (error) {
 *   outcome = isProviderFault(error) ? 'failure' : 'neutral';
 *   throw error;
 * } finally {
 *   admission.permit.release(outcome);
 * }
 * ```
 */
export class CircuitBreaker {
  readonly #failureThreshold: number;
  readonly #cooldownMs: number;
  readonly #scheduler: Scheduler;
  readonly #onListenerError: ((error: unknown) => void) | undefined;
  readonly #listeners = new Set<TransitionListener>();
  #state: CircuitState = 'closed';
  /** Counts state changes, so a permit can tell whether its outcome is still current. */
  #epoch = 0;
  #consecutiveFailures = 0;
  #openedAt: number | undefined;
  #probeInFlight = false;

  constructor(options: CircuitBreakerOptions) {
    const failureThreshold = options.failureThreshold ?? 5;
    const cooldownMs = options.cooldownMs ?? 30_000;
    if (!Number.isInteger(failureThreshold) || failureThreshold < 1) {
      throw new KeelError(
        'KEEL_INVALID_ARGUMENT',
        'failureThreshold must be an integer of 1 or more',
        {
          details: { failureThreshold },
        },
      );
    }
    if (!Number.isFinite(cooldownMs) || cooldownMs < 0) {
      throw new KeelError(
        'KEEL_INVALID_ARGUMENT',
        'cooldownMs must be a finite number of 0 or more',
        {
          details: { cooldownMs },
        },
      );
    }
    this.#failureThreshold = failureThreshold;
    this.#cooldownMs = cooldownMs;
    this.#scheduler = options.scheduler;
    this.#onListenerError = options.onListenerError;
  }

  get state(): CircuitState {
    this.#refresh();
    return this.#state;
  }

  snapshot(): CircuitSnapshot {
    this.#refresh();
    return this.#snapshotNow();
  }

  /** Asks to make one call; a refusal says when to ask again. */
  tryAcquire(): CircuitAdmission {
    this.#refresh();
    if (this.#state === 'closed') return { permitted: true, permit: this.#permit(false) };
    if (this.#state === 'open') {
      return { permitted: false, state: 'open', retryAfterMs: this.#cooldownRemaining() };
    }
    if (this.#probeInFlight) {
      return {
        permitted: false,
        state: 'half-open',
        retryAfterMs: Math.min(PROBE_IN_FLIGHT_RETRY_AFTER_MS, this.#cooldownMs),
      };
    }
    this.#probeInFlight = true;
    return { permitted: true, permit: this.#permit(true) };
  }

  /**
   * Feeds in a periodic health check. A failure counts like a failed call (so it opens a closed
   * breaker only at the threshold); a pass resets the count while closed and moves an open
   * breaker to half-open early. In half-open the probe, not the check, decides.
   */
  recordHealthCheck(ok: boolean): void {
    this.#refresh();
    if (ok) {
      if (this.#state === 'closed') this.#consecutiveFailures = 0;
      else if (this.#state === 'open') this.#transition('half-open');
      return;
    }
    this.#consecutiveFailures += 1;
    if (this.#state === 'closed' && this.#consecutiveFailures >= this.#failureThreshold) {
      this.#open();
    }
  }

  /**
   * Calls `listener(from, to, snapshot)` after every state change; returns the unsubscribe.
   *
   * @example
   * ```ts
   * const stop = breaker.onTransition((from, to) => audit('provider.circuit', { from, to }));
   * stop();
   * ```
   */
  onTransition(listener: TransitionListener): () => void {
    // A wrapper per subscription, so subscribing the same function twice needs two unsubscribes.
    const subscription: TransitionListener = (from, to, snapshot) => listener(from, to, snapshot);
    this.#listeners.add(subscription);
    return () => {
      this.#listeners.delete(subscription);
    };
  }

  #permit(probe: boolean): CircuitPermit {
    const epoch = this.#epoch;
    let released = false;
    const release = (outcome: CallOutcome): void => {
      if (outcome !== 'success' && outcome !== 'failure' && outcome !== 'neutral') {
        throw new KeelError(
          'KEEL_INVALID_ARGUMENT',
          'a call outcome is success, failure or neutral',
          {
            details: { outcome },
          },
        );
      }
      if (released) return;
      released = true;
      if (epoch !== this.#epoch) return;
      if (probe) this.#releaseProbe(outcome);
      else this.#releaseClosed(outcome);
    };
    return Object.freeze({
      probe,
      release,
      [Symbol.dispose]: () => release('neutral'),
    });
  }

  #releaseClosed(outcome: CallOutcome): void {
    if (outcome === 'success') {
      this.#consecutiveFailures = 0;
    } else if (outcome === 'failure') {
      this.#consecutiveFailures += 1;
      if (this.#consecutiveFailures >= this.#failureThreshold) this.#open();
    }
  }

  #releaseProbe(outcome: CallOutcome): void {
    this.#probeInFlight = false;
    if (outcome === 'success') {
      this.#consecutiveFailures = 0;
      this.#openedAt = undefined;
      this.#transition('closed');
    } else if (outcome === 'failure') {
      this.#consecutiveFailures += 1;
      this.#open();
    }
  }

  #open(): void {
    this.#openedAt = this.#scheduler.now();
    this.#transition('open');
  }

  #cooldownRemaining(): number {
    return Math.max(0, (this.#openedAt ?? 0) + this.#cooldownMs - this.#scheduler.now());
  }

  /** Applies the one time-driven transition, open → half-open, when the cooldown has passed. */
  #refresh(): void {
    if (this.#state === 'open' && this.#cooldownRemaining() === 0) this.#transition('half-open');
  }

  #transition(to: CircuitState): void {
    const from = this.#state;
    this.#state = to;
    this.#epoch += 1;
    this.#probeInFlight = false;
    const snapshot = this.#snapshotNow();
    for (const listener of [...this.#listeners]) {
      try {
        listener(from, to, snapshot);
      } catch (error) {
        this.#reportListenerError(error);
      }
    }
  }

  #reportListenerError(error: unknown): void {
    if (this.#onListenerError === undefined) {
      rethrowLater(error);
      return;
    }
    try {
      this.#onListenerError(error);
    } catch (reportingError) {
      rethrowLater(new AggregateError([error, reportingError], 'onListenerError threw'));
    }
  }

  #snapshotNow(): CircuitSnapshot {
    return Object.freeze({
      state: this.#state,
      consecutiveFailures: this.#consecutiveFailures,
      openedAt: this.#state === 'closed' ? undefined : this.#openedAt,
      nextProbeAt: this.#state === 'open' ? (this.#openedAt ?? 0) + this.#cooldownMs : undefined,
      probeInFlight: this.#probeInFlight,
    });
  }
}

// Out of the breaker's call stack, so a faulty listener cannot leave the breaker half-updated,
// and still uncaught, so it is not lost.
function rethrowLater(error: unknown): void {
  queueMicrotask(() => {
    throw error;
  });
}

/**
 * Calls `onAbort` with `signal`'s reason when it aborts (at once if it already has), and
 * returns a function that stops following it; the caller calls that when its call ends. One
 * listener per call, where `AbortSignal.any` would add weak references and finalizers, which
 * are garbage-collector work on every call.
 *
 * @example
 * ```ts
 * const call = new AbortController();
 * const unfollow = followAbort(callerSignal, (reason) => call.abort(reason));
 * try { await work(call.signal); } finally { unfollow(); }
 * ```
 */
export function followAbort(signal: AbortSignal, onAbort: (reason: unknown) => void): () => void {
  if (signal.aborted) {
    onAbort(signal.reason);
    return () => undefined;
  }
  const listener = (): void => onAbort(signal.reason);
  signal.addEventListener('abort', listener, { once: true });
  return () => signal.removeEventListener('abort', listener);
}

/**
 * Calls `onAbort` with the reason of the first of `signals` to abort (at once if one already
 * has), and returns a function that stops following them. It does what `AbortSignal.any`
 * does for a call that lives as long as one request, without the weak references and
 * finalizers that make `AbortSignal.any` garbage-collector work on every call; the caller must
 * call the returned function when the call ends.
 *
 * @example
 * ```ts
 * const call = new AbortController();
 * const unfollow = followAborts([callerSignal], (reason) => call.abort(reason));
 * try { await work(call.signal); } finally { unfollow(); }
 * ```
 */
export function followAborts(
  signals: readonly AbortSignal[],
  onAbort: (reason: unknown) => void,
): () => void {
  const already = signals.find((signal) => signal.aborted);
  if (already !== undefined) {
    onAbort(already.reason);
    return () => undefined;
  }
  const listener = (event: Event): void => onAbort((event.target as AbortSignal).reason);
  for (const signal of signals) signal.addEventListener('abort', listener, { once: true });
  return () => {
    for (const signal of signals) signal.removeEventListener('abort', listener);
  };
}

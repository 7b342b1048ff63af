/**
 * Makes `controller` abort when any of `signals` does, with that signal's reason (at once if
 * one already has), and returns a function that stops following them. It does what
 * `AbortSignal.any` does for a signal that lives as long as one call, without the weak
 * references and finalizers that make `AbortSignal.any` garbage-collector work on every call;
 * the caller must call the returned function when the call ends.
 *
 * @example
 * ```ts
 * const call = new AbortController();
 * const unfollow = followAborts(call, [callerSignal, shutdownSignal]);
 * try { await work(call.signal); } finally { unfollow(); }
 * ```
 */
export function followAborts(
  controller: AbortController,
  signals: readonly AbortSignal[],
): () => void {
  const already = signals.find((signal) => signal.aborted);
  if (already !== undefined) {
    controller.abort(already.reason);
    return () => {};
  }
  const onAbort = (event: Event): void => {
    controller.abort((event.target as AbortSignal).reason);
  };
  for (const signal of signals) signal.addEventListener('abort', onAbort, { once: true });
  return () => {
    for (const signal of signals) signal.removeEventListener('abort', onAbort);
  };
}

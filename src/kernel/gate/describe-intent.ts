/**
 * A short human name of an intent for audit subjects and messages: its kind, and its
 * resource when it has one.
 *
 * @example
 * ```ts
 * describeIntent({ kind: 'tool.call', resource: 'shell' }); // 'tool.call shell'
 * describeIntent({ kind: 'clock.now', resource: '' }); // 'clock.now'
 * ```
 */
export function describeIntent(intent: {
  readonly kind: string;
  readonly resource: string;
}): string {
  return intent.resource === '' ? intent.kind : `${intent.kind} ${intent.resource}`;
}

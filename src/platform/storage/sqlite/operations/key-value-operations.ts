import { KeelError } from '../../../errors/keel-error.ts';
import type { JsonValue } from '../../ports/json-value.ts';
import { fromJsonColumn, type HandlersFor, type Row, toJsonColumn } from './operation-context.ts';

function checkKey(key: string): void {
  if (typeof key !== 'string' || key.length === 0 || key.length > 256) {
    throw new KeelError('KEEL_INVALID_ARGUMENT', 'a key must be 1–256 characters');
  }
}

/**
 * The storage worker's handlers for this store's operations (run inside its transaction).
 */
export const keyValueOperations: HandlersFor<'keyValues'> = {
  'keyValues.get': (context, key) => {
    const row = context.statements.get('SELECT value FROM key_values WHERE key = ?').get(key) as
      | Row
      | undefined;
    return row === undefined ? undefined : fromJsonColumn<JsonValue>(row.value);
  },
  'keyValues.set': (context, key, value, now) => {
    checkKey(key);
    context.statements
      .get(
        'INSERT INTO key_values (key, value, updated_at) VALUES (?, ?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at',
      )
      .run(key, toJsonColumn(value, `value of ${key}`), now);
  },
  'keyValues.delete': (context, key) =>
    Number(context.statements.get('DELETE FROM key_values WHERE key = ?').run(key).changes) > 0,
  'keyValues.list': (context, prefix) => {
    // Range scan rather than LIKE, so that `%` and `_` in a prefix mean themselves.
    const rows = context.statements
      .get('SELECT key, value FROM key_values WHERE key >= ? AND key < ? ORDER BY key')
      .all(prefix, `${prefix}\u{10FFFF}`) as Row[];
    return rows.map((row) => [String(row.key), fromJsonColumn<JsonValue>(row.value)] as const);
  },
};

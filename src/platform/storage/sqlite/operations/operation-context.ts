import type { SQLOutputValue } from 'node:sqlite';
import { KeelError } from '../../../errors/keel-error.ts';
import type { AuditHead } from '../../ports/audit-store.ts';
import { MAX_STORED_JSON_BYTES } from '../../ports/json-value.ts';
import type { StatementCache } from '../sqlite-connection.ts';
import type { OperationName, SqliteOperations } from '../worker-protocol.ts';

/** What every operation handler gets: the worker's statements and its cached chain head. */
export interface OperationContext {
  readonly statements: StatementCache;
  readonly path: string;
  /** The chain head as of the last committed append; `undefined` forces a re-read. */
  auditHead: AuditHead | undefined;
}

/** Handlers for the operations whose names start with `Prefix.`; synchronous, in the worker. */
export type HandlersFor<Prefix extends string> = {
  readonly [Name in OperationName as Name extends `${Prefix}.${string}` ? Name : never]: (
    context: OperationContext,
    ...args: SqliteOperations[Name]['parameters']
  ) => SqliteOperations[Name]['result'];
};

/**
 * Thrown by a handler whose writes must stand although it answers with an error (e.g. an
 * approval decided too late is marked expired, and the caller is told it expired).
 */
export class CommittedFailure extends Error {
  readonly failure: KeelError;

  constructor(failure: KeelError) {
    super(failure.message);
    this.name = 'CommittedFailure';
    this.failure = failure;
  }
}

/**
 * Serialises a JSON column, refusing oversize values with a typed error.
 *
 * @example
 * ```ts
 * insert.run(id, toJsonColumn(metadata, 'metadata'));
 * ```
 */
export function toJsonColumn(value: unknown, field: string): string {
  const text = JSON.stringify(value);
  if (text === undefined) {
    throw new KeelError('KEEL_INVALID_ARGUMENT', `${field} is not JSON`, { details: { field } });
  }
  if (Buffer.byteLength(text) > MAX_STORED_JSON_BYTES) {
    throw new KeelError(
      'KEEL_PAYLOAD_TOO_LARGE',
      `${field} is larger than ${MAX_STORED_JSON_BYTES} bytes`,
      {
        details: { field, limit: MAX_STORED_JSON_BYTES },
      },
    );
  }
  return text;
}

/**
 * Parses a JSON column written by {@link toJsonColumn}.
 */
export function fromJsonColumn<T>(text: unknown): T {
  return JSON.parse(String(text)) as T;
}

/**
 * Clamps a caller's page size to [1, max].
 *
 * @example
 * ```ts
 * pageSize(undefined, 100, 1000); // 100
 * ```
 */
export function pageSize(limit: number | undefined, fallback: number, max: number): number {
  if (limit === undefined || !Number.isFinite(limit)) return fallback;
  return Math.max(1, Math.min(max, Math.floor(limit)));
}

export type Row = Record<string, SQLOutputValue>;

/**
 * A nullable INTEGER column as a number or null.
 */
export function nullableNumber(value: SQLOutputValue | undefined): number | null {
  return value === null || value === undefined ? null : Number(value);
}

/**
 * A nullable TEXT column as a string or null.
 */
export function nullableString(value: SQLOutputValue | undefined): string | null {
  return value === null || value === undefined ? null : String(value);
}

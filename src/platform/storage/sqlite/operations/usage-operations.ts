import { KeelError } from '../../../errors/keel-error.ts';
import type { UsageDimension, UsageSummaryRow } from '../../ports/usage-store.ts';
import { type HandlersFor, nullableString, type Row } from './operation-context.ts';

const DIMENSION_COLUMNS: Readonly<Record<UsageDimension, string>> = {
  agentId: 'agent_id',
  runId: 'run_id',
  model: 'model',
  provider: 'provider',
};

function checkCount(value: number, field: string): void {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new KeelError('KEEL_INVALID_ARGUMENT', `${field} must be a non-negative integer`);
  }
}

/**
 * The storage worker's handlers for this store's operations (run inside its transaction).
 */
export const usageOperations: HandlersFor<'usage'> = {
  'usage.record': (context, usage) => {
    checkCount(usage.inputTokens, 'inputTokens');
    checkCount(usage.outputTokens, 'outputTokens');
    if (usage.costMicros !== null) checkCount(usage.costMicros, 'costMicros');
    context.statements
      .get(
        'INSERT INTO usage_records (id, ts, agent_id, run_id, kind, model, provider, input_tokens, output_tokens, cost_micros) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
      )
      .run(
        usage.id,
        usage.ts,
        usage.agentId,
        usage.runId,
        usage.kind,
        usage.model,
        usage.provider,
        usage.inputTokens,
        usage.outputTokens,
        usage.costMicros,
      );
  },
  'usage.summarize': (context, filter, groupBy) => {
    const dimensions = [...new Set(groupBy)];
    for (const dimension of dimensions) {
      if (!Object.hasOwn(DIMENSION_COLUMNS, dimension)) {
        throw new KeelError('KEEL_INVALID_ARGUMENT', `cannot group usage by ${String(dimension)}`);
      }
    }
    const columns = dimensions.map((dimension) => DIMENSION_COLUMNS[dimension]);
    const conditions: string[] = [];
    const values: (string | number)[] = [];
    if (filter.agentId !== undefined) {
      conditions.push('agent_id = ?');
      values.push(filter.agentId);
    }
    if (filter.runId !== undefined) {
      conditions.push('run_id = ?');
      values.push(filter.runId);
    }
    if (filter.since !== undefined) {
      conditions.push('ts >= ?');
      values.push(filter.since);
    }
    if (filter.until !== undefined) {
      conditions.push('ts < ?');
      values.push(filter.until);
    }
    const where = conditions.length > 0 ? `WHERE ${conditions.join(' AND ')}` : '';
    const select = columns.length > 0 ? `${columns.join(', ')}, ` : '';
    const group =
      columns.length > 0 ? `GROUP BY ${columns.join(', ')} ORDER BY ${columns.join(', ')}` : '';
    const rows = context.statements
      .get(
        `SELECT ${select}count(*) AS calls, coalesce(sum(input_tokens), 0) AS input_tokens, coalesce(sum(output_tokens), 0) AS output_tokens, coalesce(sum(cost_micros), 0) AS cost_micros, count(*) - count(cost_micros) AS unpriced FROM usage_records ${where} ${group}`,
      )
      .all(...values) as Row[];
    return rows
      .filter((row) => columns.length > 0 || Number(row.calls) > 0)
      .map((row): UsageSummaryRow => {
        const groupValues: Partial<Record<UsageDimension, string | null>> = {};
        for (const dimension of dimensions) {
          groupValues[dimension] = nullableString(row[DIMENSION_COLUMNS[dimension]]);
        }
        return {
          group: groupValues,
          calls: Number(row.calls),
          inputTokens: Number(row.input_tokens),
          outputTokens: Number(row.output_tokens),
          costMicros: Number(row.cost_micros),
          unpricedCalls: Number(row.unpriced),
        };
      });
  },
};

import { userInfo } from 'node:os';
import { type Command, InvalidArgumentError } from 'commander';
import { KeelError } from '../../../platform/errors/keel-error.ts';
import type {
  BudgetAmounts,
  BudgetDimension,
  BudgetState,
} from '../../../platform/storage/ports/budget-store.ts';
import type { UsageDimension } from '../../../platform/storage/ports/usage-store.ts';
import {
  administerBudget,
  parseBudgetScope,
  readBudgets,
  readUsage,
} from '../../../runtime/maintenance/budget-administration.ts';
import {
  action,
  type CommonOptions,
  EXIT_OK,
  loadForCommand,
  withCommonOptions,
} from '../cli-support.ts';
import type { Output } from '../output.ts';

/** `operator:<login name>`, the actor an operator's budget change is audited under. */
function defaultActor(): string {
  try {
    return `operator:${userInfo().username}`;
  } catch {
    // No passwd entry for this uid (a container): the audit still says it was an operator.
    return 'operator:cli';
  }
}

/** How an amount of each dimension reads for a person. */
function formatAmount(dimension: BudgetDimension, value: number): string {
  switch (dimension) {
    case 'costMicros':
      return `$${(value / 1_000_000).toFixed(value % 10_000 === 0 ? 2 : 6)}`;
    case 'wallMs':
      return `${(value / 1000).toFixed(1)}s`;
    default:
      return value.toLocaleString('en-US');
  }
}

function formatDimension(state: BudgetState, dimension: BudgetDimension): string {
  const spent = formatAmount(dimension, state.spent[dimension]);
  const limit = state.limits[dimension];
  const reserved = state.reserved[dimension];
  return `${spent}${limit === undefined ? '' : ` / ${formatAmount(dimension, limit)}`}${reserved > 0 ? ` (+${formatAmount(dimension, reserved)} reserved)` : ''}`;
}

function printBudgets(output: Output, budgets: readonly BudgetState[]): void {
  if (output.json) {
    output.data(budgets);
    return;
  }
  if (budgets.length === 0) {
    output.line('no budgets yet: they appear when an agent first spends, or when limits are set');
    return;
  }
  output.table(
    ['SCOPE', 'STATE', 'TOKENS', 'COST', 'CALLS', 'WALL', 'PARENT'],
    budgets.map((state) => [
      state.scope,
      state.trippedAt === null
        ? output.style('green', 'open')
        : output.style('red', `TRIPPED ${new Date(state.trippedAt).toISOString()}`),
      formatDimension(state, 'tokens'),
      formatDimension(state, 'costMicros'),
      formatDimension(state, 'calls'),
      formatDimension(state, 'wallMs'),
      state.parent ?? '',
    ]),
  );
}

function parseCount(value: string): number {
  if (!/^\d{1,15}$/.test(value))
    throw new InvalidArgumentError('expected a whole number of 0 or more.');
  return Number(value);
}

function parseDollars(value: string): number {
  if (!/^\d{1,9}(\.\d{1,6})?$/.test(value)) {
    throw new InvalidArgumentError('expected dollars such as 5 or 0.25 (up to 6 decimals).');
  }
  return Math.round(Number(value) * 1_000_000);
}

interface SetOptions extends CommonOptions {
  readonly tokens?: number;
  readonly costUsd?: number;
  readonly calls?: number;
  readonly wallSeconds?: number;
  readonly replace?: boolean;
  readonly actor: string;
}

interface UsageOptions extends CommonOptions {
  readonly agent?: string;
  readonly run?: string;
  readonly by: string;
}

const USAGE_DIMENSIONS: readonly UsageDimension[] = ['agentId', 'runId', 'model', 'provider'];

/**
 * Adds `keel budget show|set|reset` and `keel usage`.
 */
export function registerBudgetCommands(program: Command): void {
  const budget = program
    .command('budget')
    .description('show budgets; set their limits or reset them (audited operator actions)');
  withCommonOptions(
    budget
      .command('show')
      .description('show one budget, or every budget (spent / limit, reserved, breaker)')
      .argument('[scope]', 'agent:<id> or run:<id>; a prefix such as agent: lists those'),
  ).action(
    action(async ({ output }, scope: string | undefined, options: CommonOptions) => {
      const loaded = await loadForCommand(output, options);
      const exact = /^[a-z]+:.+/.test(scope ?? '');
      const budgets = await readBudgets(
        loaded,
        scope === undefined ? {} : exact ? { scope: parseBudgetScope(scope) } : { prefix: scope },
      );
      printBudgets(output, budgets);
      return EXIT_OK;
    }),
  );
  withCommonOptions(
    budget
      .command('set')
      .description('set limits of a budget (the others stay unless --replace)')
      .argument('<scope>', 'agent:<id> or run:<id>')
      .option('--tokens <count>', 'token limit', parseCount)
      .option('--cost-usd <dollars>', 'cost limit in US dollars', parseDollars)
      .option('--calls <count>', 'limit on model and tool calls', parseCount)
      .option('--wall-seconds <seconds>', 'limit on time spent in calls', parseCount)
      .option('--replace', 'drop the limits not given (default: keep them)')
      .option('--actor <name>', 'who is acting, for the audit log', defaultActor()),
  )
    .addHelpText(
      'after',
      '\nRun it with the node stopped: the change is audited, and the audit log has one writer.',
    )
    .action(
      action(async ({ output }, scope: string, options: SetOptions) => {
        const limits: Partial<Record<keyof BudgetAmounts, number>> = {};
        if (options.tokens !== undefined) limits.tokens = options.tokens;
        if (options.costUsd !== undefined) limits.costMicros = options.costUsd;
        if (options.calls !== undefined) limits.calls = options.calls;
        if (options.wallSeconds !== undefined) limits.wallMs = options.wallSeconds * 1000;
        if (Object.keys(limits).length === 0) {
          throw new KeelError('KEEL_USAGE', 'no limit given', {
            hint: 'say which limits to set, e.g. --tokens 100000 --cost-usd 5',
          });
        }
        const loaded = await loadForCommand(output, options);
        const state = await administerBudget(
          loaded,
          parseBudgetScope(scope),
          { limits, replace: options.replace === true },
          options.actor,
        );
        if (!output.json) output.status('ok', `limits of ${scope} set (audited)`);
        printBudgets(output, [state]);
        return EXIT_OK;
      }),
    );
  withCommonOptions(
    budget
      .command('reset')
      .description('zero what a budget has spent and close its breaker')
      .argument('<scope>', 'agent:<id> or run:<id>')
      .option('--actor <name>', 'who is acting, for the audit log', defaultActor()),
  )
    .addHelpText(
      'after',
      '\nRun it with the node stopped: the reset is audited, and the audit log has one writer.',
    )
    .action(
      action(async ({ output }, scope: string, options: CommonOptions & { actor: string }) => {
        const loaded = await loadForCommand(output, options);
        const state = await administerBudget(
          loaded,
          parseBudgetScope(scope),
          { reset: true },
          options.actor,
        );
        if (!output.json)
          output.status('ok', `${scope} reset: spending zeroed, breaker closed (audited)`);
        printBudgets(output, [state]);
        return EXIT_OK;
      }),
    );

  withCommonOptions(
    program
      .command('usage')
      .description('model usage: tokens and cost, grouped by agent, run, model or provider')
      .option('--agent <id>', 'only this agent')
      .option('--run <id>', 'only this run')
      .option(
        '--by <dimensions>',
        'comma-separated: agentId, runId, model, provider',
        'model,provider',
      ),
  ).action(
    action(async ({ output }, options: UsageOptions) => {
      const groupBy = options.by
        .split(',')
        .map((item) => item.trim())
        .filter((item) => item !== '');
      const unknown = groupBy.filter((item) => !USAGE_DIMENSIONS.includes(item as UsageDimension));
      if (unknown.length > 0) {
        throw new KeelError('KEEL_USAGE', `--by does not accept ${unknown.join(', ')}`, {
          hint: `group by any of ${USAGE_DIMENSIONS.join(', ')}, separated by commas`,
        });
      }
      const loaded = await loadForCommand(output, options);
      const rows = await readUsage(
        loaded,
        {
          ...(options.agent === undefined ? {} : { agentId: options.agent }),
          ...(options.run === undefined ? {} : { runId: options.run }),
        },
        groupBy as UsageDimension[],
      );
      if (output.json) {
        output.data(rows);
        return EXIT_OK;
      }
      output.table(
        [
          ...groupBy.map((dimension) => dimension.toUpperCase()),
          'CALLS',
          'INPUT',
          'OUTPUT',
          'COST',
          'UNPRICED',
        ],
        rows.map((row) => [
          ...groupBy.map((dimension) => String(row.group[dimension as UsageDimension] ?? '—')),
          row.calls.toLocaleString('en-US'),
          row.inputTokens.toLocaleString('en-US'),
          row.outputTokens.toLocaleString('en-US'),
          formatAmount('costMicros', row.costMicros),
          row.unpricedCalls === 0 ? '' : output.style('yellow', `${row.unpricedCalls} calls`),
        ]),
      );
      return EXIT_OK;
    }),
  );
}

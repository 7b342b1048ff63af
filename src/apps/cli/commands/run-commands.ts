import { type Command, InvalidArgumentError } from 'commander';
import { isKeelError, KeelError } from '../../../platform/errors/keel-error.ts';
import { type JsonValue, nestedWithin } from '../../../platform/storage/ports/json-value.ts';
import {
  FINAL_RUN_STATUSES,
  type JournalEntry,
  type RunRecord,
} from '../../../platform/storage/ports/run-store.ts';
import type { ControlClient } from '../../../runtime/control/control-client.ts';
import { MAX_TASK_INPUT_DEPTH } from '../../../runtime/control/control-server.ts';
import {
  action,
  type CommonOptions,
  EXIT_FAILURE,
  EXIT_OK,
  parsePositiveInteger,
  withCommonOptions,
} from '../cli-support.ts';
import { type Output, printable } from '../output.ts';
import { connectToNode, shortTime } from './control-connection.ts';

interface RunOptions extends CommonOptions {
  readonly follow?: boolean;
  readonly priority?: number;
  readonly input?: Record<string, JsonValue>;
}

type ListedRun = RunRecord & { readonly steps: number };

interface FollowEvent {
  readonly type: 'step' | 'status';
  readonly seq?: number;
  readonly kind?: string;
  readonly resource?: string;
  readonly outcome?: string;
  readonly code?: string | null;
  readonly replayed?: boolean;
  readonly status?: string;
  readonly attempts?: number;
}

function parsePriority(value: string): number {
  if (!/^\d$/.test(value)) throw new InvalidArgumentError('expected a priority from 0 to 9.');
  return Number(value);
}

export function parseInput(value: string): Record<string, JsonValue> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(value) as unknown;
  } catch {
    parsed = undefined;
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new InvalidArgumentError('expected a JSON object, e.g. \'{"repository":"keel"}\'.');
  }
  // Checked here, before anything recurses over it (encoding the request would overflow).
  if (!nestedWithin(parsed, MAX_TASK_INPUT_DEPTH)) {
    throw new InvalidArgumentError(
      `it nests deeper than ${MAX_TASK_INPUT_DEPTH} levels; flatten it, or pass a file's path in it instead.`,
    );
  }
  return parsed as Record<string, JsonValue>;
}

const RUN_HEADERS = ['RUN', 'AGENT', 'STATUS', 'STEPS', 'ATTEMPTS', 'ORIGIN', 'UPDATED'];

function runRow(run: ListedRun, agentNames: ReadonlyMap<string, string>): string[] {
  return [
    run.id,
    agentNames.get(run.agentId) ?? run.agentId,
    run.status,
    String(run.steps),
    String(run.attempts),
    run.origin,
    shortTime(run.updatedAt),
  ];
}

async function agentNames(client: ControlClient): Promise<Map<string, string>> {
  const agents = (await client.request('agents.list', {})) as { id: string; name: string }[];
  return new Map(agents.map((agent) => [agent.id, agent.name]));
}

/**
 * What a finished run printed for a person: the answer when there is one; a program that
 * stopped short of its task (the tool loop's `limit`, `stuck` or `failed`, which end the run
 * succeeded) is said so; a failure's hint says what to do.
 */
export function describeResult(output: Output, run: RunRecord): void {
  const result = run.result as { answer?: unknown; status?: unknown; reason?: unknown } | null;
  if (run.status === 'succeeded') {
    const stopped =
      result !== null &&
      typeof result === 'object' &&
      typeof result.status === 'string' &&
      result.status !== 'completed'
        ? printable(
            `${result.status}${typeof result.reason === 'string' ? ` (${result.reason})` : ''}`,
          )
        : undefined;
    if (stopped === undefined) {
      output.status('ok', `run ${run.id} succeeded after ${run.attempts} attempt(s)`);
    } else {
      output.status(
        'warn',
        `run ${run.id} succeeded after ${run.attempts} attempt(s), but its program stopped short: ${stopped}`,
      );
    }
    if (result !== null && typeof result === 'object' && typeof result.answer === 'string') {
      output.line(printable(result.answer));
    } else {
      output.line(printable(JSON.stringify(run.result, null, 2)));
    }
    return;
  }
  const error = run.error as { code?: string; message?: string; hint?: unknown } | null;
  output.status(
    'fail',
    `run ${run.id} ${run.status}${error?.code === undefined ? '' : `: ${printable(`${error.code} ${error.message ?? ''}`)}`}`,
  );
  if (typeof error?.hint === 'string' && error.hint !== '')
    output.line(`  ${printable(error.hint)}`);
}

/** Exit code of a command a person interrupted (128 + SIGINT), as shells use. */
const EXIT_INTERRUPTED = 130;

export async function follow(
  output: Output,
  client: ControlClient,
  runId: string,
  signal: AbortSignal,
): Promise<number> {
  // Ctrl-C stops following, not the run (it was ignored until a second one killed the CLI).
  const interrupted = new Promise<'interrupted'>((resolve) => {
    if (signal.aborted) resolve('interrupted');
    signal.addEventListener('abort', () => resolve('interrupted'), { once: true });
  });
  const followed = client.request('runs.follow', { runId }, (raw) => {
    const event = raw as FollowEvent;
    if (output.json) {
      output.data({ runId, ...event });
      return;
    }
    if (event.type === 'status') {
      output.line(output.style('dim', `  status ${event.status} (attempt ${event.attempts ?? 0})`));
      return;
    }
    const mark = event.outcome === 'ok' ? output.style('green', '✓') : output.style('red', '✗');
    const target =
      event.resource === undefined || event.resource === '' ? '' : ` ${printable(event.resource)}`;
    const replay = event.replayed === true ? output.style('dim', ' (journaled)') : '';
    output.line(
      `  ${mark} #${event.seq} ${printable(event.kind ?? '')}${target}${event.code ? ` ${printable(event.code)}` : ''}${replay}`,
    );
  });
  const first = await Promise.race([followed, interrupted]).catch((error: unknown) => {
    if (isKeelError(error) && error.code === 'KEEL_NODE_NOT_RUNNING') {
      // Running the command again would submit another run: say how to follow this one.
      throw new KeelError('KEEL_NODE_NOT_RUNNING', `${error.message} while following ${runId}`, {
        hint: `the run is kept; once the node is back, follow it with \`keel runs show ${runId} --follow\``,
      });
    }
    throw error;
  });
  if (first === 'interrupted') {
    // The request ends with the connection, which the caller closes.
    followed.catch(() => undefined);
    const note = `stopped following ${runId}; the run goes on (\`keel runs show ${runId} --follow\`)`;
    // Standard output holds only JSON documents with --json: the note goes to standard error.
    if (output.json) output.note(note);
    else output.status('info', note);
    return EXIT_INTERRUPTED;
  }
  const final = first as RunRecord;
  if (output.json) output.data(final);
  else describeResult(output, final);
  return final.status === 'succeeded' ? EXIT_OK : EXIT_FAILURE;
}

/**
 * Adds `keel run` and `keel runs list|show|cancel|dlq`.
 */
export function registerRunCommands(program: Command): void {
  withCommonOptions(
    program
      .command('run <agent> <task>')
      .description('start a run of an agent on a task (on the running node)')
      .option('-f, --follow', 'stream the run’s steps until it ends')
      .option('--priority <0-9>', 'queue priority, higher first (default 5)', parsePriority)
      .option('--input <json>', 'structured input for the task, a JSON object', parseInput),
  )
    .addHelpText(
      'after',
      `
Without --follow it prints the run id and returns; follow it later with
\`keel runs show <run>\`. With --follow the exit code is 0 only if the run succeeded.

Examples:
  keel run demo "Plan my first hour with Keel" --follow
  keel run researcher "Summarise today's alerts" --priority 8`,
    )
    .action(
      action(async ({ output, signal }, agent: string, task: string, options: RunOptions) => {
        if (!/\S/.test(task)) {
          throw new KeelError('KEEL_USAGE', 'the task is empty', {
            hint: 'say what the agent should do, e.g. keel run demo "Summarise the open issues"',
          });
        }
        await using client = await connectToNode(output, options);
        const run = (await client.request('runs.submit', {
          agent,
          prompt: task,
          ...(options.input === undefined ? {} : { input: options.input }),
          ...(options.priority === undefined ? {} : { priority: options.priority }),
        })) as RunRecord;
        if (options.follow !== true) {
          if (output.json) output.data(run);
          else
            output.status(
              'ok',
              `run ${run.id} queued; follow it with \`keel runs show ${run.id} --follow\``,
            );
          return EXIT_OK;
        }
        if (!output.json) output.line(`run ${run.id} (${agent})`);
        return await follow(output, client, run.id, signal);
      }),
    );

  const runs = program.command('runs').description('list, inspect and cancel runs');

  withCommonOptions(
    runs
      .command('list')
      .description('list recent runs, newest first')
      .option('--agent <name>', 'only this agent’s runs')
      .option(
        '--status <status>',
        'pending, running, suspended, succeeded, failed, cancelled or dead-lettered',
      )
      .option('-n, --limit <count>', 'how many', parsePositiveInteger, 20),
  ).action(
    action(
      async (
        { output },
        options: CommonOptions & { agent?: string; status?: string; limit: number },
      ) => {
        await using client = await connectToNode(output, options);
        const listed = (await client.request('runs.list', {
          ...(options.agent === undefined ? {} : { agent: options.agent }),
          ...(options.status === undefined ? {} : { status: options.status }),
          limit: Math.min(options.limit, 1000),
        })) as ListedRun[];
        if (output.json) output.data(listed);
        else {
          const names = await agentNames(client);
          output.table(
            RUN_HEADERS,
            listed.map((run) => runRow(run, names)),
          );
        }
        return EXIT_OK;
      },
    ),
  );

  withCommonOptions(
    runs
      .command('dlq')
      .description('list runs that failed more often than their agent’s maxAttempts'),
  ).action(
    action(async ({ output }, options: CommonOptions) => {
      await using client = await connectToNode(output, options);
      const listed = (await client.request('runs.list', {
        status: 'dead-lettered',
        limit: 1000,
      })) as ListedRun[];
      if (output.json) output.data(listed);
      else if (listed.length === 0) output.line('The dead-letter list is empty.');
      else {
        const names = await agentNames(client);
        output.table(
          [...RUN_HEADERS, 'LAST ERROR'],
          listed.map((run) => [
            ...runRow(run, names),
            String((run.error as { code?: string } | null)?.code ?? ''),
          ]),
        );
      }
      return EXIT_OK;
    }),
  );

  withCommonOptions(
    runs
      .command('show <run>')
      .description('show a run, its result and every journaled step')
      .option('-f, --follow', 'keep streaming its steps until it ends'),
  ).action(
    action(
      async ({ output, signal }, runId: string, options: CommonOptions & { follow?: boolean }) => {
        await using client = await connectToNode(output, options);
        if (options.follow === true) return await follow(output, client, runId, signal);
        const shown = (await client.request('runs.show', { runId })) as {
          run: RunRecord;
          journal: JournalEntry[];
        };
        if (output.json) {
          output.data(shown);
          return EXIT_OK;
        }
        output.table(
          ['SEQ', 'KIND', 'OUTCOME', 'AT'],
          shown.journal.map((entry) => [
            String(entry.seq),
            entry.kind,
            entry.outcome === 'ok'
              ? 'ok'
              : String((entry.result as { code?: string }).code ?? 'error'),
            shortTime(entry.recordedAt),
          ]),
        );
        output.line();
        if (FINAL_RUN_STATUSES.includes(shown.run.status)) {
          describeResult(output, shown.run);
        } else {
          output.status(
            'info',
            `run ${runId} is ${shown.run.status} (attempt ${shown.run.attempts})`,
          );
        }
        return EXIT_OK;
      },
    ),
  );

  withCommonOptions(
    runs.command('cancel <run>').description('cancel a queued or running run'),
  ).action(
    action(async ({ output }, runId: string, options: CommonOptions) => {
      await using client = await connectToNode(output, options);
      const run = (await client.request('runs.cancel', { runId })) as RunRecord;
      if (output.json) output.data(run);
      else output.status('ok', `run ${runId} cancelled`);
      return EXIT_OK;
    }),
  );
}

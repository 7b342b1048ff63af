import { type Command, InvalidArgumentError } from 'commander';
import { KeelError } from '../../../platform/errors/keel-error.ts';
import type { ApprovalRecord } from '../../../platform/storage/ports/approval-store.ts';
import type { JsonObject, JsonValue } from '../../../platform/storage/ports/json-value.ts';
import {
  action,
  type CommonOptions,
  EXIT_OK,
  parsePositiveInteger,
  withCommonOptions,
} from '../cli-support.ts';
import type { Output } from '../output.ts';
import { connectToNode, shortTime } from './control-connection.ts';

const HEADERS = ['APPROVAL', 'STATE', 'CALL', 'AGENT', 'RUN', 'REQUESTED', 'EXPIRES'];

function row(approval: ApprovalRecord): string[] {
  return [
    approval.id,
    approval.state,
    `${approval.kind} ${approval.resource}`.trim(),
    approval.agentId,
    approval.runId ?? '',
    shortTime(approval.requestedAt),
    shortTime(approval.expiresAt),
  ];
}

function describe(output: Output, approval: ApprovalRecord): void {
  output.line(`${approval.id}: ${approval.kind} ${approval.resource} (${approval.state})`);
  output.line(`  agent    ${approval.agentId}`);
  if (approval.runId !== null)
    output.line(`  run      ${approval.runId} step ${approval.seq ?? '?'}`);
  output.line(`  why      ${approval.reason}`);
  output.line(`  expires  ${shortTime(approval.expiresAt)}`);
  output.line(`  call     ${JSON.stringify(approval.summary)}`);
  if (approval.decidedBy !== null) {
    output.line(
      `  decided  ${approval.decidedBy}${approval.note === null ? '' : `: ${approval.note}`}`,
    );
  }
  if (approval.paramEdits !== null)
    output.line(`  edited   ${JSON.stringify(approval.paramEdits)}`);
}

const PARAMETER_NAME = /^[A-Za-z_][A-Za-z0-9_.-]{0,127}$/;

/**
 * Collects `--set name=text` (the value is text as written) and `--set-json name=<json>` into
 * the parameters an approver replaces.
 *
 * @example
 * ```ts
 * collectEdit('text')('command=npm test', {}); // { command: 'npm test' }
 * ```
 */
export function collectEdit(
  kind: 'text' | 'json',
): (value: string, previous: JsonObject | undefined) => JsonObject {
  return (value, previous = {}) => {
    const separator = value.indexOf('=');
    const name = separator < 0 ? '' : value.slice(0, separator);
    if (!PARAMETER_NAME.test(name)) {
      throw new InvalidArgumentError(
        'expected name=value, where name is a parameter of the call (see keel approvals show).',
      );
    }
    if (Object.hasOwn(previous, name)) {
      throw new InvalidArgumentError(`parameter ${name} is set twice.`);
    }
    const raw = value.slice(separator + 1);
    let parsed: JsonValue = raw;
    if (kind === 'json') {
      try {
        parsed = JSON.parse(raw) as JsonValue;
      } catch {
        throw new InvalidArgumentError(
          `the value of ${name} is not JSON; use --set for plain text.`,
        );
      }
    }
    return { ...previous, [name]: parsed };
  };
}

/**
 * `keel approvals list|show|approve|deny`: the operator's side of the approval inbox. A run
 * that waits for an approval resumes as soon as it is decided; a denial reaches the agent as
 * the call's error.
 *
 * @example
 * ```ts
 * registerApprovalCommands(program);
 * ```
 */
export function registerApprovalCommands(program: Command): void {
  const approvals = program
    .command('approvals')
    .description('the approval inbox: calls that wait for a human');

  withCommonOptions(
    approvals
      .command('list')
      .description('list approvals, newest first (pending ones by default)')
      .option('--state <state>', 'pending, approved, denied, expired or all', 'pending')
      .option('-n, --limit <count>', 'how many', parsePositiveInteger, 50),
  ).action(
    action(async ({ output }, options: CommonOptions & { state: string; limit: number }) => {
      await using client = await connectToNode(output, options);
      const listed = (await client.request('approvals.list', {
        ...(options.state === 'all' ? {} : { state: options.state }),
        limit: Math.min(options.limit, 1000),
      })) as ApprovalRecord[];
      if (output.json) output.data(listed);
      else if (listed.length === 0)
        output.line(`No ${options.state === 'all' ? '' : `${options.state} `}approvals.`);
      else output.table(HEADERS, listed.map(row));
      return EXIT_OK;
    }),
  );

  withCommonOptions(
    approvals
      .command('show <approval>')
      .description('show what an approval would allow, and why it is asked'),
  ).action(
    action(async ({ output }, approvalId: string, options: CommonOptions) => {
      await using client = await connectToNode(output, options);
      const shown = (await client.request('approvals.show', { approvalId })) as ApprovalRecord;
      if (output.json) output.data(shown);
      else describe(output, shown);
      return EXIT_OK;
    }),
  );

  withCommonOptions(
    approvals
      .command('approve <approval>')
      .description(
        'let the call run once; its run resumes. With --set or --set-json the call runs with those parameters instead (edit-then-approve); the grant and rules still apply to it',
      )
      .option('--note <text>', 'why (kept in the audit log)')
      .option(
        '--set <name=text>',
        'replace a parameter with this text (repeatable)',
        collectEdit('text'),
      )
      .option(
        '--set-json <name=json>',
        'replace a parameter with this JSON value (repeatable)',
        collectEdit('json'),
      ),
  ).action(
    action(
      async (
        { output },
        approvalId: string,
        options: CommonOptions & { note?: string; set?: JsonObject; setJson?: JsonObject },
      ) => {
        const edits = { ...options.set, ...options.setJson };
        for (const name of Object.keys(options.set ?? {})) {
          if (options.setJson !== undefined && Object.hasOwn(options.setJson, name)) {
            throw new KeelError(
              'KEEL_USAGE',
              `parameter ${name} is given by --set and --set-json`,
              {
                hint: 'give each parameter once',
              },
            );
          }
        }
        await using client = await connectToNode(output, options);
        const decided = (await client.request('approvals.decide', {
          approvalId,
          decision: 'approved',
          ...(options.note === undefined ? {} : { note: options.note }),
          ...(Object.keys(edits).length === 0 ? {} : { paramEdits: edits }),
        })) as ApprovalRecord;
        if (output.json) output.data(decided);
        else {
          const edited = decided.paramEdits === null ? '' : ' with your edits';
          output.status('ok', `${decided.id} approved${edited}; its run resumes`);
        }
        return EXIT_OK;
      },
    ),
  );

  withCommonOptions(
    approvals
      .command('deny <approval>')
      .description('refuse the call; its run resumes and the agent gets the refusal')
      .option('--note <text>', 'why (kept in the audit log)'),
  ).action(
    action(async ({ output }, approvalId: string, options: CommonOptions & { note?: string }) => {
      await using client = await connectToNode(output, options);
      const decided = (await client.request('approvals.decide', {
        approvalId,
        decision: 'denied',
        ...(options.note === undefined ? {} : { note: options.note }),
      })) as ApprovalRecord;
      if (output.json) output.data(decided);
      else output.status('ok', `${decided.id} denied; its run resumes`);
      return EXIT_OK;
    }),
  );
}

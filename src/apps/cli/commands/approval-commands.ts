import type { Command } from 'commander';
import type { ApprovalRecord } from '../../../platform/storage/ports/approval-store.ts';
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

  for (const [verb, decision] of [
    ['approve', 'approved'],
    ['deny', 'denied'],
  ] as const) {
    withCommonOptions(
      approvals
        .command(`${verb} <approval>`)
        .description(
          verb === 'approve'
            ? 'let the call run once; its run resumes'
            : 'refuse the call; its run resumes and the agent gets the refusal',
        )
        .option('--note <text>', 'why (kept in the audit log)'),
    ).action(
      action(async ({ output }, approvalId: string, options: CommonOptions & { note?: string }) => {
        await using client = await connectToNode(output, options);
        const decided = (await client.request('approvals.decide', {
          approvalId,
          decision,
          ...(options.note === undefined ? {} : { note: options.note }),
        })) as ApprovalRecord;
        if (output.json) output.data(decided);
        else output.status('ok', `${decided.id} ${decided.state}; its run resumes`);
        return EXIT_OK;
      }),
    );
  }
}

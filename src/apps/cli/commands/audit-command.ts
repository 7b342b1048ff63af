import { setTimeout as sleep } from 'node:timers/promises';
import type { Command } from 'commander';
import type { AuditRecord } from '../../../platform/integrity/audit-chain.ts';
import { readAuditTail, verifyAudit } from '../../../runtime/maintenance/verify-audit.ts';
import {
  action,
  type CommonOptions,
  EXIT_FAILURE,
  EXIT_OK,
  loadForCommand,
  parsePositiveInteger,
  withCommonOptions,
} from '../cli-support.ts';
import type { Output } from '../output.ts';

const BREAK_EXPLANATIONS = {
  'sequence-gap': 'an entry is missing (deleted) or out of order',
  'previous-hash-mismatch':
    'the entry does not link to the one before it (an entry before it was removed or replaced)',
  'hash-mismatch': 'the entry was modified after it was written',
} as const;

async function verify(output: Output, options: CommonOptions): Promise<number> {
  const loaded = await loadForCommand(output, options);
  const verification = await verifyAudit(loaded, {
    onProgress: (checked, total) => output.progress(`verifying ${checked}/${total} entries…`),
  });
  output.endProgress();
  if (output.json) {
    output.data(verification);
  } else if (verification.intact) {
    output.status(
      'ok',
      `audit chain intact: ${verification.checked} entries, head #${verification.head.seq} ${verification.head.hash.slice(0, 16)}…`,
    );
  } else {
    const broken = verification.firstBreak;
    output.status(
      'fail',
      `audit chain broken at entry #${broken?.seq} (${broken?.reason}): ${broken === undefined ? '' : BREAK_EXPLANATIONS[broken.reason]}; ${verification.checked} entries before it verify`,
    );
  }
  return verification.intact ? EXIT_OK : EXIT_FAILURE;
}

function formatRecord(record: AuditRecord): string[] {
  return [
    `#${record.seq}`,
    new Date(record.ts).toISOString(),
    record.kind,
    record.actor,
    record.subject ?? '',
    [record.outcome, record.code].filter((value) => value !== null).join(' '),
  ];
}

interface TailOptions extends CommonOptions {
  readonly lines: number;
  readonly follow?: boolean;
}

async function tail(output: Output, options: TailOptions): Promise<number> {
  const loaded = await loadForCommand(output, options);
  let records = await readAuditTail(loaded, { limit: options.lines });
  const print = (batch: readonly AuditRecord[], header: boolean): void => {
    if (output.json) {
      for (const record of batch) output.data(record);
    } else if (header) {
      output.table(['SEQ', 'TIME', 'KIND', 'ACTOR', 'SUBJECT', 'OUTCOME'], batch.map(formatRecord));
    } else {
      for (const record of batch) output.line(formatRecord(record).join('  '));
    }
  };
  print(records, true);
  if (options.follow !== true) return EXIT_OK;
  let lastSeq = records.at(-1)?.seq ?? 0;
  const controller = new AbortController();
  const stop = (): void => controller.abort();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  try {
    while (!controller.signal.aborted) {
      await sleep(500, undefined, { signal: controller.signal }).catch((error: unknown) => {
        if (!controller.signal.aborted) throw error;
      });
      if (controller.signal.aborted) break;
      records = await readAuditTail(loaded, { limit: 1000, afterSeq: lastSeq });
      if (records.length > 0) {
        print(records, false);
        lastSeq = records.at(-1)?.seq ?? lastSeq;
      }
    }
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
  }
  return EXIT_OK;
}

export function registerAuditCommand(program: Command): void {
  const audit = program
    .command('audit')
    .description('inspect and verify the tamper-evident audit log');
  withCommonOptions(
    audit
      .command('verify')
      .description('recompute the whole hash chain; exit 1 naming the first broken entry'),
  )
    .addHelpText(
      'after',
      '\nWorks while a node runs. Needs the audit key (secrets.toml or KEEL_SECRET_AUDIT_KEY).',
    )
    .action(action((output, options: CommonOptions) => verify(output, options)));
  withCommonOptions(
    audit
      .command('tail')
      .description('show the latest audit entries')
      .option('-n, --lines <count>', 'how many entries', parsePositiveInteger, 20)
      .option('-f, --follow', 'keep printing new entries until interrupted'),
  ).action(action((output, options: TailOptions) => tail(output, options)));
}

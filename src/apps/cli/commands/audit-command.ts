import { setTimeout as sleep } from 'node:timers/promises';
import type { Command } from 'commander';
import type { AuditRecord } from '../../../platform/integrity/audit-chain.ts';
import { openAuditReader, verifyAudit } from '../../../runtime/maintenance/verify-audit.ts';
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

async function verify(
  output: Output,
  options: CommonOptions,
  signal: AbortSignal,
): Promise<number> {
  const loaded = await loadForCommand(output, options);
  const verification = await verifyAudit(loaded, {
    onProgress: (checked, total) => output.progress(`verifying ${checked}/${total} entries…`),
    signal,
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

async function tail(output: Output, options: TailOptions, signal: AbortSignal): Promise<number> {
  const loaded = await loadForCommand(output, options);
  const print = (batch: readonly AuditRecord[], header: boolean): void => {
    if (output.json) {
      for (const record of batch) output.data(record);
    } else if (header) {
      output.table(['SEQ', 'TIME', 'KIND', 'ACTOR', 'SUBJECT', 'OUTCOME'], batch.map(formatRecord));
    } else {
      for (const record of batch) output.line(formatRecord(record).join('  '));
    }
  };
  await using reader = await openAuditReader(loaded);
  const latest = await reader.audit.tail(options.lines);
  print(latest, true);
  if (options.follow !== true) return EXIT_OK;
  // Until interrupted: SIGINT/SIGTERM end the loop and the command exits 0.
  let lastSeq = latest.at(-1)?.seq ?? 0;
  while (!signal.aborted) {
    await sleep(500, undefined, { signal }).catch((error: unknown) => {
      if (!signal.aborted) throw error;
    });
    if (signal.aborted) break;
    const fresh = await reader.audit.read(lastSeq + 1, 1000);
    if (fresh.length > 0) {
      print(fresh, false);
      lastSeq = fresh.at(-1)?.seq ?? lastSeq;
    }
  }
  return EXIT_OK;
}

/**
 * Adds `keel audit verify` and `keel audit tail` to the program.
 */
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
    .action(
      action(({ output, signal }, options: CommonOptions) => verify(output, options, signal)),
    );
  withCommonOptions(
    audit
      .command('tail')
      .description('show the latest audit entries')
      .option('-n, --lines <count>', 'how many entries', parsePositiveInteger, 20)
      .option('-f, --follow', 'keep printing new entries until interrupted'),
  ).action(action(({ output, signal }, options: TailOptions) => tail(output, options, signal)));
}

import type { Command } from 'commander';
import { executableSearchPath } from '../../../kernel/config/load-configuration.ts';
import { runDoctor } from '../../../runtime/maintenance/doctor.ts';
import {
  action,
  type CommonOptions,
  EXIT_FAILURE,
  EXIT_OK,
  withCommonOptions,
} from '../cli-support.ts';
import type { Output } from '../output.ts';

const AREA_TITLES = {
  runtime: 'Runtime',
  data: 'Data directory',
  storage: 'Storage',
  models: 'Model providers',
  sandbox: 'Sandbox layers for agent workers',
  service: 'Services on this machine',
} as const;

async function doctor(
  output: Output,
  options: CommonOptions,
  signal: AbortSignal,
): Promise<number> {
  // PATH is the sandbox probes' search path and the only variable their processes get.
  const report = await runDoctor(
    options.dataDir === undefined ? {} : { dataDirectory: options.dataDir },
    executableSearchPath(),
    signal,
  );
  if (output.json) {
    output.data(report);
  } else {
    output.line(`Keel ${report.version} on Node.js ${report.node}`);
    for (const area of Object.keys(AREA_TITLES) as Array<keyof typeof AREA_TITLES>) {
      const checks = report.checks.filter((check) => check.area === area);
      if (checks.length === 0) continue;
      output.line();
      output.line(output.style('bold', AREA_TITLES[area]));
      for (const check of checks)
        output.status(check.status, `${check.name.padEnd(15)} ${check.detail}`);
    }
    output.line();
    const missingLayers = Object.values(report.sandbox).filter((layer) => !layer.available).length;
    if (!report.ok) output.status('fail', 'problems found: fix the lines marked ✖');
    else if (missingLayers > 0) {
      output.status(
        'warn',
        `ready; ${missingLayers} isolation layer(s) missing: agent workers run with less isolation`,
      );
    } else output.status('ok', 'ready');
  }
  return report.ok ? EXIT_OK : EXIT_FAILURE;
}

/**
 * Adds `keel doctor` to the program.
 */
export function registerDoctorCommand(program: Command): void {
  withCommonOptions(
    program
      .command('doctor')
      .description(
        'check Node.js, the data directory, storage, sandbox layers and reachable services',
      ),
  )
    .addHelpText(
      'after',
      '\nExits 1 when something would stop a node from working; changes nothing.',
    )
    .action(
      action(({ output, signal }, options: CommonOptions) => doctor(output, options, signal)),
    );
}

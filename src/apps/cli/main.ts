import { Command, CommanderError } from 'commander';
import { KeelError } from '../../platform/errors/keel-error.ts';
import { KEEL_VERSION } from '../../runtime/keel-version.ts';
import { EXIT_OK, EXIT_USAGE } from './cli-support.ts';
import { registerAgentCommands } from './commands/agent-commands.ts';
import { registerApprovalCommands } from './commands/approval-commands.ts';
import { registerAuditCommand } from './commands/audit-command.ts';
import { registerBudgetCommands } from './commands/budget-commands.ts';
import { registerDoctorCommand } from './commands/doctor-command.ts';
import { registerKeygenCommand } from './commands/keygen-command.ts';
import { registerMockLlmCommand } from './commands/mock-llm-command.ts';
import { registerRobotCommands } from './commands/robot-commands.ts';
import { registerRunCommands } from './commands/run-commands.ts';
import { registerStartCommand } from './commands/start-command.ts';
import { registerStorageCommands } from './commands/storage-commands.ts';

/**
 * Builds the `keel` command line. With `jsonErrors` (the command line holds `--json`), a
 * command line it cannot parse is answered as every `--json` error is: one JSON object on
 * stdout, code `KEEL_USAGE`.
 *
 * @example
 * ```ts
 * createProgram().helpInformation();
 * ```
 */
export function createProgram(options: { readonly jsonErrors?: boolean } = {}): Command {
  const program = new Command('keel')
    .description('Keel: a self-hosted operating system for AI agents')
    .version(KEEL_VERSION, '-V, --version', 'print the version')
    .helpOption('-h, --help', 'show help')
    .showSuggestionAfterError(true)
    .exitOverride();
  registerStartCommand(program);
  registerDoctorCommand(program);
  registerAuditCommand(program);
  registerStorageCommands(program);
  registerBudgetCommands(program);
  registerMockLlmCommand(program);
  registerKeygenCommand(program);
  registerAgentCommands(program);
  registerRunCommands(program);
  registerRobotCommands(program);
  registerApprovalCommands(program);
  program.addHelpText(
    'after',
    `
Exit codes: 0 success, 1 failure or a problem found, 2 invalid command line.
Documentation: docs/README.md`,
  );
  const configure = (command: Command, path: string): void => {
    command.exitOverride().configureOutput({
      // One line that says what is wrong and what to do, like every other Keel error.
      outputError: (text, write) => {
        const message = text
          .replace(/^error: /, '')
          .split('\n')
          .map((part) => part.trim())
          .filter((part) => part.length > 0)
          .join(' ');
        const hint = `run \`${path} --help\` for usage`;
        if (options.jsonErrors === true) {
          const error = new KeelError('KEEL_USAGE', message, { hint });
          process.stdout.write(`${JSON.stringify({ error: error.toJSON() })}\n`);
          return;
        }
        write(`keel: ${message} — ${hint} [KEEL_USAGE]\n`);
      },
    });
    for (const subcommand of command.commands)
      configure(subcommand, `${path} ${subcommand.name()}`);
  };
  configure(program, 'keel');
  return program;
}

/**
 * Runs the CLI with `argv` (as in `process.argv`).
 *
 * @example
 * ```ts
 * await main(process.argv);
 * ```
 */
export async function main(argv: readonly string[]): Promise<void> {
  // Output piped into a reader that stops early (`keel runs list | head -1`): the rest has
  // nowhere to go, which is no failure of the command (it crashed with an EPIPE stack).
  process.stdout.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code !== 'EPIPE') throw error;
    process.exit(process.exitCode ?? EXIT_OK);
  });
  // Options end at `--`: a task text that mentions --json does not ask for JSON.
  const end = argv.indexOf('--');
  const program = createProgram({
    jsonErrors: (end === -1 ? argv : argv.slice(0, end)).includes('--json'),
  });
  try {
    await program.parseAsync([...argv]);
  } catch (error) {
    if (error instanceof CommanderError) {
      const informational =
        error.code === 'commander.helpDisplayed' ||
        error.code === 'commander.version' ||
        error.code === 'commander.help';
      process.exitCode = informational ? EXIT_OK : EXIT_USAGE;
      return;
    }
    throw error;
  }
}

import { type Command, InvalidArgumentError } from 'commander';
import {
  type LoadedConfiguration,
  loadConfiguration,
} from '../../kernel/config/load-configuration.ts';
import { KeelError, toKeelError } from '../../platform/errors/keel-error.ts';
import { fileSystemError } from '../../platform/files/file-system-error.ts';
import { SecretRedactor } from '../../platform/observability/secret-redactor.ts';
import { Output } from './output.ts';

/** Exit codes: 0 success, 1 the operation failed or found a problem, 2 the command line was wrong. */
export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

export interface CommonOptions {
  readonly dataDir?: string;
  readonly json?: boolean;
}

/**
 * Adds `--data-dir` and `--json`, which every command that reads a data directory takes.
 *
 * @example
 * ```ts
 * withCommonOptions(program.command('doctor')).action(…);
 * ```
 */
export function withCommonOptions(command: Command): Command {
  return command
    .option('--data-dir <dir>', 'the data directory (default: $KEEL_HOME, else ~/.keel)')
    .option('--json', 'print machine-readable JSON instead of text');
}

/**
 * Loads the configuration of the command's `--data-dir` and teaches the output the secrets it
 * must never print.
 *
 * @example
 * ```ts
 * const loaded = await loadForCommand(output, options);
 * ```
 */
export async function loadForCommand(
  output: Output,
  options: CommonOptions,
): Promise<LoadedConfiguration> {
  const loaded = await loadConfiguration(
    options.dataDir === undefined ? {} : { dataDirectory: options.dataDir },
  );
  output.redactor = new SecretRedactor(loaded.secrets.values());
  return loaded;
}

/**
 * Parses a TCP port for `--port`: 0–65535 (0 picks a free port).
 *
 * @example
 * ```ts
 * command.option('--port <port>', 'port', parsePort);
 * ```
 */
export function parsePort(value: string): number {
  if (!/^\d{1,5}$/.test(value) || Number(value) > 65_535) {
    throw new InvalidArgumentError('expected a port number from 0 to 65535 (0 picks a free port).');
  }
  return Number(value);
}

/**
 * Parses a positive integer option such as `--lines`.
 *
 * @example
 * ```ts
 * command.option('-n, --lines <count>', 'how many', parsePositiveInteger, 20);
 * ```
 */
export function parsePositiveInteger(value: string): number {
  if (!/^\d{1,9}$/.test(value) || Number(value) < 1) {
    throw new InvalidArgumentError('expected a whole number of 1 or more.');
  }
  return Number(value);
}

/** What every command's action gets: where to print, and a signal that SIGINT/SIGTERM abort. */
export interface CommandRun {
  readonly output: Output;
  /** Aborted by the first SIGINT or SIGTERM; a second one exits at once (code 130). */
  readonly signal: AbortSignal;
}

/**
 * Runs a command's action with an Output for its `--json` choice and an interrupt signal; an
 * error becomes one clear line (or a JSON error) and exit code 1 (2 for `KEEL_USAGE`: the
 * command line was wrong). A failed file operation on a path the user named says so instead
 * of reporting a bug in Keel.
 *
 * @example
 * ```ts
 * command.action(action(({ output, signal }, options: CommonOptions) => verify(output, options, signal)));
 * ```
 */
export function action<Arguments extends unknown[]>(
  handler: (run: CommandRun, ...args: Arguments) => Promise<number>,
): (...args: Arguments) => Promise<void> {
  return async (...args: Arguments) => {
    const command = args.at(-1) as Command;
    const options = command.optsWithGlobals() as CommonOptions;
    const output = new Output({ json: options.json === true });
    const interrupt = new AbortController();
    const onSignal = (signal: NodeJS.Signals): void => {
      if (interrupt.signal.aborted) process.exit(130);
      interrupt.abort(
        new KeelError('KEEL_ABORTED', `interrupted by ${signal}`, {
          hint: 'nothing to do; run the command again when you want it',
        }),
      );
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    try {
      process.exitCode = await handler({ output, signal: interrupt.signal }, ...args);
    } catch (error) {
      const failure = fileSystemError(error) ?? toKeelError(error);
      output.error(failure);
      process.exitCode = failure.code === 'KEEL_USAGE' ? EXIT_USAGE : EXIT_FAILURE;
    } finally {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    }
  };
}

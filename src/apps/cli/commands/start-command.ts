import type { Command } from 'commander';
import { loadConfiguration } from '../../../kernel/config/load-configuration.ts';
import { toKeelError } from '../../../platform/errors/keel-error.ts';
import { createLogger, type LogLevel } from '../../../platform/observability/logger.ts';
import { SecretRedactor } from '../../../platform/observability/secret-redactor.ts';
import { TraceContext } from '../../../platform/observability/trace-context.ts';
import { type KeelNode, type NodeHealth, startNode } from '../../../runtime/node.ts';
import { type RunningHttpServer, startHttpServer } from '../../gateway/http-server.ts';
import { action, EXIT_FAILURE, EXIT_OK, parsePort, withCommonOptions } from '../cli-support.ts';
import type { Output } from '../output.ts';

interface StartOptions {
  readonly dataDir?: string;
  readonly host?: string;
  readonly port?: number;
  readonly logLevel?: string;
  readonly logFormat?: string;
}

const SHUTDOWN_DEADLINE_MS = 15_000;

async function start(output: Output, options: StartOptions): Promise<number> {
  const loaded = await loadConfiguration({
    ...(options.dataDir === undefined ? {} : { dataDirectory: options.dataDir }),
    overrides: {
      ...(options.host === undefined ? {} : { host: options.host }),
      ...(options.port === undefined ? {} : { port: options.port }),
      ...(options.logLevel === undefined ? {} : { logLevel: options.logLevel }),
      ...(options.logFormat === undefined ? {} : { logFormat: options.logFormat }),
    },
  });
  const { configuration } = loaded;
  const redactor = new SecretRedactor(loaded.secrets.values());
  output.redactor = redactor;
  const traces = new TraceContext();
  const format =
    configuration.log.format === 'auto'
      ? process.stderr.isTTY
        ? 'pretty'
        : 'json'
      : configuration.log.format;
  const logger = createLogger({
    level: configuration.log.level as LogLevel,
    format,
    redactor,
    traces,
    base: { node: configuration.node.name },
  });

  let node: KeelNode | undefined;
  const starting: NodeHealth = {
    ready: false,
    components: [{ name: 'node', ready: false, detail: 'starting' }],
  };
  // The port is taken first: a port in use fails the start before anything is written.
  const server: RunningHttpServer = await startHttpServer({
    host: configuration.node.host,
    port: configuration.node.port,
    tls: configuration.tls,
    maxBodyBytes: configuration.node.maxBodyBytes,
    health: () => node?.health() ?? starting,
    logger,
    redactor,
    traces,
  });

  let resolveStopped: (code: number) => void = () => undefined;
  const stopped = new Promise<number>((resolve) => {
    resolveStopped = resolve;
  });
  let stopping = false;
  const stop = (reason: string, code: number): void => {
    if (stopping) return;
    stopping = true;
    const deadline = setTimeout(() => {
      logger.error({ reason }, `shutdown took longer than ${SHUTDOWN_DEADLINE_MS} ms; exiting`);
      process.exit(EXIT_FAILURE);
    }, SHUTDOWN_DEADLINE_MS);
    deadline.unref();
    void (async () => {
      let exitCode = code;
      try {
        await server.close();
        await node?.close(reason);
      } catch (error) {
        output.error(toKeelError(error));
        exitCode = EXIT_FAILURE;
      } finally {
        clearTimeout(deadline);
      }
      resolveStopped(exitCode);
    })();
  };

  try {
    node = await startNode({
      loaded,
      logger,
      onFatal: (error) => {
        output.error(error);
        stop('fatal', EXIT_FAILURE);
      },
    });
  } catch (error) {
    await server.close();
    throw error;
  }

  const onSignal = (signal: NodeJS.Signals): void => {
    if (stopping) {
      logger.warn({ signal }, 'already stopping; send SIGKILL to force');
      return;
    }
    stop(signal, EXIT_OK);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  if (output.json) {
    output.data({
      event: 'ready',
      url: server.url,
      nodeId: node.id,
      dataDirectory: configuration.dataDirectory,
      pid: process.pid,
    });
  } else {
    output.line(`Keel ready at ${server.url}`);
  }
  const code = await stopped;
  process.off('SIGINT', onSignal);
  process.off('SIGTERM', onSignal);
  return code;
}

/**
 * Adds `keel start` to the program.
 */
export function registerStartCommand(program: Command): void {
  withCommonOptions(
    program
      .command('start')
      .description('run a Keel node in the foreground until SIGINT or SIGTERM')
      .option('--host <host>', 'address to listen on (default 127.0.0.1; non-loopback needs TLS)')
      .option('--port <port>', 'port to listen on (default 7420; 0 picks a free port)', parsePort)
      .option('--log-level <level>', 'trace, debug, info, warn, error, fatal or silent')
      .option('--log-format <format>', 'auto, json or pretty'),
  )
    .addHelpText(
      'after',
      `
Prints "Keel ready at URL" once every component is ready; GET URL/health/ready then answers 200.
Logs go to standard error (pretty on a terminal, JSON otherwise).

Examples:
  keel start
  keel start --data-dir /srv/keel --port 0
  KEEL_SECRET_OPENAI_API_KEY=… keel start --json`,
    )
    .action(action(({ output }, options: StartOptions) => start(output, options)));
}

import type { Command } from 'commander';
import { loadConfiguration } from '../../../kernel/config/load-configuration.ts';
import { KeelError, toKeelError } from '../../../platform/errors/keel-error.ts';
import { createLogger, type LogLevel } from '../../../platform/observability/logger.ts';
import { SecretRedactor } from '../../../platform/observability/secret-redactor.ts';
import { TraceContext } from '../../../platform/observability/trace-context.ts';
import { type KeelNode, type NodeHealth, startNode } from '../../../runtime/node.ts';
import { type RunningHttpServer, startHttpServer } from '../../gateway/http-server.ts';
import { action, EXIT_FAILURE, EXIT_OK, parsePort, withCommonOptions } from '../cli-support.ts';
import { startDemoModelServer, withDemoModels } from '../demo/demo-mode.ts';
import { runDemo } from '../demo/demo-run.ts';
import type { Output } from '../output.ts';

interface StartOptions {
  readonly dataDir?: string;
  readonly host?: string;
  readonly port?: number;
  readonly logLevel?: string;
  readonly logFormat?: string;
  readonly demo?: boolean;
  readonly production?: boolean;
  readonly development?: boolean;
}

const SHUTDOWN_DEADLINE_MS = 15_000;

async function start(output: Output, options: StartOptions): Promise<number> {
  if (options.demo === true && options.production === true) {
    throw new KeelError(
      'KEEL_USAGE',
      '--demo runs in development mode and cannot be combined with --production',
    );
  }
  const configured = await loadConfiguration({
    ...(options.dataDir === undefined ? {} : { dataDirectory: options.dataDir }),
    overrides: {
      ...(options.host === undefined ? {} : { host: options.host }),
      ...(options.port === undefined ? {} : { port: options.port }),
      ...(options.logLevel === undefined ? {} : { logLevel: options.logLevel }),
      ...(options.logFormat === undefined ? {} : { logFormat: options.logFormat }),
      ...(options.production === true ? { production: true } : {}),
      ...(options.development === true ? { development: true } : {}),
    },
  });
  if (options.demo === true && configured.configuration.runtime.production) {
    throw new KeelError(
      'KEEL_USAGE',
      '--demo runs in development mode and cannot run in production mode (KEEL_PRODUCTION or [runtime] production)',
    );
  }
  // Demo mode: a mock LLM in this process, its alias, and development mode for the unsigned
  // demo manifest.
  const demoModels = options.demo === true ? await startDemoModelServer() : undefined;
  const loaded =
    demoModels === undefined ? configured : withDemoModels(configured, demoModels.openAiBaseUrl);
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
    // The body first, before anything that could wait: Ctrl-C, SIGTERM and a fatal fault all
    // set the e-stop latch, so every actuator goes to zero energy on the loop's next tick.
    // The latch is set synchronously inside `engage`; only its audit entry is awaited.
    if (!stopping && node?.robot !== undefined) {
      void node.robot
        .engage(
          reason === 'fatal' ? 'fault' : reason.startsWith('SIG') ? 'signal' : 'shutdown',
          `node:${reason}`,
        )
        .catch((error: unknown) => logger.error({ err: error }, 'could not audit the e-stop'));
    }
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
        await demoModels?.close();
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
    await demoModels?.close();
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
  if (options.demo === true) {
    await runDemo(output, node).catch((error: unknown) => output.error(toKeelError(error)));
  } else if (configuration.models.providers.length === 0 && !output.json) {
    output.status(
      'info',
      'no model provider is configured: add one under [models] in config.toml (an API key secret, or an Ollama URL), or try `keel start --demo`',
    );
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
      .option('--log-format <format>', 'auto, json or pretty')
      .option('--demo', 'add a mock LLM and a demo agent, and show one run end to end')
      .option('--production', 'refuse to start unless every worker isolation layer is available')
      .option('--development', 'accept unsigned agent manifests (never with --production)'),
  )
    .addHelpText(
      'after',
      `
Prints "Keel ready at URL" once every component is ready; GET URL/health/ready then answers 200.
Logs go to standard error (pretty on a terminal, JSON otherwise).

Examples:
  keel start
  keel start --demo
  keel start --production --data-dir /srv/keel
  keel start --data-dir /srv/keel --port 0
  KEEL_SECRET_OPENAI_API_KEY=… keel start --json`,
    )
    .action(action(({ output }, options: StartOptions) => start(output, options)));
}

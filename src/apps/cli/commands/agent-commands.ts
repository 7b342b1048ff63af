import type { Command } from 'commander';
import type { AgentStateChange } from '../../../platform/storage/ports/agent-store.ts';
import type { AgentView } from '../../../runtime/agent-runtime.ts';
import {
  MAX_MANIFEST_BYTES,
  manifestFormatOf,
  parseManifestText,
} from '../../../runtime/manifests/agent-manifest.ts';
import { action, type CommonOptions, EXIT_OK, withCommonOptions } from '../cli-support.ts';
import type { Output } from '../output.ts';
import { registerAgentSignCommand } from './agent-sign-command.ts';
import { connectToNode, mebibytes, shortTime } from './control-connection.ts';
import { readSmallFile } from './read-small-file.ts';

const LIFECYCLE_ACTIONS = ['start', 'pause', 'resume', 'stop', 'restart', 'remove'] as const;

async function readDocument(path: string): Promise<unknown> {
  const format = manifestFormatOf(path);
  return parseManifestText(await readSmallFile(path, 'manifest', MAX_MANIFEST_BYTES), format);
}

function agentRow(agent: AgentView): string[] {
  return [
    agent.name,
    agent.version,
    agent.state,
    agent.trust,
    agent.program,
    String(agent.activeRuns),
    agent.worker === null ? '-' : mebibytes(agent.worker.rss),
    agent.signedBy ?? 'unsigned',
  ];
}

const AGENT_HEADERS = ['NAME', 'VERSION', 'STATE', 'TRUST', 'PROGRAM', 'RUNS', 'RSS', 'SIGNED BY'];

function printAgent(output: Output, agent: AgentView): void {
  output.table(AGENT_HEADERS, [agentRow(agent)]);
}

/**
 * Adds `keel agent deploy|list|show|pause|resume|stop|restart|remove|sign`.
 */
export function registerAgentCommands(program: Command): void {
  const agent = program
    .command('agent')
    .description('deploy and manage agents (signed manifests, supervised workers)');

  withCommonOptions(
    agent
      .command('deploy <manifest>')
      .description(
        'deploy a signed manifest (or an unsigned one in development mode) to the running node',
      ),
  )
    .addHelpText(
      'after',
      `
The manifest file is what \`keel agent sign\` wrote (JSON), or a bare manifest (JSON or YAML)
when the node runs with --development. Deploying a version lower than (or equal to, with
different content) the one deployed before is refused.

Examples:
  keel agent sign researcher.yaml --key ./keel-publisher.key
  keel agent deploy researcher.signed.json`,
    )
    .action(
      action(async ({ output }, path: string, options: CommonOptions) => {
        const document = await readDocument(path);
        await using client = await connectToNode(output, options);
        const result = (await client.request('agents.deploy', { document })) as {
          outcome: string;
          agent: AgentView | null;
        };
        if (output.json) {
          output.data(result);
        } else {
          output.status('ok', `${result.agent?.name ?? 'agent'} ${result.outcome}`);
          if (result.agent !== null) printAgent(output, result.agent);
        }
        return EXIT_OK;
      }),
    );

  withCommonOptions(agent.command('list').description('list deployed agents')).action(
    action(async ({ output }, options: CommonOptions) => {
      await using client = await connectToNode(output, options);
      const agents = (await client.request('agents.list', {})) as AgentView[];
      if (output.json) output.data(agents);
      else if (agents.length === 0)
        output.line('No agents deployed. Deploy one with `keel agent deploy <manifest>`.');
      else output.table(AGENT_HEADERS, agents.map(agentRow));
      return EXIT_OK;
    }),
  );

  withCommonOptions(
    agent
      .command('show <name>')
      .description('show an agent, its worker, manifest and lifecycle history'),
  ).action(
    action(async ({ output }, name: string, options: CommonOptions) => {
      await using client = await connectToNode(output, options);
      const shown = (await client.request('agents.show', { name })) as {
        agent: AgentView;
        manifest: unknown;
        history: AgentStateChange[];
      };
      if (output.json) {
        output.data(shown);
        return EXIT_OK;
      }
      printAgent(output, shown.agent);
      const worker = shown.agent.worker;
      output.line();
      output.line(`digest     ${shown.agent.digest}`);
      if (worker !== null) {
        output.line(`worker     pid ${worker.pid ?? '?'}, heap ${mebibytes(worker.heapUsed)}`);
        output.line(`isolation  ${worker.isolation.join(', ') || 'none'}`);
        if (worker.missing.length > 0) output.line(`missing    ${worker.missing.join(', ')}`);
      }
      output.line();
      output.table(
        ['AT', 'FROM', 'TO', 'REASON'],
        shown.history.map((change) => [
          shortTime(change.at),
          change.from,
          change.to,
          change.reason,
        ]),
      );
      return EXIT_OK;
    }),
  );

  for (const lifecycle of LIFECYCLE_ACTIONS) {
    const descriptions: Record<(typeof LIFECYCLE_ACTIONS)[number], string> = {
      start: "start a stopped or crashed agent's worker (nothing to do if it runs)",
      pause: "hold the agent's syscalls and stop starting its runs",
      resume: 'let a paused agent go on',
      stop: 'stop the worker; its runs are suspended until the agent starts again',
      restart: 'restart the worker (also starts a stopped or crashed agent)',
      remove: 'stop the agent, revoke its grants and cancel its open runs',
    };
    withCommonOptions(
      agent.command(`${lifecycle} <name>`).description(descriptions[lifecycle]),
    ).action(
      action(async ({ output }, name: string, options: CommonOptions) => {
        await using client = await connectToNode(output, options);
        const view = (await client.request('agents.lifecycle', {
          name,
          action: lifecycle,
        })) as AgentView;
        if (output.json) output.data(view);
        else output.status('ok', `${name} is ${view.state}`);
        return EXIT_OK;
      }),
    );
  }

  registerAgentSignCommand(agent);
}

import type { Command } from 'commander';
import { MockLlmServer } from '../../../services/models/mock/mock-llm-server.ts';
import { loadMockScript } from '../../../services/models/mock/mock-script.ts';
import { action, EXIT_OK, parsePort } from '../cli-support.ts';

interface MockOptions {
  readonly port: number;
  readonly script?: string;
  readonly json?: boolean;
}

/**
 * Adds `keel mock-llm`: a real HTTP server speaking the OpenAI, Anthropic and Ollama wire
 * formats, playing a script, for tests and demos. Loopback only.
 */
export function registerMockLlmCommand(program: Command): void {
  program
    .command('mock-llm')
    .description('serve a mock LLM (OpenAI, Anthropic and Ollama wire formats) on loopback')
    .option('--port <port>', 'port to listen on (0 picks a free one)', parsePort, 0)
    .option('--script <file>', 'a JSON or YAML conversation script')
    .option('--json', 'print the addresses as JSON')
    .addHelpText(
      'after',
      `
Endpoints: POST /v1/chat/completions, /v1/embeddings, GET /v1/models (OpenAI-compatible),
POST /v1/messages (Anthropic), POST /api/chat, /api/embed, GET /api/tags (Ollama).
Faults on demand: POST /mock/faults {"fault":{"type":"rate-limit","retryAfterSeconds":2},"times":1}
(types: rate-limit, server-error, unavailable, overloaded, reset, timeout, slow-stream,
malformed-json, cut-mid-tool-call); DELETE /mock/faults; GET /mock/requests.
Without a script every chat is answered "mock reply to: <the last user message>".
Runs until interrupted (Ctrl-C).`,
    )
    .action(
      action(async ({ output, signal }, options: MockOptions) => {
        const script =
          options.script === undefined ? undefined : await loadMockScript(options.script);
        const server = await MockLlmServer.start({
          port: options.port,
          ...(script === undefined ? {} : { script }),
        });
        try {
          if (output.json) {
            output.data({ url: server.url, openAiBaseUrl: server.openAiBaseUrl });
          } else {
            output.status('ok', `mock LLM listening on ${server.url}`);
            output.line(`  OpenAI-compatible base_url: ${server.openAiBaseUrl}`);
            output.line(`  Anthropic and Ollama base_url: ${server.url}`);
            output.line(
              script === undefined
                ? '  no script: every chat gets an echo reply'
                : `  script: ${script.conversations.length} conversation(s)`,
            );
          }
          await new Promise<void>((resolve) => {
            if (signal.aborted) resolve();
            else signal.addEventListener('abort', () => resolve(), { once: true });
          });
        } finally {
          await server.close();
        }
        return EXIT_OK;
      }),
    );
}

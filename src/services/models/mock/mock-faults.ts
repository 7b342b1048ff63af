import type { MockAnswer } from './mock-conversation.ts';
import type { MockFault } from './mock-script.ts';
import type { MockWireFormat } from './mock-wire-format.ts';

export type MockRoute = 'chat' | 'embed';

/** A fault to inject into the next `times` matching requests. */
export interface MockFaultRule {
  readonly fault: MockFault;
  readonly times?: number;
  readonly route?: MockRoute;
  readonly format?: MockWireFormat['name'];
}

/**
 * Faults waiting for the requests they match, first injected first served.
 *
 * @example
 * ```ts
 * const faults = new MockFaultQueue();
 * faults.inject({ fault: { type: 'unavailable' }, times: 2 });
 * faults.take('chat', mockOpenAiWire); // { type: 'unavailable' }
 * ```
 */
export class MockFaultQueue {
  readonly #entries: { rule: MockFaultRule; remaining: number }[] = [];

  get size(): number {
    return this.#entries.length;
  }

  inject(rule: MockFaultRule): void {
    this.#entries.push({ rule, remaining: rule.times ?? 1 });
  }

  clear(): void {
    this.#entries.length = 0;
  }

  /** The fault for a request of this route and format, counting it down; or undefined. */
  take(route: MockRoute, format: MockWireFormat): MockFault | undefined {
    const index = this.#entries.findIndex(
      ({ rule }) =>
        (rule.route === undefined || rule.route === route) &&
        (rule.format === undefined || rule.format === format.name),
    );
    if (index === -1) return undefined;
    const entry = this.#entries[index] as { rule: MockFaultRule; remaining: number };
    entry.remaining -= 1;
    if (entry.remaining <= 0) this.#entries.splice(index, 1);
    return entry.rule.fault;
  }
}

/** The HTTP status a fault answers with (0: no answer at all). */
export function statusOf(fault: MockFault | undefined): number {
  switch (fault?.type) {
    case 'rate-limit':
      return 429;
    case 'server-error':
      return 500;
    case 'unavailable':
      return 503;
    case 'overloaded':
      return 529;
    case 'reset':
    case 'timeout':
      return 0;
    default:
      return 200;
  }
}

/** The answer to cut: it needs a tool call to cut inside, so one is added if it has none. */
export function withCutCall(answer: MockAnswer, fault: MockFault | undefined): MockAnswer {
  if (fault?.type !== 'cut-mid-tool-call' || answer.toolCalls.length > 0) return answer;
  return {
    ...answer,
    toolCalls: [
      {
        id: 'call_cut',
        name: 'mock_tool',
        arguments: { note: 'this call is cut in the middle of its arguments' },
      },
    ],
    finishReason: 'tool-calls',
  };
}

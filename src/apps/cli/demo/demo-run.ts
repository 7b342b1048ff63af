import { KeelError } from '../../../platform/errors/keel-error.ts';
import { FINAL_RUN_STATUSES, type RunStatus } from '../../../platform/storage/ports/run-store.ts';
import type { KeelNode } from '../../../runtime/node.ts';
import { RUN_STATUS, RUN_STEPS } from '../../../runtime/runs/run-topics.ts';
import type { Output } from '../output.ts';
import { DEMO_MANIFEST, DEMO_TASK } from './demo-mode.ts';

const DEMO_DEADLINE_MS = 60_000;

/**
 * What `keel start --demo` shows: deploys the demo agent, runs it on the demo task against the
 * mock LLM, and prints each syscall as the kernel answers it, then the answer and where to look
 * next. The node keeps running afterwards.
 *
 * @example
 * ```ts
 * await runDemo(output, node);
 * ```
 */
export async function runDemo(output: Output, node: KeelNode): Promise<void> {
  const actor = 'operator:demo';
  const deployed = await node.runtime.deploy(DEMO_MANIFEST, actor);
  const controller = new AbortController();
  const steps = node.bus.subscribe(RUN_STEPS, { signal: controller.signal });
  const statuses = node.bus.subscribe(RUN_STATUS, { signal: controller.signal });
  const timer = setTimeout(() => controller.abort(), DEMO_DEADLINE_MS);
  try {
    const run = await node.runtime.submitRun(
      'demo',
      { prompt: DEMO_TASK },
      { origin: 'demo', actor },
    );
    if (!output.json) {
      output.line();
      output.line(
        `demo: agent ${deployed.agent.name} ${deployed.outcome}; run ${run.id} on the mock LLM (development mode)`,
      );
      output.line(output.style('dim', `  task: ${DEMO_TASK}`));
    }
    void (async () => {
      for await (const step of steps) {
        if (step.runId !== run.id) continue;
        if (output.json) {
          output.data({ event: 'demo.step', ...step });
          continue;
        }
        const mark = step.outcome === 'ok' ? output.style('green', '✓') : output.style('red', '✗');
        output.line(
          `  ${mark} #${step.seq} ${step.kind} ${step.resource}${step.code === null ? '' : ` ${step.code}`}`,
        );
      }
    })();
    let status: RunStatus = run.status;
    for await (const message of statuses) {
      if (message.runId !== run.id) continue;
      status = message.status;
      if (FINAL_RUN_STATUSES.includes(status)) break;
    }
    if (controller.signal.aborted && !FINAL_RUN_STATUSES.includes(status)) {
      throw new KeelError(
        'KEEL_TIMEOUT',
        `the demo run did not finish within ${DEMO_DEADLINE_MS} ms`,
      );
    }
    const { run: final } = await node.runtime.showRun(run.id);
    if (output.json) {
      output.data({ event: 'demo.done', run: final });
      return;
    }
    const result = final.result as { answer?: unknown } | null;
    if (final.status === 'succeeded') {
      output.status('ok', `demo run ${final.id} succeeded`);
      if (typeof result?.answer === 'string') output.line(`  ${result.answer}`);
    } else {
      output.status('fail', `demo run ${final.id} ${final.status}: ${JSON.stringify(final.error)}`);
    }
    output.line();
    output.line('Next, in another terminal (same --data-dir):');
    output.line(`  keel runs show ${final.id}          every journaled step`);
    output.line('  keel run demo "Plan my first hour with Keel" --follow');
    output.line('  keel agent show demo                worker, isolation, lifecycle history');
    output.line('  keel audit tail                     the tamper-evident audit trail');
  } finally {
    clearTimeout(timer);
    controller.abort();
  }
}

import { execFile } from 'node:child_process';
import { setPriority } from 'node:os';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** How the control loop thread ended up being scheduled. */
export type ThreadPriority = 'realtime-fifo' | 'raised-nice' | 'normal';

/**
 * Gives a thread (by its Linux thread id) real-time FIFO scheduling through `chrt`, or
 * failing that the highest nice level it may take, so that other work on the machine — the
 * brain's own threads included — cannot preempt it for long. Needs CAP_SYS_NICE (or root)
 * for either; without it the thread keeps normal priority and the caller says so.
 *
 * @example
 * ```ts
 * const priority = await raiseThreadPriority(threadId, 40);
 * if (priority === 'normal') logger.warn('the control loop runs at normal priority');
 * ```
 */
export async function raiseThreadPriority(
  threadId: number,
  realtimePriority: number,
): Promise<{ priority: ThreadPriority; detail: string }> {
  try {
    await run('chrt', ['--fifo', '--pid', String(realtimePriority), String(threadId)], {
      timeout: 5000,
      env: { PATH: '/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin' },
    });
    return { priority: 'realtime-fifo', detail: `SCHED_FIFO priority ${realtimePriority}` };
  } catch (fifoError) {
    try {
      setPriority(threadId, -15);
      return {
        priority: 'raised-nice',
        detail: `nice -15 (no real-time scheduling: ${reason(fifoError)})`,
      };
    } catch (niceError) {
      return {
        priority: 'normal',
        detail: `normal priority (${reason(fifoError)}; ${reason(niceError)})`,
      };
    }
  }
}

function reason(error: unknown): string {
  if (error instanceof Error) return error.message.split('\n')[0] ?? error.message;
  return String(error);
}

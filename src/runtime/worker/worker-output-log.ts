import type { Clock } from '../../platform/clock/clock.ts';
import type { Logger } from '../../platform/observability/logger.ts';

/** The most of one write that becomes a log line. */
const LINE_CHARACTERS = 2000;

/**
 * Logs what a worker writes to its stdout and stderr, up to `bytesPerWindow` in every
 * `windowMs`: a worker is untrusted code, and each of its writes would otherwise be a log line
 * of its own, without limit (a worker writing in a loop filled the log at 14 MB/s). Past the
 * budget its output is dropped, said once per window, and counted in the next window's line.
 *
 * @example
 * ```ts
 * const output = new WorkerOutputLog(logger, clock, { bytesPerWindow: 65_536, windowMs: 10_000 });
 * child.stderr.on('data', (chunk) => output.write('stderr', chunk));
 * ```
 */
export class WorkerOutputLog {
  readonly #logger: Logger;
  readonly #clock: Clock;
  readonly #bytesPerWindow: number;
  readonly #windowMs: number;
  #windowStart = Number.NEGATIVE_INFINITY;
  #logged = 0;
  #dropped = 0;

  constructor(
    logger: Logger,
    clock: Clock,
    limits: { readonly bytesPerWindow: number; readonly windowMs: number },
  ) {
    this.#logger = logger;
    this.#clock = clock;
    this.#bytesPerWindow = limits.bytesPerWindow;
    this.#windowMs = limits.windowMs;
  }

  write(stream: 'stdout' | 'stderr', chunk: Buffer): void {
    const now = this.#clock.monotonic();
    if (now - this.#windowStart >= this.#windowMs) {
      if (this.#dropped > 0) {
        this.#logger.warn(
          { droppedBytes: this.#dropped, windowMs: this.#windowMs },
          'agent worker output was dropped: it wrote more than the log takes',
        );
      }
      this.#windowStart = now;
      this.#logged = 0;
      this.#dropped = 0;
    }
    const text = chunk.toString('utf8', 0, Math.min(chunk.length, LINE_CHARACTERS * 4));
    const line = text.slice(0, LINE_CHARACTERS);
    const bytes = Buffer.byteLength(line);
    if (this.#logged + bytes > this.#bytesPerWindow) {
      if (this.#dropped === 0) {
        this.#logger.warn(
          { bytesPerWindow: this.#bytesPerWindow, windowMs: this.#windowMs },
          'agent worker writes more output than the log takes; the rest of this window is dropped',
        );
      }
      this.#dropped += chunk.length;
      return;
    }
    this.#logged += bytes;
    if (stream === 'stderr') this.#logger.warn({ stderr: line }, 'agent worker wrote to stderr');
    else this.#logger.info({ stdout: line }, 'agent worker wrote to stdout');
  }
}

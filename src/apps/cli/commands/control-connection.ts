import { ControlClient } from '../../../runtime/control/control-client.ts';
import { controlSocketPath } from '../../../runtime/node.ts';
import { type CommonOptions, loadForCommand } from '../cli-support.ts';
import type { Output } from '../output.ts';

/**
 * Connects to the running node of the command's data directory, or fails with
 * `KEEL_NODE_NOT_RUNNING` saying how to start one.
 *
 * @example
 * ```ts
 * await using client = await connectToNode(output, options);
 * ```
 */
export async function connectToNode(
  output: Output,
  options: CommonOptions,
): Promise<ControlClient> {
  const loaded = await loadForCommand(output, options);
  return ControlClient.connect(controlSocketPath(loaded.configuration.dataDirectory));
}

/** Formats epoch milliseconds as a short UTC time for tables. */
export function shortTime(epochMs: number): string {
  return new Date(epochMs).toISOString().replace('T', ' ').slice(0, 19);
}

/** Formats bytes as MiB with one decimal. */
export function mebibytes(bytes: number): string {
  return `${(bytes / (1024 * 1024)).toFixed(1)} MiB`;
}

import { createHash } from 'node:crypto';

/**
 * Binds an approval to exactly one call: the agent, its place in a run (if any) and the
 * intent's digest. An approval for this digest authorises that call and nothing else.
 *
 * @example
 * ```ts
 * approvalDigest({ agentId, runId, seq }, parsed.digest);
 * ```
 */
export function approvalDigest(
  call: { readonly agentId: string; readonly runId?: string; readonly seq?: number | undefined },
  intentDigest: string,
): string {
  return createHash('sha256')
    .update(`${call.agentId}\n${call.runId ?? ''}\n${call.seq ?? ''}\n${intentDigest}`)
    .digest('hex');
}

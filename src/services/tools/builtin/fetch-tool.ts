import { z } from 'zod';
import { pinnedFetch } from '../network/pinned-http-fetch.ts';
import { redactSecretsAndPii } from '../secrets/secret-scanner.ts';
import { defineTool, type ToolDefinition } from '../tool-registry.ts';

/** How the fetch tool may reach the network. */
export interface FetchToolSettings {
  readonly timeoutMs: number;
  readonly maxBytes: number;
  readonly maxRedirects: number;
  /**
   * Private ranges an operator opens on purpose (an intranet service), as CIDRs. Empty by
   * default: private, loopback, link-local and metadata addresses are refused.
   */
  readonly allowedAddresses: readonly string[];
}

/**
 * `fetch_url`: an HTTP(S) GET or HEAD through the SSRF-safe client (the host resolved once and
 * the connection pinned to that address; private, loopback, link-local, CGNAT, multicast and
 * metadata addresses refused in every notation; every redirect checked again, and kept on the
 * first URL's host). Which domains an agent may reach is its grant's `domains` limit, checked
 * by the gate before this runs.
 * Its result is untrusted content: after it, a side-effecting call needs approval.
 *
 * @example
 * ```ts
 * new ToolRegistry([createFetchTool({ timeoutMs: 15_000, maxBytes: 262_144, maxRedirects: 5, allowedAddresses: [] })]);
 * ```
 */
export function createFetchTool(settings: FetchToolSettings): ToolDefinition<never> {
  const tool = defineTool({
    name: 'fetch_url',
    description: 'Fetches a web page or API response over http or https (GET or HEAD).',
    untrustedContent: true,
    input: z.strictObject({
      url: z.string().min(1).max(8192),
      method: z.enum(['GET', 'HEAD']).optional(),
    }),
    execute: async (input, context) => {
      const response = await pinnedFetch({
        url: input.url,
        method: input.method ?? 'GET',
        maxBytes: settings.maxBytes,
        timeoutMs: settings.timeoutMs,
        maxRedirects: settings.maxRedirects,
        allowedAddresses: settings.allowedAddresses,
        // The grant's domains were checked on this URL only: a redirect stays on its host.
        sameHostRedirects: true,
        signal: context.signal,
      });
      return {
        status: response.status,
        url: response.finalUrl,
        contentType: response.headers['content-type'] ?? null,
        // A page is someone else's text: no secret or personal data of it is kept.
        body: redactSecretsAndPii(response.body).text,
        truncated: response.truncated,
        redirects: [...response.redirects],
      };
    },
  });
  return tool as unknown as ToolDefinition<never>;
}

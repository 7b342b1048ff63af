import { ALLOW, type VerifierRule } from '../verifier-rule.ts';

/**
 * Refuses a `url` parameter that is not plain http(s) or carries credentials
 * (`https://user:pass@host`): credentials belong in secrets, never in an agent's intent.
 * (Address checks with DNS pinning happen in the network tool, where the connection is made.)
 *
 * @example
 * ```ts
 * verifier.register(urlPolicyRule);
 * ```
 */
export const urlPolicyRule: VerifierRule = {
  id: 'url-policy',
  description: 'urls are http(s) without embedded credentials',
  appliesTo: (intent) => intent.params.url !== undefined,
  check: (intent) => {
    const value = intent.params.url;
    if (typeof value !== 'string' || value.length > 8192) {
      return { ok: false, reason: 'url must be a string of at most 8192 characters' };
    }
    let url: URL;
    try {
      url = new URL(value);
    } catch {
      return { ok: false, reason: 'url is not a valid absolute URL' };
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      return { ok: false, reason: `url scheme ${url.protocol} is not allowed; use http or https` };
    }
    if (url.username !== '' || url.password !== '') {
      return { ok: false, reason: 'url must not embed credentials' };
    }
    return ALLOW;
  },
};

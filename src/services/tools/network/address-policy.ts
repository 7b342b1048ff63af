/**
 * The address policy of outbound HTTP: which URLs, host names and IP addresses a tool may reach.
 * Everything here is pure and never throws: an odd value is a refusal, never a widening.
 *
 * URL parsing is WHATWG's (`URL`), which already canonicalises every IPv4 notation
 * (`http://2130706433/`, `http://0x7f.1/`, `http://127.1/`, full-width digits) into dotted
 * decimal and every IPv6 literal into its compressed bracketed form, so the checks below see
 * one spelling per address. Names are checked here; the addresses a name resolves to are checked
 * by {@link checkResolvedAddresses} once per connection (see `pinned-http-fetch.ts`).
 */
import { isIP } from 'node:net';
import { compileDomain, normaliseHost } from '../../../kernel/capabilities/pattern-matchers.ts';

/** Whether an IP address may be reached, and if not, the name of the range that refused it. */
export type AddressClassification =
  | { readonly allowed: true }
  | { readonly allowed: false; readonly range: string };

/** A URL's host, parsed: an IP literal, an acceptable DNS name, or a refusal. */
export type HostLiteral =
  | { readonly ok: true; readonly kind: 'address'; readonly host: string; readonly family: 4 | 6 }
  | { readonly ok: true; readonly kind: 'name'; readonly host: string }
  | { readonly ok: false; readonly rule: string; readonly reason: string };

/** Why a URL or an address set is refused; `rule` is stable, `reason` is for people. */
export interface NetworkRefusal {
  readonly ok: false;
  readonly code: 'KEEL_POLICY_VIOLATION';
  readonly reason: string;
  readonly rule: string;
  readonly host?: string;
  readonly address?: string;
}

/** A URL that passed {@link checkUrl}: `host` is lower-case, without brackets or trailing dot. */
export interface CheckedUrl {
  readonly ok: true;
  readonly url: URL;
  readonly host: string;
  readonly literal: boolean;
}

export interface UrlPolicyOptions {
  /** Domain patterns as in `compileDomain`; when given, the host must match one of them. */
  readonly allowedDomains?: readonly string[] | undefined;
  /** CIDRs (or single addresses) an operator explicitly opens, such as an intranet. */
  readonly allowedAddresses?: readonly string[] | undefined;
}

/** The longest URL accepted. */
export const MAX_URL_LENGTH = 8192;

interface AddressBlock {
  readonly bytes: Uint8Array;
  readonly prefixLength: number;
}

function parseIpv4(text: string): Uint8Array | undefined {
  const parts = text.split('.');
  if (parts.length !== 4) return undefined;
  const bytes = new Uint8Array(4);
  for (const [index, part] of parts.entries()) {
    if (!/^\d{1,3}$/.test(part) || Number(part) > 255) return undefined;
    bytes[index] = Number(part);
  }
  return bytes;
}

function parseIpv6(text: string): Uint8Array | undefined {
  const bytes = new Uint8Array(16);
  let groupsText = text;
  let embedded: Uint8Array | undefined;
  const lastColon = text.lastIndexOf(':');
  if (text.includes('.', lastColon)) {
    embedded = parseIpv4(text.slice(lastColon + 1));
    if (embedded === undefined) return undefined;
    groupsText = `${text.slice(0, lastColon + 1)}0:0`;
  }
  const halves = groupsText.split('::');
  if (halves.length > 2) return undefined;
  const head = halves[0] ? halves[0].split(':') : [];
  const tail = halves.length === 2 && halves[1] ? halves[1].split(':') : [];
  const missing = 8 - head.length - tail.length;
  if (halves.length === 2 ? missing < 1 : missing !== 0) return undefined;
  const groups = [...head, ...Array.from({ length: missing }, () => '0'), ...tail];
  for (const [index, group] of groups.entries()) {
    if (!/^[0-9a-f]{1,4}$/i.test(group)) return undefined;
    const value = Number.parseInt(group, 16);
    bytes[index * 2] = value >> 8;
    bytes[index * 2 + 1] = value & 0xff;
  }
  if (embedded !== undefined) bytes.set(embedded, 12);
  return bytes;
}

/** Parses an IPv4 or IPv6 address into 4 or 16 bytes; zone ids (`%eth0`) are not addresses. */
function parseAddress(text: string): Uint8Array | undefined {
  if (typeof text !== 'string' || text.includes('%')) return undefined;
  const family = isIP(text);
  if (family === 4) return parseIpv4(text);
  if (family === 6) return parseIpv6(text);
  return undefined;
}

function parseCidr(text: string): AddressBlock | undefined {
  if (typeof text !== 'string') return undefined;
  const slash = text.indexOf('/');
  const bytes = parseAddress(slash === -1 ? text : text.slice(0, slash));
  if (bytes === undefined) return undefined;
  const bits = bytes.length * 8;
  if (slash === -1) return { bytes, prefixLength: bits };
  const prefixText = text.slice(slash + 1);
  if (!/^\d{1,3}$/.test(prefixText) || Number(prefixText) > bits) return undefined;
  return { bytes, prefixLength: Number(prefixText) };
}

function inBlock(block: AddressBlock, bytes: Uint8Array): boolean {
  if (block.bytes.length !== bytes.length) return false;
  const whole = Math.floor(block.prefixLength / 8);
  for (let index = 0; index < whole; index += 1) {
    if (block.bytes[index] !== bytes[index]) return false;
  }
  const rest = block.prefixLength % 8;
  if (rest === 0) return true;
  const mask = (0xff << (8 - rest)) & 0xff;
  return ((block.bytes[whole] ?? 0) & mask) === ((bytes[whole] ?? 0) & mask);
}

/** A block from a constant of this module; a typo here is a bug caught at load. */
function knownBlock(cidr: string): AddressBlock {
  const block = parseCidr(cidr);
  if (block === undefined) throw new TypeError(`address-policy: bad constant CIDR ${cidr}`);
  return block;
}

/** IPv4 ranges that are never reached (RFC 6890 special-purpose registry and friends). */
const IPV4_REFUSED: readonly (readonly [AddressBlock, string])[] = (
  [
    ['169.254.169.254/32', 'cloud-metadata'],
    ['100.100.100.200/32', 'cloud-metadata'],
    ['0.0.0.0/8', 'this-network'],
    ['10.0.0.0/8', 'private'],
    ['100.64.0.0/10', 'carrier-grade-nat'],
    ['127.0.0.0/8', 'loopback'],
    ['169.254.0.0/16', 'link-local'],
    ['172.16.0.0/12', 'private'],
    ['192.0.0.0/24', 'ietf-protocol-assignments'],
    ['192.0.2.0/24', 'documentation'],
    ['192.88.99.0/24', '6to4-relay-anycast'],
    ['192.168.0.0/16', 'private'],
    ['198.18.0.0/15', 'benchmarking'],
    ['198.51.100.0/24', 'documentation'],
    ['203.0.113.0/24', 'documentation'],
    ['224.0.0.0/4', 'multicast'],
    ['255.255.255.255/32', 'broadcast'],
    ['240.0.0.0/4', 'reserved'],
  ] as const
).map(([cidr, range]) => [knownBlock(cidr), range] as const);

/**
 * IPv6 ranges, in order. `embedded` lists the byte positions of an IPv4 address carried inside
 * (RFC 4291 mapped and compatible, RFC 6052 NAT64, RFC 3056 6to4): such an address is judged by
 * its IPv4 address, and refused when any candidate position holds a refused one.
 */
const IPV6_RULES: readonly {
  readonly block: AddressBlock;
  readonly range: string;
  readonly embedded?: readonly (readonly number[])[];
}[] = [
  { block: knownBlock('::/128'), range: 'unspecified' },
  { block: knownBlock('::1/128'), range: 'loopback' },
  { block: knownBlock('::ffff:0:0/96'), range: 'ipv4-mapped', embedded: [[12, 13, 14, 15]] },
  { block: knownBlock('::/96'), range: 'ipv4-compatible', embedded: [[12, 13, 14, 15]] },
  { block: knownBlock('64:ff9b::/96'), range: 'nat64', embedded: [[12, 13, 14, 15]] },
  {
    block: knownBlock('64:ff9b:1::/48'),
    range: 'nat64-local-use',
    embedded: [
      [6, 7, 9, 10],
      [7, 9, 10, 11],
      [9, 10, 11, 12],
      [12, 13, 14, 15],
    ],
  },
  { block: knownBlock('2002::/16'), range: '6to4', embedded: [[2, 3, 4, 5]] },
  { block: knownBlock('2001::/32'), range: 'teredo' },
  { block: knownBlock('2001:db8::/32'), range: 'documentation' },
  { block: knownBlock('2001::/23'), range: 'ietf-protocol-assignments' },
  { block: knownBlock('3fff::/20'), range: 'documentation' },
  { block: knownBlock('100::/64'), range: 'discard' },
  { block: knownBlock('fc00::/7'), range: 'unique-local' },
  { block: knownBlock('fe80::/10'), range: 'link-local' },
  { block: knownBlock('fec0::/10'), range: 'site-local' },
  { block: knownBlock('ff00::/8'), range: 'multicast' },
];

const GLOBAL_UNICAST = knownBlock('2000::/3');
const IPV4_MAPPED = knownBlock('::ffff:0:0/96');

function classifyBytes(bytes: Uint8Array): AddressClassification {
  if (bytes.length === 4) {
    const refused = IPV4_REFUSED.find(([block]) => inBlock(block, bytes));
    return refused === undefined ? { allowed: true } : { allowed: false, range: refused[1] };
  }
  const rule = IPV6_RULES.find((candidate) => inBlock(candidate.block, bytes));
  if (rule === undefined) {
    return inBlock(GLOBAL_UNICAST, bytes)
      ? { allowed: true }
      : { allowed: false, range: 'not-global-unicast' };
  }
  if (rule.embedded === undefined) return { allowed: false, range: rule.range };
  for (const positions of rule.embedded) {
    const inner = classifyBytes(Uint8Array.from(positions, (position) => bytes[position] ?? 0));
    if (!inner.allowed) return { allowed: false, range: `${rule.range}:${inner.range}` };
  }
  return { allowed: true };
}

/**
 * Classifies a literal IPv4 or IPv6 address: loopback, private, link-local (cloud metadata),
 * carrier-grade NAT, documentation, multicast, reserved and the IPv6 forms that carry such an
 * IPv4 address are refused. Anything that is not a plain address — a zone id, a host name,
 * garbage — is refused too.
 *
 * @example
 * ```ts
 * classifyAddress('8.8.8.8'); // { allowed: true }
 * classifyAddress('::ffff:7f00:1'); // { allowed: false, range: 'ipv4-mapped:loopback' }
 * classifyAddress('fe80::1%eth0'); // { allowed: false, range: 'zone-id' }
 * ```
 */
export function classifyAddress(ip: string): AddressClassification {
  if (typeof ip !== 'string') return { allowed: false, range: 'not-an-address' };
  if (ip.includes('%')) return { allowed: false, range: 'zone-id' };
  const bytes = parseAddress(ip);
  if (bytes === undefined) return { allowed: false, range: 'not-an-address' };
  return classifyBytes(bytes);
}

/** Names that only ever mean this machine or a local network (RFC 6761, 6762, 8375). */
const RESERVED_NAME_SUFFIXES = [
  'localhost',
  'localdomain',
  'local',
  'internal',
  'home.arpa',
  'in-addr.arpa',
  'ip6.arpa',
];

/**
 * Parses a URL's `hostname` (as WHATWG `URL` gives it) into an IP literal or a DNS name, and
 * refuses names that are local by definition (`localhost`, `*.local`, `*.internal`,
 * `*.home.arpa`, reverse-DNS names), single-label names (which a resolver completes with its
 * search domains into intranet names) and anything that is neither a valid DNS name nor a plain
 * address. Addresses are returned unclassified: see {@link classifyAddress}.
 *
 * @example
 * ```ts
 * parseHostLiteral(new URL('http://0x7f.1/').hostname); // { ok: true, kind: 'address', host: '127.0.0.1', family: 4 }
 * parseHostLiteral('[::1]'); // { ok: true, kind: 'address', host: '::1', family: 6 }
 * parseHostLiteral('metadata.google.internal'); // { ok: false, rule: 'host-reserved-name', … }
 * ```
 */
export function parseHostLiteral(hostname: string): HostLiteral {
  if (typeof hostname !== 'string' || hostname.length === 0) {
    return { ok: false, rule: 'host-invalid', reason: 'the URL has no host' };
  }
  if (hostname.startsWith('[') && hostname.endsWith(']')) {
    const inner = hostname.slice(1, -1);
    if (inner.includes('%')) {
      return { ok: false, rule: 'host-zone-id', reason: 'IPv6 zone ids are not allowed' };
    }
    if (parseAddress(inner)?.length !== 16) {
      return { ok: false, rule: 'host-invalid', reason: `${hostname} is not an IPv6 address` };
    }
    return { ok: true, kind: 'address', host: inner.toLowerCase(), family: 6 };
  }
  if (isIP(hostname) === 4) return { ok: true, kind: 'address', host: hostname, family: 4 };
  const name = normaliseHost(hostname);
  if (name === undefined) {
    return {
      ok: false,
      rule: 'host-invalid',
      reason: `${hostname} is neither a valid DNS name nor an IP address`,
    };
  }
  if (RESERVED_NAME_SUFFIXES.some((suffix) => name === suffix || name.endsWith(`.${suffix}`))) {
    return { ok: false, rule: 'host-reserved-name', reason: `${name} is a local-only name` };
  }
  if (!name.includes('.')) {
    return {
      ok: false,
      rule: 'host-single-label',
      reason: `${name} is a single-label name, which resolves inside the local network`,
    };
  }
  return { ok: true, kind: 'name', host: name };
}

function refusal(rule: string, reason: string, extra: { host?: string; address?: string } = {}) {
  return { ok: false, code: 'KEEL_POLICY_VIOLATION', rule, reason, ...extra } as const;
}

/** Compiles the operator's CIDRs, or names the first one that is not valid. */
function compileAllowedAddresses(
  cidrs: readonly string[] | undefined,
): { readonly blocks: readonly AddressBlock[] } | { readonly invalid: string } {
  const blocks: AddressBlock[] = [];
  for (const cidr of cidrs ?? []) {
    const block = parseCidr(cidr);
    if (block === undefined) return { invalid: String(cidr) };
    blocks.push(block);
  }
  return { blocks };
}

/** An address that the policy refuses, unless an operator's CIDR opens it. */
function addressVerdict(address: string, allowed: readonly AddressBlock[]): AddressClassification {
  const classification = classifyAddress(address);
  if (classification.allowed || classification.range === 'zone-id') return classification;
  const bytes = parseAddress(address);
  if (bytes === undefined) return classification;
  const mapped = bytes.length === 16 && inBlock(IPV4_MAPPED, bytes);
  const candidates = mapped ? [bytes, bytes.subarray(12)] : [bytes];
  const opened = allowed.some((block) => candidates.some((candidate) => inBlock(block, candidate)));
  return opened ? { allowed: true } : classification;
}

/**
 * Checks a URL before anything is resolved or connected: http or https only, no credentials,
 * at most {@link MAX_URL_LENGTH} characters, a port from 1 to 65535, a host that is a valid DNS
 * name outside the local-only names or an IP literal outside the refused ranges (unless in
 * `allowedAddresses`), and, when `allowedDomains` is given, a host that matches one of its
 * patterns (an IP literal never does). Never throws.
 *
 * @example
 * ```ts
 * checkUrl('http://0x7f.1/', {}); // { ok: false, code: 'KEEL_POLICY_VIOLATION', rule: 'address-blocked', … }
 * checkUrl('https://api.example.org/v1', { allowedDomains: ['*.example.org'] }); // { ok: true, host: 'api.example.org', literal: false, … }
 * ```
 */
export function checkUrl(url: string, options: UrlPolicyOptions = {}): CheckedUrl | NetworkRefusal {
  try {
    if (typeof url !== 'string') return refusal('url-invalid', 'the URL is not a string');
    if (url.length > MAX_URL_LENGTH) {
      return refusal('url-too-long', `the URL is longer than ${MAX_URL_LENGTH} characters`);
    }
    const parsed = URL.parse(url);
    if (parsed === null) return refusal('url-invalid', 'the URL cannot be parsed');
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
      return refusal('scheme', `the scheme ${parsed.protocol} is not allowed; use http or https`);
    }
    if (parsed.username !== '' || parsed.password !== '') {
      return refusal('credentials', 'credentials in the URL are not allowed');
    }
    if (parsed.port !== '' && !(Number(parsed.port) >= 1 && Number(parsed.port) <= 65535)) {
      return refusal('port', `the port ${parsed.port} is not allowed`);
    }
    const host = parseHostLiteral(parsed.hostname);
    if (!host.ok) return refusal(host.rule, host.reason, { host: parsed.hostname });
    const allowedAddresses = compileAllowedAddresses(options.allowedAddresses);
    if ('invalid' in allowedAddresses) {
      return refusal(
        'allowed-addresses-invalid',
        `the allowed address ${allowedAddresses.invalid} is not a valid CIDR`,
      );
    }
    if (host.kind === 'address') {
      const verdict = addressVerdict(host.host, allowedAddresses.blocks);
      if (!verdict.allowed) {
        return refusal('address-blocked', `${host.host} is in a refused range (${verdict.range})`, {
          host: host.host,
          address: host.host,
        });
      }
    }
    if (options.allowedDomains !== undefined) {
      const matches =
        host.kind === 'name' &&
        options.allowedDomains.some((pattern) => compileDomain(pattern)(host.host));
      if (!matches) {
        return refusal('domain-allowlist', `${host.host} is not in the allowed domains`, {
          host: host.host,
        });
      }
    }
    return { ok: true, url: parsed, host: host.host, literal: host.kind === 'address' };
  } catch (error) {
    // Unreachable by design; a refusal is still the only safe answer if it ever happens.
    return refusal('url-invalid', `the URL could not be checked: ${String(error)}`);
  }
}

/**
 * Checks every address a host name resolved to. All must be allowed: a name that resolves to
 * one public and one private address is refused as a whole, since the connection could be made
 * to either. No address at all is refused too. Never throws.
 *
 * @example
 * ```ts
 * checkResolvedAddresses(['93.184.216.34'], []); // { ok: true }
 * checkResolvedAddresses(['93.184.216.34', '10.0.0.5'], []); // { ok: false, rule: 'address-blocked', address: '10.0.0.5', … }
 * checkResolvedAddresses(['127.0.0.1'], ['127.0.0.1/32']); // { ok: true }
 * ```
 */
export function checkResolvedAddresses(
  addresses: readonly string[],
  allowedAddresses: readonly string[] = [],
): { readonly ok: true } | NetworkRefusal {
  try {
    if (!Array.isArray(addresses) || addresses.length === 0) {
      return refusal('resolution-empty', 'the host resolved to no address');
    }
    const allowed = compileAllowedAddresses(allowedAddresses);
    if ('invalid' in allowed) {
      return refusal(
        'allowed-addresses-invalid',
        `the allowed address ${allowed.invalid} is not a valid CIDR`,
      );
    }
    for (const address of addresses) {
      const verdict = addressVerdict(address, allowed.blocks);
      if (!verdict.allowed) {
        return refusal(
          'address-blocked',
          `the host resolved to ${String(address)}, which is in a refused range (${verdict.range})`,
          { address: String(address) },
        );
      }
    }
    return { ok: true };
  } catch (error) {
    // Unreachable by design; refuse rather than let a resolver's odd answer through.
    return refusal('resolution-invalid', `the addresses could not be checked: ${String(error)}`);
  }
}

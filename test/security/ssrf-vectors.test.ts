/**
 * The SSRF vectors the fetch tool's network layer must refuse: every encoding of loopback,
 * private, link-local and metadata addresses, IPv6 forms that carry such an IPv4 address,
 * local-only names, odd schemes, credentials, allowlist escapes and names that resolve inside.
 * A few allowed controls prove the policy is not simply refusing everything.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { isKeelError } from '../../src/platform/errors/keel-error.ts';
import {
  checkResolvedAddresses,
  checkUrl,
  classifyAddress,
} from '../../src/services/tools/network/address-policy.ts';
import {
  type ResolvedAddress,
  resolvePinnedTarget,
} from '../../src/services/tools/network/pinned-http-fetch.ts';

interface Vector {
  readonly url: string;
  /** The rule that must refuse it. */
  readonly rule: string;
  readonly allowedDomains?: readonly string[];
}

interface ResolvedVector {
  readonly url: string;
  /** What the stub resolver answers for the URL's host. */
  readonly resolvesTo: readonly string[];
}

const BLOCKED = 'address-blocked';
const RESERVED = 'host-reserved-name';
const SCHEME = 'scheme';
const CREDENTIALS = 'credentials';
const ALLOWLIST = 'domain-allowlist';

/** URLs refused by `checkUrl` alone, before any resolution. */
const URL_VECTORS: readonly Vector[] = [
  // Loopback, in every IPv4 notation WHATWG URL accepts.
  { url: 'http://127.0.0.1/', rule: BLOCKED },
  { url: 'http://127.0.0.1:8080/admin', rule: BLOCKED },
  { url: 'http://127.0.0.1./', rule: BLOCKED },
  { url: 'http://2130706433/', rule: BLOCKED },
  { url: 'http://0x7f000001/', rule: BLOCKED },
  { url: 'http://0x7f.1/', rule: BLOCKED },
  { url: 'http://0x7f.0x0.0x0.0x1/', rule: BLOCKED },
  { url: 'http://0x7f.0.0.1/', rule: BLOCKED },
  { url: 'http://017700000001/', rule: BLOCKED },
  { url: 'http://0177.0.0.1/', rule: BLOCKED },
  { url: 'http://0177.0.0.01/', rule: BLOCKED },
  { url: 'http://127.000.000.001/', rule: BLOCKED },
  { url: 'http://127.1/', rule: BLOCKED },
  { url: 'http://127.0.1/', rule: BLOCKED },
  { url: 'http://127.255.255.254/', rule: BLOCKED },
  { url: 'http://%31%32%37.0.0.1/', rule: BLOCKED },
  { url: 'http://127%2E0%2E0%2E1/', rule: BLOCKED },
  // "This network": connects to the local host on most systems.
  { url: 'http://0/', rule: BLOCKED },
  { url: 'http://0.0.0.0/', rule: BLOCKED },
  { url: 'http://0x0/', rule: BLOCKED },
  { url: 'http://0.0.0.0:22/', rule: BLOCKED },
  // IPv6 loopback and unspecified, and IPv4 loopback inside IPv6.
  { url: 'http://[::1]/', rule: BLOCKED },
  { url: 'http://[0:0:0:0:0:0:0:1]/', rule: BLOCKED },
  { url: 'http://[0000::1]:80/', rule: BLOCKED },
  { url: 'http://[::]/', rule: BLOCKED },
  { url: 'http://[::ffff:127.0.0.1]/', rule: BLOCKED },
  { url: 'http://[::ffff:7f00:1]/', rule: BLOCKED },
  { url: 'http://[0:0:0:0:0:ffff:127.0.0.1]/', rule: BLOCKED },
  { url: 'http://[::127.0.0.1]/', rule: BLOCKED },
  { url: 'http://[::ffff:0:127.0.0.1]/', rule: BLOCKED },
  // Link-local and cloud metadata in every encoding.
  { url: 'http://169.254.169.254/latest/meta-data/', rule: BLOCKED },
  { url: 'http://2852039166/', rule: BLOCKED },
  { url: 'http://0xa9fea9fe/', rule: BLOCKED },
  { url: 'http://0xa9.0xfe.0xa9.0xfe/', rule: BLOCKED },
  { url: 'http://0251.0376.0251.0376/', rule: BLOCKED },
  { url: 'http://169.254.43518/', rule: BLOCKED },
  { url: 'http://[::ffff:169.254.169.254]/', rule: BLOCKED },
  { url: 'http://[::ffff:a9fe:a9fe]/', rule: BLOCKED },
  { url: 'http://[fd00:ec2::254]/', rule: BLOCKED },
  { url: 'http://100.100.100.200/latest/meta-data/', rule: BLOCKED },
  { url: 'http://metadata.google.internal/computeMetadata/v1/', rule: RESERVED },
  { url: 'http://metadata.google.internal./', rule: RESERVED },
  { url: 'http://METADATA.GOOGLE.INTERNAL/', rule: RESERVED },
  { url: 'http://169.254.0.1/', rule: BLOCKED },
  { url: 'http://[fe80::1]/', rule: BLOCKED },
  { url: 'http://[fe80::1%25eth0]/', rule: 'url-invalid' },
  // Carrier-grade NAT and the private ranges.
  { url: 'http://100.64.0.1/', rule: BLOCKED },
  { url: 'http://100.127.255.254/', rule: BLOCKED },
  { url: 'http://10.0.0.1/', rule: BLOCKED },
  { url: 'http://012.0.0.1/', rule: BLOCKED },
  { url: 'http://10.255.255.255/', rule: BLOCKED },
  { url: 'http://172.16.0.1/', rule: BLOCKED },
  { url: 'http://172.31.255.254/', rule: BLOCKED },
  { url: 'http://192.168.0.1/', rule: BLOCKED },
  { url: 'https://192.168.1.1:8443/', rule: BLOCKED },
  { url: 'http://3232235777/', rule: BLOCKED },
  { url: 'http://[fc00::1]/', rule: BLOCKED },
  { url: 'http://[fdff:ffff::1]/', rule: BLOCKED },
  { url: 'http://[fec0::1]/', rule: BLOCKED },
  // Multicast, broadcast, reserved, documentation, benchmarking.
  { url: 'http://224.0.0.1/', rule: BLOCKED },
  { url: 'http://239.255.255.250/', rule: BLOCKED },
  { url: 'http://255.255.255.255/', rule: BLOCKED },
  { url: 'http://4294967295/', rule: BLOCKED },
  { url: 'http://240.0.0.1/', rule: BLOCKED },
  { url: 'http://[ff02::1]/', rule: BLOCKED },
  { url: 'http://192.0.2.1/', rule: BLOCKED },
  { url: 'http://198.51.100.7/', rule: BLOCKED },
  { url: 'http://203.0.113.9/', rule: BLOCKED },
  { url: 'http://198.18.0.1/', rule: BLOCKED },
  { url: 'http://192.88.99.1/', rule: BLOCKED },
  { url: 'http://192.0.0.170/', rule: BLOCKED },
  { url: 'http://[2001:db8::1]/', rule: BLOCKED },
  { url: 'http://[100::1]/', rule: BLOCKED },
  // NAT64, 6to4 and Teredo carrying a refused IPv4 address.
  { url: 'http://[64:ff9b::7f00:1]/', rule: BLOCKED },
  { url: 'http://[64:ff9b::169.254.169.254]/', rule: BLOCKED },
  { url: 'http://[64:ff9b::10.0.0.1]/', rule: BLOCKED },
  { url: 'http://[64:ff9b:1::a00:1]/', rule: BLOCKED },
  { url: 'http://[2002:7f00:1::]/', rule: BLOCKED },
  { url: 'http://[2002:a9fe:a9fe::1]/', rule: BLOCKED },
  { url: 'http://[2002:c0a8:101::1]/', rule: BLOCKED },
  { url: 'http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/', rule: BLOCKED },
  // Local-only and malformed names.
  { url: 'http://localhost/', rule: RESERVED },
  { url: 'http://LOCALHOST/', rule: RESERVED },
  { url: 'http://localhost./', rule: RESERVED },
  { url: 'http://LocalHost:3000/', rule: RESERVED },
  { url: 'http://local%68ost/', rule: RESERVED },
  { url: 'http://loc\u00adalhost/', rule: RESERVED },
  { url: 'http://api.localhost/', rule: RESERVED },
  { url: 'http://localhost.localdomain/', rule: RESERVED },
  { url: 'http://printer.local/', rule: RESERVED },
  { url: 'http://db.internal/', rule: RESERVED },
  { url: 'http://router.home.arpa/', rule: RESERVED },
  { url: 'http://1.0.0.127.in-addr.arpa/', rule: RESERVED },
  { url: `http://${'0.'.repeat(31)}1.ip6.arpa/`, rule: RESERVED },
  { url: 'http://intranet/', rule: 'host-single-label' },
  { url: 'http://ex_ample.com/', rule: 'host-invalid' },
  // Unicode that WHATWG folds into a refused address or name.
  { url: 'http://\uff11\uff12\uff17.\uff10.\uff10.\uff11/', rule: BLOCKED },
  { url: 'http://127\u30020\u30020\u30021/', rule: BLOCKED },
  { url: 'http://\uff11\uff12\uff17\uff0e\uff10\uff0e\uff10\uff0e\uff11/', rule: BLOCKED },
  { url: 'http://\u2460\u2461\u2466.0.0.1/', rule: BLOCKED },
  { url: 'http://\u{1d7cf}\u{1d7d0}\u{1d7d5}.0.0.1/', rule: BLOCKED },
  { url: 'http://\uff4c\uff4f\uff43\uff41\uff4c\uff48\uff4f\uff53\uff54/', rule: RESERVED },
  { url: 'http://localhost%E3%80%82/', rule: RESERVED },
  // Credentials and confusing user-info.
  { url: 'http://user:pass@example.com/', rule: CREDENTIALS },
  { url: 'http://user@example.com/', rule: CREDENTIALS },
  { url: 'http://example.com@127.0.0.1/', rule: CREDENTIALS },
  { url: 'http://:secret@example.com/', rule: CREDENTIALS },
  { url: 'http://127.0.0.1#@example.com/', rule: BLOCKED },
  // Schemes other than http and https.
  { url: 'file:///etc/passwd', rule: SCHEME },
  { url: 'gopher://127.0.0.1:70/_GET%20/', rule: SCHEME },
  { url: 'ftp://example.com/', rule: SCHEME },
  { url: 'data:text/plain,hello', rule: SCHEME },
  { url: 'javascript:alert(1)', rule: SCHEME },
  { url: 'dict://127.0.0.1:11211/stat', rule: SCHEME },
  { url: 'ldap://127.0.0.1/', rule: SCHEME },
  { url: 'ws://example.com/', rule: SCHEME },
  // Ports, lengths and garbage.
  { url: 'http://example.com:0/', rule: 'port' },
  { url: 'http://example.com:65536/', rule: 'url-invalid' },
  { url: '//127.0.0.1/', rule: 'url-invalid' },
  { url: '', rule: 'url-invalid' },
  { url: 'http://127.0.0.1%00.example.com/', rule: 'url-invalid' },
  { url: `http://example.com/${'a'.repeat(8200)}`, rule: 'url-too-long' },
  // Domain allowlist escapes.
  { url: 'http://evil.com/', rule: ALLOWLIST, allowedDomains: ['*.example.org'] },
  { url: 'http://example.org.evil.com/', rule: ALLOWLIST, allowedDomains: ['*.example.org'] },
  { url: 'http://example.org/', rule: ALLOWLIST, allowedDomains: ['*.example.org'] },
  { url: 'http://evilexample.org/', rule: ALLOWLIST, allowedDomains: ['*.example.org'] },
  { url: 'http://evil-example.org/', rule: ALLOWLIST, allowedDomains: ['example.org'] },
  { url: 'http://93.184.216.34/', rule: ALLOWLIST, allowedDomains: ['*.example.org'] },
  { url: 'http://93.184.216.34/', rule: ALLOWLIST, allowedDomains: ['93.184.216.34'] },
  { url: 'http://example.org/', rule: ALLOWLIST, allowedDomains: [] },
];

/** Names that pass `checkUrl` but resolve to a refused address. */
const RESOLVED_VECTORS: readonly ResolvedVector[] = [
  { url: 'http://127.0.0.1.nip.io/', resolvesTo: ['127.0.0.1'] },
  { url: 'http://customer.example.com/', resolvesTo: ['10.0.0.5'] },
  { url: 'http://rebind.example.com/', resolvesTo: ['93.184.216.34', '10.0.0.5'] },
  { url: 'http://dual.example.com/', resolvesTo: ['2606:2800:220:1:248:1893:25c6:1946', '::1'] },
  { url: 'http://metadata.example.com/', resolvesTo: ['169.254.169.254'] },
  { url: 'http://mapped.example.com/', resolvesTo: ['::ffff:169.254.169.254'] },
  { url: 'http://ula.example.com/', resolvesTo: ['fd00:ec2::254'] },
  { url: 'http://zone.example.com/', resolvesTo: ['fe80::1%eth0'] },
  { url: 'http://cgnat.example.com/', resolvesTo: ['100.64.1.1'] },
  { url: 'http://nat64.example.com/', resolvesTo: ['64:ff9b::a9fe:a9fe'] },
  { url: 'http://nothing.example.com/', resolvesTo: [] },
  { url: 'http://garbage.example.com/', resolvesTo: ['not-an-address'] },
];

function stubResolver(addresses: readonly string[]) {
  return async (): Promise<ResolvedAddress[]> =>
    addresses.map((address) => ({ address, family: address.includes(':') ? 6 : 4 }));
}

describe('SSRF vectors', () => {
  it('has a table of at least 70 vectors', () => {
    assert.ok(URL_VECTORS.length + RESOLVED_VECTORS.length >= 70);
  });

  for (const vector of URL_VECTORS) {
    const label = vector.url.length > 80 ? `${vector.url.slice(0, 60)}…` : vector.url;
    const suffix = vector.allowedDomains ? ` with domains ${vector.allowedDomains.join(',')}` : '';
    it(`refuses ${JSON.stringify(label)}${suffix} by ${vector.rule}`, async () => {
      const options = vector.allowedDomains ? { allowedDomains: vector.allowedDomains } : {};
      const verdict = checkUrl(vector.url, options);
      assert.equal(verdict.ok, false);
      assert.ok(!verdict.ok);
      assert.equal(verdict.code, 'KEEL_POLICY_VIOLATION');
      assert.equal(verdict.rule, vector.rule, verdict.reason);
      // The fetch path refuses it the same way, without resolving anything.
      let resolved = 0;
      await assert.rejects(
        resolvePinnedTarget(vector.url, {
          ...options,
          resolve: async () => {
            resolved += 1;
            return [{ address: '93.184.216.34', family: 4 }];
          },
        }),
        (error: unknown) =>
          isKeelError(error) &&
          error.code === 'KEEL_POLICY_VIOLATION' &&
          error.details.rule === vector.rule,
      );
      assert.equal(resolved, 0);
    });
  }

  for (const vector of RESOLVED_VECTORS) {
    it(`refuses ${vector.url} resolving to [${vector.resolvesTo.join(', ')}]`, async () => {
      const checked = checkUrl(vector.url, {});
      assert.equal(checked.ok, true, 'the name itself is acceptable');
      const verdict = checkResolvedAddresses(vector.resolvesTo, []);
      assert.equal(verdict.ok, false);
      await assert.rejects(
        resolvePinnedTarget(vector.url, { resolve: stubResolver(vector.resolvesTo) }),
        (error: unknown) => isKeelError(error) && error.code === 'KEEL_POLICY_VIOLATION',
      );
    });
  }

  it('refuses a zone id as an address', () => {
    assert.deepEqual(classifyAddress('fe80::1%eth0'), { allowed: false, range: 'zone-id' });
    assert.deepEqual(classifyAddress('::1%1'), { allowed: false, range: 'zone-id' });
  });
});

describe('allowed controls', () => {
  const controls: readonly { url: string; allowedDomains?: readonly string[] }[] = [
    { url: 'http://93.184.216.34/' },
    { url: 'https://example.org/path?query=1' },
    { url: 'https://example.org:8443/' },
    { url: 'http://[2606:2800:220:1:248:1893:25c6:1946]/' },
    { url: 'http://[::ffff:8.8.8.8]/' },
    { url: 'http://[64:ff9b::808:808]/' },
    { url: 'http://[2002:808:808::1]/' },
    { url: 'https://api.example.org/v1', allowedDomains: ['*.example.org'] },
    { url: 'https://API.Example.org./v1', allowedDomains: ['*.example.org'] },
    { url: 'https://example.org/', allowedDomains: ['example.org'] },
  ];
  for (const control of controls) {
    it(`allows ${control.url}`, () => {
      const options = control.allowedDomains ? { allowedDomains: control.allowedDomains } : {};
      const verdict = checkUrl(control.url, options);
      assert.equal(verdict.ok, true, verdict.ok ? '' : verdict.reason);
    });
  }

  it('allows a name whose every address is public, and pins the first', async () => {
    const target = await resolvePinnedTarget('https://example.org/', {
      resolve: stubResolver(['93.184.216.34', '2606:2800:220:1:248:1893:25c6:1946']),
    });
    assert.equal(target.address, '93.184.216.34');
    assert.equal(target.family, 4);
    assert.equal(target.host, 'example.org');
  });

  it('opens exactly the CIDRs an operator allows', () => {
    const options = { allowedAddresses: ['127.0.0.1/32', '10.1.0.0/16'] };
    assert.equal(checkUrl('http://127.0.0.1:8080/', options).ok, true);
    assert.equal(checkUrl('http://10.1.200.3/', options).ok, true);
    assert.equal(checkUrl('http://127.0.0.2/', options).ok, false);
    assert.equal(checkUrl('http://10.2.0.1/', options).ok, false);
    assert.equal(checkUrl('http://169.254.169.254/', options).ok, false);
    assert.deepEqual(checkResolvedAddresses(['::ffff:127.0.0.1'], ['127.0.0.1/32']), { ok: true });
    const invalid = checkUrl('http://example.org/', { allowedAddresses: ['not-a-cidr'] });
    assert.ok(!invalid.ok);
    assert.equal(invalid.rule, 'allowed-addresses-invalid');
  });
});

describe('properties', () => {
  const runs = { numRuns: 3000 };

  it('checkUrl never throws on arbitrary strings', () => {
    fc.assert(
      fc.property(
        fc.oneof(fc.string(), fc.string({ unit: 'binary' }), fc.webUrl(), fc.ipV4(), fc.ipV6()),
        (input) => {
          const verdict = checkUrl(input, {});
          return typeof verdict.ok === 'boolean';
        },
      ),
      runs,
    );
  });

  it('checkUrl never throws on URLs with arbitrary hosts, ports and options', () => {
    const host = fc.oneof(
      fc.ipV4(),
      fc.ipV4Extended(),
      fc.ipV6().map((ip) => `[${ip}]`),
      fc.domain(),
      fc.string({ unit: 'binary' }),
    );
    fc.assert(
      fc.property(
        fc.constantFrom('http', 'https', 'file', 'gopher', ''),
        host,
        fc.option(fc.integer({ min: -1, max: 70_000 })),
        fc.option(fc.array(fc.string())),
        fc.option(fc.array(fc.string())),
        (scheme, hostText, port, allowedDomains, allowedAddresses) => {
          const url = `${scheme}://${hostText}${port === null ? '' : `:${port}`}/`;
          const verdict = checkUrl(url, {
            ...(allowedDomains === null ? {} : { allowedDomains }),
            ...(allowedAddresses === null ? {} : { allowedAddresses }),
          });
          return typeof verdict.ok === 'boolean';
        },
      ),
      runs,
    );
  });

  it('classifyAddress and checkResolvedAddresses never throw', () => {
    fc.assert(
      fc.property(
        fc.oneof(fc.string(), fc.ipV4(), fc.ipV6(), fc.ipV4Extended()),
        fc.array(fc.oneof(fc.string(), fc.ipV4(), fc.ipV6())),
        (address, addresses) => {
          const classification = classifyAddress(address);
          const verdict = checkResolvedAddresses(addresses, [address]);
          return typeof classification.allowed === 'boolean' && typeof verdict.ok === 'boolean';
        },
      ),
      runs,
    );
  });

  it('judges an IPv4-mapped or NAT64 address like the IPv4 address it carries', () => {
    fc.assert(
      fc.property(fc.ipV4(), (ip) => {
        const plain = classifyAddress(ip).allowed;
        return (
          classifyAddress(`::ffff:${ip}`).allowed === plain &&
          classifyAddress(`64:ff9b::${ip}`).allowed === plain
        );
      }),
      runs,
    );
  });

  it('refuses every URL whose IPv4 host, in any notation, is refused', () => {
    fc.assert(
      fc.property(fc.ipV4Extended(), (ip) => {
        const verdict = checkUrl(`http://${ip}/`, {});
        const parsed = URL.parse(`http://${ip}/`);
        if (parsed === null) return !verdict.ok;
        return verdict.ok === classifyAddress(parsed.hostname).allowed;
      }),
      runs,
    );
  });
});

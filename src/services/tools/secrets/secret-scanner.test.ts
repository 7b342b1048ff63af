import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  MAXIMUM_SCANNED_LENGTH,
  PII_RULES,
  redactSecretsAndPii,
  SECRET_RULES,
  scanForSecrets,
  shannonEntropy,
} from './secret-scanner.ts';

// Every token-shaped value is assembled at run time from a seeded generator and split
// prefixes, so that this file holds nothing a secret scanner would flag.
const UPPER = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ';
const LOWER = 'abcdefghijklmnopqrstuvwxyz';
const DIGITS = '0123456789';
const ALPHANUMERIC = UPPER + LOWER + DIGITS;
const BASE64 = `${ALPHANUMERIC}+/`;
const BASE64URL = `${ALPHANUMERIC}-_`;

/** Deterministic pseudo-random characters from `alphabet` (a linear congruential generator). */
function fakeCharacters(alphabet: string, length: number, seed: number): string {
  let state = seed >>> 0;
  let text = '';
  for (let index = 0; index < length; index += 1) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    text += alphabet.charAt((state >>> 16) % alphabet.length);
  }
  return text;
}

/** Random characters that surely mix upper case, lower case and digits. */
function mixedCharacters(alphabet: string, length: number, seed: number): string {
  return `${fakeCharacters(UPPER, 2, seed)}${fakeCharacters(LOWER, 2, seed + 1)}${fakeCharacters(DIGITS, 2, seed + 2)}${fakeCharacters(alphabet, length - 6, seed + 3)}`;
}

function base64url(value: string): string {
  return Buffer.from(value).toString('base64url');
}

function privateKey(label: string, seed: number): string {
  const marker = [label, 'PRIV', 'ATE KEY'].join('');
  const body = Array.from({ length: 4 }, (_, line) => fakeCharacters(BASE64, 64, seed + line));
  return [`-----BEGIN ${marker}-----`, ...body, `-----END ${marker}-----`].join('\n');
}

/** A valid IBAN for a country and basic bank account number (computes the check digits). */
function iban(country: string, bban: string): string {
  let remainder = 0;
  for (const character of `${bban}${country}00`) {
    const code = character.charCodeAt(0);
    const value = code >= 65 ? code - 55 : code - 48;
    remainder = (remainder * (value >= 10 ? 100 : 10) + value) % 97;
  }
  return `${country}${String(98 - remainder).padStart(2, '0')}${bban}`;
}

/** A card number with a valid Luhn check digit appended to `digits`. */
function luhnComplete(digits: string): string {
  let sum = 0;
  for (let index = 0; index < digits.length; index += 1) {
    let digit = Number(digits[digits.length - 1 - index]);
    if (index % 2 === 0) {
      digit *= 2;
      if (digit > 9) digit -= 9;
    }
    sum += digit;
  }
  return `${digits}${(10 - (sum % 10)) % 10}`;
}

interface SecretCase {
  readonly rule: string;
  readonly secret: string;
  /** The line the secret sits in; `secret` is replaced into `{}`. */
  readonly context: string;
}

const SECRET_CASES: readonly SecretCase[] = [
  ...['RSA ', 'EC ', 'OPENSSH ', 'DSA ', 'ENCRYPTED ', ''].map((label, index) => ({
    rule: 'private-key',
    secret: privateKey(label, 100 + index * 10),
    context: '{}',
  })),
  {
    rule: 'private-key',
    secret: privateKey('PGP ', 200).replaceAll('KEY-----', 'KEY BLOCK-----'),
    context: '{}',
  },
  {
    rule: 'aws-access-key-id',
    secret: `AKI${'A'}${fakeCharacters(UPPER + DIGITS, 16, 1)}`,
    context: 'export AWS_ACCESS_KEY_ID={}',
  },
  {
    rule: 'aws-access-key-id',
    secret: `ASI${'A'}${fakeCharacters(UPPER + DIGITS, 16, 2)}`,
    context: 'key: {}',
  },
  {
    rule: 'aws-secret-access-key',
    secret: fakeCharacters(BASE64, 40, 3),
    context: 'aws_secret_access_key = {}',
  },
  {
    rule: 'aws-secret-access-key',
    secret: fakeCharacters(BASE64, 40, 4),
    context: 'AWS_SECRET_ACCESS_KEY="{}"',
  },
  ...['p', 'o', 'u', 's', 'r'].map((letter, index) => ({
    rule: 'github-token',
    secret: `gh${letter}_${fakeCharacters(ALPHANUMERIC, 36, 10 + index)}`,
    context: 'Authorization: token {}',
  })),
  {
    rule: 'github-token',
    secret: `github${'_pat_'}${fakeCharacters(`${ALPHANUMERIC}_`, 82, 20)}`,
    context: 'GH={}',
  },
  {
    rule: 'gitlab-token',
    secret: `glpat${'-'}${fakeCharacters(BASE64URL, 20, 21)}`,
    context: 'PRIVATE-TOKEN: {}',
  },
  {
    rule: 'slack-token',
    secret: `xox${'b-'}${fakeCharacters(DIGITS, 12, 22)}-${fakeCharacters(DIGITS, 13, 23)}-${fakeCharacters(ALPHANUMERIC, 24, 24)}`,
    context: 'slack: {}',
  },
  {
    rule: 'slack-webhook',
    secret: `https://hooks.${'slack.com'}/services/T${fakeCharacters(UPPER + DIGITS, 8, 25)}/B${fakeCharacters(UPPER + DIGITS, 8, 26)}/${fakeCharacters(ALPHANUMERIC, 24, 27)}`,
    context: 'webhook {} posted',
  },
  {
    rule: 'stripe-key',
    secret: `sk${'_live_'}${fakeCharacters(ALPHANUMERIC, 24, 28)}`,
    context: 'stripe({})',
  },
  {
    rule: 'stripe-key',
    secret: `rk${'_live_'}${fakeCharacters(ALPHANUMERIC, 24, 29)}`,
    context: 'STRIPE={}',
  },
  {
    rule: 'openai-api-key',
    secret: `sk${'-'}${mixedCharacters(ALPHANUMERIC, 48, 30)}`,
    context: 'OPENAI={}',
  },
  {
    rule: 'openai-api-key',
    secret: `sk-${'proj-'}${mixedCharacters(BASE64URL, 120, 31)}`,
    context: 'openai({})',
  },
  {
    rule: 'anthropic-api-key',
    secret: `sk-${'ant-'}api03-${fakeCharacters(BASE64URL, 93, 32)}AA`,
    context: 'x-api-key: {}',
  },
  {
    rule: 'google-api-key',
    secret: `AI${'za'}${fakeCharacters(BASE64URL, 35, 33)}`,
    context: 'maps?key={}&q=1',
  },
  {
    rule: 'jwt',
    secret: `${base64url('{"alg":"HS256","typ":"JWT"}')}.${base64url('{"sub":"1234567890","iat":1516239022}')}.${fakeCharacters(BASE64URL, 43, 34)}`,
    context: 'Authorization: Bearer {}',
  },
  {
    rule: 'generic-secret',
    secret: fakeCharacters(`${ALPHANUMERIC}%^`, 24, 35),
    context: 'const password = "{}";',
  },
  {
    rule: 'generic-secret',
    secret: fakeCharacters(ALPHANUMERIC, 32, 36),
    context: "  api_key: '{}'",
  },
  {
    rule: 'generic-secret',
    secret: fakeCharacters(ALPHANUMERIC, 28, 37),
    context: 'SERVICE_TOKEN={}',
  },
  {
    rule: 'generic-secret',
    secret: fakeCharacters(ALPHANUMERIC, 20, 38),
    context: '"clientSecret": "{}",',
  },
  {
    rule: 'url-credentials',
    secret: `app:${fakeCharacters(ALPHANUMERIC, 20, 39)}`,
    context: 'DATABASE_URL=postgres://{}@db.internal:5432/app',
  },
];

const ORDINARY_TYPESCRIPT = `
import { z } from 'zod';
const configurationSchema = z.strictObject({
  password: z.string().min(16),
  token: z.string().optional(),
  apiKey: z.string(),
});
export async function connect(options: { token?: string; password?: string }): Promise<void> {
  const token = process.env.GITHUB_TOKEN;
  const apiKey = options.apiKey ?? '';
  const password = "";
  const secret = '<your-token>';
  const fallback = { token: 'changeme', password: 'xxxxxxxxxxxxxxxxxxxx' };
  const tokenizer = 'o200k_base';
  const TOKEN_LIMIT = 128_000;
  if (token === undefined) throw new Error(\`missing token for \${options.password}\`);
  headers.set('authorization', \`Bearer \${token}\`);
  const started = 1700000000000;
  const version = '1.2.3';
  const address = '192.168.100.20';
  return fetch('https://api.example.org/v1/items?page=2&limit=50');
}
`;

const ORDINARY_PACKAGE_JSON = JSON.stringify(
  {
    name: 'keel',
    version: '0.1.0',
    type: 'module',
    scripts: { test: 'node --test', typecheck: 'tsc --noEmit -p tsconfig.json' },
    dependencies: { zod: '4.6.7', '@types/node': '24.19.2' },
  },
  null,
  2,
);

const ORDINARY_LOCKFILE_LINES = [
  '    "node_modules/zod": {',
  '      "version": "4.6.7",',
  '      "resolved": "https://registry.npmjs.org/zod/-/zod-4.6.7.tgz",',
  '      "integrity": "sha512-rJ5NQSyjnpo6HSBEYc9Ff6k1EROUuB7KeAfHYVbVDsk68ynY0Eb8JeWflZKXlT6NhYgqyCiBDxE5blXWACXMKQ==",',
  '      "integrity": "sha512-2gV7HHV4qpx+8GotOZMmGqY270ExkftwFG5+DM6nChLmRaP6WP9JKj4e9WjLhih/GsPL9dSGnZHzwCsofHwiAQ==",',
  '      "license": "MIT"',
].join('\n');

const ORDINARY_IDENTIFIERS = [
  'run 3f2b8c1e-9d4a-4f6b-8a7e-2c5d9e1f0a3b started',
  'commit 69e7e50199b348f9c5c975754b97253cc86172fb',
  'HEAD is now at 69e7e50 fix the retry loop',
  'uuid 123e4567-e89b-12d3-a456-426614174000 date 2024-01-15T10:30:00Z',
].join('\n');

describe('scanForSecrets', () => {
  for (const example of SECRET_CASES) {
    it(`detects a ${example.rule} token in "${example.context}"`, () => {
      const text = `first line\n${example.context.replace('{}', () => example.secret)}\nlast line`;
      const findings = scanForSecrets(text);
      assert.equal(findings.length, 1, JSON.stringify(findings));
      const [finding] = findings;
      assert.equal(finding?.rule, example.rule);
      assert.equal(finding?.line, 2);
      assert.equal(finding?.column, example.context.indexOf('{}') + 1);
      assert.equal(finding?.preview.slice(0, 4), example.secret.slice(0, 4));
      assert.match(finding?.preview ?? '', /^.{4}\*+$/s);
      assert.ok(!finding?.preview.includes(example.secret.slice(4, 12)));
      assert.ok(
        SECRET_RULES.some(
          (rule) => rule.id === finding?.rule && rule.description === finding.description,
        ),
      );
    });
  }

  it('reports findings in order with their own lines and columns', () => {
    const github = `ghp_${fakeCharacters(ALPHANUMERIC, 36, 50)}`;
    const aws = `AKIA${fakeCharacters(UPPER + DIGITS, 16, 51)}`;
    const findings = scanForSecrets(`a ${github}\n\n  b ${aws} c ${github}`);
    assert.deepEqual(
      findings.map(({ rule, line, column }) => [rule, line, column]),
      [
        ['github-token', 1, 3],
        ['aws-access-key-id', 3, 5],
        ['github-token', 3, 28],
      ],
    );
  });

  it('finds a key whose footer is missing and covers it to the end of the text', () => {
    const truncated = privateKey('RSA ', 60).split('\n').slice(0, 3).join('\n');
    const redacted = redactSecretsAndPii(`before\n${truncated}`);
    assert.equal(redacted.text, 'before\n[REDACTED:private-key]');
    assert.equal(scanForSecrets(truncated)[0]?.rule, 'private-key');
  });

  describe('does not flag ordinary text', () => {
    const corpora = {
      TypeScript: ORDINARY_TYPESCRIPT,
      'package.json': ORDINARY_PACKAGE_JSON,
      'lockfile lines with sha512 integrity hashes': ORDINARY_LOCKFILE_LINES,
      'UUIDs, git shas and dates': ORDINARY_IDENTIFIERS,
    };
    for (const [name, text] of Object.entries(corpora)) {
      it(`finds no secret and redacts nothing in ${name}`, () => {
        assert.deepEqual(scanForSecrets(text), []);
        assert.deepEqual(redactSecretsAndPii(text), { text, redactions: 0 });
      });
    }

    it('ignores placeholder, empty and low-entropy assignments', () => {
      const lines = [
        'password = ""',
        'token = process.env.X',
        'secret: "changeme-changeme-changeme"',
        'api_key = "xxxxxxxxxxxxxxxxxxxxxxxx"',
        'token = "<your-token-goes-here>"',
        'password = "aaaaaaaaaaaaaaaaaaaaaaaa"',
        'secret = "abcdefghijklmnopqrstuvwx"',
        'token_url = "https://auth.example.org/oauth2/token42"',
        'sk-primary-button-large-variant',
        'postgres://user:password@localhost/db',
      ];
      assert.deepEqual(scanForSecrets(lines.join('\n')), []);
    });
  });

  it('scans at most the first 5 MiB', () => {
    const token = `ghp_${fakeCharacters(ALPHANUMERIC, 36, 52)}`;
    const padding = ' '.repeat(MAXIMUM_SCANNED_LENGTH);
    assert.deepEqual(scanForSecrets(`${padding}${token}`), []);
    assert.equal(scanForSecrets(`${token}${padding}`).length, 1);
    const redacted = redactSecretsAndPii(`${padding}${token}`);
    assert.ok(!redacted.text.includes(token));
    assert.ok(redacted.text.endsWith(`[TRUNCATED:${token.length} characters not scanned]`));
  });
});

describe('redactSecretsAndPii', () => {
  it('replaces each secret with its rule label and keeps the rest', () => {
    for (const example of SECRET_CASES) {
      const line = example.context.replace('{}', () => example.secret);
      const redacted = redactSecretsAndPii(`keep\n${line}\nkeep`);
      const expected = example.context.replace('{}', `[REDACTED:${example.rule}]`);
      assert.deepEqual(redacted, { text: `keep\n${expected}\nkeep`, redactions: 1 }, example.rule);
    }
  });

  it('replaces e-mail addresses, phone numbers, IBANs, card numbers and SSNs', () => {
    const germanIban = iban('DE', '370400440532013000');
    const spacedIban = germanIban.replace(/(.{4})(?=.)/g, '$1 ');
    const visa = luhnComplete('411111111111111');
    const mastercard = luhnComplete('555555555555444');
    const socialSecurity = ['123', '45', '6789'].join('-');
    const input = [
      'Write to ada.lovelace+keel@example.co.uk or ops@mail.example.org.',
      'Call +44 20 7946 0958, +1 (415) 555-0132 or (212) 555-0187 or 212.555.0199.',
      `Pay to ${spacedIban} or ${iban('GB', 'WEST12345698765432')} please.`,
      `Card ${visa.replace(/(.{4})(?=.)/g, '$1 ')} or ${mastercard.replace(/(.{4})(?=.)/g, '$1-')}, exp 12/29.`,
      `SSN ${socialSecurity} on file; ticket 1234-5678 stays.`,
    ].join('\n');
    const redacted = redactSecretsAndPii(input);
    assert.equal(
      redacted.text,
      [
        'Write to [REDACTED:email] or [REDACTED:email].',
        'Call [REDACTED:phone], [REDACTED:phone] or [REDACTED:phone] or [REDACTED:phone].',
        'Pay to [REDACTED:iban] or [REDACTED:iban] please.',
        'Card [REDACTED:credit-card] or [REDACTED:credit-card], exp 12/29.',
        'SSN [REDACTED:us-ssn] on file; ticket 1234-5678 stays.',
      ].join('\n'),
    );
    assert.equal(redacted.redactions, 11);
    assert.deepEqual(
      PII_RULES.map((rule) => rule.id),
      ['email', 'iban', 'credit-card', 'us-ssn', 'phone'],
    );
  });

  it('leaves numbers that fail the Luhn, IBAN or SSN checks alone', () => {
    const visa = luhnComplete('411111111111111');
    const wrongCheckDigit = `${visa.slice(0, -1)}${(Number(visa.at(-1)) + 1) % 10}`;
    const germanIban = iban('DE', '370400440532013000');
    const wrongIban = `${germanIban.slice(0, 2)}${germanIban.slice(2, 4) === '00' ? '01' : '00'}${germanIban.slice(4)}`;
    const text = `card ${wrongCheckDigit} iban ${wrongIban} ssn ${['000', '12', '3456'].join('-')}`;
    assert.deepEqual(redactSecretsAndPii(text), { text, redactions: 0 });
  });

  it('redacts a token inside a URL with credentials once, as the credentials', () => {
    const password = fakeCharacters(ALPHANUMERIC, 20, 53);
    const redacted = redactSecretsAndPii(
      `git remote add origin https://bot:${password}@git.example.org/repo.git`,
    );
    assert.equal(
      redacted.text,
      'git remote add origin https://[REDACTED:url-credentials]@git.example.org/repo.git',
    );
    assert.equal(redacted.redactions, 1);
  });
});

describe('hostile input', () => {
  const MEBIBYTE = 1024 * 1024;
  const fill = (unit: string): string => unit.repeat(Math.ceil(MEBIBYTE / unit.length));
  const adversarial = {
    'one long run': fill('a'),
    'repeated assignments': fill('password='),
    'assignments with long values': fill(`token="${'a1'.repeat(200)} `),
    'token prefixes': fill('ghp_github_pat_glpat-xoxb-sk-ant-AIza'),
    'underscored runs': fill('github_pat_'),
    'private key headers without a footer': fill(`-----BEGIN RSA PRIV${'ATE KEY-----'}\n`),
    'almost JWTs': fill(`eyJ${'a'.repeat(20)}.`),
    'URL schemes with user names': fill('https://a:b'),
    'e-mail fragments': fill('a@a.'),
    'at signs': fill('a@'),
    'digit groups': fill('1 '),
    'card-like digit groups': fill('4 '),
    'card-like four-digit groups': fill('4111 '),
    'hyphenated digits': fill('12-'),
    'phone fragments': fill('+1 ('),
    'IBAN-like groups': fill('AB12 '),
    'IBAN-like groups with a country code': fill('DE12 '),
    'base64 without boundaries': fill(`${BASE64}=`),
  };
  for (const [name, text] of Object.entries(adversarial)) {
    it(`scans and redacts 1 MiB of ${name}`, { timeout: 60_000 }, () => {
      assert.ok(text.length >= MEBIBYTE);
      assert.ok(Array.isArray(scanForSecrets(text)));
      const redacted = redactSecretsAndPii(text);
      assert.equal(typeof redacted.text, 'string');
      assert.ok(redacted.redactions >= 0);
    });
  }

  it('never throws, on any string or on values that are not strings', () => {
    const fragment = fc.constantFrom(
      'password=',
      'token: "',
      '"',
      "'",
      '@',
      '.',
      '-',
      ' ',
      '\n',
      ':',
      '//',
      'https://',
      'ghp_',
      'sk-',
      'AKIA',
      'eyJ',
      '-----BEGIN ',
      'PRIVATE KEY-----',
      '-----END ',
      '+1 ',
      '4111',
      '\ud800',
      '😀',
      'DE89',
      '(555) ',
      'aws_secret_access_key=',
    );
    const fragmentText = fc.array(fragment, { maxLength: 40 }).map((parts) => parts.join(''));
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string({ unit: 'binary' }),
          fc.string({ unit: 'grapheme' }),
          fragmentText,
          fc.tuple(fragmentText, fc.string({ unit: 'binary-ascii' })).map(([a, b]) => a + b + a),
        ),
        (text) => {
          const findings = scanForSecrets(text);
          const redacted = redactSecretsAndPii(text);
          assert.ok(findings.every((finding) => finding.line >= 1 && finding.column >= 1));
          assert.ok(redacted.redactions >= findings.length);
        },
      ),
      { numRuns: 1_000 },
    );
    for (const value of [undefined, null, 42, {}, Symbol('x')]) {
      assert.deepEqual(scanForSecrets(value as unknown as string), []);
      assert.deepEqual(redactSecretsAndPii(value as unknown as string), {
        text: '',
        redactions: 0,
      });
    }
  });

  it('finds and removes a token wherever it sits among ordinary words', () => {
    const word = fc.constantFrom('const', 'x', '=', 'value', '1', 'import', 'path', ' ', '\n');
    const words = fc.array(word, { maxLength: 20 }).map((parts) => parts.join(' '));
    fc.assert(
      fc.property(words, words, fc.integer({ min: 0, max: 10_000 }), (before, after, seed) => {
        const token = `ghp_${fakeCharacters(ALPHANUMERIC, 36, seed)}`;
        const text = `${before} ${token} ${after}`;
        assert.deepEqual(
          scanForSecrets(text).map((finding) => finding.rule),
          ['github-token'],
        );
        const redacted = redactSecretsAndPii(text);
        assert.ok(!redacted.text.includes(token.slice(4)));
        assert.equal(redacted.text, `${before} [REDACTED:github-token] ${after}`);
      }),
      { numRuns: 300 },
    );
  });

  it('measures entropy in bits per character', () => {
    assert.equal(shannonEntropy(''), 0);
    assert.equal(shannonEntropy('aaaa'), 0);
    assert.equal(shannonEntropy('abcd'), 2);
  });
});

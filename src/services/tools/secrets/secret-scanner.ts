/**
 * Finds secrets in text (tool output, files an agent reads or writes, log lines) and redacts
 * them, together with personal data, before the text is stored, shown or sent to a model.
 *
 * Every pattern is linear in the input: no nested quantifiers, every repeated class followed by
 * a literal or a boundary it cannot also match, and a look-behind that stops a match from being
 * retried inside the run it would start in. Looser checks (entropy, Luhn, IBAN mod-97, e-mail
 * shape) run in code on each candidate. At most {@link MAXIMUM_SCANNED_LENGTH} characters are
 * scanned; redaction drops the unscanned rest rather than pass it on unread.
 */

/** One secret found by {@link scanForSecrets}; `preview` never holds the secret itself. */
export interface SecretFinding {
  readonly rule: string;
  readonly description: string;
  /** 1-based line of the secret's first character. */
  readonly line: number;
  /** 1-based column (UTF-16 code units) of the secret's first character. */
  readonly column: number;
  /** The first 4 characters, then one `*` per further character (at most 32). */
  readonly preview: string;
}

/** The result of {@link redactSecretsAndPii}. */
export interface Redaction {
  readonly text: string;
  readonly redactions: number;
}

/** A detection rule, as listed for docs: its id (the `[REDACTED:<id>]` label) and meaning. */
export interface DetectionRuleDescription {
  readonly id: string;
  readonly description: string;
}

/** How many characters (UTF-16 code units) are scanned at most: 5 MiB. */
export const MAXIMUM_SCANNED_LENGTH = 5 * 1024 * 1024;

interface Span {
  readonly start: number;
  readonly end: number;
}

interface DetectionRule extends DetectionRuleDescription {
  /** Global, with indices (`d`). */
  readonly pattern: RegExp;
  /** The sensitive span of a match, or `undefined` to reject it; the whole match by default. */
  readonly locate?: (match: RegExpExecArray, text: string) => Span | undefined;
}

const PLACEHOLDER_WORDS = [
  'xxxx',
  '****',
  'changeme',
  'change_me',
  'change-me',
  'example',
  'placeholder',
  'your_',
  'your-',
  'yourtoken',
  'dummy',
  'redacted',
  'sample',
  'insert',
  'replace',
  'todo',
  '<',
  '${',
  '{{',
];

/**
 * Shannon entropy of a string in bits per character.
 *
 * @example
 * ```ts
 * shannonEntropy('aaaa'); // 0
 * shannonEntropy('abcd'); // 2
 * ```
 */
export function shannonEntropy(value: string): number {
  if (value.length === 0) return 0;
  const counts = new Map<string, number>();
  for (const character of value) counts.set(character, (counts.get(character) ?? 0) + 1);
  const total = Array.from(counts.values()).reduce((sum, count) => sum + count, 0);
  let entropy = 0;
  for (const count of counts.values()) {
    const probability = count / total;
    entropy -= probability * Math.log2(probability);
  }
  return entropy;
}

/** Whether an assigned value looks like a real credential rather than code or a placeholder. */
function looksLikeSecretValue(value: string): boolean {
  if (value.length < 16) return false;
  const lower = value.toLowerCase();
  if (PLACEHOLDER_WORDS.some((word) => lower.includes(word)) || lower.includes('://')) return false;
  // A member path such as process.env.GITHUB_TOKEN or config.auth.token is code.
  const parts = value.split('.');
  if (parts.length > 1 && parts.every((part) => /^[A-Za-z_$][\w$]*$/.test(part))) return false;
  if (!/[A-Za-z]/.test(value) || !/[0-9]/.test(value)) return false;
  return shannonEntropy(value) >= 3.5;
}

/** The span of the first participating capture group among `groups`. */
function groupSpan(match: RegExpExecArray, groups: readonly number[]): Span | undefined {
  for (const group of groups) {
    const range = match.indices?.[group];
    if (range !== undefined) return { start: range[0], end: range[1] };
  }
  return undefined;
}

function matchSpan(match: RegExpExecArray): Span {
  return { start: match.index, end: match.index + match[0].length };
}

function locatePrivateKey(match: RegExpExecArray, text: string): Span {
  const headerEnd = match.index + match[0].length;
  const footer = text.indexOf('-----END ', headerEnd);
  const footerEnd = footer < 0 ? -1 : text.indexOf('-----', footer + 9);
  // A header without a footer is a truncated key: still secret, so it runs to the end.
  return { start: match.index, end: footerEnd < 0 ? text.length : footerEnd + 5 };
}

/** Shrinks a space- or hyphen-grouped candidate from its end until `valid` accepts it. */
function shrinkToValid(
  match: RegExpExecArray,
  valid: (candidate: string) => boolean,
): Span | undefined {
  let candidate = match[0];
  for (;;) {
    if (valid(candidate)) return { start: match.index, end: match.index + candidate.length };
    const cut = Math.max(candidate.lastIndexOf(' '), candidate.lastIndexOf('-'));
    if (cut <= 0) return undefined;
    candidate = candidate.slice(0, cut).replace(/[ -]$/, '');
  }
}

const SECRET_RULES_TABLE: readonly DetectionRule[] = [
  {
    id: 'private-key',
    description: 'A PEM private key block (RSA, EC, DSA, OPENSSH, PGP, encrypted or PKCS#8).',
    pattern: /-----BEGIN [A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----/dg,
    locate: locatePrivateKey,
  },
  {
    id: 'aws-access-key-id',
    description: 'An AWS access key id (AKIA… or ASIA…).',
    pattern: /(?<![A-Z0-9])(?:AKIA|ASIA)[A-Z0-9]{16}(?![A-Z0-9])/dg,
  },
  {
    id: 'aws-secret-access-key',
    description: 'An AWS secret access key assigned to aws_secret_access_key.',
    pattern:
      /aws[_-]?secret[_-]?access[_-]?key["']?[ \t]{0,4}(?::=|=>|=|:)[ \t]{0,4}["']?([A-Za-z0-9/+]{40})(?![A-Za-z0-9/+=])/dgi,
    locate: (match) => groupSpan(match, [1]),
  },
  {
    id: 'github-token',
    description: 'A GitHub token (ghp_, gho_, ghu_, ghs_, ghr_, github_pat_).',
    pattern:
      /(?<![A-Za-z0-9_])(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,})(?![A-Za-z0-9_])/dg,
  },
  {
    id: 'gitlab-token',
    description: 'A GitLab personal access token (glpat-).',
    pattern: /(?<![A-Za-z0-9_-])glpat-[A-Za-z0-9_-]{20,}(?![A-Za-z0-9_-])/dg,
  },
  {
    id: 'slack-token',
    description: 'A Slack token (xoxb-, xoxa-, xoxp-, xoxr-, xoxs-).',
    pattern: /(?<![A-Za-z0-9-])xox[baprs]-[A-Za-z0-9-]{10,}(?![A-Za-z0-9-])/dg,
  },
  {
    id: 'slack-webhook',
    description: 'A Slack incoming-webhook URL.',
    pattern: /https:\/\/hooks\.slack\.com\/services\/[A-Za-z0-9_/]{20,}(?![A-Za-z0-9_/])/dg,
  },
  {
    id: 'stripe-key',
    description: 'A Stripe live secret or restricted key (sk_live_, rk_live_).',
    pattern: /(?<![A-Za-z0-9_])[sr]k_live_[A-Za-z0-9]{20,}(?![A-Za-z0-9])/dg,
  },
  {
    id: 'anthropic-api-key',
    description: 'An Anthropic API key (sk-ant-).',
    pattern: /(?<![A-Za-z0-9_-])sk-ant-[A-Za-z0-9_-]{32,}(?![A-Za-z0-9_-])/dg,
  },
  {
    id: 'openai-api-key',
    description: 'An OpenAI API key (sk-…, sk-proj-…).',
    pattern: /(?<![A-Za-z0-9_-])sk-(?!ant-)[A-Za-z0-9_-]{20,}(?![A-Za-z0-9_-])/dg,
    // Random keys mix cases and digits; kebab-case words that happen to start with sk- do not.
    locate: (match) =>
      /[A-Z]/.test(match[0]) && /[a-z]/.test(match[0]) && /[0-9]/.test(match[0])
        ? matchSpan(match)
        : undefined,
  },
  {
    id: 'google-api-key',
    description: 'A Google API key (AIza…).',
    pattern: /(?<![A-Za-z0-9_-])AIza[A-Za-z0-9_-]{35}(?![A-Za-z0-9_-])/dg,
  },
  {
    id: 'jwt',
    description: 'A JSON Web Token (three base64url segments, header and payload starting eyJ).',
    pattern:
      /(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}(?![A-Za-z0-9_-])/dg,
  },
  {
    id: 'url-credentials',
    description: 'A URL with an embedded user name and password (scheme://user:password@host).',
    pattern:
      /(?<![A-Za-z0-9+.-])[A-Za-z][A-Za-z0-9+.-]{1,30}:\/\/([^\s:/?#@"'<>]{0,128}:([^\s/?#@"'<>]{1,256}))@(?=[A-Za-z0-9[])/dg,
    locate: (match) => {
      const password = (match[2] ?? '').toLowerCase();
      const placeholder = ['password', 'pass', 'secret', '***'].includes(password);
      return placeholder || PLACEHOLDER_WORDS.some((word) => password.includes(word))
        ? undefined
        : groupSpan(match, [1]);
    },
  },
  {
    id: 'generic-secret',
    description:
      'A high-entropy value (16+ characters) assigned to a password, secret, token or API key.',
    pattern:
      /(?:password|passwd|secret|token|api[_-]?key|access[_-]?key|auth[_-]?key|private[_-]?key)[A-Za-z0-9_-]{0,16}["']?[ \t]{0,4}(?::=|=>|=(?!=)|:)[ \t]{0,4}(?:"([^"\s]{16,256})"|'([^'\s]{16,256})'|`([^`\s]{16,256})`|([^\s"'`,;()[\]{}<>]{16,256}))/dgi,
    locate: (match) => {
      const span = groupSpan(match, [1, 2, 3, 4]);
      const value = match[1] ?? match[2] ?? match[3] ?? match[4] ?? '';
      return span !== undefined && looksLikeSecretValue(value) ? span : undefined;
    },
  },
];

const IBAN_COUNTRIES = new Set(
  (
    'AD AE AL AT AZ BA BE BG BH BI BR BY CH CR CY CZ DE DJ DK DO EE EG ES FI FK FO FR GB GE GI ' +
    'GL GR GT HR HU IE IL IQ IS IT JO KW KZ LB LC LI LT LU LV LY MC MD ME MK MN MR MT MU NI NL ' +
    'NO OM PK PL PS PT QA RO RS RU SA SC SD SE SI SK SM SO ST SV TL TN TR UA VA VG XK YE'
  ).split(' '),
);

function isValidIban(candidate: string): boolean {
  const compact = candidate.replaceAll(' ', '');
  if (candidate.includes('  ') || compact.length < 15 || compact.length > 34) return false;
  if (!IBAN_COUNTRIES.has(compact.slice(0, 2))) return false;
  const rearranged = compact.slice(4) + compact.slice(0, 4);
  let remainder = 0;
  for (const character of rearranged) {
    const code = character.charCodeAt(0);
    const value = code >= 65 ? code - 55 : code - 48;
    remainder = (remainder * (value >= 10 ? 100 : 10) + value) % 97;
  }
  return remainder === 1;
}

/** Issuer prefixes (Visa, Mastercard, Amex, Discover, JCB, Diners): keep timestamps and ids out. */
const CARD_ISSUER = /^(?:4|5[1-5]|2[2-7]|3[47]|6|35|3[068])/;

/** Whether a card-number candidate can become valid by dropping groups from its end. */
function isPlausibleCardStart(candidate: string): boolean {
  const firstGroup = /^[0-9]+/.exec(candidate)?.[0] ?? '';
  return firstGroup.length >= 4 && CARD_ISSUER.test(firstGroup);
}

function isValidCardNumber(candidate: string): boolean {
  if (/[ -]{2}/.test(candidate)) return false;
  const digits = candidate.replace(/[ -]/g, '');
  if (digits.length < 13 || digits.length > 19) return false;
  let sum = 0;
  for (let index = 0; index < digits.length; index += 1) {
    let digit = digits.charCodeAt(digits.length - 1 - index) - 48;
    if (index % 2 === 1) {
      digit *= 2;
      if (digit > 9) digit -= 9;
    }
    sum += digit;
  }
  return sum % 10 === 0;
}

function locateEmail(match: RegExpExecArray): Span | undefined {
  const at = match[0].indexOf('@');
  const domain = match[0].slice(at + 1).replace(/[.-]+$/, '');
  const labels = domain.split('.');
  const topLevel = labels.at(-1) ?? '';
  if (labels.length < 2 || labels.some((label) => label.length === 0 || label.length > 63)) {
    return undefined;
  }
  if (!/^[A-Za-z]{2,24}$/.test(topLevel)) return undefined;
  return { start: match.index, end: match.index + at + 1 + domain.length };
}

const PII_RULES_TABLE: readonly DetectionRule[] = [
  {
    id: 'email',
    description: 'An e-mail address.',
    pattern: /(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9.-]{1,253}/dg,
    locate: locateEmail,
  },
  {
    id: 'iban',
    description: 'An IBAN with a known country code and a valid mod-97 checksum.',
    pattern: /(?<![A-Za-z0-9])[A-Z]{2}[0-9]{2}[A-Z0-9 ]{10,32}[A-Z0-9](?![A-Za-z0-9])/dg,
    locate: (match) =>
      IBAN_COUNTRIES.has(match[0].slice(0, 2)) ? shrinkToValid(match, isValidIban) : undefined,
  },
  {
    id: 'credit-card',
    description: 'A payment card number with a known issuer prefix that passes the Luhn check.',
    pattern: /(?<![A-Za-z0-9_-])[0-9][0-9 -]{11,22}[0-9](?![A-Za-z0-9_]|-[0-9])/dg,
    locate: (match) =>
      isPlausibleCardStart(match[0]) ? shrinkToValid(match, isValidCardNumber) : undefined,
  },
  {
    id: 'us-ssn',
    description: 'A US social security number (ddd-dd-dddd, valid area, group and serial).',
    pattern: /(?<![A-Za-z0-9_-])([0-9]{3})-([0-9]{2})-([0-9]{4})(?![A-Za-z0-9_]|-[0-9])/dg,
    locate: (match) => {
      const [area = '', group = '', serial = ''] = match.slice(1);
      const invalid = area === '000' || area === '666' || area.startsWith('9');
      return invalid || group === '00' || serial === '0000' ? undefined : matchSpan(match);
    },
  },
  {
    id: 'phone',
    description: 'A phone number in international (+CC …) or US ((ddd) ddd-dddd) format.',
    pattern:
      /(?<![A-Za-z0-9+/=_-])(?:\+[1-9][0-9 ().-]{6,20}[0-9]|(?:\([0-9]{3}\) ?|[0-9]{3}[-.])[0-9]{3}[-.][0-9]{4})(?![A-Za-z0-9+/=_]|[.-][0-9])/dg,
    locate: (match) => {
      const digits = match[0].replace(/[^0-9]/g, '').length;
      const doubled = /[ .-]{2}|[().-][ .-]/.test(match[0].replace(/\) /g, ')'));
      return digits >= 8 && digits <= 15 && !doubled ? matchSpan(match) : undefined;
    },
  },
];

function publicDescriptions(rules: readonly DetectionRule[]): readonly DetectionRuleDescription[] {
  return Object.freeze(rules.map(({ id, description }) => Object.freeze({ id, description })));
}

/**
 * The secret rules, in priority order (an overlap goes to the earlier rule).
 *
 * @example
 * ```ts
 * SECRET_RULES.map((rule) => `| ${rule.id} | ${rule.description} |`).join('\n');
 * ```
 */
export const SECRET_RULES: readonly DetectionRuleDescription[] =
  publicDescriptions(SECRET_RULES_TABLE);
/** The personal-data rules applied by {@link redactSecretsAndPii} after the secret rules. */
export const PII_RULES: readonly DetectionRuleDescription[] = publicDescriptions(PII_RULES_TABLE);

interface Detection extends Span {
  readonly rule: DetectionRule;
  readonly priority: number;
}

/** Every non-overlapping detection of `rules` in `text`, in order of position. */
function detect(text: string, rules: readonly DetectionRule[]): readonly Detection[] {
  const candidates: Detection[] = [];
  for (const [priority, rule] of rules.entries()) {
    const pattern = new RegExp(rule.pattern.source, rule.pattern.flags);
    for (let match = pattern.exec(text); match !== null; match = pattern.exec(text)) {
      const span = rule.locate === undefined ? matchSpan(match) : rule.locate(match, text);
      const matchEnd = match.index + Math.max(match[0].length, 1);
      if (span === undefined || span.end <= span.start) {
        // A rejected candidate may hide a valid one that starts inside it.
        pattern.lastIndex = match.index + 1;
      } else {
        candidates.push({ ...span, rule, priority });
        pattern.lastIndex = Math.max(matchEnd, span.end);
      }
    }
  }
  candidates.sort((left, right) => left.start - right.start || left.priority - right.priority);
  const accepted: Detection[] = [];
  let covered = 0;
  for (const candidate of candidates) {
    if (candidate.start < covered) continue;
    accepted.push(candidate);
    covered = candidate.end;
  }
  return accepted;
}

function preview(value: string): string {
  const visible = Math.min(4, Math.floor(value.length / 4));
  return value.slice(0, visible) + '*'.repeat(Math.min(value.length - visible, 32));
}

/** 1-based line and column of each offset; `offsets` ascending. */
function positions(text: string, offsets: readonly number[]): readonly [number, number][] {
  let line = 1;
  let lineStart = 0;
  let nextNewline = text.indexOf('\n');
  return offsets.map((offset): [number, number] => {
    while (nextNewline >= 0 && nextNewline < offset) {
      line += 1;
      lineStart = nextNewline + 1;
      nextNewline = text.indexOf('\n', lineStart);
    }
    return [line, offset - lineStart + 1];
  });
}

/**
 * Finds secrets in the first {@link MAXIMUM_SCANNED_LENGTH} characters of a text. Never throws:
 * should scanning itself fail, it reports one `scanner-error` finding, so that a caller that
 * blocks on findings fails closed.
 *
 * @example
 * ```ts
 * const findings = scanForSecrets(fileText);
 * if (findings.length > 0) console.warn(findings.map((f) => `${f.line}:${f.column} ${f.rule} ${f.preview}`));
 * ```
 */
export function scanForSecrets(text: string): readonly SecretFinding[] {
  if (typeof text !== 'string') return [];
  try {
    const scanned =
      text.length > MAXIMUM_SCANNED_LENGTH ? text.slice(0, MAXIMUM_SCANNED_LENGTH) : text;
    const detections = detect(scanned, SECRET_RULES_TABLE);
    const places = positions(
      scanned,
      detections.map((detection) => detection.start),
    );
    return detections.map((detection, index) => {
      const [line, column] = places[index] ?? [1, 1];
      return {
        rule: detection.rule.id,
        description: detection.rule.description,
        line,
        column,
        preview: preview(scanned.slice(detection.start, detection.end)),
      };
    });
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    return [
      {
        rule: 'scanner-error',
        description: `The scanner failed (${reason}); treat the text as holding secrets.`,
        line: 1,
        column: 1,
        preview: '',
      },
    ];
  }
}

/**
 * Replaces every secret with `[REDACTED:<rule>]` and personal data — e-mail addresses, phone
 * numbers, IBANs, card numbers passing Luhn, US SSNs — with `[REDACTED:email]` and so on.
 * Text beyond {@link MAXIMUM_SCANNED_LENGTH} is not passed on unscanned: it is replaced by a
 * `[TRUNCATED:<n> characters not scanned]` marker. Never throws: should redaction itself fail,
 * the whole text is withheld.
 *
 * @example
 * ```ts
 * redactSecretsAndPii('mail ada@example.org, key AKIA…');
 * // { text: 'mail [REDACTED:email], key [REDACTED:aws-access-key-id]', redactions: 2 }
 * ```
 */
export function redactSecretsAndPii(text: string): Redaction {
  return redact(text, [...SECRET_RULES_TABLE, ...PII_RULES_TABLE]);
}

/**
 * Like {@link redactSecretsAndPii}, for secrets only: for the workspace's own files, where
 * an author's e-mail address or a phone number in a fixture is the code, not a leak.
 *
 * @example
 * ```ts
 * redactSecrets('mail ada@example.org, key AKIA…');
 * // { text: 'mail ada@example.org, key [REDACTED:aws-access-key-id]', redactions: 1 }
 * ```
 */
export function redactSecrets(text: string): Redaction {
  return redact(text, SECRET_RULES_TABLE);
}

function redact(text: string, rules: readonly DetectionRule[]): Redaction {
  if (typeof text !== 'string') return { text: '', redactions: 0 };
  try {
    const truncated = text.length > MAXIMUM_SCANNED_LENGTH;
    const scanned = truncated ? text.slice(0, MAXIMUM_SCANNED_LENGTH) : text;
    const detections = detect(scanned, rules);
    const parts: string[] = [];
    let cursor = 0;
    for (const detection of detections) {
      parts.push(scanned.slice(cursor, detection.start), `[REDACTED:${detection.rule.id}]`);
      cursor = detection.end;
    }
    parts.push(scanned.slice(cursor));
    if (truncated)
      parts.push(`[TRUNCATED:${text.length - MAXIMUM_SCANNED_LENGTH} characters not scanned]`);
    return { text: parts.join(''), redactions: detections.length };
  } catch (error) {
    // The failure is surfaced as the result: the caller gets no unredacted text, and a marker.
    const name = error instanceof Error ? error.name : typeof error;
    return { text: `[REDACTED:scanner-error:${name}]`, redactions: 1 };
  }
}

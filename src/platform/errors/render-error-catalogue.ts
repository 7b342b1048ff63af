import { ERROR_CATALOGUE, type ErrorCode } from './error-catalogue.ts';

/**
 * The error catalogue as the Markdown page `docs/errors.md`; `npm run docs:errors` writes it
 * and a test fails when the page and the catalogue disagree.
 *
 * @example
 * ```ts
 * await writeFile('docs/errors.md', renderErrorCatalogue());
 * ```
 */
export function renderErrorCatalogue(): string {
  const rows = (Object.keys(ERROR_CATALOGUE) as ErrorCode[]).map((code) => {
    const entry = ERROR_CATALOGUE[code];
    return `| \`${code}\` | ${entry.status} | ${entry.retryable ? 'yes' : 'no'} | ${entry.message} | ${entry.hint} |`;
  });
  return `# Error catalogue

<!-- Generated from src/platform/errors/error-catalogue.ts by \`npm run docs:errors\`. Do not edit. -->

Every error that leaves Keel — an HTTP response, a CLI message, a syscall result — carries one
of these codes. Branch on \`code\` and \`retryable\`, never on the message. Over HTTP the body is
\`{"error": {"code", "message", "status", "retryable", "hint", "details"?}}\` with the status
below; the CLI prints \`keel: <message> — <hint> [<code>]\` (or the same JSON with \`--json\`).

| Code | HTTP | Retryable | Meaning | What to do |
|---|---|---|---|---|
${rows.join('\n')}
`;
}

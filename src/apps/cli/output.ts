import { styleText } from 'node:util';
import type { KeelError } from '../../platform/errors/keel-error.ts';
import type { SecretRedactor } from '../../platform/observability/secret-redactor.ts';

export type Status = 'ok' | 'warn' | 'fail' | 'info';

const SYMBOLS: Readonly<
  Record<Status, { symbol: string; color: Parameters<typeof styleText>[0] }>
> = {
  ok: { symbol: '✔', color: 'green' },
  warn: { symbol: '!', color: 'yellow' },
  fail: { symbol: '✖', color: 'red' },
  info: { symbol: '·', color: 'gray' },
};

/**
 * `text` as a terminal shows it, without acting on it: control characters other than tab and
 * newline (escape sequences that move the cursor, recolour or retitle the terminal, a carriage
 * return that overwrites the line) are written as `\u{…}`. For text from agents and models.
 *
 * @example
 * ```ts
 * printable('red\u001b[31m'); // 'red\\u{1b}[31m'
 * ```
 */
export function printable(text: string): string {
  return text.replace(
    // biome-ignore lint/suspicious/noControlCharactersInRegex: finding them is the point.
    /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g,
    (character) => `\\u{${(character.codePointAt(0) ?? 0).toString(16)}}`,
  );
}

/**
 * What the CLI prints: human text by default (colour only on a terminal that wants it), or
 * JSON for scripts with `--json`. Results go to standard output, diagnostics and errors to
 * standard error; everything passes through the secret redactor once one is known.
 *
 * @example
 * ```ts
 * const output = new Output({ json: false });
 * output.status('ok', 'audit chain intact');
 * ```
 */
export class Output {
  readonly json: boolean;
  readonly #stdout: NodeJS.WriteStream;
  readonly #stderr: NodeJS.WriteStream;
  redactor: SecretRedactor | undefined;

  constructor(options: {
    readonly json: boolean;
    readonly stdout?: NodeJS.WriteStream;
    readonly stderr?: NodeJS.WriteStream;
  }) {
    this.json = options.json;
    this.#stdout = options.stdout ?? process.stdout;
    this.#stderr = options.stderr ?? process.stderr;
  }

  #redact(text: string): string {
    return this.redactor === undefined ? text : this.redactor.redact(text);
  }

  /** Colours text when standard output is a terminal and NO_COLOR/NODE_DISABLE_COLORS are unset. */
  style(
    format: Parameters<typeof styleText>[0],
    text: string,
    stream: NodeJS.WriteStream = this.#stdout,
  ): string {
    return styleText(format, text, { stream, validateStream: true });
  }

  line(text = ''): void {
    this.#stdout.write(`${this.#redact(text)}\n`);
  }

  /** Writes one JSON document (a line) to standard output. */
  data(value: unknown): void {
    this.#stdout.write(`${this.#redact(JSON.stringify(value))}\n`);
  }

  status(status: Status, text: string): void {
    const { symbol, color } = SYMBOLS[status];
    this.line(`${this.style(color, symbol)} ${text}`);
  }

  /** A plain table with a header row, columns padded to their widest cell. */
  table(headers: readonly string[], rows: ReadonlyArray<readonly string[]>): void {
    const widths = headers.map((header, column) =>
      Math.max(header.length, ...rows.map((row) => (row[column] ?? '').length)),
    );
    const render = (cells: readonly string[]) =>
      cells
        .map((cell, column) =>
          column === cells.length - 1 ? cell : cell.padEnd(widths[column] ?? 0),
        )
        .join('  ')
        .trimEnd();
    this.line(this.style('bold', render(headers)));
    for (const row of rows) this.line(render(row));
  }

  /** Progress for long work: on standard error, only on a terminal, overwritten in place. */
  progress(text: string): void {
    if (this.json || !this.#stderr.isTTY) return;
    this.#stderr.write(`\r${this.style('gray', text, this.#stderr)}\u001b[K`);
  }

  endProgress(): void {
    if (this.json || !this.#stderr.isTTY) return;
    this.#stderr.write('\r\u001b[K');
  }

  /** A line for the person at the terminal, on standard error (JSON output stays parseable). */
  note(text: string): void {
    this.#stderr.write(`${this.style('gray', this.#redact(text), this.#stderr)}\n`);
  }

  /** One line that says what went wrong and what to do (or a JSON error document). */
  error(error: KeelError): void {
    if (this.json) {
      this.data({ error: error.toJSON() });
      return;
    }
    const text = `keel: ${error.message} — ${error.hint} [${error.code}]`;
    this.#stderr.write(`${this.style('red', this.#redact(text), this.#stderr)}\n`);
  }
}

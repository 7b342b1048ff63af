/**
 * Relative `.ts` module specifiers as they appear in `import … from`, `export … from`,
 * `import '…'` and `import('…')` with a literal. One pattern serves finding and rewriting, so
 * everything rewritten was also found. It may match text in a comment too: finding then takes a
 * file more (or names one that does not exist), and rewriting changes a comment, both harmless.
 */
const RELATIVE_TS_IMPORT =
  /(\bfrom\s*|\bimport\s*\(\s*|\bimport\s+)(['"])(\.{1,2}\/[^'"\n]*?)\.ts\2/g;

/**
 * The relative `.ts` specifiers a module's text imports, without their extension.
 *
 * @example
 * ```ts
 * relativeImports("import { a } from './a.ts';"); // ['./a']
 * ```
 */
export function relativeImports(code: string): string[] {
  return Array.from(code.matchAll(RELATIVE_TS_IMPORT), (match) => match[3] as string);
}

/**
 * The module's text with its relative `.ts` specifiers ending in `extension` instead.
 *
 * @example
 * ```ts
 * rewriteRelativeImports("import { a } from './a.ts';", '.js'); // "import { a } from './a.js';"
 * ```
 */
export function rewriteRelativeImports(code: string, extension: string): string {
  return code.replace(
    RELATIVE_TS_IMPORT,
    (_match, before: string, quote: string, path: string) =>
      `${before}${quote}${path}${extension}${quote}`,
  );
}

/**
 * Strips the TypeScript types from a set of modules into plain JavaScript, for
 * {@link prepareStrippedGraph} (which starts it as a child process, so that the experimental
 * stripping API warns in nobody's output). Reads `{ sourceRoot, files, outputDirectory }` as
 * JSON on stdin; writes each `<file>.ts` as `<outputDirectory>/<file>.js` with its relative
 * `.ts` imports turned to `.js`, positions unchanged (the same stripping Node applies when it
 * runs the source, so the code is the same code).
 */
import { chmod, readFile, writeFile } from 'node:fs/promises';
import { stripTypeScriptTypes } from 'node:module';
import { dirname, join } from 'node:path';
import { makeReadableFolders } from './readable-folders.ts';
import { rewriteRelativeImports } from './relative-imports.ts';

interface StripRequest {
  readonly sourceRoot: string;
  readonly files: readonly string[];
  readonly outputDirectory: string;
}

const chunks: Buffer[] = [];
for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
const request = JSON.parse(Buffer.concat(chunks).toString('utf8')) as StripRequest;
for (const file of request.files) {
  const source = await readFile(join(request.sourceRoot, file), 'utf8');
  const code = rewriteRelativeImports(stripTypeScriptTypes(source, { mode: 'strip' }), '.js');
  const destination = join(request.outputDirectory, file.replace(/\.ts$/, '.js'));
  // Whatever the umask: the code is read by workers running as another user.
  await makeReadableFolders(dirname(destination));
  await writeFile(destination, code);
  await chmod(destination, 0o644);
}

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, readdir, stat, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { temporaryDirectory } from '../../../test/support/temporary-directory.ts';
import { relativeImports, rewriteRelativeImports } from './relative-imports.ts';
import { prepareStrippedGraph } from './stripped-module-graph.ts';

const run = promisify(execFile);

/** A small project: an entry with types importing a module that imports another. */
async function project(root: string, greeting = 'hello'): Promise<string> {
  await mkdir(join(root, 'src', 'lib'), { recursive: true });
  await writeFile(
    join(root, 'src', 'main.ts'),
    [
      "import type { Shape } from './lib/shape.ts';",
      "import { greet, type Greeting } from './lib/greet.ts';",
      '// A comment naming a module that is not there: import { gone } from "./gone.ts";',
      'const shape: Shape = { sides: 3 };',
      'const greeting: Greeting = greet(shape.sides);',
      'console.log(JSON.stringify({ greeting, url: import.meta.url }));',
      '',
    ].join('\n'),
  );
  await writeFile(
    join(root, 'src', 'lib', 'shape.ts'),
    'export interface Shape { sides: number }\n',
  );
  await writeFile(
    join(root, 'src', 'lib', 'greet.ts'),
    [
      "import { basename } from 'node:path';",
      'export type Greeting = string;',
      `export function greet(sides: number): Greeting { return \`${greeting} \${sides} \${basename('/a/b')}\`; }`,
      "export const later = (): Promise<unknown> => import('./shape.ts');",
      '',
    ].join('\n'),
  );
  return join(root, 'src', 'main.ts');
}

async function runEntry(entry: string): Promise<{ greeting: string; url: string }> {
  const { stdout } = await run(process.execPath, [entry], { env: {} });
  return JSON.parse(stdout) as { greeting: string; url: string };
}

describe('prepareStrippedGraph', () => {
  it('copies the modules an entry imports as JavaScript that runs as the sources do', async () => {
    await using folder = await temporaryDirectory('keel-strip-');
    const entry = await project(folder.path);
    const cacheDirectory = join(folder.path, 'cache');
    const copied = await prepareStrippedGraph({ entry, sourceRoot: folder.path, cacheDirectory });
    assert.match(copied, /\/src\/main\.js$/);
    const fromSources = await runEntry(entry);
    const fromCopy = await runEntry(copied);
    assert.equal(fromCopy.greeting, fromSources.greeting);
    assert.equal(fromCopy.greeting, 'hello 3 b');
    assert.equal(fromCopy.url, pathToFileURL(copied).href, 'it ran from the copy');
    const copy = join(copied, '..', '..');
    const files = (await readdir(copy, { recursive: true })).sort();
    // Only what the entry imports, type-only imports included (they are erased, harmless).
    assert.deepEqual(files, [
      'package.json',
      'src',
      'src/lib',
      'src/lib/greet.js',
      'src/lib/shape.js',
      'src/main.js',
    ]);
  });

  it('reuses a copy while the sources are unchanged and makes another when one changes', async () => {
    await using folder = await temporaryDirectory('keel-strip-');
    const entry = await project(folder.path);
    const cacheDirectory = join(folder.path, 'cache');
    const options = { entry, sourceRoot: folder.path, cacheDirectory };
    const first = await prepareStrippedGraph(options);
    const made = (await stat(first)).mtimeMs;
    assert.equal(await prepareStrippedGraph(options), first);
    assert.equal((await stat(first)).mtimeMs, made, 'the copy was not made again');
    await project(folder.path, 'welcome');
    const second = await prepareStrippedGraph(options);
    assert.notEqual(second, first);
    assert.equal((await runEntry(second)).greeting, 'welcome 3 b');
    assert.equal((await runEntry(first)).greeting, 'hello 3 b', 'the older copy is kept');
  });

  it('keeps the copies used most recently and removes the others', async () => {
    await using folder = await temporaryDirectory('keel-strip-');
    const cacheDirectory = join(folder.path, 'cache');
    const made: string[] = [];
    for (const [index, greeting] of ['a', 'b', 'c', 'd'].entries()) {
      const entry = await project(folder.path, greeting);
      made.push(
        await prepareStrippedGraph({ entry, sourceRoot: folder.path, cacheDirectory, keep: 3 }),
      );
      // Distinct use times, oldest first, whatever the file system's clock resolution.
      const copy = join(made[index] as string, '..', '..');
      const when = new Date(Date.now() - (10 - index) * 60_000);
      await utimes(copy, when, when);
    }
    const kept = await readdir(cacheDirectory);
    assert.equal(kept.length, 3);
    assert.ok(!kept.some((name) => (made[0] as string).includes(name)), 'the oldest copy is gone');
  });

  it('makes copies readable by every user whatever the umask', async () => {
    await using folder = await temporaryDirectory('keel-strip-');
    const entry = await project(folder.path);
    const previous = process.umask(0o077);
    let copied: string;
    try {
      copied = await prepareStrippedGraph({
        entry,
        sourceRoot: folder.path,
        cacheDirectory: join(folder.path, 'cache', 'deeper'),
      });
    } finally {
      process.umask(previous);
    }
    const modeOf = async (path: string) => (await stat(path)).mode & 0o777;
    assert.equal(await modeOf(join(folder.path, 'cache')), 0o755);
    assert.equal(await modeOf(join(folder.path, 'cache', 'deeper')), 0o755);
    assert.equal(await modeOf(join(copied, '..', '..')), 0o755);
    assert.equal(await modeOf(join(copied, '..', 'lib')), 0o755);
    assert.equal(await modeOf(copied), 0o644);
    assert.equal(await modeOf(join(copied, '..', 'lib', 'greet.js')), 0o644);
  });

  it('refuses a graph that imports a module outside its source root', async () => {
    await using folder = await temporaryDirectory('keel-strip-');
    await mkdir(join(folder.path, 'project'));
    const entry = join(folder.path, 'project', 'main.ts');
    await writeFile(entry, "import { x } from '../outside.ts';\nconsole.log(x);\n");
    await writeFile(join(folder.path, 'outside.ts'), 'export const x = 1;\n');
    await assert.rejects(
      prepareStrippedGraph({
        entry,
        sourceRoot: join(folder.path, 'project'),
        cacheDirectory: join(folder.path, 'cache'),
      }),
      { code: 'KEEL_INVALID_ARGUMENT' },
    );
  });
});

describe('relativeImports', () => {
  it('finds and rewrites static, side-effect, re-export and dynamic relative imports only', () => {
    const code = [
      "import { a } from './a.ts';",
      "import './side.ts';",
      'export * from "../up.ts";',
      "const later = import( './later.ts' );",
      "import { z } from 'zod';",
      "const url = new URL('./file.ts', import.meta.url);",
    ].join('\n');
    assert.deepEqual(relativeImports(code), ['./a', './side', '../up', './later']);
    assert.equal(
      rewriteRelativeImports(code, '.js'),
      [
        "import { a } from './a.js';",
        "import './side.js';",
        'export * from "../up.js";',
        "const later = import( './later.js' );",
        "import { z } from 'zod';",
        "const url = new URL('./file.ts', import.meta.url);",
      ].join('\n'),
    );
  });
});

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { copyFile, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { temporaryDirectory } from '../support/temporary-directory.ts';

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const DEPCRUISE = join(ROOT, 'node_modules', '.bin', 'depcruise');
const LAYERS = ['platform', 'kernel', 'services', 'runtime', 'agents', 'apps'] as const;

/** Runs the project's layering rule (npm run layers) on a tree of files; returns its outcome. */
async function cruise(files: Record<string, string>): Promise<{ code: number; output: string }> {
  await using directory = await temporaryDirectory('keel-layers-');
  await copyFile(
    join(ROOT, '.dependency-cruiser.cjs'),
    join(directory.path, '.dependency-cruiser.cjs'),
  );
  await copyFile(join(ROOT, 'tsconfig.json'), join(directory.path, 'tsconfig.json'));
  await writeFile(join(directory.path, 'package.json'), '{ "type": "module" }\n');
  for (const [path, text] of Object.entries(files)) {
    await mkdir(join(directory.path, path, '..'), { recursive: true });
    await writeFile(join(directory.path, path), text);
  }
  try {
    const { stdout, stderr } = await run(
      DEPCRUISE,
      ['--config', '.dependency-cruiser.cjs', 'src'],
      { cwd: directory.path },
    );
    return { code: 0, output: stdout + stderr };
  } catch (error) {
    const failure = error as { code: number; stdout: string; stderr: string };
    return { code: failure.code, output: failure.stdout + failure.stderr };
  }
}

describe('the layering rule', () => {
  it('passes imports that point down', async () => {
    const files: Record<string, string> = {};
    LAYERS.forEach((layer, index) => {
      const below = LAYERS[index - 1];
      files[`src/${layer}/${layer}-part.ts`] =
        below === undefined
          ? `export const ${layer} = 1;\n`
          : `import { ${below} } from '../${below}/${below}-part.ts';\nexport const ${layer} = ${below} + 1;\n`;
    });
    const result = await cruise(files);
    assert.equal(result.code, 0, result.output);
    assert.match(result.output, /no dependency violations found/);
  });

  it('fails every import that points up, naming the rule', async () => {
    const files: Record<string, string> = {};
    const expected: string[] = [];
    LAYERS.forEach((lower, lowerIndex) => {
      for (const upper of LAYERS.slice(lowerIndex + 1)) {
        files[`src/${upper}/${upper}-exports.ts`] = `export const value = '${upper}';\n`;
        files[`src/${lower}/uses-${upper}.ts`] =
          `import { value } from '../${upper}/${upper}-exports.ts';\nexport const copy = value;\n`;
        expected.push(
          `layer-${lower}: src/${lower}/uses-${upper}.ts → src/${upper}/${upper}-exports.ts`,
        );
      }
    });
    const result = await cruise(files);
    assert.notEqual(result.code, 0);
    for (const violation of expected)
      assert.ok(result.output.includes(violation), `${violation}\n${result.output}`);
    assert.equal(expected.length, 15);
  });

  it('fails a type-only import that points up, and an import cycle', async () => {
    const result = await cruise({
      'src/kernel/kernel-type.ts': 'export type KernelThing = { id: string };\n',
      'src/platform/uses-type.ts':
        "import type { KernelThing } from '../kernel/kernel-type.ts';\nexport const thing: KernelThing = { id: 'x' };\n",
      'src/services/a.ts': "import { b } from './b.ts';\nexport const a = () => b;\n",
      'src/services/b.ts': "import { a } from './a.ts';\nexport const b = () => a;\n",
    });
    assert.notEqual(result.code, 0);
    assert.match(
      result.output,
      /layer-platform: src\/platform\/uses-type\.ts → src\/kernel\/kernel-type\.ts/,
    );
    assert.match(result.output, /no-circular/);
  });
});

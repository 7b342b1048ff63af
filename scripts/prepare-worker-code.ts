// Part of `npm run setup`: makes the JavaScript copy of the agent worker's code (see
// prepareWorkerCode), so that a node which may not write to this checkout finds it made.
import { relative } from 'node:path';
import { prepareWorkerCode } from '../src/runtime/worker/worker-launcher.ts';

const entry = await prepareWorkerCode();
console.log(`keel setup: agent worker code prepared (${relative(process.cwd(), entry)})`);

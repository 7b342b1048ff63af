// Writes docs/errors.md from the error catalogue.
import { writeFile } from 'node:fs/promises';
import { renderErrorCatalogue } from '../src/platform/errors/render-error-catalogue.ts';

await writeFile(new URL('../docs/errors.md', import.meta.url), renderErrorCatalogue());
console.log('wrote docs/errors.md');

/**
 * The layering rule of docs/architecture.md (and ../shared/DESIGN.md): dependencies point down
 * only. Each layer may import itself and the layers below it, never one above it.
 *
 *   apps > agents > runtime > services > kernel > platform
 */
const layers = ['platform', 'kernel', 'services', 'runtime', 'agents', 'apps'];

const layerRules = layers.slice(0, -1).map((layer, index) => ({
  name: `layer-${layer}`,
  comment: `src/${layer} may not import from a layer above it (${layers.slice(index + 1).join(', ')})`,
  severity: 'error',
  from: { path: `^src/${layer}/` },
  to: { path: `^src/(${layers.slice(index + 1).join('|')})/` },
}));

module.exports = {
  forbidden: [
    ...layerRules,
    {
      name: 'no-circular',
      comment: 'Import cycles are errors (CONVENTIONS.md).',
      severity: 'error',
      from: {},
      to: { circular: true },
    },
    {
      name: 'no-src-to-tests-or-bench',
      comment: 'Shipped code never imports tests, fixtures or benchmarks.',
      severity: 'error',
      from: { path: '^src/', pathNot: '\\.test\\.ts$|\\.contract\\.ts$' },
      to: { path: '^(test|bench)/|\\.test\\.ts$|\\.contract\\.ts$' },
    },
    {
      name: 'no-dev-dependencies-in-src',
      comment: 'Shipped code may only use production dependencies.',
      severity: 'error',
      from: { path: '^src/', pathNot: '\\.test\\.ts$|\\.contract\\.ts$' },
      to: { dependencyTypes: ['npm-dev'] },
    },
    {
      name: 'not-to-unresolvable',
      severity: 'error',
      from: {},
      to: { couldNotResolve: true },
    },
  ],
  options: {
    tsPreCompilationDeps: true,
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '(^|/)node_modules/' },
    tsConfig: { fileName: 'tsconfig.json' },
    // Resolve packages through their `exports` maps, as Node does (gpt-tokenizer/encoding/…).
    enhancedResolveOptions: {
      exportsFields: ['exports'],
      conditionNames: ['import', 'node', 'default'],
    },
  },
};

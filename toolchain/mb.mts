import { chatCallOf } from '../src/services/models/llm-call-parameters.ts';
import { parseIntent } from '../src/kernel/gate/syscall.ts';
import { canonicalJson } from '../src/platform/integrity/canonical-json.ts';
import { summariseParameters } from '../src/kernel/audit/summarise-parameters.ts';
const messages: unknown[] = [{ role: 'system', content: 'You are a benchmark agent.' }, { role: 'user', content: 'bench run 1' }];
for (let i = 0; i < 10; i++) {
  messages.push({ role: 'assistant', content: '', toolCalls: [{ id: `call_${i}`, name: 'bench_step', arguments: { step: i } }] });
  messages.push({ role: 'tool', toolCallId: `call_${i}`, name: 'bench_step', content: JSON.stringify({ step: i, ok: true }) });
}
const intent = { kind: 'llm.chat', resource: 'bench', params: { messages, tools: [{ name: 'bench_step', description: 'A benchmark step', parameters: { type: 'object', properties: { step: { type: 'number' } }, required: ['step'], additionalProperties: false } }], maxOutputTokens: 1024 } };
function time(name: string, f: () => unknown, n = 5000) {
  for (let i = 0; i < 500; i++) f();
  const t = performance.now();
  for (let i = 0; i < n; i++) f();
  console.log(name.padEnd(30), ((performance.now() - t) / n * 1000).toFixed(1), 'µs');
}
const parsed = parseIntent(intent, 262144);
time('parseIntent', () => parseIntent(intent, 262144));
time('chatCallOf', () => chatCallOf(parsed.intent, 65536));
time('canonicalJson', () => canonicalJson(intent));
time('JSON.stringify', () => JSON.stringify(intent));
time('summariseParameters', () => summariseParameters(parsed.intent.params));
time('structuredClone', () => structuredClone(intent));

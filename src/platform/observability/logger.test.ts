import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { describe, it } from 'node:test';
import { KeelError } from '../errors/keel-error.ts';
import { createLogger } from './logger.ts';
import { SecretRedactor } from './secret-redactor.ts';
import { TraceContext } from './trace-context.ts';

const SECRET = 'sk-live-4f9a"quoted\\slash';
const OTHER = 'hunter2-token-value';

function capture(format: 'json' | 'pretty' = 'json') {
  const destination = new PassThrough();
  let text = '';
  destination.on('data', (chunk: Buffer) => {
    text += chunk.toString('utf8');
  });
  const traces = new TraceContext();
  const logger = createLogger({
    level: 'trace',
    format,
    redactor: new SecretRedactor([SECRET, OTHER]),
    traces,
    destination,
    base: { node: 'test' },
  });
  return { logger, traces, output: () => text };
}

describe('logger', () => {
  it('writes structured JSON with the context fields', () => {
    const { logger, output } = capture();
    logger
      .child({ component: 'gate' })
      .info({ agentId: 'agt_1', runId: 'run_1', seq: 7 }, 'syscall allowed');
    const line = JSON.parse(output().trim()) as Record<string, unknown>;
    assert.equal(line.msg, 'syscall allowed');
    assert.equal(line.component, 'gate');
    assert.equal(line.agentId, 'agt_1');
    assert.equal(line.runId, 'run_1');
    assert.equal(line.seq, 7);
    assert.equal(line.node, 'test');
  });

  it('adds trace ids when a trace is active', () => {
    const { logger, traces, output } = capture();
    const ids = traces.fromTraceparent('00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01');
    traces.run(ids, () => logger.info('inside'));
    logger.info('outside');
    const [inside, outside] = output()
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as Record<string, unknown>);
    assert.equal(inside?.traceId, '4bf92f3577b34da6a3ce929d0e0e4736');
    assert.match(String(inside?.spanId), /^[0-9a-f]{16}$/);
    assert.equal(outside?.traceId, undefined);
  });

  it('redacts secret values wherever they appear in a line', () => {
    const { logger, output } = capture();
    logger.info(`message with ${SECRET}`);
    logger.info(
      { nested: { deeper: { value: `prefix-${OTHER}-suffix` } }, list: [SECRET] },
      'objects',
    );
    logger.error({ err: new Error(`upstream said ${OTHER}`) }, 'error message and stack');
    logger.warn(
      { error: new KeelError('KEEL_INTERNAL', `wrapped ${SECRET}`, { details: { echo: OTHER } }) },
      'keel error',
    );
    const text = output();
    assert.equal(text.split('\n').filter(Boolean).length, 4);
    assert.ok(!text.includes(OTHER), text);
    assert.ok(!text.includes('sk-live-4f9a'), text);
    assert.ok(text.includes('[REDACTED]'));
  });

  it('redacts values under sensitive keys even when the value is not a known secret', () => {
    const { logger, output } = capture();
    logger.info(
      {
        apiKey: 'unknown-key-1',
        headers: { authorization: 'Bearer abc', 'x-api-key': 'k-1', Authorization: 'Bearer B' },
        provider: { password: 'p' },
      },
      'keys',
    );
    const line = JSON.parse(output().trim()) as Record<string, Record<string, unknown>>;
    assert.equal(line.apiKey as unknown, '[REDACTED]');
    assert.equal(line.headers?.authorization, '[REDACTED]');
    assert.equal(line.headers?.['x-api-key'], '[REDACTED]');
    assert.equal(line.headers?.Authorization, '[REDACTED]');
    assert.equal(line.provider?.password, '[REDACTED]');
  });

  it('logs binary values as a summary instead of failing', () => {
    const { logger, output } = capture();
    logger.info({ body: Buffer.from('hi'), nested: { bytes: new Uint8Array(3) } }, 'binary');
    const line = JSON.parse(output().trim()) as Record<string, unknown>;
    assert.equal(line.body, '[Buffer 2 bytes]');
    assert.deepEqual(line.nested, { bytes: '[Uint8Array 3 bytes]' });
  });

  it('redacts a secret that was JSON-escaped twice (JSON inside a JSON string)', () => {
    const { logger, output } = capture();
    logger.info({ body: JSON.stringify({ password2: SECRET }) }, 'double');
    assert.ok(!output().includes('4f9a'), output());
  });

  it('redacts in pretty output too', () => {
    const { logger, output } = capture('pretty');
    logger.info({ value: OTHER }, `pretty ${SECRET}`);
    const text = output();
    assert.ok(text.includes('pretty'));
    assert.ok(!text.includes(OTHER) && !text.includes('sk-live-4f9a'), text);
  });
});

describe('SecretRedactor', () => {
  it('ignores values too short to be secrets and reports containment', () => {
    const redactor = new SecretRedactor(['abc', 'long-enough']);
    assert.equal(redactor.redact('abc long-enough'), 'abc [REDACTED]');
    assert.equal(redactor.contains('x long-enough y'), true);
    assert.equal(redactor.contains('nothing'), false);
    assert.equal(new SecretRedactor([]).redact('as is'), 'as is');
  });

  it('replaces longer secrets before shorter ones that they contain', () => {
    const redactor = new SecretRedactor(['token', 'token-extended']);
    assert.equal(redactor.redact('token-extended'), '[REDACTED]');
  });
});

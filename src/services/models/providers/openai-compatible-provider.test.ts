import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { throwsWithCode } from '../../../../test/support/assertions.ts';
import { describeModelProviderContract } from '../provider/model-provider.contract.ts';
import { OpenAiCompatibleProvider } from './openai-compatible-provider.ts';
import { assertProviderEndpoint, isLoopbackHost } from './provider-http.ts';

const LIMITS = { timeoutMs: 10_000, maxResponseBytes: 1_048_576 };

describeModelProviderContract(
  'openai-compatible',
  (mock, limits) =>
    new OpenAiCompatibleProvider({
      providerId: 'mock-openai',
      baseUrl: mock.openAiBaseUrl,
      apiKey: 'sk-test-not-a-secret',
      ...limits,
    }),
);

describe('openai-compatible provider endpoint', () => {
  it('refuses plain http to a host that is not loopback with KEEL_TLS_REQUIRED', () => {
    const error = throwsWithCode(
      () =>
        new OpenAiCompatibleProvider({
          providerId: 'lan-vllm',
          baseUrl: 'http://10.0.0.5:8000/v1',
          ...LIMITS,
        }),
      'KEEL_TLS_REQUIRED',
    );
    assert.match(error.message, /10\.0\.0\.5:8000/);
    // A name under .localhost may be resolved through DNS: only the literal name is loopback.
    throwsWithCode(
      () => assertProviderEndpoint('x', 'http://api.localhost:8080/v1'),
      'KEEL_TLS_REQUIRED',
    );
    assertProviderEndpoint('x', 'http://LOCALHOST:11434');
  });

  it('refuses credentials embedded in the base URL with KEEL_CONFIG_INVALID', () => {
    const error = throwsWithCode(
      () =>
        new OpenAiCompatibleProvider({
          providerId: 'openai',
          baseUrl: 'https://user:sk-secret@api.example.com/v1',
          ...LIMITS,
        }),
      'KEEL_CONFIG_INVALID',
    );
    assert.doesNotMatch(error.message, /sk-secret/);
  });

  it('refuses a base URL that is not http(s) or not a URL with KEEL_CONFIG_INVALID', () => {
    throwsWithCode(
      () => assertProviderEndpoint('openai', 'ftp://api.example.com'),
      'KEEL_CONFIG_INVALID',
    );
    throwsWithCode(
      () => assertProviderEndpoint('openai', 'api.example.com/v1'),
      'KEEL_CONFIG_INVALID',
    );
  });

  it('accepts https anywhere and plain http on loopback', () => {
    for (const url of [
      'https://api.openai.com/v1',
      'http://127.0.0.1:8000/v1',
      'http://127.8.9.10:8000',
      'http://localhost:1234/v1',
      'http://[::1]:8000/v1',
    ]) {
      assert.equal(assertProviderEndpoint('openai', url).href.startsWith('http'), true, url);
    }
  });

  it('counts only this machine as loopback', () => {
    assert.equal(isLoopbackHost('localhost'), true);
    assert.equal(isLoopbackHost('[::1]'), true);
    assert.equal(isLoopbackHost('127.0.0.1'), true);
    assert.equal(isLoopbackHost('128.0.0.1'), false);
    assert.equal(isLoopbackHost('localhost.example.com'), false);
    assert.equal(isLoopbackHost('::ffff:10.0.0.5'), false);
  });
});

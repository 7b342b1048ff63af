import assert from 'node:assert/strict';
import { Buffer } from 'node:buffer';
import { createPublicKey, generateKeyPairSync } from 'node:crypto';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import type { ErrorCode } from '../../platform/errors/error-catalogue.ts';
import { isKeelError } from '../../platform/errors/keel-error.ts';
import { canonicalJson } from '../../platform/integrity/canonical-json.ts';
import { parseAgentManifest, parseManifestText } from './agent-manifest.ts';
import {
  generateSigningKeyPair,
  manifestSigningBytes,
  parsePublicKey,
  publicKeyIdOf,
  type SignedManifest,
  signManifest,
  type TrustedKey,
  verifySignedManifest,
} from './manifest-signing.ts';

const YAML = `
apiVersion: keel.dev/v1
id: coder
version: 1.2.0
description: fixes failing tests
program:
  builtin: react-agent
trust: semi-autonomous
capabilities:
  - kind: tool.call
    resource: shell
    limits:
      commands: [npm test]
tools: [shell]
`;

const JSON_TEXT = JSON.stringify({
  tools: ['shell'],
  trust: 'semi-autonomous',
  capabilities: [{ limits: { commands: ['npm test'] }, resource: 'shell', kind: 'tool.call' }],
  program: { builtin: 'react-agent', settings: {} },
  description: 'fixes failing tests',
  version: '1.2.0',
  id: 'coder',
  apiVersion: 'keel.dev/v1',
  limits: { maxSteps: 50 },
});

const NOW = new Date('2026-03-01T12:00:00.000Z');
const PUBLISHER = generateSigningKeyPair();
const TRUSTED: readonly TrustedKey[] = [
  { keyId: PUBLISHER.keyId, publicKey: PUBLISHER.publicKey, name: 'ci' },
];
const MANIFEST = parseAgentManifest(parseManifestText(YAML, 'yaml'));

function codeOf(action: () => unknown): ErrorCode | 'none' {
  try {
    action();
  } catch (error) {
    assert.ok(isKeelError(error), `expected a KeelError, got ${String(error)}`);
    return error.code;
  }
  return 'none';
}

function signed(): SignedManifest {
  return signManifest(MANIFEST, PUBLISHER.privateKeyPem, NOW);
}

describe('manifestSigningBytes', () => {
  it('gives the same bytes for the same manifest in YAML and in JSON, in any key order', () => {
    const fromJson = parseAgentManifest(parseManifestText(JSON_TEXT, 'json'));
    assert.deepEqual(manifestSigningBytes(fromJson), manifestSigningBytes(MANIFEST));
  });

  it('starts with the domain-separation prefix, then the canonical JSON', () => {
    const text = manifestSigningBytes(MANIFEST).toString('utf8');
    assert.equal(text, `keel-manifest-v1\n${canonicalJson(MANIFEST)}`);
  });

  it('changes when the manifest changes', () => {
    const changed = parseAgentManifest({ ...MANIFEST, version: '1.2.1' });
    assert.notDeepEqual(manifestSigningBytes(changed), manifestSigningBytes(MANIFEST));
  });
});

describe('signing keys', () => {
  it('derives the key id from the raw public key, the last 32 bytes of its SPKI form', () => {
    const { privateKeyPem, publicKey, keyId } = generateSigningKeyPair();
    const spki = createPublicKey(privateKeyPem).export({ type: 'spki', format: 'der' });
    assert.equal(spki.subarray(-32).toString('base64'), publicKey);
    assert.match(keyId, /^[0-9a-f]{16}$/);
    assert.equal(publicKeyIdOf(publicKey), keyId);
  });

  it('reads a public key as raw base64 or as a PEM SPKI block, to the same key', () => {
    const { privateKeyPem, publicKey, keyId } = generateSigningKeyPair();
    const pem = createPublicKey(privateKeyPem).export({ type: 'spki', format: 'pem' }).toString();
    assert.deepEqual(parsePublicKey(`${publicKey}\n`), { publicKey, keyId });
    assert.deepEqual(parsePublicKey(pem), { publicKey, keyId });
  });

  it('refuses a public key that is not 32 bytes of canonical base64, or a private key', () => {
    const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 });
    for (const text of [
      '',
      'not base64',
      PUBLISHER.publicKey.slice(0, -2),
      `${PUBLISHER.publicKey.slice(0, -2)}B=`,
      PUBLISHER.privateKeyPem,
      rsa.publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    ]) {
      assert.equal(
        codeOf(() => parsePublicKey(text)),
        'KEEL_CONFIG_INVALID',
        text,
      );
    }
  });

  it('refuses to sign with a key that is not an Ed25519 private key', () => {
    const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 });
    const rsaPem = rsa.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    assert.equal(
      codeOf(() => signManifest(MANIFEST, rsaPem, NOW)),
      'KEEL_CONFIG_INVALID',
    );
    assert.equal(
      codeOf(() => signManifest(MANIFEST, 'garbage', NOW)),
      'KEEL_CONFIG_INVALID',
    );
  });
});

describe('verifySignedManifest', () => {
  it('verifies what it signed and returns the manifest, key id and digest', () => {
    const envelope = signed();
    assert.equal(envelope.signature.algorithm, 'ed25519');
    assert.equal(envelope.signature.keyId, PUBLISHER.keyId);
    assert.equal(envelope.signature.signedAt, NOW.toISOString());
    assert.equal(Buffer.from(envelope.signature.value, 'base64').length, 64);
    const fromFile = JSON.parse(JSON.stringify(envelope, null, 2)) as unknown;
    const verified = verifySignedManifest(fromFile, { trustedKeys: TRUSTED, allowUnsigned: false });
    assert.deepEqual(verified.manifest, MANIFEST);
    assert.equal(verified.keyId, PUBLISHER.keyId);
    assert.match(verified.digest, /^[0-9a-f]{64}$/);
  });

  it('verifies the signature of a YAML manifest against the same manifest written as JSON', () => {
    const fromJson = parseAgentManifest(parseManifestText(JSON_TEXT, 'json'));
    const envelope = signManifest(fromJson, PUBLISHER.privateKeyPem, NOW);
    assert.equal(envelope.signature.value, signed().signature.value);
  });

  it('never verifies a different manifest, whichever single byte of the signed file changes', () => {
    const small = parseAgentManifest({
      apiVersion: 'keel.dev/v1',
      id: 'a',
      version: '1.0.0',
      program: { builtin: 'b' },
      trust: 'supervised',
      capabilities: [{ kind: 'llm.chat', resource: 'm*' }],
    });
    const text = JSON.stringify(signManifest(small, PUBLISHER.privateKeyPem, NOW), null, 1);
    const original = canonicalJson(small);
    const replacements = ['0', '1', '9', 'a', 'b', 'f', 'A', 'Z', ' ', '"', '+', '-', '.', '='];
    let parsedVariants = 0;
    let verifiedVariants = 0;
    for (let position = 0; position < text.length; position += 1) {
      for (const replacement of replacements) {
        if (text[position] === replacement) continue;
        const variant = text.slice(0, position) + replacement + text.slice(position + 1);
        let value: unknown;
        try {
          value = JSON.parse(variant);
        } catch {
          continue; // Not JSON any more: a node refuses it before verification.
        }
        parsedVariants += 1;
        try {
          const verified = verifySignedManifest(value, {
            trustedKeys: TRUSTED,
            allowUnsigned: false,
          });
          verifiedVariants += 1;
          assert.equal(
            canonicalJson(verified.manifest),
            original,
            `byte ${position} → ${replacement}`,
          );
        } catch (error) {
          assert.ok(isKeelError(error), `byte ${position}: ${String(error)}`);
        }
      }
    }
    assert.ok(parsedVariants > 100, `only ${parsedVariants} variants were JSON`);
    // Whitespace and the unsigned signedAt may change; the test must have exercised both paths.
    assert.ok(verifiedVariants > 0);
  });

  it('refuses a signature by another key that claims a trusted key id', () => {
    const impostor = generateSigningKeyPair();
    const envelope = signManifest(MANIFEST, impostor.privateKeyPem, NOW);
    const forged = { ...envelope, signature: { ...envelope.signature, keyId: PUBLISHER.keyId } };
    assert.equal(
      codeOf(() => verifySignedManifest(forged, { trustedKeys: TRUSTED, allowUnsigned: false })),
      'KEEL_MANIFEST_SIGNATURE_INVALID',
    );
  });

  it('refuses a signature when the trusted key under that id is a different key', () => {
    const other = generateSigningKeyPair();
    const trustedKeys = [{ keyId: PUBLISHER.keyId, publicKey: other.publicKey }];
    assert.equal(
      codeOf(() => verifySignedManifest(signed(), { trustedKeys, allowUnsigned: true })),
      'KEEL_MANIFEST_SIGNATURE_INVALID',
    );
  });

  it('refuses a key this node does not trust, naming its id', () => {
    const stranger = generateSigningKeyPair();
    const envelope = signManifest(MANIFEST, stranger.privateKeyPem, NOW);
    try {
      verifySignedManifest(envelope, { trustedKeys: TRUSTED, allowUnsigned: true });
      assert.fail('expected a refusal');
    } catch (error) {
      assert.ok(isKeelError(error));
      assert.equal(error.code, 'KEEL_MANIFEST_UNTRUSTED_KEY');
      assert.equal(error.details.keyId, stranger.keyId);
    }
  });

  it('refuses a signed manifest that leaves a default unwritten, even with a good signature', () => {
    const envelope = signed();
    const { limits: _limits, ...withoutLimits } = envelope.manifest;
    const trimmed = { ...envelope, manifest: withoutLimits };
    assert.equal(
      codeOf(() => verifySignedManifest(trimmed, { trustedKeys: TRUSTED, allowUnsigned: false })),
      'KEEL_MANIFEST_SIGNATURE_INVALID',
    );
  });

  it('refuses a changed manifest, and a signature that is not 64 bytes of canonical base64', () => {
    const envelope = signed();
    const changed = { ...envelope, manifest: { ...envelope.manifest, trust: 'autonomous' } };
    const value = envelope.signature.value;
    const shortened = { ...envelope, signature: { ...envelope.signature, value: value.slice(4) } };
    const unpadded = {
      ...envelope,
      signature: { ...envelope.signature, value: value.replace(/=+$/, '') },
    };
    for (const candidate of [changed, shortened, unpadded]) {
      assert.equal(
        codeOf(() =>
          verifySignedManifest(candidate, { trustedKeys: TRUSTED, allowUnsigned: false }),
        ),
        'KEEL_MANIFEST_SIGNATURE_INVALID',
      );
    }
  });

  it('refuses an unsigned manifest unless unsigned manifests are allowed', () => {
    assert.equal(
      codeOf(() => verifySignedManifest(MANIFEST, { trustedKeys: TRUSTED, allowUnsigned: false })),
      'KEEL_MANIFEST_UNSIGNED',
    );
    const accepted = verifySignedManifest(parseManifestText(YAML, 'yaml'), {
      trustedKeys: [],
      allowUnsigned: true,
    });
    assert.deepEqual(accepted.manifest, MANIFEST);
    assert.equal(accepted.keyId, null);
    assert.equal(
      accepted.digest,
      verifySignedManifest(signed(), { trustedKeys: TRUSTED, allowUnsigned: false }).digest,
    );
  });

  it('throws nothing but KeelErrors, whatever JSON it is given', () => {
    const envelope = signed();
    const arbitraryEnvelope = fc.record(
      {
        manifest: fc.oneof(fc.jsonValue({ maxDepth: 4 }), fc.constant(envelope.manifest)),
        signature: fc.record(
          {
            algorithm: fc.oneof(fc.constant('ed25519'), fc.string()),
            keyId: fc.oneof(fc.constant(PUBLISHER.keyId), fc.string()),
            value: fc.oneof(
              fc.constant(envelope.signature.value),
              fc.base64String(),
              fc.jsonValue({ maxDepth: 1 }),
            ),
            signedAt: fc.oneof(fc.constant(envelope.signature.signedAt), fc.string()),
          },
          { requiredKeys: [] },
        ),
      },
      { requiredKeys: [] },
    );
    fc.assert(
      fc.property(
        fc.oneof(fc.jsonValue(), arbitraryEnvelope),
        fc.boolean(),
        (value, allowUnsigned) => {
          try {
            const verified = verifySignedManifest(value, { trustedKeys: TRUSTED, allowUnsigned });
            // The only manifest the trusted key ever signed is MANIFEST.
            if (verified.keyId !== null) {
              assert.equal(canonicalJson(verified.manifest), canonicalJson(MANIFEST));
            }
          } catch (error) {
            assert.ok(isKeelError(error), `threw ${String(error)}`);
          }
        },
      ),
      { numRuns: 2_000 },
    );
  });
});

import { Buffer } from 'node:buffer';
import {
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  type KeyObject,
  sign,
  verify,
} from 'node:crypto';
import { z } from 'zod';
import { isKeelError, KeelError } from '../../platform/errors/keel-error.ts';
import { canonicalJson } from '../../platform/integrity/canonical-json.ts';
import type { JsonObject } from '../../platform/storage/ports/json-value.ts';
import { type AgentManifest, parseAgentManifest } from './agent-manifest.ts';

/**
 * Domain separation: these bytes start every signed message, so a manifest signature can never
 * be mistaken for (or replayed as) a signature over anything else a key might sign.
 */
const SIGNING_PREFIX = 'keel-manifest-v1\n';

const KEY_ID_PATTERN = /^[0-9a-f]{16}$/;
/** 64 bytes in standard padded base64 is 86 characters and `==`. */
const SIGNATURE_PATTERN = /^[A-Za-z0-9+/]{86}==$/;
/** 32 bytes in standard padded base64 is 43 characters and `=`. */
const PUBLIC_KEY_PATTERN = /^[A-Za-z0-9+/]{43}=$/;

/** Decodes standard base64 of exactly `length` bytes, refusing every non-canonical spelling. */
function decodeStrictBase64(text: string, pattern: RegExp, length: number): Buffer | undefined {
  if (!pattern.test(text)) return undefined;
  const bytes = Buffer.from(text, 'base64');
  return bytes.length === length && bytes.toString('base64') === text ? bytes : undefined;
}

/**
 * The signature envelope `keel agent sign` writes: the complete parsed manifest (defaults
 * written out) and an Ed25519 signature over it. `signedAt` is informational: it is not covered
 * by the signature, so nothing may rely on it.
 *
 * @example
 * ```ts
 * const envelope = SignedManifestSchema.parse(JSON.parse(await readFile('coder.signed.json', 'utf8')));
 * ```
 */
export const SignedManifestSchema = z.strictObject({
  manifest: z.record(z.string(), z.json()),
  signature: z.strictObject({
    algorithm: z.literal('ed25519'),
    keyId: z.string().regex(KEY_ID_PATTERN, '16 lowercase hexadecimal digits'),
    value: z
      .string()
      .refine(
        (value) => decodeStrictBase64(value, SIGNATURE_PATTERN, 64) !== undefined,
        'a 64-byte Ed25519 signature in standard base64',
      ),
    signedAt: z.iso.datetime(),
  }),
});

/** A manifest with its Ed25519 signature, as written to `<name>.signed.json`. */
export interface SignedManifest {
  readonly manifest: JsonObject;
  readonly signature: {
    readonly algorithm: 'ed25519';
    /** {@link publicKeyIdOf} the signing key. */
    readonly keyId: string;
    /** The 64-byte signature, standard base64. */
    readonly value: string;
    /** When it was signed (ISO 8601, UTC); not covered by the signature. */
    readonly signedAt: string;
  };
}

/**
 * The exact bytes a manifest signature covers: `keel-manifest-v1\n` followed by the canonical
 * JSON (sorted keys, no whitespace) of the manifest. Pass the PARSED manifest, defaults filled
 * in: then the same manifest written as YAML or JSON, in any key order, with or without the
 * defaults spelled out, gives the same bytes.
 *
 * @example
 * ```ts
 * const bytes = manifestSigningBytes(parseAgentManifest(parseManifestText(text, 'yaml')));
 * ```
 */
export function manifestSigningBytes(manifest: AgentManifest | JsonObject): Buffer {
  return Buffer.from(`${SIGNING_PREFIX}${canonicalJson(manifest)}`, 'utf8');
}

/**
 * SHA-256 (hex) of {@link manifestSigningBytes}: identifies exactly this manifest, whichever
 * file format or key order it was written in.
 *
 * @example
 * ```ts
 * const digest = manifestDigest(parseAgentManifest(value)); // 64 hex digits
 * ```
 */
export function manifestDigest(manifest: AgentManifest | JsonObject): string {
  return sha256(manifestSigningBytes(manifest)).toString('hex');
}

function sha256(bytes: Uint8Array): Buffer {
  return createHash('sha256').update(bytes).digest();
}

function keyIdOfRaw(raw: Uint8Array): string {
  return sha256(raw).toString('hex').slice(0, 16);
}

/** The 32 raw bytes of an Ed25519 public key (its JWK `x`). */
function rawPublicKeyOf(key: KeyObject): Buffer {
  const jwk = key.export({ format: 'jwk' });
  const raw = typeof jwk.x === 'string' ? Buffer.from(jwk.x, 'base64url') : Buffer.alloc(0);
  if (key.asymmetricKeyType !== 'ed25519' || raw.length !== 32) {
    throw new KeelError('KEEL_CONFIG_INVALID', 'the key is not an Ed25519 key', {
      details: { keyType: key.asymmetricKeyType ?? 'unknown' },
      hint: 'create a signing key with `keel keygen`',
    });
  }
  return raw;
}

function publicKeyObjectOf(raw: Uint8Array): KeyObject {
  return createPublicKey({
    key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(raw).toString('base64url') },
    format: 'jwk',
  });
}

function decodePublicKey(publicKeyBase64: string): Buffer {
  const raw = decodeStrictBase64(publicKeyBase64, PUBLIC_KEY_PATTERN, 32);
  if (raw === undefined) {
    throw new KeelError(
      'KEEL_CONFIG_INVALID',
      'a public key must be 32 bytes in standard base64 (44 characters ending in =)',
      { hint: 'copy public_key from the .pub file `keel keygen` wrote' },
    );
  }
  return raw;
}

/** A new Ed25519 key pair for signing manifests. */
export interface SigningKeyPair {
  /** PKCS #8 PEM; keep it secret (mode 0600). */
  readonly privateKeyPem: string;
  /** The 32 raw public key bytes, standard base64: what a node's `trusted_keys` lists. */
  readonly publicKey: string;
  /** {@link publicKeyIdOf} the public key. */
  readonly keyId: string;
}

/**
 * Creates an Ed25519 key pair for signing agent manifests.
 *
 * @example
 * ```ts
 * const { privateKeyPem, publicKey, keyId } = generateSigningKeyPair();
 * ```
 */
export function generateSigningKeyPair(): SigningKeyPair {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  const raw = rawPublicKeyOf(publicKey);
  return {
    privateKeyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    publicKey: raw.toString('base64'),
    keyId: keyIdOfRaw(raw),
  };
}

/**
 * A public key's id: the first 16 hex digits of the SHA-256 of its 32 raw bytes. Not a
 * public key in base64: `KEEL_CONFIG_INVALID`.
 *
 * @example
 * ```ts
 * publicKeyIdOf('11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo='); // 16 hex digits
 * ```
 */
export function publicKeyIdOf(publicKeyBase64: string): string {
  return keyIdOfRaw(decodePublicKey(publicKeyBase64));
}

/** A public key in Keel's form. */
export interface ParsedPublicKey {
  /** The 32 raw bytes, standard base64. */
  readonly publicKey: string;
  readonly keyId: string;
}

/**
 * Reads an Ed25519 public key given as base64 of its 32 raw bytes (what `keel keygen` writes)
 * or as a PEM `PUBLIC KEY` (SPKI). Anything else, a private key included:
 * `KEEL_CONFIG_INVALID`.
 *
 * @example
 * ```ts
 * const { publicKey, keyId } = parsePublicKey(await readFile('keel-publisher.pub', 'utf8'));
 * ```
 */
export function parsePublicKey(text: string): ParsedPublicKey {
  const trimmed = text.trim();
  let raw: Buffer;
  if (trimmed.startsWith('-----BEGIN')) {
    if (!/^-----BEGIN PUBLIC KEY-----\r?\n/.test(trimmed)) {
      throw new KeelError('KEEL_CONFIG_INVALID', 'a PEM public key must be a PUBLIC KEY block', {
        hint: 'give the public key (the .pub file), never the private key',
      });
    }
    let key: KeyObject;
    try {
      key = createPublicKey({ key: trimmed, format: 'pem' });
    } catch (error) {
      throw new KeelError('KEEL_CONFIG_INVALID', 'the PEM public key cannot be read', {
        cause: error,
      });
    }
    raw = rawPublicKeyOf(key);
  } else {
    raw = decodePublicKey(trimmed);
  }
  try {
    publicKeyObjectOf(raw);
  } catch (error) {
    throw new KeelError('KEEL_CONFIG_INVALID', 'the public key is not a valid Ed25519 key', {
      cause: error,
    });
  }
  return { publicKey: raw.toString('base64'), keyId: keyIdOfRaw(raw) };
}

function privateKeyOf(privateKeyPem: string): KeyObject {
  let key: KeyObject;
  try {
    key = createPrivateKey({ key: privateKeyPem, format: 'pem' });
  } catch (error) {
    throw new KeelError('KEEL_CONFIG_INVALID', 'the private key cannot be read', {
      cause: error,
      hint: 'give the .key file `keel keygen` wrote (an unencrypted PKCS #8 PEM Ed25519 key)',
    });
  }
  if (key.asymmetricKeyType !== 'ed25519') {
    throw new KeelError('KEEL_CONFIG_INVALID', 'the private key is not an Ed25519 key', {
      details: { keyType: key.asymmetricKeyType ?? 'unknown' },
      hint: 'create a signing key with `keel keygen`',
    });
  }
  return key;
}

/**
 * Signs a manifest with an Ed25519 private key (PEM). The manifest is validated again and the
 * envelope carries it in full, defaults written out, so what a node verifies is exactly what
 * it will run.
 *
 * @example
 * ```ts
 * const signed = signManifest(parseAgentManifest(value), await readFile(keyFile, 'utf8'), new Date());
 * await writeFile('coder.signed.json', `${JSON.stringify(signed, null, 2)}\n`);
 * ```
 */
export function signManifest(
  manifest: AgentManifest,
  privateKeyPem: string,
  now: Date,
): SignedManifest {
  if (Number.isNaN(now.getTime())) {
    throw new KeelError('KEEL_INVALID_ARGUMENT', 'the signing time is not a valid date');
  }
  const parsed = parseAgentManifest(manifest);
  const privateKey = privateKeyOf(privateKeyPem);
  const keyId = keyIdOfRaw(rawPublicKeyOf(createPublicKey(privateKey)));
  const value = sign(null, manifestSigningBytes(parsed), privateKey);
  return {
    manifest: JSON.parse(canonicalJson(parsed)) as JsonObject,
    signature: {
      algorithm: 'ed25519',
      keyId,
      value: value.toString('base64'),
      signedAt: now.toISOString(),
    },
  };
}

/** A publisher key a node trusts (`[[agents.trusted_keys]]`). */
export interface TrustedKey {
  readonly keyId: string;
  /** The 32 raw bytes, standard base64. */
  readonly publicKey: string;
  readonly name?: string;
}

export interface VerifyManifestOptions {
  readonly trustedKeys: readonly TrustedKey[];
  /** Accept a bare, unsigned manifest (development only). */
  readonly allowUnsigned: boolean;
}

/** A manifest that passed verification. */
export interface VerifiedManifest {
  readonly manifest: AgentManifest;
  /** The key that signed it; `null` for an unsigned manifest accepted by `allowUnsigned`. */
  readonly keyId: string | null;
  /** SHA-256 (hex) of {@link manifestSigningBytes}: identifies exactly this manifest. */
  readonly digest: string;
}

function isEnvelope(value: unknown): value is Record<string, unknown> {
  // A bare manifest never has these fields (unknown fields are refused), so this is unambiguous.
  return (
    typeof value === 'object' &&
    value !== null &&
    !Array.isArray(value) &&
    (Object.hasOwn(value, 'signature') || Object.hasOwn(value, 'manifest'))
  );
}

function signatureInvalid(message: string, details: Record<string, unknown> = {}): KeelError {
  return new KeelError('KEEL_MANIFEST_SIGNATURE_INVALID', message, { details });
}

function verifyEnvelope(value: unknown, options: VerifyManifestOptions): VerifiedManifest {
  if (!isEnvelope(value)) {
    if (!options.allowUnsigned) {
      throw new KeelError('KEEL_MANIFEST_UNSIGNED', 'the agent manifest is not signed');
    }
    const manifest = parseAgentManifest(value);
    return { manifest, keyId: null, digest: manifestDigest(manifest) };
  }
  const envelope = SignedManifestSchema.safeParse(value);
  if (!envelope.success) {
    const issue = envelope.error.issues[0];
    const field = issue?.path.map(String).join('.') || '(top level)';
    throw signatureInvalid(
      `the signed manifest envelope is malformed at ${field}: ${issue?.message ?? 'invalid'}`,
      { field },
    );
  }
  const { keyId } = envelope.data.signature;
  // The manifest as written (zod's copy would drop keys such as __proto__).
  const given = value.manifest;
  const manifest = parseAgentManifest(given);
  const candidates = options.trustedKeys.filter((key) => key.keyId === keyId);
  if (candidates.length === 0) {
    throw new KeelError(
      'KEEL_MANIFEST_UNTRUSTED_KEY',
      `the agent manifest is signed by key ${keyId}, which this node does not trust`,
      { details: { keyId } },
    );
  }
  if (canonicalJson(given) !== canonicalJson(manifest)) {
    // The signature covers the parsed manifest; if parsing changed it (a default that is not
    // written out), the file alone would not say what runs, and defaults may change meaning.
    throw signatureInvalid(
      'the signed manifest is not in its complete parsed form (a default is not written out); sign it again with `keel agent sign`',
      { keyId },
    );
  }
  const bytes = manifestSigningBytes(manifest);
  const signature = Buffer.from(envelope.data.signature.value, 'base64');
  const verified = candidates.some((key) =>
    verify(null, bytes, publicKeyObjectOf(decodePublicKey(key.publicKey)), signature),
  );
  if (!verified) {
    throw signatureInvalid(
      `the agent manifest signature does not verify with trusted key ${keyId}`,
      { keyId },
    );
  }
  return { manifest, keyId, digest: sha256(bytes).toString('hex') };
}

/**
 * Checks a manifest file's parsed content before a node deploys it. A signature envelope must
 * hold a valid manifest in its complete parsed form, signed by a trusted key
 * (`KEEL_MANIFEST_INVALID`, `KEEL_MANIFEST_UNTRUSTED_KEY`, `KEEL_MANIFEST_SIGNATURE_INVALID`);
 * a bare manifest is accepted only with `allowUnsigned` (else `KEEL_MANIFEST_UNSIGNED`). It
 * throws nothing but KeelErrors, whatever the input. Refusing an older version than the one
 * deployed is the caller's job (`compareVersions`).
 *
 * @example
 * ```ts
 * const { manifest, keyId, digest } = verifySignedManifest(JSON.parse(text), {
 *   trustedKeys: [{ keyId: publicKeyIdOf(publicKey), publicKey, name: 'ci' }],
 *   allowUnsigned: false,
 * });
 * ```
 */
export function verifySignedManifest(
  value: unknown,
  options: VerifyManifestOptions,
): VerifiedManifest {
  try {
    return verifyEnvelope(value, options);
  } catch (error) {
    if (isKeelError(error)) throw error;
    throw new KeelError('KEEL_MANIFEST_INVALID', 'the agent manifest cannot be checked', {
      cause: error,
      details: { reason: error instanceof Error ? error.message.slice(0, 200) : String(error) },
    });
  }
}

import { inspect } from 'node:util';
import { KeelError } from '../../platform/errors/keel-error.ts';

const REDACTED = '[REDACTED]';

/**
 * A secret value that does not leak by accident: it prints, serialises and inspects as
 * `[REDACTED]`; only `reveal()` gives the value.
 *
 * @example
 * ```ts
 * const key = secrets.require('openai_api_key');
 * headers.authorization = `Bearer ${key.reveal()}`;
 * ```
 */
export class Secret {
  readonly name: string;
  readonly #value: string;

  constructor(name: string, value: string) {
    this.name = name;
    this.#value = value;
  }

  reveal(): string {
    return this.#value;
  }

  toString(): string {
    return REDACTED;
  }

  toJSON(): string {
    return REDACTED;
  }

  [inspect.custom](): string {
    return `Secret(${this.name}: ${REDACTED})`;
  }
}

/** Names of secrets: lowercase words joined by underscores. */
export const SECRET_NAME_PATTERN = /^[a-z][a-z0-9_]{0,63}$/;

/**
 * The node's secrets, read once at start by the configuration loader.
 *
 * @example
 * ```ts
 * const secrets = new SecretStore([['openai_api_key', 'sk-…']]);
 * secrets.require('openai_api_key').reveal();
 * ```
 */
export class SecretStore {
  readonly #secrets: ReadonlyMap<string, Secret>;

  constructor(entries: Iterable<readonly [string, string]>) {
    const secrets = new Map<string, Secret>();
    for (const [name, value] of entries) secrets.set(name, new Secret(name, value));
    this.#secrets = secrets;
  }

  get(name: string): Secret | undefined {
    return this.#secrets.get(name);
  }

  /** The secret, or `KEEL_CONFIG_INVALID` saying where to put it. */
  require(name: string): Secret {
    const secret = this.#secrets.get(name);
    if (secret === undefined) {
      throw new KeelError('KEEL_CONFIG_INVALID', `the secret ${name} is not set`, {
        hint: `add ${name} = "…" to secrets.toml, or set KEEL_SECRET_${name.toUpperCase()}`,
      });
    }
    return secret;
  }

  names(): string[] {
    return [...this.#secrets.keys()].sort();
  }

  /** Every secret value, for the log and error redactor; never log this. */
  values(): string[] {
    return [...this.#secrets.values()].map((secret) => secret.reveal());
  }
}

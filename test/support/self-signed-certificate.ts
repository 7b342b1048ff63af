import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';

/**
 * Makes a self-signed P-256 certificate for 127.0.0.1, valid one day, with openssl: the key
 * and certificate files land in `directory` under the given names.
 *
 * @example
 * ```ts
 * const { keyFile, certFile } = await selfSignedCertificate(directory.path);
 * ```
 */
export async function selfSignedCertificate(
  directory: string,
  names: { readonly key?: string; readonly cert?: string } = {},
): Promise<{ readonly keyFile: string; readonly certFile: string }> {
  const keyFile = join(directory, names.key ?? 'tls.key');
  const certFile = join(directory, names.cert ?? 'tls.crt');
  await promisify(execFile)('openssl', [
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-days',
    '1',
    '-subj',
    '/CN=127.0.0.1',
    '-addext',
    'subjectAltName=IP:127.0.0.1',
    '-keyout',
    keyFile,
    '-out',
    certFile,
  ]);
  return { keyFile, certFile };
}

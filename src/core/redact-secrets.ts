/**
 * Secrets by their shape: what an agent's output may print (a token it found in the environment,
 * a clone URL with credentials, a key file it read) and must never be stored or shown. The same
 * shapes `test/secrets-in-logs.test.ts` looks for in the server's own logs.
 */
const SHAPES: RegExp[] = [
  // A PEM block (private keys, certificates with keys): everything between the armour lines.
  /-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----[\s\S]*?(-----END [A-Z0-9 ]*PRIVATE KEY-----|$)/g,
  // Conveyor's runner and API tokens.
  /\bcv[ra]_[A-Za-z0-9_-]{8,}/g,
  // GitHub tokens: installation, personal, OAuth, user-to-server, refresh, fine-grained.
  /\bgh[sopur]_[A-Za-z0-9]{16,}/g,
  /\bgithub_pat_[A-Za-z0-9_]{20,}/g,
  // JSON Web Tokens (the App's JWT).
  /\beyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]*/g,
  // Model providers' keys.
  /\bsk-[A-Za-z0-9_-]{16,}/g,
  // Credentials inside URLs (`https://x-access-token:…@github.com`): the user goes too.
  /(?<=:\/\/)[^\s:@/]+:[^\s@/]+(?=@)/g,
];

/** `Authorization: Bearer …`, `token …`, `Basic …`: the scheme stays, the credential goes. */
const SCHEMED = /\b(Bearer|token|Basic)( +)[A-Za-z0-9._~+/=-]{12,}/gi;

const REDACTED = "[redacted]";

/**
 * `text` with every secret-shaped substring, and every one of `known` (the server's own secrets,
 * 8 characters or longer), replaced by `[redacted]`.
 */
export function redactSecrets(text: string, known: readonly string[] = []): string {
  let out = text;
  for (const secret of known) {
    if (secret.length >= 8) out = out.split(secret).join(REDACTED);
  }
  for (const shape of SHAPES) out = out.replace(shape, REDACTED);
  return out.replace(SCHEMED, (_m, scheme: string, gap: string) => `${scheme}${gap}${REDACTED}`);
}

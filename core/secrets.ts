// Secrets shared by the gateway (API keys) and the shards (the cluster credential): random
// tokens, their stored form (a SHA-256 digest: the tokens carry 256 random bits, so a slow
// password hash would add latency to every request and no protection), and a comparison
// whose time does not depend on where two values first differ.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

/** A new random token: `prefix` + 43 base64url characters (32 bytes). */
export function generateToken(prefix: string): string {
  return `${prefix}${randomBytes(32).toString('base64url')}`;
}

/** The form a secret is stored and compared in: "sha256:" + hex digest. */
export function hashSecret(secret: string): string {
  return `sha256:${createHash('sha256').update(secret, 'utf8').digest('hex')}`;
}

/**
 * Constant-time equality of two strings. Both sides are hashed first, so the comparison
 * covers equal-length buffers and leaks neither the length nor the content of `expected`.
 */
export function safeEqual(actual: string, expected: string): boolean {
  const a = createHash('sha256').update(actual, 'utf8').digest();
  const b = createHash('sha256').update(expected, 'utf8').digest();
  return timingSafeEqual(a, b);
}

/** Constant-time equality of two stored digests ("sha256:<hex>"). */
export function digestsEqual(a: string, b: string): boolean {
  const left = Buffer.from(a, 'utf8');
  const right = Buffer.from(b, 'utf8');
  return left.length === right.length && timingSafeEqual(left, right);
}

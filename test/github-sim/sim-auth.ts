import { createPublicKey, type KeyObject, randomBytes, verify } from "node:crypto";
import { HttpError } from "./http-error.ts";
import type {
  AccessLevel,
  AppPermissions,
  SimApp,
  SimState,
  SimToken,
  SimUser,
} from "./sim-state.ts";

/** Who made an API request. */
export type Principal =
  | { kind: "app"; app: SimApp }
  | { kind: "installation"; app: SimApp; token: SimToken; actor: SimUser };

export interface AppCredentials {
  app: SimApp;
  /** When set, JWT signatures are verified against it (RS256); otherwise only `iss` is checked. */
  publicKey: KeyObject | undefined;
}

const RANK: Record<AccessLevel, number> = { read: 1, write: 2, admin: 3 };
/** GitHub allows 60 s of clock drift in app JWTs. */
const CLOCK_SKEW_S = 60;

export function publicKeyFromPrivate(privateKeyPem: string): KeyObject {
  return createPublicKey(privateKeyPem);
}

function decodeSegment(segment: string): Record<string, unknown> | undefined {
  try {
    const parsed: unknown = JSON.parse(Buffer.from(segment, "base64url").toString("utf8"));
    return parsed && typeof parsed === "object" ? (parsed as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** Checks an app JWT the way GitHub does: RS256, `iss` = app id (or client id), iat/exp in range. */
export function verifyAppJwt(
  jwt: string,
  credentials: AppCredentials,
  nowMs = Date.now(),
): string | undefined {
  const parts = jwt.split(".");
  if (parts.length !== 3) return "not a JWT";
  const [headerPart, payloadPart, signaturePart] = parts as [string, string, string];
  const header = decodeSegment(headerPart);
  const payload = decodeSegment(payloadPart);
  if (!header || !payload) return "undecodable JWT";
  if (header.alg !== "RS256") return `JWT alg must be RS256, got ${String(header.alg)}`;
  const { app } = credentials;
  if (String(payload.iss) !== String(app.id) && payload.iss !== app.clientId) {
    return `JWT iss ${String(payload.iss)} is not app ${app.id}`;
  }
  const now = Math.floor(nowMs / 1000);
  if (typeof payload.exp !== "number" || payload.exp < now - CLOCK_SKEW_S) return "JWT expired";
  if (typeof payload.iat !== "number" || payload.iat > now + CLOCK_SKEW_S) {
    return "JWT issued in the future";
  }
  if (payload.exp - payload.iat > 600 + CLOCK_SKEW_S) return "JWT lives longer than 10 minutes";
  if (credentials.publicKey) {
    const valid = verify(
      "RSA-SHA256",
      Buffer.from(`${headerPart}.${payloadPart}`),
      credentials.publicKey,
      Buffer.from(signaturePart, "base64url"),
    );
    if (!valid) return "JWT signature does not verify";
  }
  return undefined;
}

/** Reads `Authorization` (`Bearer`/`token` scheme) and finds who it belongs to. */
export function authenticate(
  state: SimState,
  credentials: AppCredentials,
  authorization: string | undefined,
): Principal {
  if (!authorization) throw new HttpError(401, "Requires authentication");
  const match = /^(bearer|token)\s+(\S+)$/i.exec(authorization.trim());
  if (!match) throw new HttpError(401, "Bad credentials");
  const credential = match[2]!;
  if (credential.startsWith("ghs_")) {
    const token = state.tokens.get(credential);
    if (!token || token.expiresAt.getTime() <= state.clock().getTime()) {
      throw new HttpError(401, "Bad credentials");
    }
    return {
      kind: "installation",
      app: token.installation.app,
      token,
      actor: token.installation.app.bot,
    };
  }
  if (credential.split(".").length === 3) {
    const problem = verifyAppJwt(credential, credentials);
    if (problem) throw new HttpError(401, `A JSON web token could not be decoded (${problem})`);
    return { kind: "app", app: credentials.app };
  }
  throw new HttpError(401, "Bad credentials");
}

export function hasAccess(permissions: AppPermissions, name: string, access: AccessLevel): boolean {
  const granted = permissions[name];
  return granted !== undefined && RANK[granted] >= RANK[access];
}

/** `ghs_` + 36 base62 characters, like GitHub's installation tokens. */
export function newInstallationToken(): string {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  const bytes = randomBytes(36);
  let token = "ghs_";
  for (const byte of bytes) token += alphabet[byte % alphabet.length];
  return token;
}

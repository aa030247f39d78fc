/**
 * Failed logins with runner tokens, counted per network address so that guessing tokens is slow.
 * An IPv6 client usually holds a whole /64, so IPv6 addresses are counted by their /64; an
 * IPv4-mapped IPv6 address counts as its IPv4 address.
 *
 * Time is a `now` argument in milliseconds.
 */

/** Failed logins from one address (or /64) within `LOGIN_FAILURE_WINDOW_MS` that block it. */
export const LOGIN_FAILURE_LIMIT = 10;
export const LOGIN_FAILURE_WINDOW_MS = 60_000;

/** The key failures are counted under: the IPv4 address, or the IPv6 address's /64 prefix. */
export function addressKey(address: string | undefined): string {
  if (!address) return "unknown";
  const plain = address
    .replace(/^\[|\]$/g, "")
    .replace(/%.*$/, "")
    .toLowerCase();
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(plain);
  if (mapped) return mapped[1]!;
  if (!plain.includes(":")) return plain;
  const [head = "", tail = ""] = plain.split("::");
  const headParts = head ? head.split(":") : [];
  const tailParts = tail ? tail.split(":") : [];
  const missing = plain.includes("::") ? 8 - headParts.length - tailParts.length : 0;
  const groups = [...headParts, ...Array<string>(Math.max(0, missing)).fill("0"), ...tailParts];
  const prefix = groups.slice(0, 4).map((group) => (Number.parseInt(group, 16) || 0).toString(16));
  return `${prefix.join(":")}::/64`;
}

/**
 * How long an address with these failure times (oldest first) must still wait before another
 * login is tried (0: it may try now): while `LOGIN_FAILURE_LIMIT` failures lie within the window,
 * until the oldest of them leaves it.
 */
export function loginWaitMs(times: readonly number[], now: number): number {
  const recent = times.filter((at) => now - at < LOGIN_FAILURE_WINDOW_MS);
  if (recent.length < LOGIN_FAILURE_LIMIT) return 0;
  const oldest = recent[recent.length - LOGIN_FAILURE_LIMIT]!;
  return Math.max(1, oldest + LOGIN_FAILURE_WINDOW_MS - now);
}

/** The failure times after one more at `now`: only those still in the window, at most the limit. */
export function recordLoginFailure(times: readonly number[], now: number): number[] {
  return [...times.filter((at) => now - at < LOGIN_FAILURE_WINDOW_MS), now].slice(
    -LOGIN_FAILURE_LIMIT,
  );
}

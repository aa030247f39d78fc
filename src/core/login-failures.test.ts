import { describe, expect, it } from "vitest";
import {
  addressKey,
  LOGIN_FAILURE_LIMIT,
  LOGIN_FAILURE_WINDOW_MS,
  loginWaitMs,
  recordLoginFailure,
} from "./login-failures.ts";

describe("addressKey", () => {
  it.each([
    ["203.0.113.7", "203.0.113.7"],
    ["::ffff:203.0.113.7", "203.0.113.7"],
    ["2001:db8:1:2:aaaa:bbbb:cccc:dddd", "2001:db8:1:2::/64"],
    // Another address of the same /64 shares the key; written differently, too.
    ["2001:0db8:0001:0002::1", "2001:db8:1:2::/64"],
    ["[2001:db8:1:2::9%eth0]", "2001:db8:1:2::/64"],
    ["2001:db8::1", "2001:db8:0:0::/64"],
    ["::1", "0:0:0:0::/64"],
    [undefined, "unknown"],
  ])("%s counts as %s", (address, key) => {
    expect(addressKey(address)).toBe(key);
  });

  it("keeps different /64s apart", () => {
    expect(addressKey("2001:db8:1:2::1")).not.toBe(addressKey("2001:db8:1:3::1"));
  });
});

describe("login failures", () => {
  it("blocks after the limit within the window, until the oldest failure leaves it", () => {
    let times: number[] = [];
    for (let i = 0; i < LOGIN_FAILURE_LIMIT - 1; i++) times = recordLoginFailure(times, 1000 + i);
    expect(loginWaitMs(times, 2000)).toBe(0);
    times = recordLoginFailure(times, 2000);
    expect(loginWaitMs(times, 2000)).toBe(1000 + LOGIN_FAILURE_WINDOW_MS - 2000);
    expect(loginWaitMs(times, 1000 + LOGIN_FAILURE_WINDOW_MS)).toBe(0);
  });

  it("forgets failures older than the window", () => {
    const times = recordLoginFailure([0, 1, 2, 3, 4, 5, 6, 7, 8], LOGIN_FAILURE_WINDOW_MS + 10);
    expect(times).toEqual([LOGIN_FAILURE_WINDOW_MS + 10]);
    expect(loginWaitMs(times, LOGIN_FAILURE_WINDOW_MS + 10)).toBe(0);
  });
});

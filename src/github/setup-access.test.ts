import { describe, expect, it } from "vitest";
import { createSetupGuard, isLocalRequest, isLoopbackAddress } from "./setup-access.ts";

const CODE = "0123456789abcdef0123456789abcdef";

function request(
  remoteAddress: string | undefined,
  headers: Record<string, string> = {},
  url = "/probot/import",
) {
  return { socket: { remoteAddress }, headers, url } as never;
}

describe("who may write the App's credentials", () => {
  it.each([
    ["127.0.0.1", true],
    ["127.8.9.10", true],
    ["::1", true],
    ["::ffff:127.0.0.1", true],
    ["::FFFF:127.0.0.1", true],
    ["192.0.2.2", false],
    ["::ffff:192.0.2.2", false],
    ["10.0.0.1", false],
    ["fd00::2", false],
    ["127.0.0.1.example.com", false],
    ["1127.0.0.1", false],
    [undefined, false],
    ["", false],
  ])("%j is loopback: %s", (address, loopback) => {
    expect(isLoopbackAddress(address)).toBe(loopback);
  });

  it.each([
    ["a loopback peer", "127.0.0.1", {}, true],
    [
      "a loopback peer forwarding for someone (X-Forwarded-For)",
      "127.0.0.1",
      { "x-forwarded-for": "203.0.113.9" },
      false,
    ],
    ["a loopback peer forwarding (Forwarded)", "::1", { forwarded: "for=203.0.113.9" }, false],
    ["a loopback peer forwarding (X-Real-IP)", "127.0.0.1", { "x-real-ip": "203.0.113.9" }, false],
    [
      "a loopback peer naming another host",
      "127.0.0.1",
      { "x-forwarded-host": "evil.example" },
      false,
    ],
    [
      "another machine claiming to be local",
      "192.0.2.2",
      { "x-forwarded-for": "127.0.0.1" },
      false,
    ],
  ])("%s is local: %s", (_, address, headers, local) => {
    expect(isLocalRequest(request(address, headers))).toBe(local);
  });

  it.each([
    ["from this machine", request("127.0.0.1"), "local"],
    ["from elsewhere without a code", request("192.0.2.2"), "no-code"],
    [
      "with the code in the header",
      request("192.0.2.2", { "x-conveyor-setup-code": CODE }),
      "code",
    ],
    ["with the code in the query", request("192.0.2.2", {}, `/probot?setup_code=${CODE}`), "code"],
    [
      "with the code in the cookie",
      request("192.0.2.2", { cookie: `a=b; conveyor_setup_code=${CODE}` }),
      "code",
    ],
    ["with a wrong code", request("192.0.2.2", { "x-conveyor-setup-code": "guess" }), "wrong-code"],
    [
      "with the code's prefix",
      request("192.0.2.2", { "x-conveyor-setup-code": CODE.slice(0, 31) }),
      "wrong-code",
    ],
    [
      "with an empty cookie",
      request("192.0.2.2", { cookie: "conveyor_setup_code=" }),
      "wrong-code",
    ],
  ])("admits a request %s as %s", (_, req, access) => {
    expect(createSetupGuard(CODE).access(req)).toBe(access);
  });

  it("admits nobody with the code once credentials were written; this machine still works", () => {
    const guard = createSetupGuard(CODE);
    const withCode = request("192.0.2.2", { "x-conveyor-setup-code": CODE });
    expect(guard.access(withCode)).toBe("code");
    guard.consume();
    expect(guard.access(withCode)).toBe("wrong-code");
    expect(guard.access(request("127.0.0.1"))).toBe("local");
  });

  it("makes a new 128-bit code each time", () => {
    const codes = new Set([createSetupGuard().code, createSetupGuard().code]);
    expect(codes.size).toBe(2);
    for (const code of codes) expect(code).toMatch(/^[0-9a-f]{32}$/);
  });
});

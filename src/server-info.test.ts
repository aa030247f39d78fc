import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  readServerInfo,
  removeServerInfo,
  serverInfoPath,
  writeServerInfo,
} from "./server-info.ts";

describe("server.json", () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "conveyor-server-info-"));
  });
  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it("round-trips and leaves no temporary file behind", () => {
    writeServerInfo(dir, { pid: 1234, url: "http://127.0.0.1:3000" });
    expect(readServerInfo(dir)).toEqual({ pid: 1234, url: "http://127.0.0.1:3000" });
    expect(readdirSync(dir)).toEqual(["server.json"]);
  });

  it("refuses to publish something that is not a server address", () => {
    expect(() => writeServerInfo(dir, { pid: 1, url: "file:///etc/passwd" })).toThrow();
    expect(existsSync(serverInfoPath(dir))).toBe(false);
  });

  it.each([
    ["no file", undefined],
    ["not JSON", "{"],
    ["a missing url", JSON.stringify({ pid: 1 })],
    ["a string pid", JSON.stringify({ pid: "1", url: "http://x" })],
    ["a non-http url", JSON.stringify({ pid: 1, url: "ftp://x" })],
  ])("reads %s as no server", (_, text) => {
    if (text !== undefined) writeFileSync(serverInfoPath(dir), text);
    expect(readServerInfo(dir)).toBeUndefined();
  });

  it("removes only its own file", () => {
    writeServerInfo(dir, { pid: 1234, url: "http://127.0.0.1:3000" });
    removeServerInfo(dir, 999);
    expect(readServerInfo(dir)).toBeDefined();
    removeServerInfo(dir, 1234);
    expect(existsSync(serverInfoPath(dir))).toBe(false);
    // Removing what is not there is fine (idempotent shutdown).
    removeServerInfo(dir, 1234);
  });
});

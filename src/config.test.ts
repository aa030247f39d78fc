import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { ConfigError, EnvSchema, loadConfig } from "./config.ts";

const KEY = "-----BEGIN RSA PRIVATE KEY-----\nabc\n-----END RSA PRIVATE KEY-----\n";

describe("loadConfig", () => {
  it("gives sane defaults for an empty environment", () => {
    const config = loadConfig({}, "/srv/app");
    expect(config).toMatchObject({
      port: 3000,
      host: "0.0.0.0",
      databaseUrl: undefined,
      dataDir: "/srv/app/.conveyor",
      github: undefined,
      githubApiUrl: "https://api.github.com",
      logLevel: "info",
      logFormat: "auto",
    });
  });

  it.each(["auto", "json", "pretty"] as const)("reads LOG_FORMAT=%s", (format) => {
    expect(loadConfig({ LOG_FORMAT: format }).logFormat).toBe(format);
  });

  it("reads a complete App configuration", () => {
    const config = loadConfig(
      {
        PORT: "8080",
        APP_ID: "123",
        PRIVATE_KEY: KEY.replace(/\n/g, "\\n"),
        WEBHOOK_SECRET: "s3cret",
        GITHUB_API_URL: "http://127.0.0.1:9999/",
        DATABASE_URL: "postgres://u@localhost/db",
        LOG_LEVEL: "debug",
      },
      "/srv",
    );
    expect(config.port).toBe(8080);
    expect(config.github).toEqual({ appId: 123, privateKey: KEY, webhookSecret: "s3cret" });
    expect(config.githubApiUrl).toBe("http://127.0.0.1:9999");
    expect(config.databaseUrl).toBe("postgres://u@localhost/db");
  });

  it("treats empty strings as unset", () => {
    expect(loadConfig({ PORT: "", DATABASE_URL: "", APP_ID: "" }).databaseUrl).toBeUndefined();
  });

  it.each([
    [{ PORT: "abc" }, "PORT: expected a port number"],
    [{ PORT: "70000" }, "PORT: expected a port number"],
    [{ PORT: "3.5" }, "PORT: expected a port number"],
    [{ DATABASE_URL: "mysql://x" }, "DATABASE_URL: expected a postgres://"],
    [{ APP_ID: "my-app" }, "APP_ID: expected the numeric GitHub App ID"],
    [{ APP_ID: "1" }, "PRIVATE_KEY: APP_ID is set"],
    [{ PRIVATE_KEY: KEY }, "APP_ID: a private key is set"],
    [{ APP_ID: "1", PRIVATE_KEY: "not a key" }, "PRIVATE_KEY: expected a PEM private key"],
    [{ APP_ID: "1", PRIVATE_KEY_PATH: "/nonexistent/key.pem" }, "PRIVATE_KEY_PATH: cannot read"],
    [{ PRIVATE_KEY: KEY, PRIVATE_KEY_PATH: "k.pem" }, "set either PRIVATE_KEY or PRIVATE_KEY_PATH"],
    [{ LOG_LEVEL: "loud" }, "LOG_LEVEL: expected one of fatal, error"],
    [{ LOG_FORMAT: "text" }, "LOG_FORMAT: expected one of auto, json, pretty"],
    [{ LOG_FORMAT: "JSON" }, "LOG_FORMAT: expected one of auto, json, pretty"],
    [{ GITHUB_API_URL: "ftp://x" }, "GITHUB_API_URL: expected an http(s) URL"],
    [{ CONVEYOR_ADMIN_TOKEN: "short" }, "CONVEYOR_ADMIN_TOKEN: expected at least 16"],
    [
      { APP_ID: "1", PRIVATE_KEY: KEY, NODE_ENV: "production" },
      "WEBHOOK_SECRET: required when APP_ID is set",
    ],
    // No default secret outside production either: "development" is guessable.
    [{ APP_ID: "1", PRIVATE_KEY: KEY }, "WEBHOOK_SECRET: required when APP_ID is set"],
  ])("refuses %j naming the variable", (env, message) => {
    expect(() => loadConfig(env)).toThrow(ConfigError);
    expect(() => loadConfig(env)).toThrow(message);
  });

  it("names every bad variable at once", () => {
    expect(() => loadConfig({ PORT: "x", LOG_LEVEL: "y" })).toThrow(/PORT:[\s\S]*LOG_LEVEL:/);
  });

  it.each(Object.keys(EnvSchema.shape))(
    "documents %s in .env.example and docs/operations.md",
    (key) => {
      const root = new URL("..", import.meta.url);
      expect(readFileSync(new URL(".env.example", root), "utf8")).toMatch(
        new RegExp(`^# ${key}=`, "m"),
      );
      expect(readFileSync(new URL("docs/operations.md", root), "utf8")).toContain(key);
    },
  );
});

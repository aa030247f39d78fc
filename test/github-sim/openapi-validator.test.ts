import { describe, expect, it } from "vitest";
import { appRoutes } from "./app-routes.ts";
import { checkRoutes } from "./check-routes.ts";
import { gitRoutes } from "./git-routes.ts";
import { issueRoutes } from "./issue-routes.ts";
import { createOpenApiValidator, toJsonSchema } from "./openapi-validator.ts";
import { pullRoutes } from "./pull-routes.ts";
import { repoRoutes } from "./repo-routes.ts";

const validator = createOpenApiValidator();
const implemented = Object.keys({
  ...appRoutes,
  ...repoRoutes,
  ...issueRoutes,
  ...pullRoutes,
  ...gitRoutes,
  ...checkRoutes,
});

describe("createOpenApiValidator", () => {
  it.each([
    [
      "GET",
      "/repos/acme/widgets/git/ref/heads%2Fconveyor%2Fissue-1",
      "/repos/{owner}/{repo}/git/ref/{ref}",
      "heads/conveyor/issue-1",
    ],
    [
      "GET",
      "/repos/acme/widgets/git/ref/heads/conveyor/issue-1",
      "/repos/{owner}/{repo}/git/ref/{ref}",
      "heads/conveyor/issue-1",
    ],
    [
      "GET",
      "/repos/acme/widgets/commits/abc123/check-runs",
      "/repos/{owner}/{repo}/commits/{ref}/check-runs",
      "abc123",
    ],
    [
      "GET",
      "/repos/acme/widgets/commits/feature%2Fx",
      "/repos/{owner}/{repo}/commits/{ref}",
      "feature/x",
    ],
    [
      "GET",
      "/repos/acme/widgets/contents/.github/conveyor.yml",
      "/repos/{owner}/{repo}/contents/{path}",
      ".github/conveyor.yml",
    ],
    [
      "DELETE",
      "/repos/acme/widgets/issues/3/labels/priority%3Ahigh",
      "/repos/{owner}/{repo}/issues/{issue_number}/labels/{name}",
      "priority:high",
    ],
  ])("matches %s %s to its template", (method, path, route, value) => {
    const match = validator.match(method, path);
    expect(match?.route).toBe(route);
    expect(Object.values(match?.params ?? {})).toContain(value);
  });

  it("finds no operation for unknown paths or methods", () => {
    expect(validator.match("GET", "/repos/acme/widgets/nonsense")).toBeUndefined();
    expect(validator.match("DELETE", "/app")).toBeUndefined();
    expect(validator.match("TRACE", "/app")).toBeUndefined();
  });

  it("checks required bodies, body fields and parameter types", () => {
    const comment = validator.match("POST", "/repos/a/b/issues/1/comments")!;
    expect(validator.validate(comment, new URLSearchParams(), { body: "ok" })).toEqual([]);
    expect(
      validator.validate(comment, new URLSearchParams(), undefined).map((p) => p.message),
    ).toEqual(["a request body is required"]);
    const update = validator.match("PATCH", "/repos/a/b/issues/1")!;
    expect(
      validator.validate(update, new URLSearchParams(), { milestone: null, state: "closed" }),
    ).toEqual([]);
    expect(
      validator.validate(update, new URLSearchParams(), { state: "merged" }).map((p) => p.field),
    ).toContain("state");
    const list = validator.match("GET", "/repos/a/b/issues")!;
    expect(
      validator.validate(list, new URLSearchParams("per_page=two"), undefined)[0]?.message,
    ).toBe(`query parameter 'per_page' must be an integer (got "two")`);
  });

  it("knows every route the simulator implements and compiles each body schema", () => {
    for (const key of implemented) {
      const [method, template] = key.split(" ") as [string, string];
      const path = template.replace(/\{[^}]+\}/g, (param) =>
        param.endsWith("_id}") || param.endsWith("number}") ? "1" : "x",
      );
      const match = validator.match(method, path);
      expect(match?.route, key).toBe(template);
      expect(() => validator.validate(match!, new URLSearchParams(), {}), key).not.toThrow();
    }
  });
});

describe("toJsonSchema", () => {
  it("turns OpenAPI nullable into JSON Schema null types", () => {
    expect(
      toJsonSchema({
        type: "object",
        properties: {
          nullable: { type: "boolean" },
          reason: { type: "string", enum: ["a"], nullable: true },
          milestone: { oneOf: [{ type: "string" }, { type: "integer" }], nullable: true },
        },
      }),
    ).toEqual({
      type: "object",
      properties: {
        nullable: { type: "boolean" },
        reason: { type: ["string", "null"], enum: ["a", null] },
        milestone: {
          anyOf: [{ oneOf: [{ type: "string" }, { type: "integer" }] }, { type: "null" }],
        },
      },
    });
  });
});

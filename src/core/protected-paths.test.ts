import { describe, expect, it } from "vitest";
import { globProblem } from "./glob.ts";
import {
  BUILD_CONFIG_PATHS,
  FLOOR_PROTECTED_PATHS,
  type PathFinding,
  protectedPathFinding,
} from "./protected-paths.ts";
import { DEFAULT_PROTECTED_PATHS } from "./repo-config.ts";

const tier = (path: string, configured: readonly string[] = []) =>
  protectedPathFinding(path, configured)?.tier;

describe("protectedPathFinding", () => {
  it.each([
    // Other CI systems, wherever the file sits when the system reads it from there.
    [".circleci/config.yml", 3],
    [".gitlab-ci.yml", 3],
    [".gitlab/ci/deploy.yml", 3],
    ["Jenkinsfile", 3],
    ["ci/Jenkinsfile.release", 3],
    ["azure-pipelines.yml", 3],
    ["azure-pipelines-pr.yaml", 3],
    [".buildkite/pipeline.yml", 3],
    [".travis.yml", 3],
    ["bitbucket-pipelines.yml", 3],
    [".drone.yml", 3],
    [".drone.jsonnet", 3],
    [".woodpecker.yml", 3],
    [".woodpecker/test.yaml", 3],
    ["appveyor.yml", 3],
    [".appveyor.yml", 3],
    ["cloudbuild.yaml", 3],
    ["deploy/cloudbuild-prod.yml", 3],
    [".github/workflows/ci.yml", 3],
    [".github/actions/setup/action.yml", 3],
    // Local actions anywhere (`uses: ./tools/release`).
    ["tools/release/action.yml", 3],
    ["action.yaml", 3],
    // Hostile spellings: case, nesting.
    [".GitLab-CI.yml", 3],
    ["JENKINSFILE", 3],
    ["services/api/DOCKERFILE", 3],
    ["web/Package.JSON", 3],
    // Manifests and lockfiles of every ecosystem.
    ["package.json", 3],
    ["packages/ui/package.json", 3],
    ["package-lock.json", 3],
    ["pnpm-lock.yaml", 3],
    ["pnpm-workspace.yaml", 3],
    ["yarn.lock", 3],
    [".yarn/releases/yarn-4.1.0.cjs", 3],
    ["bun.lockb", 3],
    ["bun.lock", 3],
    ["deno.json", 3],
    ["deno.lock", 3],
    ["requirements.txt", 3],
    ["requirements-dev.txt", 3],
    ["requirements/test.in", 3],
    ["pyproject.toml", 3],
    ["setup.py", 3],
    ["setup.cfg", 3],
    ["poetry.lock", 3],
    ["uv.lock", 3],
    ["Pipfile", 3],
    ["Pipfile.lock", 3],
    ["go.mod", 3],
    ["go.sum", 3],
    ["go.work", 3],
    ["vendor/github.com/x/y/z.go", 3],
    ["Cargo.toml", 3],
    ["crates/core/Cargo.toml", 3],
    ["Cargo.lock", 3],
    ["Gemfile", 3],
    ["Gemfile.lock", 3],
    ["widgets.gemspec", 3],
    ["composer.json", 3],
    ["composer.lock", 3],
    ["pom.xml", 3],
    ["module/pom.xml", 3],
    [".mvn/wrapper/maven-wrapper.properties", 3],
    ["mvnw", 3],
    ["build.gradle", 3],
    ["app/build.gradle.kts", 3],
    ["settings.gradle.kts", 3],
    ["gradle.properties", 3],
    ["gradle/wrapper/gradle-wrapper.jar", 3],
    ["gradle/wrapper/gradle-wrapper.properties", 3],
    ["gradle/libs.versions.toml", 3],
    ["gradlew", 3],
    ["gradlew.bat", 3],
    ["buildSrc/src/main/kotlin/conventions.gradle.kts", 3],
    ["src/Api/Api.csproj", 3],
    ["packages.lock.json", 3],
    ["Directory.Packages.props", 3],
    ["NuGet.Config", 3],
    ["mix.exs", 3],
    ["mix.lock", 3],
    ["pubspec.yaml", 3],
    ["pubspec.lock", 3],
    ["Package.swift", 3],
    ["Package.resolved", 3],
    ["flake.nix", 3],
    ["flake.lock", 3],
    ["nix/shell.nix", 3],
    [".nvmrc", 3],
    ["rust-toolchain.toml", 3],
    // Package-manager configuration.
    [".npmrc", 3],
    ["frontend/.npmrc", 3],
    [".yarnrc", 3],
    [".yarnrc.yml", 3],
    ["pip.conf", 3],
    [".cargo/config.toml", 3],
    ["tools/.cargo/config", 3],
    [".bundle/config", 3],
    // Containers and compose.
    ["Dockerfile", 3],
    ["docker/Dockerfile.dev", 3],
    ["api.Dockerfile", 3],
    ["Containerfile", 3],
    ["docker-compose.yml", 3],
    ["docker-compose.override.yaml", 3],
    ["compose.yaml", 3],
    ["compose.prod.yml", 3],
    [".dockerignore", 3],
    [".devcontainer/devcontainer.json", 3],
    // Repository attributes and ownership.
    [".gitattributes", 3],
    ["assets/.gitattributes", 3],
    [".gitmodules", 3],
    ["CODEOWNERS", 3],
    ["docs/CODEOWNERS", 3],
    [".github/conveyor.yml", 3],
    // Build and lint configuration: at least tier 2.
    ["Makefile", 2],
    ["lib/Makefile", 2],
    ["rules.mk", 2],
    ["tsconfig.json", 2],
    ["tsconfig.build.json", 2],
    ["packages/web/tsconfig.json", 2],
    [".eslintrc.cjs", 2],
    ["eslint.config.mjs", 2],
    ["biome.json", 2],
    [".prettierrc", 2],
    [".prettierrc.yaml", 2],
    ["prettier.config.js", 2],
    ["ruff.toml", 2],
    [".golangci.yml", 2],
    ["CMakeLists.txt", 2],
    ["Directory.Build.props", 2],
    // Safe twins: ordinary files that share a word with a protected name.
    ["src/app.ts", undefined],
    ["docs/package-json.md", undefined],
    ["docs/ci/jenkins.md", undefined],
    ["src/dockerfile-parser.ts", undefined],
    ["src/compose.ts", undefined],
    ["src/actions/login.ts", undefined],
    ["src/actions.yml.ts", undefined],
    ["src/makefile.ts", undefined],
    ["src/gradle/plugin.ts", undefined],
    ["src/vendors.ts", undefined],
    ["locales/en/global.json", undefined],
    ["README.md", undefined],
    ["src/tsconfig-paths.ts", undefined],
    // A lookalike with a Cyrillic "а" is not the file any tool reads.
    ["pаckage.json", undefined],
  ] as const)("%s → %s", (path, expected) => {
    expect(tier(path)).toBe(expected);
  });

  it("names the group and the pattern", () => {
    expect(protectedPathFinding("ci/Jenkinsfile.release", [])).toEqual<PathFinding>({
      tier: 3,
      pattern: "Jenkinsfile.*",
      what: "CI configuration",
      builtIn: true,
    });
    expect(protectedPathFinding("Makefile", [])).toEqual<PathFinding>({
      tier: 2,
      pattern: "Makefile",
      what: "build or lint configuration",
      builtIn: true,
    });
  });

  it("adds configured paths at tier 3, case-sensitively, and they outrank build configuration", () => {
    expect(protectedPathFinding("infra/main.tf", ["infra/**"])).toEqual<PathFinding>({
      tier: 3,
      pattern: "infra/**",
      builtIn: false,
    });
    expect(tier("INFRA/main.tf", ["infra/**"])).toBeUndefined();
    expect(tier("Makefile", ["Makefile"])).toBe(3);
    // Config cannot take anything off the floor: an empty list still protects it.
    expect(tier("go.mod", [])).toBe(3);
  });

  it("every built-in pattern is a valid glob, and the default protected paths stay protected", () => {
    for (const pattern of [...FLOOR_PROTECTED_PATHS, ...BUILD_CONFIG_PATHS]) {
      expect([pattern, globProblem(pattern)]).toEqual([pattern, undefined]);
    }
    for (const pattern of DEFAULT_PROTECTED_PATHS) {
      const example = pattern.replace("**/", "x/").replace("**", "y").replace("*", "z");
      expect([example, tier(example, DEFAULT_PROTECTED_PATHS)]).toEqual([example, 3]);
    }
  });

  it.each([
    ["a deep path", `${"a/".repeat(2_000)}package.jsox`],
    ["a long name", `${"a".repeat(20_000)}.txt`],
    ["many stars' worth of near misses", `${"ab".repeat(5_000)}/x`],
  ])("answers quickly for %s against hostile patterns", (_name, path) => {
    const hostile = ["**/a*a*a*a*a*a*a*a*a*b", "**/**/**/**/**/**/c", "*a*b*a*b*a*b*a*b*z"];
    for (const pattern of hostile) expect(globProblem(pattern)).toBeUndefined();
    const started = performance.now();
    expect(protectedPathFinding(path, hostile)).toBeUndefined();
    // Backtracking would take minutes here; the linear matcher takes milliseconds.
    expect(performance.now() - started).toBeLessThan(2_000);
  });
});

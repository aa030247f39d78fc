import { createGlobSet, matchesGlob } from "./glob.ts";

/**
 * Paths whose change Conveyor never merges by itself, or never as tier 1, whatever
 * `.github/conveyor.yml` says: they change how the code is built, tested, installed or judged,
 * so an agent's change must not be able to touch them unseen. Config can add protected paths
 * (`merge.protected_paths`) but never remove these.
 *
 * Patterns use the syntax of {@link matchesGlob}: one without `/` matches the file name at any
 * depth (`package.json` also matches `web/package.json`); one with `/` is relative to the root.
 * Unlike configured patterns, the built-in ones ignore case (`dockerfile`, `.GitLab-CI.yml`): a
 * case-insensitive file system or tool reads those files too, so failing closed is cheaper.
 */
export interface PathGroup {
  /** What the files are, for the reason shown ("CI configuration"). */
  what: string;
  patterns: readonly string[];
}

/** Built-in tier 3: CI, manifests and lockfiles, package-manager config, containers, … */
export const FLOOR_PATH_GROUPS: readonly PathGroup[] = [
  {
    what: "CI configuration",
    patterns: [
      ".github/workflows/**",
      ".github/actions/**",
      // Local actions anywhere: `uses: ./tools/release` runs tools/release/action.yml.
      "action.yml",
      "action.yaml",
      ".circleci/**",
      ".gitlab-ci.yml",
      ".gitlab-ci.yaml",
      ".gitlab/**",
      "Jenkinsfile",
      "Jenkinsfile.*",
      "*.jenkinsfile",
      "azure-pipelines*.yml",
      "azure-pipelines*.yaml",
      ".azure-pipelines/**",
      ".azuredevops/**",
      ".buildkite/**",
      "buildkite.{yml,yaml,json}",
      ".travis.yml",
      ".travis.yaml",
      "bitbucket-pipelines.yml",
      "bitbucket-pipelines.yaml",
      ".drone.{yml,yaml,jsonnet,star}",
      ".woodpecker.yml",
      ".woodpecker.yaml",
      ".woodpecker/**",
      "appveyor.yml",
      "appveyor.yaml",
      ".appveyor.yml",
      ".appveyor.yaml",
      "cloudbuild*.{yaml,yml,json}",
      ".semaphore/**",
      ".cirrus.{yml,star}",
      "bitrise.yml",
      "codemagic.yaml",
      ".teamcity/**",
      ".pre-commit-config.yaml",
      ".husky/**",
      "lefthook.yml",
    ],
  },
  {
    what: "Conveyor's rules and code ownership",
    patterns: [".github/conveyor.yml", "CODEOWNERS", "**/CODEOWNERS", ".github/CODEOWNERS"],
  },
  {
    what: "a dependency manifest or lockfile",
    patterns: [
      // npm, pnpm, yarn, bun, deno
      "package.json",
      "package-lock.json",
      "npm-shrinkwrap.json",
      "pnpm-lock.yaml",
      "pnpm-workspace.yaml",
      ".pnpmfile.cjs",
      "yarn.lock",
      "**/.yarn/**",
      ".pnp.cjs",
      ".pnp.loader.mjs",
      "bun.lockb",
      "bun.lock",
      "deno.json",
      "deno.jsonc",
      "deno.lock",
      "import_map.json",
      // pip, poetry, uv, pipenv, pdm, conda
      "requirements*.txt",
      "requirements*.in",
      "constraints*.txt",
      "**/requirements/*.{txt,in}",
      "pyproject.toml",
      "setup.py",
      "setup.cfg",
      "poetry.lock",
      "uv.lock",
      "Pipfile",
      "Pipfile.lock",
      "pdm.lock",
      "/environment.yml",
      "/environment.yaml",
      // Go
      "go.mod",
      "go.sum",
      "go.work",
      "go.work.sum",
      "**/vendor/**",
      // Cargo
      "Cargo.toml",
      "Cargo.lock",
      // Bundler
      "Gemfile",
      "Gemfile.lock",
      "gems.rb",
      "gems.locked",
      "*.gemspec",
      // Composer
      "composer.json",
      "composer.lock",
      // Maven, with its wrapper
      "pom.xml",
      "**/.mvn/**",
      "mvnw",
      "mvnw.cmd",
      // Gradle, with its wrapper, version catalogs and build logic
      "build.gradle",
      "build.gradle.kts",
      "settings.gradle",
      "settings.gradle.kts",
      "gradle.properties",
      "gradle.lockfile",
      "gradlew",
      "gradlew.bat",
      "**/gradle/wrapper/**",
      "*.versions.toml",
      "**/buildSrc/**",
      // NuGet and .NET
      "*.csproj",
      "*.fsproj",
      "*.vbproj",
      "packages.config",
      "packages.lock.json",
      "Directory.Packages.props",
      "/global.json",
      "**/.config/dotnet-tools.json",
      // Mix, pub, SwiftPM and CocoaPods, Nix, Bazel
      "mix.exs",
      "mix.lock",
      "pubspec.yaml",
      "pubspec.lock",
      "pubspec_overrides.yaml",
      "Package.swift",
      "Package.resolved",
      "Podfile",
      "Podfile.lock",
      "Cartfile",
      "Cartfile.resolved",
      "*.nix",
      "flake.lock",
      "MODULE.bazel",
      "MODULE.bazel.lock",
      "WORKSPACE",
      "WORKSPACE.bazel",
      // Toolchain versions CI installs
      ".nvmrc",
      ".node-version",
      ".python-version",
      ".ruby-version",
      ".tool-versions",
      "rust-toolchain",
      "rust-toolchain.toml",
      "mise.toml",
      ".mise.toml",
    ],
  },
  {
    what: "package-manager configuration",
    patterns: [
      ".npmrc",
      ".yarnrc",
      ".yarnrc.*",
      "bunfig.toml",
      "pip.conf",
      "pip.ini",
      ".pypirc",
      "poetry.toml",
      "uv.toml",
      ".condarc",
      "**/.cargo/config",
      "**/.cargo/config.toml",
      ".gemrc",
      "**/.bundle/config",
      "nuget.config",
    ],
  },
  {
    what: "a container or compose file",
    patterns: [
      "Dockerfile",
      "Dockerfile.*",
      "*.Dockerfile",
      "Containerfile",
      "Containerfile.*",
      ".dockerignore",
      "docker-compose*",
      "compose.yml",
      "compose.yaml",
      "compose.*.yml",
      "compose.*.yaml",
      "**/.devcontainer/**",
      "devcontainer.json",
      ".devcontainer.json",
    ],
  },
  {
    what: "repository attributes",
    patterns: [".gitattributes", ".gitmodules", ".lfsconfig"],
  },
];

/** Built-in tier 2 at least: build and lint configuration (never tier 1, an approval is enough). */
export const BUILD_CONFIG_PATH_GROUPS: readonly PathGroup[] = [
  {
    what: "build or lint configuration",
    patterns: [
      "Makefile",
      "GNUmakefile",
      "*.mk",
      "CMakeLists.txt",
      "*.cmake",
      "meson.build",
      "meson_options.txt",
      "BUILD",
      "BUILD.bazel",
      "*.bzl",
      ".bazelrc",
      ".bazelversion",
      "Rakefile",
      "Taskfile.{yml,yaml}",
      "justfile",
      ".justfile",
      "Directory.Build.props",
      "Directory.Build.targets",
      "tsconfig*.json",
      "jsconfig*.json",
      ".eslintrc",
      ".eslintrc.*",
      "eslint.config.*",
      ".eslintignore",
      "biome.json",
      "biome.jsonc",
      ".prettierrc",
      ".prettierrc.*",
      "prettier.config.*",
      ".prettierignore",
      ".stylelintrc",
      ".stylelintrc.*",
      "stylelint.config.*",
      "babel.config.*",
      ".babelrc",
      ".babelrc.*",
      ".swcrc",
      "webpack.config.*",
      "rollup.config.*",
      "esbuild.config.*",
      "turbo.json",
      "nx.json",
      "lerna.json",
      ".browserslistrc",
      ".editorconfig",
      "ruff.toml",
      ".ruff.toml",
      ".flake8",
      "mypy.ini",
      ".mypy.ini",
      ".pylintrc",
      "pylintrc",
      ".rubocop.yml",
      ".rubocop_todo.yml",
      ".golangci.{yml,yaml,toml,json}",
      "clippy.toml",
      ".clippy.toml",
      "rustfmt.toml",
      ".rustfmt.toml",
      "deny.toml",
      ".clang-format",
      ".clang-tidy",
      ".swiftlint.yml",
      "detekt.yml",
      ".scalafmt.conf",
      "phpstan.neon",
      "phpstan.neon.dist",
      ".php-cs-fixer.php",
      ".php-cs-fixer.dist.php",
      "checkstyle.xml",
    ],
  },
];

/** Every built-in tier-3 pattern, flat. */
export const FLOOR_PROTECTED_PATHS: readonly string[] = FLOOR_PATH_GROUPS.flatMap(
  (group) => group.patterns,
);

/** Every built-in tier-2 pattern, flat. */
export const BUILD_CONFIG_PATHS: readonly string[] = BUILD_CONFIG_PATH_GROUPS.flatMap(
  (group) => group.patterns,
);

/** Why a path is protected: which list, which pattern, and at what tier. */
export interface PathFinding {
  /** 3: never auto-merged; 2: never tier 1. */
  tier: 2 | 3;
  pattern: string;
  /** The built-in group's description; undefined for a `merge.protected_paths` pattern. */
  what?: string | undefined;
  builtIn: boolean;
}

const groupSets = (groups: readonly PathGroup[]) =>
  groups.map((group) => ({
    what: group.what,
    set: createGlobSet(group.patterns, { ignoreCase: true }),
  }));

const FLOOR = groupSets(FLOOR_PATH_GROUPS);
const BUILD = groupSets(BUILD_CONFIG_PATH_GROUPS);

function builtInMatch(path: string, groups: ReturnType<typeof groupSets>) {
  for (const group of groups) {
    const pattern = group.set.first(path);
    if (pattern) return { what: group.what, pattern };
  }
  return undefined;
}

/**
 * How protected `path` is: the built-in floor (tier 3, case-insensitive), then `configured`
 * (`merge.protected_paths`, tier 3, case-sensitive), then built-in build and lint configuration
 * (tier 2). Undefined for an ordinary path. Matching is linear in the path and the pattern (see
 * `glob.ts`), so a hostile path or pattern cannot make it slow.
 */
export function protectedPathFinding(
  path: string,
  configured: readonly string[],
): PathFinding | undefined {
  const floor = builtInMatch(path, FLOOR);
  if (floor) return { tier: 3, pattern: floor.pattern, what: floor.what, builtIn: true };
  const own = configured.find((pattern) => matchesGlob(path, pattern));
  if (own) return { tier: 3, pattern: own, builtIn: false };
  const build = builtInMatch(path, BUILD);
  if (build) return { tier: 2, pattern: build.pattern, what: build.what, builtIn: true };
  return undefined;
}

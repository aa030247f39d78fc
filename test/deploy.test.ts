/**
 * The deploy files (Dockerfile, runners/Dockerfile, compose.yaml, deploy/kubernetes) on a machine
 * without a container engine or a cluster: each is checked against its published schema, and the
 * server's Dockerfile is replayed step by step in a clean directory, then started as its CMD says.
 */
import { type ChildProcess, spawn } from "node:child_process";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { Ajv } from "ajv";
import type { IDeployment } from "kubernetes-models/apps/v1/Deployment";
import type { IPodDisruptionBudget } from "kubernetes-models/policy/v1/PodDisruptionBudget";
import type { IService } from "kubernetes-models/v1/Service";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import {
  dockerignore,
  execForm,
  hostPath,
  parseDockerfile,
  parseEnv,
  type RunStep,
  replayDockerfile,
  type Stage,
} from "./helpers/dockerfile.ts";
import {
  type KubernetesObject,
  kustomize,
  kustomizeMajorVersion,
  schemaProblems,
  unknownFields,
} from "./helpers/kubernetes-objects.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const at = (path: string) => join(ROOT, path);

const dirs: string[] = [];
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});
function temporaryDirectory(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  dirs.push(dir);
  return dir;
}

describe("compose.yaml", () => {
  const schema = JSON.parse(
    readFileSync(at("test/fixtures/compose-spec/compose-spec.json"), "utf8"),
  );
  // The schema names its draft by an https URL Ajv does not know; it is draft-07, Ajv's default.
  delete schema.$schema;
  const validate = new Ajv({ allErrors: true, strict: false }).compile(schema);
  const problems = (document: unknown) =>
    validate(document)
      ? []
      : (validate.errors ?? []).map((e) => `${e.instancePath || "/"} ${e.message}`);
  const compose = parse(readFileSync(at("compose.yaml"), "utf8"));

  it("is valid against the Compose Specification's JSON Schema", () => {
    expect(problems(compose)).toEqual([]);
  });

  it("fails the schema with a misspelt or mistyped key", () => {
    const misspelt = structuredClone(compose);
    misspelt.services.server.restart_policy = "always";
    expect(problems(misspelt).join("\n")).toContain("must NOT have additional properties");
    const mistyped = structuredClone(compose);
    mistyped.services.db.volumes = "postgres-data:/var/lib/postgresql/data";
    expect(problems(mistyped)).not.toEqual([]);
  });

  it("runs PostgreSQL 16 on a volume, the server from .env, and a runner that never reads .env", () => {
    const { db, server, runner } = compose.services;
    expect(Object.keys(compose.services).sort()).toEqual(["db", "runner", "server"]);
    expect(db.image).toMatch(/^postgres:16(\b|-)/);
    expect(db.volumes).toContain("postgres-data:/var/lib/postgresql/data");
    expect(Object.keys(compose.volumes)).toContain("postgres-data");
    expect(server.build).toMatchObject({ context: ".", dockerfile: "Dockerfile" });
    expect(server.env_file).toEqual([{ path: ".env", required: true }]);
    expect(server.environment.DATABASE_URL).toMatch(/^postgres:\/\/conveyor:\$\{POSTGRES_PASSWORD/);
    expect(server.depends_on.db.condition).toBe("service_healthy");
    // The agent inherits the runner's environment: the server's secrets must not be in it.
    expect(JSON.stringify(runner.env_file)).not.toContain('".env"');
    expect(runner.environment.CONVEYOR_SERVER_URL).toBe("http://server:3000");
    // What bubblewrap needs inside a container (runners/README.md).
    expect(runner.security_opt).toEqual(
      expect.arrayContaining([
        "seccomp=unconfined",
        "apparmor=unconfined",
        "systempaths=unconfined",
      ]),
    );
    expect(runner.cap_drop).toEqual(["ALL"]);
    expect(runner.privileged).toBeUndefined();
  });
});

describe("deploy/kubernetes (kubectl kustomize)", () => {
  let objects: KubernetesObject[];
  beforeAll(() => {
    objects = kustomize(at("deploy/kubernetes"));
  });
  const find = <T>(kind: string, name: string): T => {
    const found = objects.find((o) => o.kind === kind && o.metadata.name === name);
    if (!found) throw new Error(`no ${kind}/${name} in the rendered objects`);
    return found as unknown as T;
  };
  const deployment = (name: string) => find<IDeployment>("Deployment", name);

  it("renders the server (Deployment, Service, PodDisruptionBudget), the runner and their settings", () => {
    expect(
      objects.map((o) => `${o.kind}/${o.metadata.name.replace(/-[a-z0-9]{10}$/, "")}`).sort(),
    ).toEqual([
      "ConfigMap/conveyor-runner-settings",
      "ConfigMap/conveyor-server-settings",
      "Deployment/conveyor-runner",
      "Deployment/conveyor-server",
      "PodDisruptionBudget/conveyor-server",
      "Service/conveyor-server",
    ]);
  });

  it("every object is valid against the Kubernetes JSON Schema of its kind", async () => {
    const found = await Promise.all(objects.map(schemaProblems));
    expect(found.flat()).toEqual([]);
  });

  it("no object has a field the Kubernetes API does not define", () => {
    expect(unknownFields(objects)).toEqual([]);
  });

  it("the schema checks fail on a wrong type, a missing field or a misspelt field", async () => {
    const server = structuredClone(find<KubernetesObject>("Deployment", "conveyor-server"));
    const spec = server.spec as Record<string, unknown>;
    spec.replicas = "two";
    delete spec.selector;
    const wrong = (await schemaProblems(server)).join("\n");
    expect(wrong).toContain("Deployment/conveyor-server:");
    expect(wrong).toContain("spec/replicas must be integer");
    expect(wrong).toContain("spec must have required property selector");
    const misspelt = structuredClone(find<KubernetesObject>("Deployment", "conveyor-server"));
    const [container] = (misspelt as unknown as IDeployment).spec!.template.spec!.containers;
    Object.assign(container!, { readinesProbe: container!.readinessProbe });
    expect(unknownFields([misspelt]).join("\n")).toContain(
      "Deployment/conveyor-server: Object literal may only specify known properties, and '\"readinesProbe\"' does not exist",
    );
    expect(await schemaProblems({ ...misspelt, apiVersion: "apps/v9" })).toEqual([
      "Deployment/conveyor-server: no schema for apiVersion apps/v9",
    ]);
  });

  it("runs two server replicas with probes on /healthz and /readyz, a PodDisruptionBudget and its secrets from a Secret", () => {
    const server = deployment("conveyor-server").spec!;
    expect(server.replicas).toBe(2);
    const pod = server.template.spec!;
    const container = pod.containers[0]!;
    expect(container.livenessProbe?.httpGet).toEqual({ path: "/healthz", port: "http" });
    expect(container.readinessProbe?.httpGet).toEqual({ path: "/readyz", port: "http" });
    const fromSecret = Object.fromEntries(
      (container.env ?? []).flatMap((e) => {
        const ref = e.valueFrom?.secretKeyRef;
        return ref ? [[e.name, `${ref.name}/${ref.key}`]] : [];
      }),
    );
    expect(fromSecret).toEqual({
      APP_ID: "conveyor-server/APP_ID",
      PRIVATE_KEY: "conveyor-server/PRIVATE_KEY",
      WEBHOOK_SECRET: "conveyor-server/WEBHOOK_SECRET",
      DATABASE_URL: "conveyor-server/DATABASE_URL",
      CONVEYOR_ADMIN_TOKEN: "conveyor-server/CONVEYOR_ADMIN_TOKEN",
    });
    expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: 1000 });
    expect(container.securityContext).toMatchObject({
      readOnlyRootFilesystem: true,
      allowPrivilegeEscalation: false,
      capabilities: { drop: ["ALL"] },
    });
    expect(container.resources?.requests).toBeDefined();
    expect(container.resources?.limits).toBeDefined();
    const service = find<IService>("Service", "conveyor-server").spec!;
    expect(service.selector).toEqual(server.selector.matchLabels);
    const budget = find<IPodDisruptionBudget>("PodDisruptionBudget", "conveyor-server").spec!;
    expect(budget.selector?.matchLabels).toEqual(server.selector.matchLabels);
    expect(budget.minAvailable).toBe(1);
  });

  it("gives the runner its token as a private file, never the Secret itself, and nothing of the server's", () => {
    const pod = deployment("conveyor-runner").spec!.template.spec!;
    const runner = pod.containers[0]!;
    const copy = pod.initContainers![0]!;
    const secretVolume = pod.volumes!.find((v) => v.secret)!;
    expect(secretVolume.secret!.secretName).toBe("conveyor-runner");
    // Mounted in the init container that copies it with mode 0600, not where the agent runs.
    expect(copy.volumeMounts!.map((m) => m.name)).toContain(secretVolume.name);
    expect(runner.volumeMounts!.map((m) => m.name)).not.toContain(secretVolume.name);
    expect(copy.command).toEqual([
      "install",
      "-m",
      "0600",
      "/var/run/secrets/conveyor-runner/token",
      "/run/conveyor-runner/token",
    ]);
    expect(runner.env).toContainEqual({
      name: "CONVEYOR_RUNNER_TOKEN_FILE",
      value: "/run/conveyor-runner/token",
    });
    expect(JSON.stringify(runner)).not.toContain('conveyor-server"');
    expect(pod.automountServiceAccountToken).toBe(false);
    expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: 1000 });
    expect(runner.securityContext?.capabilities).toEqual({ drop: ["ALL"] });
  });

  it("renders the overlay docs/operations.md shows, valid, with its images, namespace and URL", async () => {
    const doc = readFileSync(at("docs/operations.md"), "utf8");
    // The block sits in a numbered list, indented like its fences.
    const lines = doc.split("\n");
    const first = lines.findIndex((l) => l.trim() === "# overlays/production/kustomization.yaml");
    if (first < 0)
      throw new Error("docs/operations.md has no overlays/production/kustomization.yaml");
    const indent = /^ */.exec(lines[first]!)![0];
    const end = lines.findIndex((l, n) => n > first && l === `${indent}\`\`\``);
    const overlay = join(temporaryDirectory("conveyor-overlay-"), "production");
    mkdirSync(overlay);
    const base = relative(overlay, at("deploy/kubernetes"));
    const kustomization = parse(
      lines
        .slice(first, end)
        .map((l) => l.slice(indent.length))
        .join("\n"),
    );
    expect(kustomization.resources).toEqual(["../../deploy/kubernetes"]);
    kustomization.resources = [base];
    // kustomize 2 (kubectl 1.20, Debian 12's) takes a directory under `bases`, which later
    // versions deprecate in favour of `resources`, as written in the docs.
    if (kustomizeMajorVersion() < 3) {
      kustomization.bases = kustomization.resources;
      delete kustomization.resources;
    }
    writeFileSync(join(overlay, "kustomization.yaml"), JSON.stringify(kustomization));
    const rendered = kustomize(overlay);
    expect((await Promise.all(rendered.map(schemaProblems))).flat()).toEqual([]);
    expect(unknownFields(rendered)).toEqual([]);
    expect(new Set(rendered.map((o) => o.metadata.namespace))).toEqual(new Set(["conveyor"]));
    const images = rendered.flatMap((o) => {
      const pod = (o as unknown as IDeployment).spec?.template?.spec;
      return pod ? [...(pod.initContainers ?? []), ...pod.containers].map((c) => c.image) : [];
    });
    expect(new Set(images)).toEqual(
      new Set([
        "registry.example.com/conveyor:0.1.0",
        "registry.example.com/conveyor-runner-claude:0.1.0",
      ]),
    );
    const runner = rendered.find(
      (o) => o.metadata.name === "conveyor-runner",
    ) as unknown as IDeployment;
    const settings = rendered.find((o) => o.metadata.name.startsWith("conveyor-server-settings"));
    expect(settings).toMatchObject({
      metadata: { namespace: "conveyor" },
      data: { CONVEYOR_PUBLIC_URL: "https://conveyor.example.com", LOG_FORMAT: "json" },
    });
    expect(runner.spec!.template.spec!.containers[0]!.envFrom).toContainEqual({
      secretRef: { name: "conveyor-agent", optional: true },
    });
  });
});

describe("deploy/kubernetes/runners (kubectl kustomize): ephemeral runners scaled by KEDA", () => {
  let objects: KubernetesObject[];
  beforeAll(() => {
    objects = kustomize(at("deploy/kubernetes/runners"));
  });
  const find = (kind: string) => {
    const found = objects.find((o) => o.kind === kind);
    if (!found) throw new Error(`no ${kind} in the rendered objects`);
    // biome-ignore lint/suspicious/noExplicitAny: a custom resource's spec, walked by the assertions.
    return found as KubernetesObject & { spec: Record<string, any> };
  };

  it("renders the ScaledJob, its TriggerAuthentication and the runners' settings", () => {
    expect(
      objects.map((o) => `${o.kind}/${o.metadata.name.replace(/-[a-z0-9]{10}$/, "")}`).sort(),
    ).toEqual([
      "ConfigMap/conveyor-ephemeral-runner-settings",
      "ScaledJob/conveyor-runner",
      "TriggerAuthentication/conveyor-scaling",
    ]);
  });

  it("every object is valid against the JSON Schema of its kind (KEDA's for the ScaledJob)", async () => {
    const found = await Promise.all(objects.map(schemaProblems));
    expect(found.flat()).toEqual([]);
  });

  it("no object has a field its API does not define", () => {
    expect(unknownFields(objects)).toEqual([]);
  });

  it("the schema checks fail on a wrong type or a misspelt field of the ScaledJob", async () => {
    const job = structuredClone(find("ScaledJob"));
    job.spec.pollingInterval = "often";
    expect((await schemaProblems(job)).join("\n")).toContain("pollingInterval");
    const misspelt = structuredClone(find("ScaledJob"));
    misspelt.spec.jobTargetRef.template.spec.containers[0].envFrm = [];
    expect(unknownFields([misspelt]).join("\n")).toContain("envFrm");
  });

  it("scales on /api/scaling's runners_wanted and runs one ephemeral runner per Job", () => {
    const job = find("ScaledJob").spec;
    expect(job.triggers).toEqual([
      {
        type: "metrics-api",
        authenticationRef: { name: "conveyor-scaling" },
        metadata: {
          url: "http://conveyor-server/api/scaling",
          valueLocation: "runners_wanted",
          targetValue: "1",
          authMode: "bearer",
        },
      },
    ]);
    const pod = job.jobTargetRef.template.spec;
    const runner = pod.containers[0];
    const mint = pod.initContainers[0];
    expect(pod.restartPolicy).toBe("Never");
    expect(runner.args).toEqual(["start"]);
    const settings = objects.find((o) => o.kind === "ConfigMap") as unknown as {
      data: Record<string, string>;
    };
    expect(settings.data.CONVEYOR_RUNNER_EPHEMERAL).toBe("1");
    // The minter token is mounted in the init step only, never where the agent runs.
    const minter = pod.volumes.find((v: { secret?: unknown }) => v.secret);
    expect(minter.secret.secretName).toBe("conveyor-runner-minter");
    expect(mint.volumeMounts.map((m: { name: string }) => m.name)).toContain(minter.name);
    expect(runner.volumeMounts.map((m: { name: string }) => m.name)).not.toContain(minter.name);
    expect(mint.command.join(" ")).toContain("/api/runners/jit");
    expect(mint.command.join(" ")).toContain("mode: 0o600");
    expect(runner.env).toContainEqual({
      name: "CONVEYOR_RUNNER_TOKEN_FILE",
      value: "/run/conveyor-runner/token",
    });
    expect(pod.automountServiceAccountToken).toBe(false);
    expect(runner.securityContext.capabilities).toEqual({ drop: ["ALL"] });
    expect(job.jobTargetRef.template.metadata.annotations).toEqual({
      "container.apparmor.security.beta.kubernetes.io/runner": "unconfined",
    });
  });
});

/** A free TCP port on the loopback interface. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** Runs argv to its end: exit code and output. */
function run(
  argv: string[],
  options: { cwd: string; env: Record<string, string>; timeoutMs: number },
): Promise<{ code: number | string; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0]!, argv.slice(1), {
      cwd: options.cwd,
      env: options.env,
      stdio: ["ignore", "pipe", "pipe"],
      timeout: options.timeoutMs,
    });
    let output = "";
    child.stdout.on("data", (chunk) => (output += chunk));
    child.stderr.on("data", (chunk) => (output += chunk));
    child.on("error", reject);
    child.on("exit", (code, signal) => resolve({ code: code ?? signal ?? "unknown", output }));
  });
}

/** The environment npm gets here: none of the parent `npm test`'s npm_* settings, the npm cache. */
function npmEnv(stage: Stage): Record<string, string> {
  return {
    PATH: process.env.PATH ?? "",
    HOME: process.env.HOME ?? tmpdir(),
    ...(process.env.npm_config_cache ? { npm_config_cache: process.env.npm_config_cache } : {}),
    // What `docker build` downloads, this machine takes from its npm cache.
    npm_config_prefer_offline: "true",
    npm_config_update_notifier: "false",
    ...stage.env,
  };
}

/** The image's ENV as the process inside it sees it: absolute paths moved into the stage's root. */
function imageEnv(stage: Stage): Record<string, string> {
  return Object.fromEntries(
    Object.entries(stage.env).map(([key, value]) => [
      key,
      value.startsWith("/") ? hostPath(stage, value) : value,
    ]),
  );
}

/**
 * Carries out a RUN step of the Dockerfiles: the npm install for real; creating a directory for
 * the unprivileged user (owners mean nothing here); the system packages, which only a real build
 * installs (`skipApt`). Any other step fails the test: teach it here, or the replay would drift.
 */
function runStep(options: { skipApt?: boolean; reuse?: Map<string, string> } = {}) {
  return async (step: RunStep) => {
    const { command, stage } = step;
    const dir = /^mkdir -p (\/\S+) && chown 1000:1000 (\/\S+)$/.exec(command);
    if (dir && dir[1] === dir[2]) {
      mkdirSync(join(stage.root, dir[1]!), { recursive: true });
      return;
    }
    if (options.skipApt && /^apt-get update\s+&&\s+apt-get install /.test(command)) return;
    if (/^npm ci --omit=dev( |$)/.test(command)) {
      // The same install from the same package files gives the same tree: link the first one.
      const key = `${command}\n${readFileSync(join(step.cwd, "package-lock.json"), "utf8")}`;
      const done = options.reuse?.get(key);
      if (done) {
        const copied = await run(["cp", "-al", join(done, "node_modules"), step.cwd], {
          cwd: step.cwd,
          env: { PATH: process.env.PATH ?? "" },
          timeoutMs: 60_000,
        });
        expect(copied.code, copied.output).toBe(0);
        return;
      }
      const result = await run(["sh", "-c", command], {
        cwd: step.cwd,
        env: npmEnv(stage),
        timeoutMs: 240_000,
      });
      expect(result.code, `${command}\n${result.output}`).toBe(0);
      options.reuse?.set(key, step.cwd);
      return;
    }
    throw new Error(`line ${step.line}: the replay does not know the step: RUN ${command}`);
  };
}

describe("Dockerfile (the server), replayed in a clean directory", () => {
  const installs = new Map<string, string>();
  let image: Stage;
  let stages: Stage[];
  beforeAll(async () => {
    stages = await replayDockerfile({
      dockerfile: at("Dockerfile"),
      context: ROOT,
      into: temporaryDirectory("conveyor-image-"),
      run: runStep({ reuse: installs }),
    });
    image = stages.at(-1)!;
  }, 300_000);

  it("builds on Node 20 slim, installs without dev dependencies, runs as a non-root user", () => {
    for (const stage of stages) expect(stage.from).toMatch(/^node:20(\.\d+)*-(\w+-)?slim$/);
    expect(stages.flatMap((s) => s.runs)).toContainEqual(
      expect.stringMatching(/^npm ci --omit=dev\b/),
    );
    expect(image.user).toMatch(/^[1-9]\d*(:\d+)?$/);
    const modules = hostPath(image, "node_modules");
    expect(existsSync(join(modules, "tsx")), "tsx is a runtime dependency").toBe(true);
    expect(existsSync(join(modules, "vitest"))).toBe(false);
    expect(existsSync(join(modules, "typescript"))).toBe(false);
  });

  it("takes no test file, .env or key into the image", () => {
    const files = readdirSync(hostPath(image, "."), { recursive: true, encoding: "utf8" }).filter(
      (f) => !f.startsWith("node_modules"),
    );
    expect(files.filter((f) => /\.test\.ts$|(^|\/)\.env$|\.pem$/.test(f))).toEqual([]);
    expect(files).toContain("bin/conveyor.js");
  });

  it("starts as its command says, answers /healthz and /readyz, passes its HEALTHCHECK and stops on SIGTERM", async () => {
    expect([...image.entrypoint!, ...image.cmd!]).toEqual(["node", "bin/conveyor.js", "start"]);
    expect(image.exposed).toEqual(["3000"]);
    const check = image.healthcheck;
    if (!check || check === "none") throw new Error("the image has no HEALTHCHECK");
    expect(check.command.join(" ")).toContain("/healthz");

    const port = await freePort();
    const env: Record<string, string> = {
      PATH: process.env.PATH ?? "",
      HOME: temporaryDirectory("conveyor-home-"),
      ...imageEnv(image),
      // As `docker run -e`: a free port here, and the loopback interface only.
      PORT: String(port),
      HOST: "127.0.0.1",
    };
    const argv = [...image.entrypoint!, ...image.cmd!];
    const server: ChildProcess = spawn(argv[0]!, argv.slice(1), {
      cwd: hostPath(image, "."),
      env,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let output = "";
    server.stdout!.on("data", (chunk) => (output += chunk));
    server.stderr!.on("data", (chunk) => (output += chunk));
    const exited = new Promise<number | string>((resolve) =>
      server.on("exit", (code, signal) => resolve(code ?? signal ?? "unknown")),
    );
    try {
      const url = `http://127.0.0.1:${port}`;
      const deadline = Date.now() + 60_000;
      for (;;) {
        if (server.exitCode !== null) throw new Error(`the server exited:\n${output}`);
        if (output.includes('"msg":"conveyor listening"')) break;
        if (Date.now() > deadline) throw new Error(`no "conveyor listening" in 60 s:\n${output}`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      const health = await fetch(`${url}/healthz`);
      expect(health.status).toBe(200);
      expect(await health.json()).toEqual({ status: "ok" });
      const ready = await fetch(`${url}/readyz`);
      expect(ready.status).toBe(200);
      // Without App credentials the server is in setup mode, which is ready to serve.
      expect(await ready.json()).toMatchObject({ database: "pglite", github: "setup" });
      // The embedded database went where the image's CONVEYOR_DATA_DIR says.
      expect(existsSync(join(env.CONVEYOR_DATA_DIR!, "pgdata"))).toBe(true);

      const timeoutMs = Number.parseInt(check.options.timeout ?? "30s", 10) * 1000;
      const healthy = await run(check.command, { cwd: hostPath(image, "."), env, timeoutMs });
      expect(healthy, "the HEALTHCHECK passes on a running server").toMatchObject({ code: 0 });

      server.kill("SIGTERM");
      expect(await exited).toBe(0);
      const unhealthy = await run(check.command, { cwd: hostPath(image, "."), env, timeoutMs });
      expect(unhealthy.code, "the HEALTHCHECK fails once the server is gone").toBe(1);
    } finally {
      server.kill("SIGKILL");
    }
  }, 120_000);

  describe("runners/Dockerfile", () => {
    it("copies what the runner needs from the context and starts it, under tini", async () => {
      const runnerStages = await replayDockerfile({
        dockerfile: at("runners/Dockerfile"),
        context: ROOT,
        into: temporaryDirectory("conveyor-runner-image-"),
        run: runStep({ skipApt: true, reuse: installs }),
      });
      const runner = runnerStages.at(-1)!;
      for (const stage of runnerStages) expect(stage.from).toMatch(/^node:20(\.\d+)*-(\w+-)?slim$/);
      const packages = runner.runs.find((r) => r.startsWith("apt-get"))!.split(/\s+/);
      expect(packages).toEqual(expect.arrayContaining(["git", "bubblewrap", "tini"]));
      expect(runner.user).toMatch(/^[1-9]\d*(:\d+)?$/);
      expect(runner.entrypoint).toEqual([
        "tini",
        "--",
        "node",
        "/opt/conveyor/bin/conveyor-runner.js",
      ]);
      expect(runner.cmd).toEqual(["start"]);
      // tini is a Debian package the replay does not install: run what it starts.
      const help = await run(
        [
          ...runner.entrypoint!.slice(2).map((a) => (a.startsWith("/") ? hostPath(runner, a) : a)),
          "--help",
        ],
        {
          cwd: hostPath(runner, "."),
          env: { PATH: process.env.PATH ?? "", HOME: tmpdir(), ...imageEnv(runner) },
          timeoutMs: 60_000,
        },
      );
      expect(help.code, help.output).toBe(0);
      expect(help.output).toContain("Usage: conveyor-runner <command>");
    }, 120_000);
  });
});

describe(".dockerignore", () => {
  const ignored = dockerignore(readFileSync(at(".dockerignore"), "utf8"));

  it.each([
    [".env", true],
    ["app.private-key.pem", true],
    ["node_modules/tsx/package.json", true],
    [".conveyor/pgdata/base", true],
    ["test/helpers/dockerfile.ts", true],
    ["src/config.test.ts", true],
    ["runners/workspace.test.ts", true],
    ["src/config.ts", false],
    ["db/migrations/0000_init.sql", false],
    ["bin/conveyor.js", false],
    ["package-lock.json", false],
  ])("%s is left out: %s", (path, expected) => {
    expect(ignored(path)).toBe(expected);
  });

  it("matches as Docker does: last matching pattern wins, parents count, ** crosses directories", () => {
    const rules = dockerignore("# comment\n*\n!keep/\nkeep/**/secret*\n!keep/a/secret-ok\n");
    expect(rules("other")).toBe(true);
    expect(rules("keep/file")).toBe(false);
    expect(rules("keep/a/b/secret.txt")).toBe(true);
    expect(rules("keep/secret")).toBe(true);
    expect(rules("keep/a/secret-ok")).toBe(false);
  });
});

describe("the deploy docs", () => {
  it("link files that exist, from the README's Deploy section and docs/operations.md", () => {
    const readme = readFileSync(at("README.md"), "utf8");
    const deploy = /\n## Deploy\n([\s\S]*?)\n## /.exec(readme)?.[1];
    if (!deploy) throw new Error("README.md has no Deploy section");
    const links = [...deploy.matchAll(/\]\(([^)#]+)(#[^)]*)?\)/g)].map((m) => m[1]!);
    expect(links).toEqual(
      expect.arrayContaining([
        "Dockerfile",
        ".dockerignore",
        "runners/Dockerfile",
        "compose.yaml",
        "deploy/kubernetes/",
        "docs/operations.md",
      ]),
    );
    for (const link of links) expect(existsSync(at(link)), link).toBe(true);
    const operations = readFileSync(at("docs/operations.md"), "utf8");
    for (const match of operations.matchAll(/\]\((\.\.\/[^)#]+)/g)) {
      expect(existsSync(join(at("docs"), match[1]!)), match[1]).toBe(true);
    }
  });

  it("link headings that exist, from the deploy sections", () => {
    // GitHub's anchors: lower case, punctuation but - and _ dropped, spaces as -.
    const anchors = (file: string) =>
      new Set(
        [...readFileSync(file, "utf8").matchAll(/^#{1,6} (.+)$/gm)].map((m) =>
          m[1]!
            .toLowerCase()
            .replace(/[^\p{L}\p{N} _-]/gu, "")
            .replace(/ /g, "-"),
        ),
      );
    const between = (file: string, from: string, to: string) => {
      const text = readFileSync(at(file), "utf8");
      const start = text.indexOf(from);
      expect(start, `${file} has ${from}`).toBeGreaterThanOrEqual(0);
      return text.slice(start, text.indexOf(to, start + from.length));
    };
    const sections: [string, string][] = [
      ["README.md", between("README.md", "\n## Deploy\n", "\n## ")],
      [
        "docs/operations.md",
        between("docs/operations.md", "### Images and manifests", "## Registering the GitHub App"),
      ],
      ["runners/README.md", between("runners/README.md", "## Container image", "\n## Register")],
    ];
    let checked = 0;
    for (const [file, text] of sections) {
      for (const [, target = "", anchor] of text.matchAll(/\]\(([^)#\s]*)#([^)\s]+)\)/g)) {
        const linked = target === "" ? at(file) : join(at(file), "..", target);
        expect(anchors(linked), `${file}: ${target}#${anchor}`).toContain(anchor);
        checked++;
      }
    }
    expect(checked).toBeGreaterThan(10);
  });

  it.each(["Claude Code", "Codex"])(
    "runners/README.md's %s image starts FROM conveyor-runner, ends as uid 1000 and names its agent and state",
    (agent) => {
      const readme = readFileSync(at("runners/README.md"), "utf8");
      const section = readme.slice(readme.indexOf(`**${agent}** (`));
      const block = /```dockerfile\n([\s\S]*?)```/.exec(section)?.[1];
      if (!block) throw new Error(`no Dockerfile for ${agent} in runners/README.md`);
      const steps = parseDockerfile(block);
      expect(steps[0]).toMatchObject({ keyword: "FROM", args: "conveyor-runner" });
      const users = steps.filter((s) => s.keyword === "USER").map((s) => s.args);
      expect(users.at(-1)).toBe("1000:1000");
      const env = Object.assign(
        {},
        ...steps.filter((s) => s.keyword === "ENV").map((s) => parseEnv(s.args)),
      ) as Record<string, string>;
      const argv = execForm(env.CONVEYOR_AGENT_COMMAND!, "CONVEYOR_AGENT_COMMAND");
      expect(["claude", "codex"]).toContain(argv[0]);
      // The directory the sandbox lets the agent write must exist when the runner starts.
      const writable = env.CONVEYOR_RUNNER_SANDBOX_WRITABLE!;
      expect(writable).toMatch(/^\/home\/node\/\.\w+$/);
      expect(steps).toContainEqual(
        expect.objectContaining({ keyword: "RUN", args: `mkdir -p ${writable}` }),
      );
      const install = steps.find((s) => s.keyword === "RUN" && s.args.startsWith("npm install"));
      expect(install?.args).toContain(
        agent === "Codex" ? "@openai/codex" : "@anthropic-ai/claude-code",
      );
    },
  );
});

describe("the Dockerfile replay refuses what it cannot replay faithfully", () => {
  const context = temporaryDirectory("conveyor-context-");
  writeFileSync(join(context, ".dockerignore"), "*\n!kept.txt\n!missing.txt\n");
  writeFileSync(join(context, "kept.txt"), "kept\n");
  writeFileSync(join(context, ".env"), "SECRET=1\n");

  it.each([
    ["an instruction it does not know", "ADD kept.txt /app/", "does not know this instruction"],
    ["a shell-form CMD, which would not pass signals", "CMD node x.js", "expected the exec form"],
    ["a file .dockerignore leaves out", "COPY .env /app/", "left out of the build context"],
    ["a file that is not there", "COPY missing.txt /app/", "missing.txt does not exist"],
    ["a stage that does not exist", "COPY --from=deps /x /app/", "no earlier stage deps"],
    [
      "a step the test does not know",
      "RUN curl -fsSL https://example.com | sh",
      "does not know the step",
    ],
    ["a continued last line", "RUN echo \\", "ends inside a continued line"],
    ["a wildcard", "COPY *.txt /app/", "wildcards are not replayed"],
  ])("%s", async (_, line, message) => {
    const dockerfile = join(temporaryDirectory("conveyor-dockerfile-"), "Dockerfile");
    writeFileSync(dockerfile, `FROM node:20-bookworm-slim\nWORKDIR /app\n${line}\n`);
    await expect(
      replayDockerfile({
        dockerfile,
        context,
        into: temporaryDirectory("conveyor-replay-"),
        run: runStep(),
      }),
    ).rejects.toThrow(message);
  });

  it("copies what the context keeps, as Docker does", async () => {
    const dockerfile = join(temporaryDirectory("conveyor-dockerfile-"), "Dockerfile");
    writeFileSync(
      dockerfile,
      'FROM node:20-bookworm-slim AS one\nWORKDIR /app\nCOPY . ./\nENV A=1 B="two words"\n' +
        'FROM node:20-bookworm-slim\nCOPY --from=one /app/kept.txt /srv/copy.txt\nCMD ["true"]\n',
    );
    const [one, two] = await replayDockerfile({
      dockerfile,
      context,
      into: temporaryDirectory("conveyor-replay-"),
      run: runStep(),
    });
    expect(readdirSync(hostPath(one!, "."))).toEqual(["kept.txt"]);
    expect(one!.env).toEqual({ A: "1", B: "two words" });
    expect(readFileSync(hostPath(two!, "/srv/copy.txt"), "utf8")).toBe("kept\n");
  });
});

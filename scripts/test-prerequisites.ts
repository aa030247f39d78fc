/**
 * `npm test`'s first step: makes sure what the tests need beyond npm is on this machine (see
 * PREREQUISITES). As root on Debian or Ubuntu it installs what is missing with apt-get; otherwise it
 * stops in its first second with the exact command to run. `--dry-run` says what it would do.
 */
import { spawnSync } from "node:child_process";
import { appendFileSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { findOnPath, PREREQUISITES, planPrerequisites } from "../test/helpers/prerequisites.ts";

const dryRun = process.argv.includes("--dry-run");
const installSetting = process.env.CONVEYOR_TEST_INSTALL ?? "auto";
if (installSetting !== "auto" && installSetting !== "never") {
  process.stderr.write(
    `CONVEYOR_TEST_INSTALL must be "auto" or "never", not ${JSON.stringify(installSetting)}\n`,
  );
  process.exit(2);
}

function check() {
  return PREREQUISITES.map((prerequisite) => ({
    prerequisite,
    found: prerequisite.find(process.env),
  }));
}

const host = {
  isRoot: process.getuid?.() === 0,
  hasApt: findOnPath(["apt-get"], process.env) !== undefined,
  install: installSetting,
} as const;
const plan = planPrerequisites(check(), host);

if (plan.kind === "stop") {
  process.stderr.write(`\n${plan.message}\n\n`);
  process.exit(1);
}
if (plan.kind === "ready") {
  const summary = plan.found.map((f) => `${f.name.replace(/ \(.*\)$/, "")}: ${f.where}`);
  process.stdout.write(`test prerequisites: ${summary.join(" · ")}\n`);
  process.exit(0);
}

process.stdout.write(
  `test prerequisites: missing ${plan.missing.map((p) => `${p.name}, for ${p.neededBy}`).join("; ")}\n`,
);
process.stdout.write(`test prerequisites: $ apt-get update && ${plan.command.join(" ")}\n`);
if (dryRun) process.exit(0);

// apt-get's own output goes to a log, shown only when it fails: the first screen stays readable.
const log = join(mkdtempSync(join(tmpdir(), "conveyor-apt-")), "apt.log");
const aptEnv = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
const started = Date.now();
for (const args of [["update"], plan.command.slice(1)]) {
  process.stdout.write(`test prerequisites: apt-get ${args[0]} …\n`);
  const result = spawnSync("apt-get", args, { env: aptEnv, encoding: "utf8", maxBuffer: 1 << 28 });
  appendFileSync(
    log,
    `$ apt-get ${args.join(" ")}\n${result.stdout ?? ""}${result.stderr ?? ""}\n`,
  );
  if (result.status !== 0) {
    const tail = `${result.stdout ?? ""}${result.stderr ?? ""}`.trim().split("\n").slice(-15);
    process.stderr.write(
      `\napt-get ${args[0]} failed (exit ${result.status ?? result.error?.message}); the end of its output (all of it: ${log}):\n${tail.join("\n")}\n\nInstall by hand:\n  ${plan.command.join(" ")}\n`,
    );
    process.exit(1);
  }
}
// Debian starts the services it installs (a PostgreSQL cluster on 5432, Prometheus on 9090); the
// tests start their own servers and need neither.
for (const service of ["postgresql", "prometheus"]) {
  spawnSync("service", [service, "stop"], { stdio: "ignore" });
}
const after = planPrerequisites(check(), { ...host, install: "never" });
if (after.kind !== "ready") {
  process.stderr.write(
    `\nStill missing after apt-get install:\n${after.kind === "stop" ? after.message : ""}\n`,
  );
  process.exit(1);
}
process.stdout.write(
  `test prerequisites: installed ${plan.packages.join(", ")} in ${Math.round((Date.now() - started) / 1000)} s\n`,
);

/**
 * `npm test`'s first step: makes sure what the tests need beyond npm is on this machine (see
 * PREREQUISITES). As root on Debian or Ubuntu it installs what is missing with apt-get; otherwise it
 * stops in its first second with the exact command to run. `--dry-run` says what it would do.
 */
import { spawnSync } from "node:child_process";
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

const reasons = plan.missing.map((p) => `${p.name} (${p.neededBy})`).join("; ");
process.stdout.write(`test prerequisites: installing ${plan.packages.join(", ")} for ${reasons}\n`);
process.stdout.write(`  $ apt-get update && ${plan.command.join(" ")}\n`);
if (dryRun) process.exit(0);

const aptEnv = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
for (const args of [
  ["update", "-qq"],
  [...plan.command.slice(1), "-qq"],
]) {
  const result = spawnSync("apt-get", args, { stdio: "inherit", env: aptEnv });
  if (result.status !== 0) {
    process.stderr.write(
      `\napt-get ${args.join(" ")} failed (exit ${result.status}); install by hand:\n  ${plan.command.join(" ")}\n`,
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
process.stdout.write("test prerequisites: installed\n");

import { generateKeyPairSync, randomBytes } from "node:crypto";
import {
  createWriteStream,
  mkdirSync,
  mkdtempSync,
  rmSync,
  type WriteStream,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import { fileURLToPath } from "node:url";
import { chooseIsolation, probeHost } from "../runners/sandbox.ts";
import {
  createGitHubSimulator,
  type GitHubSimulator,
} from "../test/github-sim/create-github-simulator.ts";
import { type ConveyorProcess, spawnConveyor } from "../test/helpers/spawn-conveyor.ts";
import {
  type RunnerProcess,
  SCRIPTED_AGENT,
  spawnRunnerProcess,
} from "../test/helpers/spawn-runner.ts";
import { waitFor } from "../test/helpers/wait-for.ts";
import {
  awaitsApproval,
  BEST_OF_REPO,
  BEST_OF_REPO_FILES,
  BEST_OF_REPO_NAME,
  CI,
  FILER,
  INTAKE_LABEL,
  type IssueView,
  issueBody,
  issueRef,
  type Judgement,
  judge,
  MAINTAINER,
  MERGE_QUEUE_REPO,
  MERGE_QUEUE_RULESET,
  OWNER,
  observeIssue,
  REPO,
  REPO_FILES,
  REPO_NAME,
  repoOf,
  SCRIPTED_CAPABILITY,
  STORY,
  type StoryIssue,
} from "./story.ts";

/** A story issue once it is on GitHub. */
export interface FiledIssue {
  story: StoryIssue;
  number: number;
}

export interface PlayOptions {
  /** `Date.now()` after which the story is over. */
  deadline: number;
  pollMs?: number;
  /** Each observation of the issues. */
  onViews?: (views: IssueView[]) => void;
  /** Something the stage did, as a line for the audience. */
  onNote?: (line: string) => void;
  shouldStop?: () => boolean;
}

export interface PlayOutcome {
  views: IssueView[];
  judgements: Judgement[];
  /** `done`: every issue ended as expected, or none can change any more. */
  end: "done" | "timeout" | "stopped";
}

export interface StageOptions {
  /** PostgreSQL for the server; unset: the embedded database in the stage's directory. */
  databaseUrl?: string;
  /** How many runners `startRunners` starts (default 2). */
  runners?: number;
  /** Told about each step as it starts ("starting the GitHub simulator"). */
  onStep?: (step: string) => void;
  /** Aborting it during start-up stops what was started and rejects with the abort reason. */
  signal?: AbortSignal;
}

/**
 * Everything `npm run demo` and the end-to-end test run, on this machine, without credentials:
 * the GitHub simulator (with the sample repositories, their CI and `acme/gadgets`'s merge queue), the Conveyor server as a real
 * process (`conveyor start`) talking to the simulator as its GitHub, and runner processes with
 * the scripted agent. All of it lives in one temporary directory, removed by `close()`.
 */
export interface Stage {
  readonly sim: GitHubSimulator;
  readonly server: ConveyorProcess;
  readonly serverUrl: string;
  readonly dashboardUrl: string;
  /** The temporary directory: simulator repositories, database, runner work dirs, logs. */
  readonly dir: string;
  /** The server's log (JSON lines), also in `<dir>/conveyor.log`. */
  readonly serverLog: string;
  readonly adminToken: string;
  /** The App's installation on the sample repository's owner. */
  readonly installationId: number;
  readonly runners: { name: string; process: RunnerProcess }[];
  /** Opens every story issue as the filer and labels it for Conveyor; in story order. */
  fileIssues(): Promise<FiledIssue[]>;
  /**
   * Registers runners through the admin API and starts them with the scripted agent, and one
   * (`claude-runner`, capability `claude`) with `--agent claude` and the demo's stand-in for
   * Claude Code first on its PATH.
   */
  startRunners(): Promise<void>;
  /** What GitHub shows about each filed issue. */
  observe(issues: readonly FiledIssue[]): Promise<IssueView[]>;
  /** Comments `/approve` on a pull request as the maintainer, as a person would. */
  approve(prNumber: number, repo?: string): Promise<void>;
  /**
   * Plays the story to its end: watches the issues, approves each tier-2 pull request once it
   * waits only for an approval, and stops when every issue ended as expected, when none can any
   * more, at the deadline, or when `shouldStop` says so. Throws if the server process dies.
   */
  play(issues: readonly FiledIssue[], options: PlayOptions): Promise<PlayOutcome>;
  /**
   * Writes the server's and the runners' output to a new directory that `close` leaves alone, and
   * returns its path (for a failed run).
   */
  saveLogs(): string;
  /** Stops every process and removes the directory. Safe to call more than once. */
  close(): Promise<void>;
}

/** Where the demo's stand-in for Claude Code is (`claude` on the claude runner's PATH). */
const FAKE_CLAUDE_DIR = fileURLToPath(new URL("./bin/", import.meta.url));

/** Starts the simulator and the server; runners and issues come after, when the caller says. */
export async function startStage(options: StageOptions = {}): Promise<Stage> {
  const step = options.onStep ?? (() => {});
  const dir = mkdtempSync(join(tmpdir(), "conveyor-demo-"));
  const webhookSecret = randomBytes(20).toString("hex");
  const adminToken = `demo-${randomBytes(20).toString("hex")}`;
  const runners: Stage["runners"] = [];
  let sim: GitHubSimulator | undefined;
  let server: ConveyorProcess | undefined;
  let log: WriteStream | undefined;
  let closing: Promise<void> | undefined;
  let installationId = 0;
  const { signal } = options;
  /** `promise`, unless the start-up is aborted first. */
  const abortable = <T>(promise: Promise<T>): Promise<T> =>
    signal
      ? Promise.race([
          promise,
          new Promise<never>((_, reject) => {
            if (signal.aborted) reject(signal.reason);
            signal.addEventListener("abort", () => reject(signal.reason), { once: true });
          }),
        ])
      : promise;

  const close = () => {
    closing ??= (async () => {
      for (const runner of runners) runner.process.child.kill("SIGKILL");
      await Promise.all(runners.map((r) => r.process.exited));
      if (server && server.child.exitCode === null && server.child.signalCode === null) {
        server.child.kill("SIGTERM");
        const timer = setTimeout(() => server?.child.kill("SIGKILL"), 10_000);
        await server.exited;
        clearTimeout(timer);
      }
      // Webhooks to a stopped server fail fast; nothing is left to wait for.
      sim?.setWebhook(undefined);
      await sim?.close();
      await new Promise<void>((resolve) => (log ? log.end(resolve) : resolve()));
      rmSync(dir, { recursive: true, force: true });
    })();
    return closing;
  };

  try {
    step("generating a GitHub App key");
    const privateKey = generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey.export({
      type: "pkcs1",
      format: "pem",
    }) as string;

    step("starting the GitHub simulator");
    sim = await abortable(
      createGitHubSimulator({
        dataDir: join(dir, "github"),
        appId: 4242,
        appSlug: "conveyor",
        privateKeyPem: privateKey,
        ciProvider: CI,
      }),
    );
    const installation = await sim.createInstallation({
      account: OWNER,
      accountType: "Organization",
    });
    installationId = installation.id;
    await sim.createRepository({
      owner: OWNER,
      name: REPO_NAME,
      installationId: installation.id,
      files: REPO_FILES,
      description: "Conveyor's demo repository",
    });
    await sim.createRepository({
      owner: OWNER,
      name: BEST_OF_REPO_NAME,
      installationId: installation.id,
      files: BEST_OF_REPO_FILES,
      description: "Conveyor's demo repository for best of N",
    });
    // Its pull requests merge through GitHub's merge queue, not `PUT …/merge`.
    sim.addRuleset(MERGE_QUEUE_REPO, MERGE_QUEUE_RULESET);
    for (const repo of [REPO, BEST_OF_REPO]) {
      sim.setPermission(repo, FILER, "write");
      sim.setPermission(repo, MAINTAINER, "maintain");
    }

    step(
      options.databaseUrl
        ? "starting the Conveyor server (PostgreSQL)"
        : "starting the Conveyor server (embedded database)",
    );
    mkdirSync(join(dir, "server"));
    server = spawnConveyor(
      [],
      {
        HOST: "127.0.0.1",
        PORT: "0",
        CONVEYOR_DATA_DIR: join(dir, "data"),
        ...(options.databaseUrl ? { DATABASE_URL: options.databaseUrl } : {}),
        APP_ID: String(sim.appId),
        PRIVATE_KEY: privateKey,
        WEBHOOK_SECRET: webhookSecret,
        GITHUB_API_URL: sim.url,
        CONVEYOR_ADMIN_TOKEN: adminToken,
        LOG_LEVEL: "info",
      },
      // Not the checkout: a `.env` there (from `npm start`'s setup) must not point the demo at a
      // real database or App.
      {
        cwd: join(dir, "server"),
        entry: fileURLToPath(new URL("./demo-server.ts", import.meta.url)),
      },
    );
    log = createWriteStream(join(dir, "conveyor.log"));
    server.child.stdout?.pipe(log, { end: false });
    server.child.stderr?.pipe(log, { end: false });
    const serverUrl = await abortable(server.listening);
    sim.setWebhook({ url: `${serverUrl}/api/github/webhooks`, secret: webhookSecret });
  } catch (error) {
    const output = server?.output() ?? "";
    await close();
    // A Ctrl-C reaches the server too; what matters is that the user stopped the demo.
    if (signal?.aborted) throw signal.reason;
    throw new Error(
      `the demo could not start: ${(error as Error).message}\n${output.slice(-3000)}`,
      {
        cause: error,
      },
    );
  }

  const liveSim = sim;
  const observe = async (issues: readonly FiledIssue[]): Promise<IssueView[]> => {
    const views = await Promise.all(
      issues.map((filed) =>
        observeIssue(liveSim, {
          key: filed.story.key,
          repo: filed.story.repo,
          number: filed.number,
          title: filed.story.title,
        }),
      ),
    );
    // The status comment names the runner while it works; keep showing who did the work.
    for (const view of views) {
      const key = `${repoOf(view)}#${view.number}`;
      if (view.runner) lastRunner.set(key, view.runner);
      else view.runner = lastRunner.get(key);
    }
    return views;
  };
  const approve = async (prNumber: number, repo = REPO) => {
    await liveSim.comment(repo, prNumber, "/approve", { user: MAINTAINER });
  };
  const lastRunner = new Map<string, string>();
  const liveServer = server;
  const serverUrl = await server.listening;

  return {
    sim: liveSim,
    server: liveServer,
    serverUrl,
    dashboardUrl: `${serverUrl}/dashboard`,
    dir,
    get serverLog() {
      return liveServer.output();
    },
    adminToken,
    installationId,
    runners,

    async fileIssues() {
      const filed: FiledIssue[] = [];
      for (const story of STORY) {
        const repo = repoOf(story);
        const { issue } = await liveSim.openIssue(repo, {
          title: story.title,
          body: issueBody(story),
          labels: story.labels,
          user: FILER,
        });
        const { status } = await liveSim.addLabel(repo, issue.number, INTAKE_LABEL, {
          sender: FILER,
        });
        if (status !== 200) {
          throw new Error(
            `Conveyor answered the labelling of #${issue.number} with ${status ?? "no answer"} (is the server still up?)`,
          );
        }
        filed.push({ story, number: issue.number });
      }
      // Conveyor answers a label once it has stored the delivery; its intake loop reads the
      // repository's config and the labeller's permission and queues the task a moment later.
      for (const { number, story } of filed) {
        const repo = repoOf(story);
        await waitFor(
          async () => {
            const response = await fetch(`${serverUrl}/api/tasks?repo=${repo}&issue=${number}`, {
              headers: { authorization: `Bearer ${adminToken}` },
            });
            const { tasks } = (await response.json()) as { tasks: unknown[] };
            return tasks.length > 0;
          },
          { timeoutMs: 30_000, message: `${repo}#${number} queued (is the server still up?)` },
        );
      }
      return filed;
    },

    async startRunners() {
      // The demo's agent is the scripted one, from this checkout: where this machine has no
      // sandbox (no bwrap, not root, e.g. macOS), it may run unsandboxed, and says so.
      const sandbox = chooseIsolation("auto", "host", await probeHost());
      if (!sandbox.ok)
        step("no sandbox for agents on this machine: runners start with --unsandboxed");
      const specs = [
        ...Array.from({ length: options.runners ?? 2 }, (_, i) => ({
          name: `runner-${i + 1}`,
          slots: 1,
          capabilities: [SCRIPTED_CAPABILITY],
          agent: ["--capability", SCRIPTED_CAPABILITY, "--agent", "--", ...SCRIPTED_AGENT],
          env: {},
        })),
        // Claude Code's adapter over the stand-in that replays a recorded session: the status
        // comment and the task page show its turns, tokens and cost as it goes. Two slots, so the
        // best-of issue's candidate 1 does not wait for the extra-large size.
        {
          name: "claude-runner",
          slots: 2,
          capabilities: ["claude"],
          agent: ["--capability", "claude", "--agent", "claude", "--model", "claude-sonnet-4-5"],
          env: { PATH: [FAKE_CLAUDE_DIR, globalThis.process.env.PATH].join(delimiter) },
        },
      ];
      for (const spec of specs) {
        const { name } = spec;
        const response = await fetch(`${serverUrl}/api/runners`, {
          method: "POST",
          headers: { authorization: `Bearer ${adminToken}`, "content-type": "application/json" },
          body: JSON.stringify({ name, capabilities: spec.capabilities, class: "normal" }),
        });
        if (response.status !== 201) {
          throw new Error(
            `registering ${name} failed: ${response.status} ${await response.text()}`,
          );
        }
        const { token } = (await response.json()) as { token: string };
        const home = join(dir, name);
        mkdirSync(home);
        const process = spawnRunnerProcess(
          [
            "start",
            ...["--server", serverUrl, "--name", name, "--slots", String(spec.slots)],
            ...(sandbox.ok ? [] : ["--unsandboxed"]),
            ...["--work-dir", join(home, "work"), "--journal", join(home, "journal.json")],
            ...spec.agent,
          ],
          { LOG_LEVEL: "info", CONVEYOR_RUNNER_TOKEN: token, ...spec.env },
          { cwd: home },
        );
        const runnerLog = createWriteStream(join(dir, `${name}.log`));
        process.child.stdout?.pipe(runnerLog);
        process.child.stderr?.pipe(runnerLog);
        runners.push({ name, process });
      }
    },

    observe,
    approve,

    async play(issues, play) {
      /** Pull requests approved, as `owner/name#N`. */
      const approved = new Set<string>();
      const keyOf = (repo: string, number: number) => `${repo}#${number}`;
      /** The Agent line each issue's status comment showed last, to tell each change once. */
      const agentLines = new Map<string, string>();
      // Issues that ended as expected are not looked at again (each look runs git for the PR).
      const settled = new Map<string, IssueView>();
      const filedKey = (filed: FiledIssue) => keyOf(repoOf(filed.story), filed.number);
      let views: IssueView[] = [];
      let judgements: Judgement[] = [];
      const exited = (child: { exitCode: number | null; signalCode: string | null }) =>
        child.exitCode !== null || child.signalCode !== null;
      for (;;) {
        if (play.shouldStop?.()) return { views, judgements, end: "stopped" };
        if (exited(liveServer.child)) {
          throw new Error(
            `the Conveyor server exited unexpectedly; its last output:\n${liveServer.output().slice(-3000)}`,
          );
        }
        for (const runner of runners) {
          if (!exited(runner.process.child)) continue;
          throw new Error(
            `${runner.name} exited unexpectedly; its last output:\n${runner.process.output().slice(-3000)}`,
          );
        }
        const pending = issues.filter((filed) => !settled.has(filedKey(filed)));
        const fresh = await observe(pending);
        views = issues.map(
          (filed) => settled.get(filedKey(filed)) ?? fresh[pending.indexOf(filed)]!,
        );
        play.onViews?.(views);
        for (const view of views) {
          const key = keyOf(repoOf(view), view.number);
          if (!view.agent || agentLines.get(key) === view.agent) continue;
          agentLines.set(key, view.agent);
          play.onNote?.(`${issueRef(view, view.number)} status comment, Agent: ${view.agent}`);
        }
        for (const view of views) {
          if (view.pr === undefined || !awaitsApproval(view)) continue;
          const pr = keyOf(repoOf(view), view.pr);
          if (approved.has(pr)) continue;
          approved.add(pr);
          play.onNote?.(
            `@${MAINTAINER} reviews PR ${issueRef(view, view.pr)} and comments /approve`,
          );
          await approve(view.pr, repoOf(view));
        }
        judgements = issues.map((filed, i) => judge(filed.story, views[i]!));
        judgements.forEach((judgement, i) => {
          if (judgement.ok && judgement.final) settled.set(filedKey(issues[i]!), views[i]!);
        });
        if (judgements.every((j) => j.ok) || judgements.every((j) => j.final)) {
          return { views, judgements, end: "done" };
        }
        if (Date.now() > play.deadline) return { views, judgements, end: "timeout" };
        await new Promise((resolve) => setTimeout(resolve, play.pollMs ?? 250));
      }
    },

    saveLogs() {
      const kept = mkdtempSync(join(tmpdir(), "conveyor-demo-logs-"));
      writeFileSync(join(kept, "conveyor.log"), liveServer.output());
      for (const runner of runners) {
        writeFileSync(join(kept, `${runner.name}.log`), runner.process.output());
      }
      return kept;
    },

    close,
  };
}

import { mkdir, readdir, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { BUDGET_EXCEEDED, type ServerMessage } from "../src/protocol/messages.ts";
import type {
  AgentAdapter,
  AgentReport,
  AgentUsage,
  OutputParser,
} from "./adapters/agent-adapter.ts";
import { createCommandAdapter } from "./adapters/command.ts";
import { type AttemptBudget, budgetOverrun, hasBudget } from "./budget.ts";
import { ChangeSetTooLargeError, collectChangeSet } from "./change-set.ts";
import type { Journal } from "./journal.ts";
import { type ClientLogger, DisconnectedError, type RunnerClient } from "./runner-client.ts";
import type { Sandbox, TaskSandbox } from "./sandbox.ts";
import { type AgentResult, runAgent } from "./supervisor.ts";
import { prepareWorkspace, readRepoInstructions } from "./workspace.ts";

type Assign = Extract<ServerMessage, { type: "assign" }>;
type Welcome = Extract<ServerMessage, { type: "welcome" }>;
type Stage = "cloning" | "agent" | "verifying" | "uploading";

export interface TaskRunnerOptions {
  client: RunnerClient;
  journal: Journal;
  logger: ClientLogger;
  serverUrl: string;
  token: string;
  agent: string[];
  /** Builds the agent's argv and reads its output; the `command` adapter over `agent` if absent. */
  adapter?: AgentAdapter;
  /** The model a named adapter asks for. */
  model?: string | undefined;
  workDir: string;
  slots: number;
  limits: { wallClockMs: number; idleMs: number; outputCapBytes: number };
  /** Environment the agent starts from (secrets of the runner are removed from it). */
  baseEnv?: NodeJS.ProcessEnv;
  /** Where the agent, the verify commands and the change set's git commands run. */
  sandbox: Sandbox;
}

interface ActiveTask {
  assign: Assign;
  /** 1…slots; a slot's sandbox user (users isolation) serves one task at a time. */
  slot: number;
  stage: Stage | "accepting";
  lastLine: string;
  /** What the agent used so far (live while it runs, its final report after). */
  usage: AgentUsage;
  /** Sends the output not sent yet, before a result ends the task. */
  flushLog?: () => Promise<void>;
  cancelled: boolean;
  cancel: () => void;
  /**
   * Its result (`complete` or `fail`) is on its way: the server frees the slot when that arrives
   * and may assign the next task before this one's clean-up is over.
   */
  settled?: boolean;
  /**
   * Until when the server keeps the task ours without hearing from us: the last lease renewal we
   * saw (accept, heartbeat ack, a `continue` on reconnect) plus the lease. Steps the server may miss
   * while it restarts are retried until then.
   */
  leaseUntil: number;
}

/** The task was cancelled (by the server, a reconnect reconcile, or shutdown): stop quietly. */
class Cancelled extends Error {}

/** The server could not be reached or answered that it is unavailable: worth asking again. */
class Unavailable extends Error {}

/** First pause before asking an unreachable server again; it doubles up to the cap. */
const RETRY_FIRST_MS = 250;
const RETRY_MAX_MS = 5_000;

/** Characters of output per `log` frame at most (the protocol allows 64 Ki). */
const LOG_CHUNK_CHARS = 32 * 1024;
/** A longer output line is cut here in the log (the server keeps 2 000 characters of it). */
const LOG_LINE_CHARS = 2_000;
const SUMMARY_CHARS = 4_000;
/** Variables the agent must never see: the runner's own credentials. */
const SECRET_ENV = ["CONVEYOR_RUNNER_TOKEN", "CONVEYOR_ADMIN_TOKEN", "GITHUB_TOKEN", "GH_TOKEN"];

/**
 * Turns assignments into change sets: one workspace per task, the agent under limits, the verify
 * commands, the upload, and `complete` or `fail`. Knows nothing of sockets beyond the client.
 */
export function createTaskRunner(options: TaskRunnerOptions) {
  const { client, journal, logger } = options;
  const adapter = options.adapter ?? createCommandAdapter(options.agent);
  /** Named on every `complete` and `fail`, for the outcome analytics. */
  const agentInfo = { adapter: adapter.name, ...(options.model ? { model: options.model } : {}) };
  const active = new Map<string, ActiveTask>();
  /** `task_id:generation` of the tasks the last `hello` listed: an `assign` for one is a re-send. */
  let listed = new Set<string>();
  /** Journaled tasks waiting for their re-sent `assign` after a restart: called when it came. */
  const resumeWaiters = new Map<string, () => void>();
  let heartbeatMs = 15_000;
  let leaseMs = 60_000;
  let acceptMs = 30_000;
  let draining = false;
  let idle: (() => void) | undefined;
  /**
   * Assignments for a slot whose task has sent its result but is still cleaning up (its sandbox
   * user, its directories): each starts as soon as a task leaves `active`.
   */
  let waiting: Assign[] = [];

  function agentEnv(assign: Assign, dir: string, promptFile: string): NodeJS.ProcessEnv {
    const env: NodeJS.ProcessEnv = { ...(options.baseEnv ?? process.env) };
    for (const key of SECRET_ENV) delete env[key];
    return {
      ...env,
      CONVEYOR_PROMPT_FILE: promptFile,
      CONVEYOR_TASK_ID: assign.task_id,
      CONVEYOR_ISSUE_NUMBER: String(assign.issue.number),
      CONVEYOR_REPO: assign.repo.full_name,
      CONVEYOR_WORKDIR: dir,
      GIT_TERMINAL_PROMPT: "0",
    };
  }

  /**
   * Sends a frame that must arrive; across a reconnect it is sent again unless cancelled. An
   * `internal` error (the server could not reach its database) is asked again with back-off while
   * the lease lasts.
   */
  async function deliver(task: ActiveTask, frame: Parameters<RunnerClient["request"]>[0]) {
    return persist(task, frame.type, async () => {
      for (;;) {
        if (task.cancelled) throw new Cancelled();
        try {
          const reply = await client.request(frame);
          if (reply.type === "error" && reply.code === "internal")
            throw new Unavailable(reply.message);
          return reply;
        } catch (error) {
          if (!(error instanceof DisconnectedError)) throw error;
          await client.connected();
        }
      }
    });
  }

  /**
   * Runs `step` again with exponential back-off while it fails with `Unavailable` and the lease
   * would still hold when the next try is due: a server restarting for a few seconds costs the
   * task nothing. Past the lease the server has taken the task back anyway.
   */
  async function persist<T>(task: ActiveTask, what: string, step: () => Promise<T>): Promise<T> {
    let delay = RETRY_FIRST_MS;
    for (;;) {
      if (task.cancelled) throw new Cancelled();
      try {
        return await step();
      } catch (error) {
        if (!(error instanceof Unavailable) || Date.now() + delay >= task.leaseUntil) throw error;
        logger.warn(
          {
            taskId: task.assign.task_id,
            generation: task.assign.generation,
            step: what,
            err: error.message,
            retryInMs: delay,
          },
          "server unavailable; trying again while the lease lasts",
        );
        await new Promise((resolve) => setTimeout(resolve, delay));
        delay = Math.min(delay * 2, RETRY_MAX_MS);
      }
    }
  }

  function prompt(assign: Assign, instructions: { path: string; content: string }[]): string {
    return [
      `# ${assign.issue.title}`,
      "",
      `Issue #${assign.issue.number} in ${assign.repo.full_name}: ${assign.issue.url}`,
      "",
      assign.issue.body || "(no description)",
      ...(assign.feedback ? ["", "## Feedback from earlier attempts", "", assign.feedback] : []),
      ...instructions.flatMap((file) => [
        "",
        `## Repository instructions (${file.path})`,
        "",
        file.content,
      ]),
      "",
      "## How to work",
      "",
      `Make the change in the working directory (branch ${assign.branch}). Do not commit or push:`,
      "the runner collects every change you leave in the working tree.",
    ].join("\n");
  }

  /**
   * PUTs the change set. The server stores it by task, generation and digest, so sending the same
   * bytes again is harmless: a refused connection or a 5xx is `Unavailable` and retried.
   */
  async function upload(assign: Assign, body: string): Promise<string> {
    const url = new URL(
      `${options.serverUrl.replace(/\/+$/, "")}/runners/v1/tasks/${assign.task_id}/changes`,
    );
    url.searchParams.set("generation", String(assign.generation));
    let response: Response;
    try {
      response = await fetch(url, {
        method: "PUT",
        headers: { authorization: `Bearer ${options.token}`, "content-type": "application/json" },
        body,
      });
    } catch (error) {
      throw new Unavailable(`upload did not reach the server: ${(error as Error).message}`);
    }
    const answer = (await response.json().catch(() => ({}))) as { digest?: string; error?: string };
    if (response.status >= 500) {
      throw new Unavailable(`upload refused (${response.status}): ${answer.error ?? "no detail"}`);
    }
    if (response.status === 409) throw new Cancelled();
    if (response.status !== 201 || !answer.digest) {
      throw new Error(`upload refused (${response.status}): ${answer.error ?? "no detail"}`);
    }
    return answer.digest;
  }

  async function run(task: ActiveTask): Promise<void> {
    const { assign } = task;
    const fence = { task_id: assign.task_id, generation: assign.generation };
    const log = { taskId: assign.task_id, generation: assign.generation };
    // Until the clone exists the journal names where it will be made.
    const taskDir = join(options.workDir, `${assign.task_id}-${assign.generation}`);
    const acceptedAt = new Date().toISOString();
    const promptFile = join(options.workDir, `${assign.task_id}-${assign.generation}.prompt.md`);
    let cleanup: (() => Promise<void>) | undefined;
    let jail: TaskSandbox | undefined;
    let running: { cancel(): void } | undefined;
    task.cancel = () => {
      task.cancelled = true;
      running?.cancel();
    };
    // An adapter that parses its tool's output shows progress events; others show the last line.
    let parser: OutputParser | undefined;
    let progress = "";
    /** Output lines not sent to the server's log yet; bounded (the oldest lines go first). */
    let pending = "";
    const toLog = (line: string) => {
      pending += `${line.slice(0, LOG_LINE_CHARS)}\n`;
      if (pending.length > 2 * LOG_CHUNK_CHARS) pending = newestLines(pending, LOG_CHUNK_CHARS);
    };
    // The attempt's budget, checked against the adapter's usage after every line of output: the
    // first event that passes it stops the agent.
    const budget: AttemptBudget = {
      max_cost_usd: assign.limits.max_cost_usd,
      max_tokens: assign.limits.max_tokens,
      max_turns: assign.limits.max_turns,
    };
    const budgeted = hasBudget(budget);
    let overrun: { why: string; usage: AgentUsage } | undefined;
    const onOutput = (line: string) => {
      task.lastLine = (progress || line).slice(0, 500);
    };
    const onStdoutLine = (line: string) => {
      const event = parser?.line(line);
      if (event) {
        progress = event;
        task.lastLine = event.slice(0, 500);
        toLog(`[progress] ${event}`);
      }
      // A tool's own JSON events are read by its adapter and shown as progress lines above; the
      // rest (its text, a verify command's output) goes to the log as written.
      if (!(parser && adapter.name !== "command" && line.startsWith("{"))) toLog(line);
      if (budgeted && parser && !overrun) {
        const usage = parser.usage();
        const why = budgetOverrun(budget, usage);
        if (why) {
          overrun = { why, usage };
          toLog(`[budget] ${why}`);
          running?.cancel();
        }
      }
    };
    let logInFlight: Promise<void> | undefined;
    /**
     * Sends the lines not sent yet (the newest 32 KiB of them) in a `log` frame, one at a time: a
     * request, so a rate-limited chunk is sent again after the pause instead of being lost.
     */
    const flushLog = (): Promise<void> => {
      if (logInFlight) return logInFlight;
      if (!pending) return Promise.resolve();
      const chunk = newestLines(pending, LOG_CHUNK_CHARS);
      pending = "";
      logInFlight = client
        .request({ type: "log", ...fence, chunk })
        .then((reply) => {
          if (reply.type === "error") pending = newestLines(chunk + pending, 2 * LOG_CHUNK_CHARS);
        })
        .catch(() => {})
        .finally(() => {
          logInFlight = undefined;
        });
      return logInFlight;
    };
    /** Everything written so far reaches the log (the chunk in flight, then the rest). */
    const drainLog = async () => {
      await flushLog();
      await flushLog();
    };
    task.flushLog = drainLog;
    // Heartbeats renew the lease and carry the progress; a `stale` answer means the task is no
    // longer ours.
    // One heartbeat in flight at a time: while the server is slow to answer, or asked for a pause
    // (`rate_limited`), later ticks send nothing rather than pile up a burst for when it answers.
    // A tick that found one in flight is made up by one heartbeat as soon as the answer comes, so
    // a slow server delays the progress it is shown by its own latency, not by a whole interval.
    let beating = false;
    let behind = false;
    let beatsOver = false;
    const sendBeat = () => {
      beating = true;
      behind = false;
      if (parser) task.usage = parser.finish("").usage;
      client
        .request({
          type: "heartbeat",
          ...fence,
          stage: task.stage === "accepting" ? "cloning" : task.stage,
          message: task.lastLine || undefined,
          progress: {
            adapter: adapter.name,
            ...(options.model ? { model: options.model.slice(0, 100) } : {}),
            ...(progress ? { tool: progress.slice(0, 300) } : {}),
            ...task.usage,
          },
        })
        .then((reply) => {
          if (reply.type === "ack") task.leaseUntil = Date.now() + leaseMs;
          // Once the result is sent, `stale` only says the server took it first.
          if (reply.type === "stale" && !task.settled) {
            logger.warn({ ...log, reason: reply.reason }, "server says the task is no longer ours");
            task.cancel();
          }
        })
        .catch(() => {})
        .finally(() => {
          beating = false;
          if (behind && !beatsOver) sendBeat();
        });
    };
    // They go on while the result is on its way (a server restarting meanwhile keeps the lease).
    const beat = setInterval(() => {
      if (!task.settled) void flushLog();
      if (beating) behind = true;
      else sendBeat();
    }, heartbeatMs);
    beat.unref();

    try {
      await mkdir(options.workDir, { recursive: true });
      await journal.record({
        task_id: assign.task_id,
        generation: assign.generation,
        workspace: taskDir,
        accepted_at: acceptedAt,
        stage: "accepted",
      });
      const accepted = await deliver(task, { type: "accept", ...fence });
      if (accepted.type !== "ack") throw new Cancelled();
      task.leaseUntil = Date.now() + leaseMs;

      task.stage = "cloning";
      const workspace = await prepareWorkspace({
        root: options.workDir,
        taskId: `${assign.task_id}-${assign.generation}`,
        cloneUrl: assign.repo.clone_url,
        baseSha: assign.repo.base_sha,
        branch: assign.branch,
        token: assign.read_token.value,
      });
      cleanup = workspace.cleanup;
      // The journal names the real directory, so a restarted runner can remove it.
      await journal.record({
        task_id: assign.task_id,
        generation: assign.generation,
        workspace: workspace.dir,
        accepted_at: acceptedAt,
        stage: "cloning",
      });
      if (task.cancelled) throw new Cancelled();
      const instructions = await readRepoInstructions(workspace.dir);
      const text = prompt(assign, instructions);
      await writeFile(promptFile, text);
      if (options.sandbox.kind === "none") {
        logger.warn(log, "running the agent unsandboxed: it can read the runner's token");
      }
      jail = await options.sandbox.forTask({
        slot: task.slot,
        key: `${assign.task_id}-${assign.generation}`,
        workspace: workspace.dir,
        promptFile,
      });

      task.stage = "agent";
      const started = Date.now();
      const limits = {
        wallClockMs: Math.min(
          options.limits.wallClockMs,
          (assign.limits.wall_clock_minutes ?? Infinity) * 60_000,
        ),
        idleMs: Math.min(options.limits.idleMs, (assign.limits.idle_minutes ?? Infinity) * 60_000),
        outputCapBytes: Math.min(
          options.limits.outputCapBytes,
          assign.limits.output_bytes ?? Infinity,
        ),
      };
      parser = adapter.createParser();
      const argv = adapter.argv({
        model: options.model,
        promptFile,
        instructions: instructions.map((file) => file.path),
      });
      const agent = runAgent({
        ...(await jail.command(argv, agentEnv(assign, workspace.dir, promptFile))),
        cwd: workspace.dir,
        stdin: adapter.promptOnStdin ? text : "",
        onStdoutLine,
        onStderrLine: toLog,
        wallClockMs: limits.wallClockMs,
        idleMs: limits.idleMs,
        maxOutputBytes: limits.outputCapBytes,
        onOutput,
      });
      running = agent;
      const result: AgentResult = await agent.done;
      running = undefined;
      await jail.sweep();
      if (task.cancelled) throw new Cancelled();
      if (overrun) {
        // Not retried: another attempt would spend the same again (`/retry` revives the task).
        await fail(task, BUDGET_EXCEEDED, false, `${overrun.why}\n${result.outputTail}`, {
          ...overrun.usage,
          duration_ms: Date.now() - started,
        });
        return;
      }
      if (result.reason === "cancelled") throw new Cancelled();
      const report: AgentReport = parser.finish(result.outputTail);
      task.usage = report.usage;
      // The agent's last lines reach the task's log before its result does.
      void flushLog();
      parser = undefined;
      progress = "";
      // What the attempt used, recorded on it whether it fails here or completes.
      const spent = { ...report.usage, duration_ms: Date.now() - started };
      if (result.reason === "timeout_wall" || result.reason === "timeout_idle") {
        await fail(
          task,
          "timeout",
          true,
          `${result.reason === "timeout_idle" ? "no output" : "ran"} for too long\n${result.outputTail}`,
          spent,
        );
        return;
      }
      if (result.reason === "output_cap") {
        await fail(
          task,
          "output_limit",
          true,
          `the agent wrote more than ${limits.outputCapBytes} bytes\n${result.outputTail}`,
          spent,
        );
        return;
      }
      if (result.reason === "spawn_failed") {
        await fail(task, "agent_failed", true, `the agent could not start: ${result.error ?? "?"}`);
        return;
      }
      if (report.error) {
        // The tool said why it failed (an error result): that message, not the exit status.
        await fail(task, "agent_failed", true, `${adapter.name}: ${report.error}`, spent);
        return;
      }
      if (result.exitCode !== 0) {
        await fail(
          task,
          "agent_failed",
          true,
          `agent exited with ${result.exitCode ?? result.signal}\n${result.outputTail}`,
          spent,
        );
        return;
      }

      task.stage = "verifying";
      const verification = {
        passed: true,
        commands: [] as {
          argv: string[];
          exit_code: number | null;
          passed: boolean;
          output_tail: string;
        }[],
      };
      for (const argv of assign.verify ?? []) {
        const check = runAgent({
          ...(await jail.command(argv, agentEnv(assign, workspace.dir, promptFile))),
          cwd: workspace.dir,
          stdin: "",
          onStdoutLine,
          onStderrLine: toLog,
          wallClockMs: limits.wallClockMs,
          idleMs: limits.idleMs,
          maxOutputBytes: limits.outputCapBytes,
          onOutput,
        });
        running = check;
        const outcome = await check.done;
        running = undefined;
        await jail.sweep();
        if (task.cancelled || outcome.reason === "cancelled") throw new Cancelled();
        const passed = outcome.reason === "exited" && outcome.exitCode === 0;
        verification.commands.push({
          argv,
          exit_code: outcome.exitCode,
          passed,
          output_tail: outcome.outputTail.slice(-8_192),
        });
        if (!passed) {
          verification.passed = false;
          break;
        }
      }

      task.stage = "uploading";
      let collected: Awaited<ReturnType<typeof collectChangeSet>>;
      try {
        collected = await collectChangeSet(
          workspace.dir,
          assign.repo.base_sha,
          `${assign.issue.title} (#${assign.issue.number})`,
          { sandbox: jail },
        );
      } catch (error) {
        if (!(error instanceof ChangeSetTooLargeError)) throw error;
        await fail(task, "change_set_too_large", false, error.message);
        return;
      }
      if (!collected) {
        await fail(
          task,
          "no_changes",
          false,
          `the agent left no changes\n${result.outputTail}`,
          spent,
        );
        return;
      }
      const body = JSON.stringify(collected.changeSet);
      const digest = await persist(task, "upload", () => upload(assign, body));
      await journal.record({
        task_id: assign.task_id,
        generation: assign.generation,
        workspace: workspace.dir,
        accepted_at: acceptedAt,
        stage: "uploaded",
        digest,
      });
      await drainLog();
      task.settled = true;
      const done = await deliver(task, {
        type: "complete",
        ...fence,
        changes_digest: digest,
        summary: (report.summary ?? result.outputTail).slice(-SUMMARY_CHARS),
        stats: {
          ...collected.stats,
          ...spent,
          duration_ms: Date.now() - started,
        },
        ...(assign.verify?.length ? { verification } : {}),
        agent: agentInfo,
      });
      logger.info({ ...log, reply: done.type }, "task finished");
    } catch (error) {
      if (!(error instanceof Cancelled)) {
        logger.error({ ...log, err: (error as Error).message }, "task failed in the runner");
        await fail(task, "runner_error", true, (error as Error).message).catch(() => {});
      } else {
        logger.info(log, "task cancelled");
      }
    } finally {
      clearInterval(beat);
      beatsOver = true;
      running?.cancel();
      await jail?.dispose().catch(() => {});
      await cleanup?.().catch(() => {});
      await rm(promptFile, { force: true });
      await journal.remove(assign.task_id);
      active.delete(assign.task_id);
      const next = waiting.shift();
      if (next) start(next);
      else if (active.size === 0) idle?.();
    }
  }

  async function fail(
    task: ActiveTask,
    reason: string,
    retryable: boolean,
    detail: string,
    stats?: AgentUsage & { duration_ms?: number },
  ) {
    logger.warn({ taskId: task.assign.task_id, reason }, "reporting a failed attempt");
    // The output so far reaches the attempt's log before the failure does.
    await task.flushLog?.();
    task.settled = true;
    await deliver(task, {
      type: "fail",
      task_id: task.assign.task_id,
      generation: task.assign.generation,
      reason,
      retryable,
      detail: detail.slice(-20_000),
      // What the failed attempt used still counts (budgets, analytics): the final figures when
      // the runner has them, else the usage its heartbeats last read.
      ...(stats ? { stats } : Object.keys(task.usage).length ? { stats: task.usage } : {}),
      agent: agentInfo,
    });
  }

  return {
    onWelcome(welcome: Welcome) {
      heartbeatMs = welcome.heartbeat_ms;
      leaseMs = welcome.lease_ms;
      acceptMs = welcome.accept_ms;
      for (const entry of welcome.reconcile) {
        const task = active.get(entry.task_id);
        if (entry.action === "cancel") task?.cancel();
        // `continue` renewed the lease.
        else if (task) task.leaseUntil = Date.now() + leaseMs;
      }
      // Journal entries of a previous process: finish what was delivered, hand back the rest.
      void recoverJournal(welcome);
    },
    onAssign(assign: Assign) {
      const key = `${assign.task_id}:${assign.generation}`;
      if (listed.has(key)) {
        // The server sends the assignment again for every task it let us continue. A task still
        // running here needs nothing; one a previous process left half done starts over from a
        // fresh clone (its agent died with that process) at the same generation.
        const entry = journal
          .entries()
          .find((e) => e.task_id === assign.task_id && e.generation === assign.generation);
        if (active.has(assign.task_id) || !entry || entry.stage === "uploaded") return;
        const waiter = resumeWaiters.get(key);
        if (!waiter) return;
        logger.info(
          { taskId: assign.task_id, generation: assign.generation },
          "resuming a task the previous runner process held: cloning again",
        );
        resumeWaiters.delete(key);
        waiter();
        start(assign, entry);
        return;
      }
      // A task that sent its result no longer holds its slot for the server, which may already
      // have assigned the next task: that one waits for the clean-up instead of being rejected.
      let working = waiting.length;
      for (const task of active.values()) if (!task.settled) working++;
      if (draining || working >= options.slots) {
        reject(assign, draining ? "runner is draining" : "no free slot");
      } else if (active.size >= options.slots) {
        waiting.push(assign);
        // A clean-up that outlasts half the time to accept hands the task back (no attempt
        // counted) rather than letting it lapse (an attempt lost).
        setTimeout(() => {
          if (!waiting.includes(assign)) return;
          waiting = waiting.filter((a) => a !== assign);
          reject(assign, "no free slot");
        }, acceptMs / 2).unref();
      } else {
        start(assign);
      }
    },
    onCancel(cancel: Extract<ServerMessage, { type: "cancel" }>) {
      waiting = waiting.filter(
        (a) => a.task_id !== cancel.task_id || a.generation !== cancel.generation,
      );
      const task = active.get(cancel.task_id);
      if (task && task.assign.generation === cancel.generation) {
        logger.info({ taskId: cancel.task_id, reason: cancel.reason }, "server cancelled the task");
        task.cancel();
      }
    },
    /** Tasks for `hello`: those running here, and those a previous process left in the journal. */
    running() {
      const here = [...active.values()].map((t) => ({
        task_id: t.assign.task_id,
        generation: t.assign.generation,
      }));
      const journaled = journal
        .entries()
        .filter((e) => !active.has(e.task_id))
        .map((e) => ({ task_id: e.task_id, generation: e.generation }));
      const all = [...here, ...journaled];
      listed = new Set(all.map((t) => `${t.task_id}:${t.generation}`));
      return all;
    },
    /** SIGTERM: no new work; let running tasks finish, hand them back after `graceMs`. */
    async drain(graceMs: number) {
      draining = true;
      for (const assign of waiting.splice(0)) reject(assign, "runner is draining");
      client.post({ type: "drain" });
      if (active.size === 0) return;
      const finished = new Promise<void>((resolve) => {
        idle = resolve;
      });
      const timer = setTimeout(() => {
        for (const task of active.values()) {
          task.cancel();
          void fail(
            task,
            "runner_shutdown",
            true,
            "the runner was stopped before the task finished",
          ).catch(() => {});
        }
      }, graceMs);
      await finished;
      clearTimeout(timer);
    },
    activeCount: () => active.size,
  };

  /**
   * Removes what a previous process left of a journaled task: the workspace the journal names and
   * any checkout of the same attempt (a crash during the clone leaves one the journal never named).
   */
  async function removeLeftovers(entry: {
    task_id: string;
    generation: number;
    workspace: string;
  }) {
    await rm(entry.workspace, { recursive: true, force: true }).catch(() => {});
    const prefix = `${entry.task_id}-${entry.generation}-`;
    const names = await readdir(options.workDir).catch(() => [] as string[]);
    for (const name of names.filter((n) => n.startsWith(prefix))) {
      await rm(join(options.workDir, name), { recursive: true, force: true }).catch(() => {});
    }
  }

  /** Runs a task; `leftovers` names a previous process's attempt at it, removed first. */
  function start(
    assign: Assign,
    leftovers?: { task_id: string; generation: number; workspace: string },
  ) {
    const taken = new Set([...active.values()].map((t) => t.slot));
    let slot = 1;
    while (taken.has(slot)) slot++;
    const task: ActiveTask = {
      assign,
      slot,
      stage: "accepting",
      lastLine: "",
      usage: {},
      cancelled: false,
      cancel: () => {},
      leaseUntil: Date.now() + leaseMs,
    };
    active.set(assign.task_id, task);
    void (async () => {
      if (leftovers) await removeLeftovers(leftovers);
      await run(task);
    })();
  }

  /** Hands an assignment back before accepting it: not an attempt, the server offers it again. */
  function reject(assign: Assign, reason: string) {
    logger.info(
      { taskId: assign.task_id, generation: assign.generation, reason },
      "assignment rejected",
    );
    client
      .request({ type: "reject", task_id: assign.task_id, generation: assign.generation, reason })
      .catch(() => {});
  }

  /** Waits for the re-sent `assign` of a continued journal entry; false if it did not come. */
  function awaitResend(entry: { task_id: string; generation: number }, ms: number) {
    const key = `${entry.task_id}:${entry.generation}`;
    return new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => {
        resumeWaiters.delete(key);
        resolve(false);
      }, ms);
      timer.unref();
      resumeWaiters.set(key, () => {
        clearTimeout(timer);
        resolve(true);
      });
    });
  }

  async function recoverJournal(welcome: Welcome) {
    const decisions = new Map(welcome.reconcile.map((r) => [r.task_id, r.action]));
    // Listen for the re-sent assignments before the first await: they follow the welcome.
    const resends = new Map(
      journal
        .entries()
        .filter(
          (e) =>
            !active.has(e.task_id) &&
            decisions.get(e.task_id) === "continue" &&
            e.stage !== "uploaded",
        )
        .map((e) => [e.task_id, awaitResend(e, welcome.accept_ms)]),
    );
    for (const entry of journal.entries()) {
      if (active.has(entry.task_id)) continue;
      const decision = decisions.get(entry.task_id);
      try {
        if (decision === "continue" && entry.stage === "uploaded" && entry.digest) {
          // The result was uploaded before the crash: finish, never run the task again.
          await client.request({
            type: "complete",
            task_id: entry.task_id,
            generation: entry.generation,
            changes_digest: entry.digest,
            summary: "(recovered after a runner restart)",
            stats: {},
          });
        } else if (decision === "continue") {
          // The agent's process died with the runner. The server sends the assignment again
          // (with a fresh read token): the task starts over from a new clone, and `run` owns the
          // journal entry from then on. Should it not come, hand the task back instead.
          if (await resends.get(entry.task_id)) continue;
          await client.request({
            type: "fail",
            task_id: entry.task_id,
            generation: entry.generation,
            reason: "runner_restarted",
            retryable: true,
            detail:
              "the runner restarted while the task was running, and the server did not send the assignment again",
          });
        }
      } catch (error) {
        logger.warn(
          { taskId: entry.task_id, err: (error as Error).message },
          "could not settle a journaled task",
        );
        continue;
      }
      await removeLeftovers(entry);
      await journal.remove(entry.task_id);
    }
  }
}

/** The end of `text` within `max` characters, starting at a line (unless one line is longer). */
function newestLines(text: string, max: number): string {
  if (text.length <= max) return text;
  const cut = text.indexOf("\n", text.length - max - 1);
  return cut >= 0 && cut < text.length - 1 ? text.slice(cut + 1) : text.slice(-max);
}

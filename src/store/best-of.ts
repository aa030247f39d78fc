import { sql } from "drizzle-orm";
import { type Db, resultRows } from "../../db/client.ts";
import {
  adapterFor,
  type CandidateRow,
  candidateBranch,
  candidateLimits,
} from "../core/best-of.ts";
import type { ChangeSet } from "../protocol/messages.ts";
import { getTask, type Task, transitionTask } from "./tasks.ts";

/*
 * Best of N's SQL (docs/merge-policy.md#best-of-n). The issue's task (the parent) keeps its status
 * comment and its one pull request; each candidate is a task row of its own (`parent_task_id`,
 * `candidate` = k) that dispatch hands out like any task, and a `candidates` row that records its
 * branch and figures. Every step is guarded by state and generation, so a step repeated after a
 * crash, or run by a second instance, changes nothing twice.
 */

/**
 * Whether any best-of-N step may have work: a best-of task waiting for or running its round, or a
 * candidate row still open (undecided, or a branch left to delete). One cheap statement, so the
 * steps cost nothing while nobody uses best of N. Strays need no look: a cancelled task's round
 * is undecided until then.
 */
export async function hasBestOfWork(db: Db): Promise<boolean> {
  const [row] = resultRows<{ due: boolean }>(
    await db.execute(sql`
      select exists (
               select 1 from tasks
               where state in ('queued', 'running') and best_of > 1 and parent_task_id is null)
          or exists (
               select 1 from candidates
               where decided_at is null or (head_sha is not null and branch_deleted_at is null))
        as due`),
  );
  return Boolean(row?.due);
}

/** A best-of-N task whose round of candidates is due to start. */
export async function findRoundsToStart(db: Db, limit: number): Promise<Task[]> {
  const rows = resultRows<{ task_id: string }>(
    await db.execute(sql`
      select task_id from tasks
      where state = 'queued' and best_of > 1 and pr_number is null and parent_task_id is null
        and available_at <= now()
      order by enqueued_at
      limit ${limit}`),
  );
  const tasks: Task[] = [];
  for (const row of rows) {
    const task = await getTask(db, row.task_id);
    if (task) tasks.push(task);
  }
  return tasks;
}

/**
 * Starts a round in one transaction: the task moves queued → running at a new generation (the
 * round's number; no runner holds it, so no lease or deadline runs on it), and its n candidates are
 * queued with the task's snapshot, lane, needs (plus the adapter each asks for), feedback, one
 * attempt each (the others are its alternatives) and a share of its budget. False when the task
 * moved on since it was read.
 */
export async function startRound(db: Db, task: Task): Promise<boolean> {
  return db.transaction(async (tx) => {
    const moved = resultRows<{ generation: number }>(
      await tx.execute(sql`
        update tasks set state = 'running', generation = generation + 1, runner_id = null,
                         lease_expires_at = null, deadline_at = null,
                         status_version = status_version + 1, updated_at = now()
        where task_id = ${task.taskId} and state = 'queued' and generation = ${task.generation}
        returning generation`),
    );
    const round = moved[0]?.generation;
    if (round === undefined) return false;
    await tx.execute(sql`
      insert into task_events (task_id, actor, from_state, to_state, generation, reason, data)
      values (${task.taskId}, 'best-of', 'queued', 'running', ${round},
              ${`best of ${task.bestOf}: ${task.bestOf} candidates queued`},
              ${JSON.stringify({ bestOf: task.bestOf, adapters: task.bestOfAdapters })}::jsonb)`);
    const limits = candidateLimits(task.limits as Record<string, unknown>, task.bestOf);
    for (let k = 1; k <= task.bestOf; k++) {
      const adapter = adapterFor({ adapters: task.bestOfAdapters }, k);
      const capabilities = [
        ...new Set([...task.capabilities, ...(adapter ? [adapter] : [])]),
      ].sort();
      const [child] = resultRows<{ task_id: string }>(
        await tx.execute(sql`
          insert into tasks (repository_id, installation_id, issue_number, state, lane,
                             capabilities, max_attempts, title, body, snapshot_hash, queued_by,
                             limits, feedback, parent_task_id, candidate, enqueued_at,
                             status_synced_version)
          values (${task.repositoryId}, ${task.installationId}, ${task.issueNumber}, 'queued',
                  ${task.lane}, ${`{${capabilities.map((c) => `"${c}"`).join(",")}}`}::text[], 1,
                  ${task.title}, ${task.body}, ${task.snapshotHash}, ${task.queuedBy},
                  ${JSON.stringify(limits)}::jsonb, ${task.feedback}, ${task.taskId}, ${k},
                  ${task.enqueuedAt.toISOString()}, 1)
          returning task_id`),
      );
      await tx.execute(sql`
        insert into task_events (task_id, actor, from_state, to_state, generation, reason, data)
        values (${child!.task_id}, 'best-of', null, 'queued', 0,
                ${`candidate ${k} of ${task.bestOf} for task ${task.taskId}`},
                ${JSON.stringify({ parent: task.taskId, round, k, adapter: adapter ?? null })}::jsonb)`);
      await tx.execute(sql`
        insert into candidates (task_id, round, k, candidate_task_id, adapter, branch)
        values (${task.taskId}, ${round}, ${k}, ${child!.task_id}, ${adapter ?? null},
                ${candidateBranch(task.issueNumber, k)})
        on conflict do nothing`);
    }
    return true;
  });
}

/** A candidate's branch and where it lives. */
export interface CandidateBranch {
  task_id: string;
  round: number;
  k: number;
  branch: string;
  installation_id: number;
  full_name: string;
}

/** A candidate whose change set is in (`pushed`) but not yet on its branch. */
export interface UnwrittenCandidate extends CandidateBranch {
  candidate_task_id: string;
  generation: number;
  change_set: Pick<ChangeSet, "base_sha" | "message" | "files">;
}

export async function findUnwrittenCandidates(
  db: Db,
  limit: number,
): Promise<UnwrittenCandidate[]> {
  return resultRows<UnwrittenCandidate>(
    await db.execute(sql`
      select t.task_id as candidate_task_id, t.generation, c.task_id, c.round, c.k, c.branch,
             t.installation_id, r.full_name,
             jsonb_build_object('base_sha', s.base_sha, 'message', s.message, 'files', s.files)
               as change_set
      from tasks t
      join candidates c on c.candidate_task_id = t.task_id
      join repositories r on r.repository_id = t.repository_id
      join change_sets s on s.task_id = t.task_id and s.generation = t.generation
      where t.parent_task_id is not null and t.state = 'pushed'
        and t.published_generation < t.generation
      order by t.updated_at
      limit ${limit}`),
  );
}

/** The candidate's commit is on its branch: remember it (and when: checks wait from then). */
export async function recordCandidateHead(
  db: Db,
  input: { candidateTaskId: string; generation: number; headSha: string },
): Promise<void> {
  await db.transaction(async (tx) => {
    const updated = resultRows(
      await tx.execute(sql`
        update tasks set published_generation = generation, updated_at = now()
        where task_id = ${input.candidateTaskId} and generation = ${input.generation}
          and state = 'pushed'
        returning task_id`),
    );
    if (updated.length === 0) return;
    await tx.execute(sql`
      update candidates set head_sha = ${input.headSha}, head_written_at = now()
      where candidate_task_id = ${input.candidateTaskId}`);
  });
}

/** A candidate whose change may not be written (workflow files, bad paths): it has no change. */
export async function refuseCandidate(
  db: Db,
  input: { candidateTaskId: string; generation: number; reason: string },
): Promise<void> {
  await transitionTask(db, {
    taskId: input.candidateTaskId,
    generation: input.generation,
    from: ["pushed"],
    to: "dead",
    actor: "best-of",
    reason: `change refused: ${input.reason}`,
    set: { lastError: `change refused: ${input.reason}`, finished: true },
  });
}

/**
 * Candidates still queued or working although their round is over (the task was cancelled, or
 * moved on to another round or its pull request): cancelled, so their runners are told to stop
 * and they take no more slots; their round is closed undecided (its branches are then deleted).
 * Returns how many rows changed.
 */
export async function cancelStrayCandidates(db: Db): Promise<number> {
  const rows = resultRows(
    await db.execute(sql`
      with stray as (
        select t.task_id, t.state as from_state, p.state as parent_state
        from tasks t
        join candidates c on c.candidate_task_id = t.task_id
        join tasks p on p.task_id = c.task_id
        where t.state in ('queued', 'assigned', 'running', 'retry_wait', 'held', 'failed')
          and (p.state <> 'running' or p.generation <> c.round)
        for update of t skip locked
      ), moved as (
        update tasks t set state = 'cancelled', runner_id = null, lease_expires_at = null,
                           deadline_at = null, finished_at = now(), updated_at = now(),
                           status_version = t.status_version + 1
        from stray s
        where t.task_id = s.task_id and t.state = s.from_state
        returning t.task_id, t.generation, s.from_state, s.parent_state
      )
      insert into task_events (task_id, actor, from_state, to_state, generation, reason)
      select task_id, 'best-of', from_state, 'cancelled', generation,
             'its round is over (the task is ' || parent_state || ')'
      from moved
      returning task_id`),
  );
  // The rounds those belonged to are never decided now: closed, so their branches are deleted.
  const closed = resultRows(
    await db.execute(sql`
      update candidates c set decided_at = now()
      from tasks p
      where p.task_id = c.task_id and c.decided_at is null
        and (p.state <> 'running' or p.generation <> c.round)
      returning c.k`),
  );
  return rows.length + closed.length;
}

/**
 * Candidates that no runner took: still waiting (`queued`, `retry_wait`) `deadline_minutes` (the
 * task's attempt deadline, default 120) after their round started, e.g. because no runner offers
 * the adapter they ask for. They are cancelled with the reason so the round is decided without
 * them, as a candidate that ran past its deadline would be. Returns how many.
 */
export async function expireUnclaimedCandidates(db: Db): Promise<number> {
  const rows = resultRows(
    await db.execute(sql`
      with late as (
        select t.task_id, t.state as from_state,
               coalesce((t.limits->>'deadline_minutes')::float8, 120) as minutes
        from tasks t
        join candidates c on c.candidate_task_id = t.task_id and c.decided_at is null
        where t.state in ('queued', 'retry_wait')
          and c.created_at
              + make_interval(secs => coalesce((t.limits->>'deadline_minutes')::float8, 120) * 60)
              < now()
        for update of t skip locked
      ), moved as (
        update tasks t set state = 'cancelled', finished_at = now(), updated_at = now(),
                           status_version = t.status_version + 1,
                           last_error = 'no runner took it within ' || l.minutes || ' minutes'
        from late l
        where t.task_id = l.task_id and t.state = l.from_state
        returning t.task_id, t.generation, l.from_state, t.last_error
      )
      insert into task_events (task_id, actor, from_state, to_state, generation, reason)
      select task_id, 'best-of', from_state, 'cancelled', generation, last_error from moved
      returning task_id`),
  );
  return rows.length;
}

/** One candidate of a round as the decision reads it. */
export interface RoundCandidate {
  k: number;
  candidate_task_id: string;
  branch: string;
  head_sha: string | null;
  head_written_at: string | null;
  state: string;
  last_error: string | null;
  result: { verification?: { passed?: boolean } } | null;
  base_sha: string | null;
  /** What its attempts cost (null: no figure reported). */
  cost_usd: number | null;
  /** `adapter` / `model` its runner reported, or the adapter asked for. */
  agent: string | null;
}

/** A best-of-N task in its round (`running`, no runner), with its installation and repository. */
export interface OpenRound {
  task_id: string;
  round: number;
  installation_id: number;
  repository_id: number;
  full_name: string;
  issue_number: number;
  candidates: RoundCandidate[];
}

/** Rounds still open: the task runs its candidates and has not been given one yet. */
export async function findOpenRounds(db: Db, limit: number): Promise<OpenRound[]> {
  const rounds = resultRows<Omit<OpenRound, "candidates">>(
    await db.execute(sql`
      select t.task_id, t.generation as round, t.installation_id, t.repository_id, r.full_name,
             t.issue_number
      from tasks t join repositories r on r.repository_id = t.repository_id
      where t.state = 'running' and t.best_of > 1 and t.parent_task_id is null
        and t.runner_id is null
        and exists (select 1 from candidates c where c.task_id = t.task_id and c.round = t.generation)
      order by t.updated_at
      limit ${limit}`),
  );
  const out: OpenRound[] = [];
  for (const round of rounds) {
    out.push({ ...round, candidates: await roundCandidates(db, round.task_id, round.round) });
  }
  return out;
}

export async function roundCandidates(
  db: Db,
  taskId: string,
  round: number,
): Promise<RoundCandidate[]> {
  return resultRows<RoundCandidate>(
    await db.execute(sql`
      select c.k, c.candidate_task_id, c.branch, c.head_sha, c.head_written_at::text,
             t.state, t.last_error, t.result, t.base_sha,
             (select sum(a.cost_usd) from attempts a where a.task_id = t.task_id) as cost_usd,
             coalesce((select concat_ws(' / ', a.adapter, a.model) from attempts a
                        where a.task_id = t.task_id and a.adapter is not null
                        order by a.generation desc limit 1), c.adapter) as agent
      from candidates c join tasks t on t.task_id = c.candidate_task_id
      where c.task_id = ${taskId} and c.round = ${round}
      order by c.k`),
  );
}

/** The figures a decided round keeps for one candidate: its table row but the agent and pick. */
export type CandidateFigures = Omit<CandidateRow, "agent" | "picked">;

/**
 * Decides a round in one transaction: every candidate's figures are recorded; with a winner its
 * change set becomes the task's change set for this generation and the task moves running →
 * pushed with the winner's result and base (the publisher then writes the one pull request);
 * without one the task is dead with the reason. Guarded by state and generation: a round decided
 * before (or a task cancelled meanwhile) changes nothing and returns false.
 */
export async function decideRound(
  db: Db,
  input: {
    taskId: string;
    round: number;
    figures: readonly CandidateFigures[];
    winner: { k: number; candidateTaskId: string } | undefined;
    reason: string;
  },
): Promise<boolean> {
  return db.transaction(async (tx) => {
    const [locked] = resultRows<{ task_id: string }>(
      await tx.execute(sql`
        select task_id from tasks
        where task_id = ${input.taskId} and state = 'running' and generation = ${input.round}
        for update`),
    );
    if (!locked) return false;
    for (const f of input.figures) {
      await tx.execute(sql`
        update candidates set verification_passed = ${f.verificationPassed}, tier = ${f.tier},
                              checks = ${f.checks}, changed_lines = ${f.changedLines},
                              cost_usd = ${f.costUsd}, failure = ${f.failure}, rank = ${f.rank},
                              picked = ${input.winner?.k === f.k}, decided_at = now()
        where task_id = ${input.taskId} and round = ${input.round} and k = ${f.k}`);
    }
    if (!input.winner) {
      await transitionTask(tx, {
        taskId: input.taskId,
        generation: input.round,
        from: ["running"],
        to: "dead",
        actor: "best-of",
        reason: `best of ${input.figures.length}: ${input.reason}`,
        set: { lastError: input.reason },
      });
      return true;
    }
    await adoptCandidate(tx, {
      taskId: input.taskId,
      generation: input.round,
      candidateTaskId: input.winner.candidateTaskId,
    });
    await transitionTask(tx, {
      taskId: input.taskId,
      generation: input.round,
      from: ["running"],
      to: "pushed",
      actor: "best-of",
      reason: `best of ${input.figures.length}: candidate ${input.winner.k} kept (${input.reason})`,
      data: { k: input.winner.k },
    });
    return true;
  });
}

/**
 * Makes a candidate's change the task's change for `generation`: its change set copied under the
 * task (the publisher writes from it), its result and base taken over. Idempotent (the change
 * set's key is the task and generation).
 */
async function adoptCandidate(
  tx: Db,
  input: { taskId: string; generation: number; candidateTaskId: string },
): Promise<void> {
  await tx.execute(sql`
    insert into change_sets (task_id, generation, runner_id, digest, base_sha, message, files,
                             size_bytes)
    select ${input.taskId}, ${input.generation}, s.runner_id, s.digest, s.base_sha, s.message,
           s.files, s.size_bytes
    from change_sets s join tasks c on c.task_id = s.task_id and s.generation = c.generation
    where s.task_id = ${input.candidateTaskId}
    on conflict (task_id, generation) do update set
      runner_id = excluded.runner_id, digest = excluded.digest, base_sha = excluded.base_sha,
      message = excluded.message, files = excluded.files, size_bytes = excluded.size_bytes`);
  await tx.execute(sql`
    update tasks p set result = c.result, base_sha = s.base_sha, runner_id = null
    from tasks c join change_sets s on s.task_id = c.task_id and s.generation = c.generation
    where p.task_id = ${input.taskId} and c.task_id = ${input.candidateTaskId}`);
}

/** Branches of decided rounds still to delete (every candidate's: the PR has its own branch). */
export async function findBranchesToDelete(db: Db, limit: number): Promise<CandidateBranch[]> {
  return resultRows(
    await db.execute(sql`
      select c.task_id, c.round, c.k, c.branch, t.installation_id, r.full_name
      from candidates c join tasks t on t.task_id = c.task_id
      join repositories r on r.repository_id = t.repository_id
      where c.decided_at is not null and c.branch_deleted_at is null and c.head_sha is not null
      limit ${limit}`),
  );
}

export async function markBranchDeleted(
  db: Db,
  key: { taskId: string; round: number; k: number },
): Promise<void> {
  await db.execute(sql`
    update candidates set branch_deleted_at = now()
    where task_id = ${key.taskId} and round = ${key.round} and k = ${key.k}`);
}

/** A candidate of the task's latest decided round, for `/pick` and the pull request body. */
export interface DecidedCandidate {
  k: number;
  round: number;
  candidate_task_id: string;
  adapter: string | null;
  agent: string | null;
  picked: boolean;
  rank: number | null;
  verification_passed: boolean | null;
  tier: number | null;
  checks: string | null;
  changed_lines: number | null;
  cost_usd: number | null;
  failure: string | null;
  has_change: boolean;
}

/** The candidates of the task's latest decided round, by k; empty for an ordinary task. */
export async function latestRound(db: Db, taskId: string): Promise<DecidedCandidate[]> {
  return resultRows<DecidedCandidate>(
    await db.execute(sql`
      select c.k, c.round, c.candidate_task_id, c.adapter,
             coalesce((select concat_ws(' / ', a.adapter, a.model) from attempts a
                        where a.task_id = c.candidate_task_id and a.adapter is not null
                        order by a.generation desc limit 1), c.adapter) as agent,
             c.picked, c.rank, c.verification_passed, c.tier, c.checks, c.changed_lines,
             c.cost_usd, c.failure,
             exists (select 1 from change_sets s join tasks t on t.task_id = s.task_id
                     where s.task_id = c.candidate_task_id and s.generation = t.generation
                       and t.published_generation = t.generation) as has_change
      from candidates c
      where c.task_id = ${taskId} and c.decided_at is not null
        and c.round = (select max(round) from candidates
                       where task_id = ${taskId} and decided_at is not null)
      order by c.k`),
  );
}

/**
 * `/pick <k>`: the task's pull request swaps to candidate k of its latest round. The task moves to
 * `pushed` at a new generation whose change set is candidate k's, so the publisher rewrites the
 * same pull request's branch with it (a new commit on the candidate's base; the old head is
 * replaced) and the merger judges the new head afresh. One transaction; undefined when the task
 * was not in a state a pick may interrupt.
 */
export async function pickCandidate(
  db: Db,
  input: {
    taskId: string;
    from: readonly string[];
    k: number;
    round: number;
    candidateTaskId: string;
    actor: string;
  },
): Promise<Task | undefined> {
  const [moved] = resultRows<{ generation: number; state: string }>(
    await db.execute(sql`
      with before as (
        select state from tasks where task_id = ${input.taskId}
      )
      update tasks set generation = generation + 1, state = 'pushed', runner_id = null,
                       lease_expires_at = null, deadline_at = null, last_error = null,
                       status_version = status_version + 1, updated_at = now()
      where task_id = ${input.taskId}
        and state = any(${`{${input.from.join(",")}}`}::task_state[])
      returning generation, (select state from before)::text as state`),
  );
  if (!moved) return undefined;
  await adoptCandidate(db, {
    taskId: input.taskId,
    generation: moved.generation,
    candidateTaskId: input.candidateTaskId,
  });
  await db.execute(sql`
    update candidates set picked = (k = ${input.k})
    where task_id = ${input.taskId} and round = ${input.round}`);
  await db.execute(sql`
    insert into task_events (task_id, actor, from_state, to_state, generation, reason, data)
    values (${input.taskId}, ${input.actor}, ${moved.state}::task_state, 'pushed',
            ${moved.generation}, ${`/pick ${input.k} by @${input.actor}`},
            ${JSON.stringify({ k: input.k, round: input.round })}::jsonb)`);
  return getTask(db, input.taskId);
}

import type { Actor } from "./intake.ts";

/**
 * The GitHub objects Conveyor's features reason about, as plain data. `src/github/` reads them from
 * GitHub; intake, commands and loops only see these shapes (and the ports in `ports.ts`).
 */

/** One repository of one installation: what every GitHub call about it needs. */
export interface RepoRef {
  installationId: number;
  owner: string;
  repo: string;
}

export interface IssueSnapshot {
  number: number;
  title: string;
  body: string;
  state: "open" | "closed";
  labels: string[];
  isPullRequest: boolean;
  htmlUrl: string;
  /** GitHub's `updated_at` (ISO 8601): moves on edits, comments, labels and state changes. */
  updatedAt: string;
}

/** The last time a label was added to an issue, and by whom. */
export interface LabelEvent {
  actor: Actor;
  /** The event's `created_at` (ISO 8601). */
  labelledAt: string;
}

export interface InstalledRepository {
  repositoryId: number;
  fullName: string;
  defaultBranch: string;
  private: boolean;
}

/** Splits `owner/name`. */
export function repoRef(installationId: number, fullName: string): RepoRef {
  const [owner = "", repo = ""] = fullName.split("/");
  return { installationId, owner, repo };
}

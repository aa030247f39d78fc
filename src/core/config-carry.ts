import { REPO_CONFIG_PATH } from "./repo-config.ts";

/**
 * GitHub lists at most this many commits in a `push` payload; a list this long may be cut short
 * ("The array includes a maximum of 2048 commits",
 * https://docs.github.com/en/webhooks/webhook-events-and-payloads#push).
 */
export const PUSH_COMMITS_LISTED_AT_MOST = 2048;

/** The parts of a `push` webhook payload that say whether `.github/conveyor.yml` may have changed. */
export interface PushFacts {
  before: string;
  after: string;
  created: boolean;
  deleted: boolean;
  forced: boolean;
  commits: ReadonlyArray<{
    added?: readonly string[] | undefined;
    removed?: readonly string[] | undefined;
    modified?: readonly string[] | undefined;
  }>;
}

/** Whether the repository config may be carried over a head move, and why (or why not). */
export type CarryDecision = { carry: true } | { carry: false; reason: string };

/**
 * Whether `after` has the config `before` had, by the push's own account: only for a plain
 * fast-forward whose complete commit list names no change to `.github/conveyor.yml`. Paths are
 * compared case-sensitively, as git does. Anything unsure says no: the config is read again.
 */
export function pushCarriesConfig(push: PushFacts): CarryDecision {
  if (push.created || push.deleted)
    return { carry: false, reason: "the branch was created or deleted" };
  if (push.forced) return { carry: false, reason: "a forced push" };
  if (push.before === push.after) return { carry: false, reason: "the head did not move" };
  if (push.commits.length === 0) return { carry: false, reason: "no commits listed" };
  if (push.commits.length >= PUSH_COMMITS_LISTED_AT_MOST) {
    return { carry: false, reason: "the commit list may be incomplete" };
  }
  // GitHub lists each commit's files; a commit without its lists says nothing, so no carry.
  if (push.commits.some((c) => !c.added || !c.removed || !c.modified)) {
    return { carry: false, reason: "a commit without its file lists" };
  }
  const touched = push.commits.some((c) =>
    [c.added, c.removed, c.modified].some((paths) => paths?.includes(REPO_CONFIG_PATH)),
  );
  return touched
    ? { carry: false, reason: `a commit changes ${REPO_CONFIG_PATH}` }
    : { carry: true };
}

/**
 * Whether a merge of a pull request keeps the config its base had: only when its file list is
 * complete and no file (nor a renamed file's previous path) is `.github/conveyor.yml`.
 */
export function mergeCarriesConfig(change: {
  files: ReadonlyArray<{ path: string; previousPath?: string | undefined }>;
  filesComplete: boolean;
}): CarryDecision {
  if (!change.filesComplete) return { carry: false, reason: "the file list may be incomplete" };
  const touched = change.files.some(
    (f) => f.path === REPO_CONFIG_PATH || f.previousPath === REPO_CONFIG_PATH,
  );
  return touched
    ? { carry: false, reason: `the pull request changes ${REPO_CONFIG_PATH}` }
    : { carry: true };
}

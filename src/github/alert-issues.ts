import type { ProbotOctokit } from "probot";
import { ALERT_ISSUE_LABEL, alertIssueMarker } from "../core/alert-issue.ts";
import { repoRef } from "./github-gateway.ts";

type Octokit = InstanceType<typeof ProbotOctokit>;

/** The repository alert issues go to, with the installation that may write there. */
export interface AlertIssueTarget {
  installationId: number;
  fullName: string;
}

/**
 * Writes the GitHub issues that mirror alerts. A port, so the alerter can be tested with a fake;
 * the real one uses the installation's client, whose writes go through the shared write pacer.
 */
export interface AlertIssues {
  /**
   * Opens the alert's issue, or finds the one a crashed earlier attempt opened (by its hidden
   * marker), so an alert never gets two issues.
   */
  open(
    target: AlertIssueTarget,
    alertId: number,
    issue: { title: string; body: string },
  ): Promise<number>;
  comment(target: AlertIssueTarget, issueNumber: number, body: string): Promise<void>;
  /** Comments and closes; an issue someone already closed or deleted is fine. */
  close(target: AlertIssueTarget, issueNumber: number, body: string): Promise<void>;
}

export function createAlertIssues(deps: {
  installationOctokit: (installationId: number) => Promise<Octokit>;
}): AlertIssues {
  const client = async (target: AlertIssueTarget) => {
    const ref = repoRef(target.installationId, target.fullName);
    return {
      octokit: await deps.installationOctokit(target.installationId),
      owner: ref.owner,
      repo: ref.repo,
    };
  };

  return {
    async open(target, alertId, issue) {
      const { octokit, owner, repo } = await client(target);
      const marker = alertIssueMarker(alertId);
      const existing = await octokit.paginate("GET /repos/{owner}/{repo}/issues", {
        owner,
        repo,
        state: "open",
        labels: ALERT_ISSUE_LABEL,
        per_page: 100,
      });
      const found = existing.find((i) => i.body?.includes(marker));
      if (found) return found.number;
      const { data } = await octokit.request("POST /repos/{owner}/{repo}/issues", {
        owner,
        repo,
        title: issue.title,
        body: issue.body,
        labels: [ALERT_ISSUE_LABEL],
      });
      return data.number;
    },

    async comment(target, issueNumber, body) {
      const { octokit, owner, repo } = await client(target);
      await octokit.request("POST /repos/{owner}/{repo}/issues/{issue_number}/comments", {
        owner,
        repo,
        issue_number: issueNumber,
        body,
      });
    },

    async close(target, issueNumber, body) {
      const { octokit, owner, repo } = await client(target);
      try {
        await octokit.request("POST /repos/{owner}/{repo}/issues/{issue_number}/comments", {
          owner,
          repo,
          issue_number: issueNumber,
          body,
        });
        await octokit.request("PATCH /repos/{owner}/{repo}/issues/{issue_number}", {
          owner,
          repo,
          issue_number: issueNumber,
          state: "closed",
          state_reason: "completed",
        });
      } catch (error) {
        // Deleted (410/404): nothing left to close.
        const status = (error as { status?: number }).status;
        if (status !== 404 && status !== 410) throw error;
      }
    },
  };
}

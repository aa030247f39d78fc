import type { ProbotOctokit } from "probot";
import { ALERT_ISSUE_LABEL, alertIssueMarker } from "../core/alert-issue.ts";
import { repoRef } from "../core/github-objects.ts";
import type { AlertIssues, AlertIssueTarget } from "../core/ports.ts";

type Octokit = InstanceType<typeof ProbotOctokit>;

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

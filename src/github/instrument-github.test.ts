import { describe, expect, it } from "vitest";
import { webhookEventLabel } from "../metrics/create-metrics.ts";
import { routeLabel } from "./instrument-github.ts";

describe("GitHub route labels", () => {
  it.each([
    [
      "/repos/{owner}/{repo}/pulls/{pull_number}/merge",
      "/repos/{owner}/{repo}/pulls/{pull_number}/merge",
    ],
    // paginate sends the expanded URL, and follows absolute Link URLs.
    ["/repos/acme/widgets/issues", "/repos/{owner}/{repo}/issues"],
    [
      "/repos/acme/widgets/issues/12/comments",
      "/repos/{owner}/{repo}/issues/{issue_number}/comments",
    ],
    [
      "https://api.github.com/repositories/42/issues?page=2&per_page=100",
      "/repositories/{repository_id}/issues",
    ],
    ["/repos/acme/widgets/pulls/3/files", "/repos/{owner}/{repo}/pulls/{pull_number}/files"],
    [
      "/repos/a/b/commits/0123456789abcdef0123456789abcdef01234567/check-runs",
      "/repos/{owner}/{repo}/commits/{sha}/check-runs",
    ],
    ["/app/installations/77/access_tokens", "/app/installations/{installation_id}/access_tokens"],
    ["/orgs/acme/installation", "/orgs/{org}/installation"],
    ["/users/octocat/installation", "/users/{user}/installation"],
    ["/repos/acme/widgets/check-runs/5", "/repos/{owner}/{repo}/check-runs/{check_run_id}"],
    ["/gists/99", "/gists/{id}"],
    [undefined, "unknown"],
    ["", "unknown"],
  ])("%s → %s", (url, label) => {
    expect(routeLabel(url)).toBe(label);
  });

  it("caps what a strange URL can add to a label", () => {
    expect(routeLabel(`/x/${"a".repeat(500)}`).length).toBeLessThanOrEqual(120);
  });
});

describe("webhook event labels", () => {
  it.each([
    ["issues", "issues"],
    ["pull_request_review", "pull_request_review"],
    ["made_up_event", "other"],
    ["issues\n", "other"],
    [undefined, "other"],
  ])("%j → %s", (event, label) => {
    expect(webhookEventLabel(event)).toBe(label);
  });
});

import type { Logger } from "pino";
import type { ApplicationFunction, Context } from "probot";
import type { Db } from "../../db/client.ts";
import {
  handleInstallationEvent,
  handleIssuesEvent,
  type IntakeDeps,
} from "../intake/intake-service.ts";
import { recordDelivery } from "../store/webhook-deliveries.ts";
import type { GitHubGateway } from "./github-gateway.ts";
import { repoRef } from "./github-gateway.ts";

export interface ConveyorAppDeps {
  db: Db;
  logger: Logger;
  gateway: GitHubGateway;
  onChange: () => void;
}

/** Events with a handler of their own; every other delivery is only recorded. */
const HANDLED_EVENTS = new Set(["issues", "installation", "installation_repositories"]);

type LabelLike = string | { name?: string };
const names = (labels: LabelLike[] | undefined) =>
  (labels ?? [])
    .map((l) => (typeof l === "string" ? l : l.name))
    .filter((n): n is string => Boolean(n));

/**
 * The Probot application: one handler per event. Each parses the payload into plain facts, calls
 * the intake service (which records in Postgres and returns), and lets loops do slow work. A
 * Probot Context never leaves this file.
 */
export function createConveyorApp(deps: ConveyorAppDeps): ApplicationFunction {
  const intake: IntakeDeps = deps;
  return (app) => {
    app.on("issues", async (context: Context<"issues">) => {
      const { payload } = context;
      const installationId = payload.installation?.id;
      if (!installationId) {
        deps.logger.warn({ deliveryId: context.id }, "issues event without installation ignored");
        return;
      }
      const issue = payload.issue;
      await handleIssuesEvent(intake, {
        deliveryId: context.id,
        action: payload.action,
        installationId,
        repository: {
          id: payload.repository.id,
          fullName: payload.repository.full_name,
          defaultBranch: payload.repository.default_branch,
          private: payload.repository.private,
        },
        ref: repoRef(installationId, payload.repository.full_name),
        issue: {
          number: issue.number,
          title: issue.title,
          body: issue.body ?? "",
          state: issue.state === "closed" ? "closed" : "open",
          labels: names(issue.labels as LabelLike[] | undefined),
          isPullRequest: Boolean((issue as { pull_request?: unknown }).pull_request),
          htmlUrl: issue.html_url,
        },
        label: "label" in payload ? payload.label?.name : undefined,
        sender: { login: payload.sender.login, type: payload.sender.type },
      });
    });

    app.on(["installation", "installation_repositories"], async (context) => {
      const payload = context.payload as {
        action: string;
        installation: { id: number };
        repositories?: { id: number; full_name: string; private?: boolean }[];
        repositories_added?: { id: number; full_name: string; private?: boolean }[];
        repositories_removed?: { id: number; full_name: string }[];
      };
      const toRepo = (r: { id: number; full_name: string; private?: boolean }) => ({
        id: r.id,
        fullName: r.full_name,
        private: r.private,
      });
      const removeAll = context.name === "installation" && payload.action === "deleted";
      const added =
        context.name === "installation"
          ? payload.action === "created" || payload.action === "unsuspend"
            ? (payload.repositories ?? [])
            : []
          : (payload.repositories_added ?? []);
      await handleInstallationEvent(intake, {
        deliveryId: context.id,
        event: context.name as "installation" | "installation_repositories",
        action: payload.action,
        installationId: payload.installation.id,
        added: added.map(toRepo),
        removed: (payload.repositories_removed ?? []).map(toRepo),
        removeAll,
      });
    });

    app.onAny(async (event) => {
      if (HANDLED_EVENTS.has(event.name)) return;
      const payload = event.payload as { action?: string; installation?: { id: number } };
      await recordDelivery(deps.db, {
        deliveryId: event.id,
        event: event.name,
        action: payload.action,
        installationId: payload.installation?.id,
        outcome: "received",
      });
    });
  };
}

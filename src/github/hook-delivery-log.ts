import type { ProbotOctokit } from "probot";
import type { HookDeliveryLog } from "../core/ports.ts";
import type { HookDelivery } from "../core/redelivery.ts";
import { nextLink } from "./read-all-pages.ts";

type Octokit = InstanceType<typeof ProbotOctokit>;

interface HookDeliveryItem {
  id: number;
  guid: string;
  delivered_at: string;
  redelivery: boolean;
  status_code: number;
  event: string;
  action: string | null;
}

/**
 * The App's webhook delivery log, through the App's JWT client. The list is cursor-paged: the
 * `Link` header's `rel="next"` URL carries the next page's `cursor`
 * (https://docs.github.com/en/rest/apps/webhooks#list-deliveries-for-an-app-webhook).
 */
export function createHookDeliveryLog(appOctokit: () => Promise<Octokit>): HookDeliveryLog {
  return {
    async list({ cursor, perPage }) {
      const octokit = await appOctokit();
      const response = await octokit.request("GET /app/hook/deliveries", {
        per_page: perPage,
        ...(cursor ? { cursor } : {}),
      });
      const items = response.data as unknown as HookDeliveryItem[];
      if (!Array.isArray(items)) {
        throw new Error("GitHub answered the webhook delivery list with something else");
      }
      const next = nextLink(response.headers.link);
      const deliveries: HookDelivery[] = items.map((d) => ({
        id: d.id,
        guid: d.guid,
        deliveredAt: d.delivered_at,
        redelivery: d.redelivery,
        statusCode: d.status_code,
        event: d.event,
        action: d.action,
      }));
      return {
        deliveries,
        next: next
          ? (new URL(next, "https://api.github.com").searchParams.get("cursor") ?? undefined)
          : undefined,
      };
    },
    async redeliver(id) {
      const octokit = await appOctokit();
      await octokit.request("POST /app/hook/deliveries/{delivery_id}/attempts", {
        delivery_id: id,
      });
    },
  };
}

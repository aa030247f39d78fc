import { type ApiRoutes, bodyOf, type RouteRequest } from "./api-route.ts";
import type { Json } from "./github-objects.ts";
import { HttpError, notFound } from "./http-error.ts";
import type { SimContext } from "./sim-context.ts";
import type { Delivery } from "./webhook-sender.ts";

/** GitHub keeps deliveries for redelivery three days. */
const REDELIVERY_WINDOW_MS = 3 * 24 * 60 * 60 * 1000;

/** GitHub's words for an attempt's outcome in the delivery log. */
function describeStatus(delivery: Delivery): string {
  if (delivery.status === undefined) {
    return /timeout|aborted/i.test(delivery.error ?? "")
      ? "timed out"
      : "failed to connect to host";
  }
  return delivery.status >= 200 && delivery.status < 300
    ? "OK"
    : `Invalid HTTP Response: ${delivery.status}`;
}

/** `hook-delivery-item`: one attempt, as `GET /app/hook/deliveries` lists it. */
export function renderHookDeliveryItem(delivery: Delivery): Json {
  const payload = delivery.payload as {
    installation?: { id?: number };
    repository?: { id?: number };
  };
  return {
    id: delivery.hookDeliveryId,
    guid: delivery.id,
    delivered_at: delivery.deliveredAt ?? null,
    redelivery: delivery.redelivery,
    duration: (delivery.durationMs ?? 0) / 1000,
    status: describeStatus(delivery),
    status_code: delivery.status ?? 0,
    event: delivery.event,
    action: delivery.action ?? null,
    installation_id: payload.installation?.id ?? null,
    repository_id: payload.repository?.id ?? null,
    throttled_at: null,
  };
}

/** `hook-delivery`: one attempt with its request and response. */
export function renderHookDelivery(delivery: Delivery): Json {
  return {
    ...(renderHookDeliveryItem(delivery) as Record<string, unknown>),
    url: delivery.url ?? "",
    request: { headers: delivery.requestHeaders, payload: delivery.payload },
    response: { headers: delivery.responseHeaders, payload: delivery.responseBody ?? null },
  } as Json;
}

/** Attempts GitHub made (the App had a webhook URL and the attempt ended), newest first. */
function deliveryLog(ctx: SimContext): Delivery[] {
  return ctx.webhooks.deliveries
    .filter((d) => d.url !== undefined && d.deliveredAt !== undefined)
    .sort((a, b) => b.hookDeliveryId - a.hookDeliveryId);
}

function requireLogged(ctx: SimContext, request: RouteRequest): Delivery {
  const delivery = ctx.webhooks.logged(Number(request.params.delivery_id));
  if (!delivery || delivery.deliveredAt === undefined) throw notFound();
  return delivery;
}

/**
 * A cursor-paged list, as GitHub pages the delivery log: `cursor` names the first attempt of the
 * page (`v1_<id>`), and `Link: <…cursor=…>; rel="next"` points at the next page.
 */
function cursorPage(request: RouteRequest, items: Delivery[]) {
  const perPage = Math.min(Math.max(Number(request.query.get("per_page") ?? 30) || 30, 1), 100);
  const cursor = request.query.get("cursor");
  let start = 0;
  if (cursor) {
    const id = /^v1_(\d+)$/.exec(cursor)?.[1];
    if (id === undefined) throw new HttpError(400, "Invalid cursor");
    start = items.findIndex((d) => d.hookDeliveryId <= Number(id));
    if (start < 0) start = items.length;
  }
  const page = items.slice(start, start + perPage);
  const following = items[start + perPage];
  const headers: Record<string, string> = {};
  if (following) {
    const next = new URL(request.url);
    next.searchParams.set("per_page", String(perPage));
    next.searchParams.set("cursor", `v1_${following.hookDeliveryId}`);
    headers.link = `<${next.toString()}>; rel="next"`;
  }
  return { page, headers };
}

/** The App's webhook: its configuration and its log of deliveries, with redelivery. */
export const hookRoutes: ApiRoutes = {
  "GET /app/hook/config": {
    auth: "app",
    handle: (ctx) => ({ body: ctx.webhooks.hookConfig() }),
  },

  "PATCH /app/hook/config": {
    auth: "app",
    handle(ctx, request) {
      const patch = bodyOf<{
        url?: string;
        content_type?: string;
        secret?: string;
        insecure_ssl?: string | number;
      }>(request);
      if (patch.content_type !== undefined && !["json", "form"].includes(patch.content_type)) {
        throw new HttpError(422, "Invalid request.\n\ncontent_type must be json or form.");
      }
      return { body: ctx.webhooks.updateHookConfig(patch) };
    },
  },

  "GET /app/hook/deliveries": {
    auth: "app",
    handle(ctx, request) {
      const status = request.query.get("status");
      const log = deliveryLog(ctx).filter((d) => {
        const code = d.status ?? 0;
        if (status === "success") return code >= 200 && code <= 399;
        if (status === "failure") return code >= 400 && code <= 599;
        return true;
      });
      const { page, headers } = cursorPage(request, log);
      return { body: page.map(renderHookDeliveryItem), headers };
    },
  },

  "GET /app/hook/deliveries/{delivery_id}": {
    auth: "app",
    handle: (ctx, request) => ({ body: renderHookDelivery(requireLogged(ctx, request)) }),
  },

  "POST /app/hook/deliveries/{delivery_id}/attempts": {
    auth: "app",
    handle(ctx, request) {
      const delivery = requireLogged(ctx, request);
      const age = ctx.state.clock().getTime() - Date.parse(delivery.deliveredAt ?? "");
      if (!(age <= REDELIVERY_WINDOW_MS)) {
        throw new HttpError(422, "Deliveries older than 3 days cannot be redelivered.");
      }
      // GitHub accepts the request and delivers later; `sim.idle()` waits for it.
      void ctx.webhooks.redeliver(delivery.id);
      return { status: 202, body: {} };
    },
  },
};

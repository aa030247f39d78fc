import type { ProbotOctokit } from "probot";

type Octokit = InstanceType<typeof ProbotOctokit>;

/** GitHub's largest page. */
export const PER_PAGE = 100;

export interface AllPages<T> {
  items: T[];
  /** The `total_count` the first page announced, for lists that carry one. */
  total: number | undefined;
  /** Why the list may be incomplete (too many pages, a `next` link off GitHub's origin), if so. */
  cutShort: string | undefined;
}

/**
 * Reads every page of a GitHub list, `per_page=100`, following the `Link: <…>; rel="next"` header
 * as GitHub documents (https://docs.github.com/en/rest/using-the-rest-api/using-pagination-in-the-rest-api).
 * Unlike `octokit.paginate`, an error on any page is thrown (paginate ends quietly on a 409), and a
 * list that does not end within `maxPages` is reported as cut short, so a caller can fail closed.
 * `pick` takes one page's body apart: the array, and `total_count` where the list has one.
 */
export async function readAllPages<T>(
  octokit: Octokit,
  route: string,
  params: Record<string, unknown>,
  pick: (data: unknown) => { items: T[]; total?: number | undefined },
  maxPages = 100,
): Promise<AllPages<T>> {
  const origin = new URL(octokit.request.endpoint.DEFAULTS.baseUrl).origin;
  let response = await octokit.request(route, { ...params, per_page: PER_PAGE });
  const first = pick(response.data);
  const items = [...first.items];
  for (let page = 1; ; page++) {
    const next = nextLink(response.headers.link);
    if (!next) return { items, total: first.total, cutShort: undefined };
    if (page >= maxPages) {
      return { items, total: first.total, cutShort: `more than ${maxPages} pages` };
    }
    if (new URL(next, origin).origin !== origin) {
      return { items, total: first.total, cutShort: "the next page is not on GitHub's API origin" };
    }
    response = await octokit.request({ method: "GET", url: next });
    items.push(...pick(response.data).items);
  }
}

/** The `rel="next"` target of a `Link` header. */
export function nextLink(link: string | undefined): string | undefined {
  for (const part of (link ?? "").split(",")) {
    const match = /^\s*<([^<>]+)>\s*;\s*rel="?next"?\s*$/.exec(part);
    if (match) return match[1];
  }
  return undefined;
}

/** A list answer that is a bare JSON array. */
export function arrayPage<T>(data: unknown): { items: T[] } {
  if (!Array.isArray(data)) throw new Error("GitHub answered a list request with something else");
  return { items: data as T[] };
}

/** A list answer wrapped in an object with `total_count` (`{total_count, check_runs: […]}`). */
export function countedPage<T>(key: string): (data: unknown) => { items: T[]; total: number } {
  return (data) => {
    const body = data as Record<string, unknown> | null;
    const items = body?.[key];
    const total = body?.total_count;
    if (!Array.isArray(items) || typeof total !== "number") {
      throw new Error(`GitHub's answer has no ${key} list with a total_count`);
    }
    return { items: items as T[], total };
  };
}

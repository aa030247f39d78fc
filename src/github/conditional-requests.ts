/** What a conditional read keeps of an answer: enough to hand the caller the same answer again. */
interface StoredAnswer {
  etag: string;
  response: OctokitResponse;
}

interface OctokitResponse {
  status: number;
  url: string;
  headers: Record<string, string | number | undefined>;
  data: unknown;
}

type EndpointOptions = {
  method?: string;
  url?: string;
  headers?: Record<string, string | number | undefined>;
  [key: string]: unknown;
};

/** The part of Octokit the conditional reads touch. */
export interface ConditionalOctokit {
  hook: {
    wrap(
      name: "request",
      wrapper: (
        request: (options: EndpointOptions) => Promise<OctokitResponse>,
        options: EndpointOptions,
      ) => Promise<OctokitResponse>,
    ): void;
  };
  request: {
    endpoint: { parse(options: EndpointOptions): { method: string; url: string; headers: object } };
  };
}

export interface ConditionalReads {
  /** Makes every GET of `octokit` conditional, sharing the tags kept under `scope`. */
  attach(octokit: ConditionalOctokit, scope: string): void;
  /** How many answers are kept (for tests). */
  size(): number;
}

/** Answers larger than this are not kept (a big file list would crowd out everything else). */
const MAX_BODY_CHARS = 512 * 1024;

/**
 * Conditional requests for every repeated read: a GET's `ETag` and answer are kept (per
 * installation, URL and media type, least recently used first out), the next identical GET sends
 * `If-None-Match`, and GitHub's `304 Not Modified` is turned back into the kept answer. GitHub does
 * not count a `304` against the rate limit
 * (https://docs.github.com/en/rest/using-the-rest-api/best-practices-for-using-the-rest-api#use-conditional-requests-if-appropriate),
 * and the answer is always GitHub's current one, so this cache needs no invalidation and is safe
 * with any number of instances: each keeps its own tags, and a tag another instance never saw
 * only costs it one full read.
 */
export function createConditionalReads(options: { maxEntries?: number } = {}): ConditionalReads {
  const maxEntries = options.maxEntries ?? 2000;
  const answers = new Map<string, StoredAnswer>();

  const remember = (key: string, answer: StoredAnswer) => {
    answers.delete(key);
    answers.set(key, answer);
    while (answers.size > maxEntries) {
      const oldest = answers.keys().next().value;
      if (oldest === undefined) break;
      answers.delete(oldest);
    }
  };

  return {
    size: () => answers.size,
    attach(octokit, scope) {
      octokit.hook.wrap("request", async (request, endpoint) => {
        if ((endpoint.method ?? "GET").toUpperCase() !== "GET") return request(endpoint);
        const parsed = octokit.request.endpoint.parse(endpoint);
        const accept = String((parsed.headers as Record<string, unknown>).accept ?? "");
        const key = `${scope} ${accept} ${parsed.url}`;
        const kept = answers.get(key);
        if (!kept) return store(key, await request(endpoint));
        try {
          // In place: hooks wrapped inside this one (auth, metrics) are bound to this object,
          // not to what is passed on. Each request has its own options object.
          endpoint.headers = { ...endpoint.headers, "if-none-match": kept.etag };
          const response = await request(endpoint);
          return store(key, response);
        } catch (error) {
          const failure = error as { status?: number; response?: OctokitResponse };
          if (failure.status !== 304) throw error;
          // Not modified: the kept answer, with this answer's headers (rate limit, request id).
          remember(key, kept);
          return {
            ...kept.response,
            data: structuredClone(kept.response.data),
            headers: { ...kept.response.headers, ...failure.response?.headers },
          };
        }
      });
    },
  };

  function store(key: string, response: OctokitResponse): OctokitResponse {
    const etag = response.headers.etag;
    if (response.status !== 200 || typeof etag !== "string") {
      answers.delete(key);
      return response;
    }
    const length = Number(response.headers["content-length"] ?? 0);
    if (length > MAX_BODY_CHARS) {
      answers.delete(key);
      return response;
    }
    // A copy is kept: callers may change what they get (`paginate` unwraps `{total_count, …}`
    // answers in place).
    remember(key, { etag, response: { ...response, data: structuredClone(response.data) } });
    return response;
  }
}

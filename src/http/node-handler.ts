import type { IncomingMessage, ServerResponse } from "node:http";

/**
 * A Node request handler in Probot's style: true when it answered the request. The HTTP app hands
 * such handlers the raw request (Probot's webhook middleware and its setup flow).
 */
export type NodeHandler = (
  req: IncomingMessage,
  res: ServerResponse,
) => // biome-ignore lint/suspicious/noConfusingVoidType: Probot's own handler type returns void
boolean | void | Promise<boolean | void>;

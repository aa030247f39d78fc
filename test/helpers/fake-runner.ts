import { WebSocket } from "ws";
import type { RunnerMessage, ServerMessage } from "../../src/protocol/messages.ts";
import { waitFor } from "./wait-for.ts";

export interface FakeRunner {
  ws: WebSocket;
  /** Every frame the server sent, in order. */
  received: ServerMessage[];
  send(frame: RunnerMessage | Record<string, unknown>): void;
  sendRaw(data: string): void;
  /** Waits for the next unseen frame of this type (and matching `where`), and marks it seen. */
  next<T extends ServerMessage["type"]>(
    type: T,
    where?: (frame: Extract<ServerMessage, { type: T }>) => boolean,
    timeoutMs?: number,
  ): Promise<Extract<ServerMessage, { type: T }>>;
  closed: Promise<{ code: number; reason: string }>;
  close(): void;
}

/**
 * A runner speaking the protocol over a real WebSocket, for tests. It does nothing by itself: the
 * test drives every frame.
 */
export async function connectRunner(
  serverUrl: string,
  token: string,
  hello?: Partial<Extract<RunnerMessage, { type: "hello" }>> | false,
): Promise<FakeRunner> {
  const ws = new WebSocket(`${serverUrl.replace(/^http/, "ws")}/runners/v1`, {
    headers: { authorization: `Bearer ${token}` },
  });
  const received: ServerMessage[] = [];
  const seen = new Set<ServerMessage>();
  ws.on("message", (data) => received.push(JSON.parse(String(data)) as ServerMessage));
  const closed = new Promise<{ code: number; reason: string }>((resolve) =>
    ws.on("close", (code, reason) => resolve({ code, reason: reason.toString() })),
  );
  await new Promise<void>((resolve, reject) => {
    ws.once("open", () => resolve());
    ws.once("error", reject);
    ws.once("unexpected-response", (_req, res) =>
      reject(
        Object.assign(new Error(`upgrade refused: ${res.statusCode}`), { status: res.statusCode }),
      ),
    );
  });
  const runner: FakeRunner = {
    ws,
    received,
    send: (frame) => ws.send(JSON.stringify(frame)),
    sendRaw: (data) => ws.send(data),
    async next(type, where, timeoutMs = 5_000) {
      const frame = await waitFor(
        () =>
          received.find((f) => f.type === type && !seen.has(f) && (!where || where(f as never))),
        { timeoutMs, message: `a ${type} frame` },
      );
      seen.add(frame);
      return frame as never;
    },
    closed,
    close: () => ws.close(),
  };
  if (hello !== false) {
    runner.send({
      type: "hello",
      protocol: 1,
      name: "test-runner",
      version: "0.0.0",
      capabilities: [],
      slots: 1,
      running: [],
      ...hello,
    });
    await runner.next("welcome");
  }
  return runner;
}
